"""The run command from a fresh clone: `waymark demo` (four member nodes with their scan APIs)
reaches "ready", serves the same passport from every member's scan API, and Ctrl-C leaves nothing behind; run again, it resumes and serves the same story without replaying it.

This test clones the repository at HEAD (`git clone` of this checkout), so it tests the
*committed* code, not the working tree: commit before relying on it. The clone borrows this
checkout's .venv and node_modules (symlinks; nothing is installed into them), and a copy of the
compiled contracts (build/, a cache the clone recompiles if its sources differ); the demo runs
the clone's code (`python -m waymark` from the clone, PYTHONPATH the clone) and keeps its state
in the clone's var/demo. Its ports are free ones, never the devnet's, so it runs beside a
developer's devnet or demo.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from waymark.ports import free_port, free_port_range, port_free
from node.paths import PROJECT_ROOT
from waymark.demo.layout import MEMBER_NODES, ORACLE_COUNT
from waymark.demo.processes import group_alive

READY_WITHIN = 300.0
STOP_WITHIN = 60.0


def fresh_clone(target: Path) -> Path:
    subprocess.run(["git", "clone", "--quiet", str(PROJECT_ROOT), str(target)], check=True, timeout=120)
    for shared in (".venv", "node_modules"):
        (target / shared).symlink_to(PROJECT_ROOT / shared, target_is_directory=True)
    if (PROJECT_ROOT / "build").exists():
        shutil.copytree(PROJECT_ROOT / "build", target / "build")
    return target


class Output:
    """The command's output lines, read by a thread so that waiting on them is bounded."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert process.stdout is not None
        self.thread = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
        self.thread.start()

    def _read(self, stream: "subprocess.IO[str]") -> None:  # type: ignore[name-defined]
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, process: subprocess.Popen[str], timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                match = re.match(pattern, line)
                if match:
                    return match
            if process.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"no line matching {pattern!r} within {timeout:.0f}s; output:\n" + "\n".join(self.lines[-60:]))


def history(passport: dict[str, Any]) -> list[tuple[str, str, str]]:
    """A passport's timeline as each event's id, business step and verification outcome."""
    return [(e["id"], str(e["bizStep"]), e["verification"]["status"]) for e in passport["timeline"]]


def test_the_demo_from_a_fresh_clone_serves_a_passport_and_ctrl_c_leaves_no_process(tmp_path: Path) -> None:
    clone = fresh_clone(tmp_path / "waymark")
    ports = {"--rpc-port": free_port(), "--node-port": free_port_range(len(MEMBER_NODES)), "--api-port": free_port_range(len(MEMBER_NODES)),
             "--relayer-port": free_port(), "--oracle-port": free_port_range(ORACLE_COUNT)}
    command = [str(clone / ".venv" / "bin" / "python"), "-m", "waymark", "demo", "--day-seconds", "0.25",
               *[str(part) for option, port in ports.items() for part in (option, port)]]
    process = subprocess.Popen(
        command, cwd=clone, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(clone), "PYTHONUNBUFFERED": "1"},
    )
    output = Output(process)
    try:
        # It runs the clone's code and keeps its state in the clone.
        state = output.wait_for(r"Waymark demo: state in (\S+)", process, 60).group(1)
        assert Path(state) == clone / "var" / "demo"
        url = output.wait_for(r"scanner\s+(http://\S+)", process, READY_WITHIN).group(1)
        output.wait_for(r"ready\b", process, 30)
        assert url.startswith(f"http://127.0.0.1:{ports['--api-port']}/01/")

        # A buyer's phone fetches the demo unit's passport from the printed URL.
        answer = httpx.get(url, headers={"Accept": "application/json"}, timeout=30)
        assert answer.status_code == 200
        passport = answer.json()
        assert passport["verdict"] == "genuine", passport["reasons"]
        # "ready" waited until every member node held every batch: each member's scan API gives
        # the same history of the unit once its cached passport is refreshed (a passport cached
        # while the story scanned, before other members' batches arrived, is fresh for
        # WAYMARK_API_PASSPORT_TTL, 10 s, then rebuilt from what the node now holds).
        output.wait_for(r"replicated\s+every member node", process, 1)
        path = url.split(str(ports["--api-port"]), 1)[1]
        apis = [f"http://127.0.0.1:{ports['--api-port'] + i}{path}" for i in range(len(MEMBER_NODES))]
        deadline = time.monotonic() + 60
        while True:
            seen = [httpx.get(api, headers={"Accept": "application/json"}, timeout=30).json() for api in apis]
            told = [(p["verdict"], history(p)) for p in seen]
            if all(t == told[0] for t in told) or time.monotonic() > deadline:
                break
            time.sleep(1)
        for i, t in enumerate(told[1:], start=1):
            assert t == told[0], f"scan API {i} still differs from the manufacturer's after 60 s"
        assert (clone / "var" / "demo" / "story.json").exists()
        assert (clone / "var" / "demo" / "qr" / "demo-unit.png").exists()
        children = json.loads((clone / "var" / "demo" / "pids.json").read_text())
    finally:
        # Ctrl-C: the terminal sends SIGINT to the foreground process group.
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=STOP_WITHIN)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise

    output.thread.join(timeout=5)
    assert process.returncode == 0, "\n".join(output.lines[-40:])
    assert any(line.startswith("stopped") for line in output.lines)
    # No process is left: not in the demo's group, nor in any child's group; every port is free.
    assert not group_alive(process.pid)
    for name, pid in children.items():
        assert not group_alive(pid), f"the {name} process group ({pid}) is still alive"
    ranges = {"--node-port": len(MEMBER_NODES), "--api-port": len(MEMBER_NODES), "--oracle-port": ORACLE_COUNT}
    busy = [p for option, first in ports.items() for p in range(first, first + ranges.get(option, 1)) if not port_free(p)]
    assert not busy, f"ports still taken: {busy}"

    # Run again: it resumes the chain and database, finds the story played, and serves the same unit.
    again = subprocess.run([*command, "--no-wait"], cwd=clone, capture_output=True, text=True, timeout=READY_WITHIN,
                           env={**os.environ, "PYTHONPATH": str(clone)})
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "already played" in again.stdout
    assert re.search(r"^scanner\s+" + re.escape(url) + "$", again.stdout, re.MULTILINE), again.stdout
    assert re.search(r"^ready\b", again.stdout, re.MULTILINE)
    assert " offers order " not in again.stdout and " withdraws " not in again.stdout
