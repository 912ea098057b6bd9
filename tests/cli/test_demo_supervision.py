"""The demo's supervisor restarts a service that dies and says so; one that keeps dying is left
down with a line saying so; stopping leaves no process behind."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import httpx

from waymark.ports import free_port
from waymark.demo.processes import Child, Supervisor, group_alive


def wait_for(lines: list[str], text: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [line for line in lines if text in line]
        if found:
            return found[-1]
        time.sleep(0.05)
    raise AssertionError(f"no line with {text!r} within {timeout}s: {lines}")


def test_a_killed_service_is_restarted_and_the_restart_is_said(tmp_path: Path) -> None:
    lines: list[str] = []
    port = free_port()
    supervisor = Supervisor(lines.append, max_backoff=1.0, ready_timeout=30)
    server = Child("web", [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"], tmp_path / "web.log",
                   health_url=f"http://127.0.0.1:{port}/")
    restarted: list[int] = []
    supervisor.on_restart = lambda _name, pid: restarted.append(pid)
    supervisor.start(server, timeout=30)
    supervisor.watch(interval=0.1)
    try:
        assert server.process is not None
        first = server.process.pid
        os.killpg(first, signal.SIGKILL)
        assert "web exited with code -9: restarting" in wait_for(lines, "web exited")
        wait_for(lines, "web restarted")
        assert server.process.pid != first and restarted == [server.process.pid]
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
        assert not group_alive(first)
    finally:
        supervisor.stop_all()
    assert server.process is not None and not group_alive(server.process.pid)


def test_a_service_that_keeps_dying_is_left_down_with_a_line_saying_so(tmp_path: Path) -> None:
    lines: list[str] = []
    supervisor = Supervisor(lines.append, max_restarts=2, window=60, max_backoff=0.2, ready_timeout=5)
    crashing = Child("crasher", [sys.executable, "-c", "import time; time.sleep(0.3); raise SystemExit(3)"], tmp_path / "c.log")
    supervisor.start(crashing, timeout=5)
    supervisor.watch(interval=0.05)
    try:
        line = wait_for(lines, "not restarting it again", timeout=30)
        assert line.startswith("crasher exited with code 3 3 times within 60s")
        assert sum("crasher exited with code 3: restarting" in x for x in lines) == 2
    finally:
        supervisor.stop_all()


# A child that notes SIGTERM in a shared file, takes a while to finish, then notes its exit.
SLOW_TO_STOP = """
import signal, sys, time
name, journal = sys.argv[1], sys.argv[2]
def note(what):
    with open(journal, "a") as f:
        f.write(f"{what} {name}\\n")
def term(*_):
    note("term")
    time.sleep(2)
    note("exit")
    sys.exit(0)
signal.signal(signal.SIGTERM, term)
note("up")
while True:
    time.sleep(0.05)
"""


def test_children_started_together_are_stopped_together_after_those_started_later(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    supervisor = Supervisor(lambda _line: None)

    def child(name: str) -> Child:
        return Child(name, [sys.executable, "-c", SLOW_TO_STOP, name, str(journal)], tmp_path / f"{name}.log")

    def up(*names: str) -> None:
        deadline = time.monotonic() + 30
        while not all(f"up {n}" in (journal.read_text() if journal.exists() else "") for n in names):
            assert time.monotonic() < deadline, "the children did not start"
            time.sleep(0.05)

    supervisor.start(child("chain"))
    up("chain")
    supervisor.start(child("node-a"), child("node-b"))
    up("node-a", "node-b")
    supervisor.stop_all()
    lines = [line for line in journal.read_text().splitlines() if not line.startswith("up")]
    # Both nodes were asked to stop before either had finished, and the chain only after both.
    assert sorted(lines[:2]) == ["term node-a", "term node-b"], lines
    assert sorted(lines[2:4]) == ["exit node-a", "exit node-b"], lines
    assert lines[4:] == ["term chain", "exit chain"], lines


def test_every_service_starts_with_two_malloc_arenas_unless_told_otherwise(tmp_path: Path) -> None:
    show = "import os; print(os.environ.get('MALLOC_ARENA_MAX'))"
    for name, env, expected in (("default", {}, "2"), ("own", {"MALLOC_ARENA_MAX": "4"}, "4")):
        child = Child(name, [sys.executable, "-c", show], tmp_path / f"{name}.log", env=env).start()
        assert child.process is not None and child.process.wait(timeout=30) == 0
        assert (tmp_path / f"{name}.log").read_text().strip() == expected
