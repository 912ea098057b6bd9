"""Child processes of the demo: each in a process group of its own, stopped as a group.

A child is started in a new session (so a Ctrl-C in the terminal reaches only the demo, which
then stops the children in order), with its output in a log file, and (on Linux) is sent
SIGTERM by the kernel if the demo dies without stopping it. Stopping sends SIGTERM to
the child's whole group, waits a bounded time, then SIGKILLs what is left of the group, and
waits until the group is empty: helpers a child forked (the node's indexer/anchorer process)
go with it, and nothing is left behind.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from node.errors import WaymarkError


class ChildFailed(WaymarkError):
    def __init__(self, name: str, detail: str, log: Path) -> None:
        tail = log.read_text(errors="replace")[-1500:].strip() if log.exists() else ""
        super().__init__(f"{name} {detail} (log {log})" + (f":\n{tail}" if tail else ""))


class PortTaken(WaymarkError):
    def __init__(self, what: str, port: int, option: str) -> None:
        super().__init__(f"port {port} for the {what} is taken (another devnet or demo running?); choose another with {option}")


PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM when the demo dies, even by SIGKILL, so a demo
    that could not clean up leaves no orphan."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_group(process: subprocess.Popen[bytes], grace: float = 15.0, kill_wait: float = 5.0) -> None:
    """SIGTERM the process's group, SIGKILL it after `grace` seconds, and wait until it is empty."""
    pgid = process.pid  # a session leader's group id is its pid
    if group_alive(pgid):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and (process.poll() is None or group_alive(pgid)):
        time.sleep(0.05)
    if group_alive(pgid):
        os.killpg(pgid, signal.SIGKILL)
    process.wait(timeout=kill_wait)
    deadline = time.monotonic() + kill_wait
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)


@dataclass
class Child:
    """One service of the demo, run as `argv` until stopped."""

    name: str
    argv: Sequence[str]
    log: Path
    health_url: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> "Child":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                list(self.argv), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env}, cwd=self.cwd, start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        return self

    def wait_ready(self, timeout: float) -> None:
        """Poll the health URL (any HTTP answer counts: the server is up) until `timeout`."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ChildFailed(self.name, f"exited with code {self.process.returncode}", self.log)
            if self.health_url is None:
                return
            try:
                httpx.get(self.health_url, timeout=1.0)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise ChildFailed(self.name, f"did not answer on {self.health_url} within {timeout:.0f}s", self.log)

    def stop(self, grace: float = 15.0) -> None:
        if self.process is not None:
            stop_group(self.process, grace)


class Supervisor:
    """The demo's children, stopped in the reverse order of their start."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.children: list[Child] = []
        self.say = say

    def start(self, *children: Child, timeout: float = 90.0) -> None:
        """Start these children together and wait until each is ready."""
        for child in children:
            self.children.append(child.start())
        for child in children:
            child.wait_ready(timeout)

    def pids(self) -> dict[str, int]:
        return {c.name: c.process.pid for c in self.children if c.process is not None}

    def stop_all(self) -> None:
        for child in reversed(self.children):
            if child.process is not None and child.process.poll() is None:
                self.say(f"stopping {child.name}")
            child.stop()
        self.children.clear()
