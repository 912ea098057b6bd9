"""Ports for servers that the tests, the benchmarks and the devnet tooling start on this machine.

A port is chosen below the kernel's ephemeral range (32768-60999 by default), so no client
connection's local port can land on it between choosing and binding, at random, and reserved
among this machine's processes (`_reserve`) until the process that chose it ends. Asking the
kernel for port 0 instead hands out ports of the ephemeral range: a test's oracle once lost such a
port to an outgoing connection before its server bound it.
"""

from __future__ import annotations

import fcntl
import os
import random
import socket
import tempfile

from node.errors import WaymarkError

FIRST_PORT = 20_000
EPHEMERAL_START = 32_768


class PortsExhausted(WaymarkError):
    def __init__(self, count: int) -> None:
        super().__init__(f"no {count} consecutive free ports below the ephemeral range ({FIRST_PORT}-{EPHEMERAL_START - 1})")


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


# Lock files of the ports this process reserved (their descriptors stay open until it ends).
_RESERVED: list[int] = []


def _reserve(port: int) -> int | None:
    """An exclusive lock on `port` among this machine's processes: flock on a lock file in the temp
    folder, released by the kernel when the holder ends however it ends; its descriptor, or None
    if another process (or another reservation of this one) holds it."""
    fd = os.open(os.path.join(tempfile.gettempdir(), f"waymark-port-{port}.lock"), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def free_port_range(count: int) -> int:
    """The first of `count` consecutive free ports, reserved for this process until it ends. Two
    test runs side by side once drew overlapping ranges, both found them free, and each network's
    node lost its port to the other's: hence the reservation."""
    rng = random.SystemRandom()
    for _ in range(500):
        base = rng.randrange(FIRST_PORT, EPHEMERAL_START - count)
        held: list[int] = []
        for port in range(base, base + count):
            fd = _reserve(port)
            if fd is None:
                break
            held.append(fd)
        if len(held) == count and all(port_free(base + i) for i in range(count)):
            _RESERVED.extend(held)
            return base
        for fd in held:
            os.close(fd)
    raise PortsExhausted(count)


def free_port() -> int:
    """One free port, reserved like a range."""
    return free_port_range(1)
