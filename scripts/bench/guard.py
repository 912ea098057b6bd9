"""A guard process for benchmarks: it kills the processes a benchmark registers, and drops the
databases it names, when the benchmark's process ends however it ended (its stdin pipe closes),
so a benchmark that is killed leaves nothing behind."""

from __future__ import annotations

import subprocess
import sys

GUARD = r"""
import os, signal, sys, time
pids, databases = [], []
for line in sys.stdin:  # until the run's end closes the pipe, however it ended
    if line.strip().isdigit():
        pids.append(int(line))
    elif line.startswith("db "):
        databases.append(line.split()[1:3])
for sig in (signal.SIGTERM, signal.SIGKILL):
    for pid in pids:
        try:
            os.killpg(pid, sig) if os.getpgid(pid) == pid else os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    time.sleep(2)
if databases:
    import psycopg
    for url, name in databases:
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        except psycopg.Error:
            pass
"""


class Guard:
    """Kills the registered processes when this process ends (its stdin pipe closes)."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", GUARD], stdin=subprocess.PIPE, start_new_session=True)

    def watch(self, pid: int) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{pid}\n".encode())
        self.process.stdin.flush()

    def drop_at_end(self, server: str, database: str) -> None:
        """Drop `database` (of the server `server` names) when this process ends."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"db {server.replace('postgresql+psycopg://', 'postgresql://')} {database}\n".encode())
        self.process.stdin.flush()

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)
