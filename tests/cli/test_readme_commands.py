"""The README's commands work as written: every ```sh block of README.md runs, in order, in one bash
shell from the project root, against a demo this test starts (`waymark demo`, as `make demo` runs it).

The README is written for `make demo` with its default ports and `var/demo/` root. This test runs
the demo on free ports with a root of its own, so it rewrites exactly those in the blocks: the
ports 8545 (chain), 8600 (the first member node's), 8700 (the first scan API, the QR codes'
resolver), 8720 (relayer), 8710-8717 (oracles) and the folder `var/demo`. Nothing else is changed.

A block whose first line is `# not run: <why>` is skipped (the README says so where it is). A
block fails the test when any of its commands fails (`set -eo pipefail`), when a line of output
holds a traceback, and the test names the block.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from waymark.ports import free_port, free_port_range
from node.paths import PROJECT_ROOT
from waymark.demo.layout import MEMBER_NODES, ORACLE_COUNT

README = PROJECT_ROOT / "README.md"
SKIP_MARK = "# not run:"
READY_WITHIN = 240.0
COMMANDS_WITHIN = 900.0  # ~60 s on an idle 2-core machine; the bound is for a loaded one
DEMO_PORTS = {"rpc": 8545, "node": 8600, "api": 8700, "relayer": 8720, "oracles": 8710}


@dataclass(frozen=True)
class Block:
    line: int  # where its fence opens in README.md
    text: str

    @property
    def runs(self) -> bool:
        first = self.text.lstrip().splitlines()[0] if self.text.strip() else ""
        return not first.startswith(SKIP_MARK)


def sh_blocks(markdown: str) -> list[Block]:
    """The ```sh blocks of a Markdown text, with the line their fence opens on."""
    blocks: list[Block] = []
    body: list[str] = []
    lines, opened = markdown.splitlines(), None
    for number, line in enumerate(lines, start=1):
        if opened is None and re.fullmatch(r"```(sh|bash|shell)\s*", line):
            opened, body = number, []
        elif opened is not None and line.strip() == "```":
            blocks.append(Block(opened, "\n".join(body)))
            opened = None
        elif opened is not None:
            body.append(line)
    assert opened is None, f"README.md: the block opened on line {opened} is never closed"
    return blocks


def for_this_demo(text: str, ports: dict[str, int], root: Path) -> str:
    """A README block with the demo's default ports and root replaced by this test's."""
    mapping = {DEMO_PORTS["rpc"]: ports["rpc"], DEMO_PORTS["node"]: ports["node"], DEMO_PORTS["api"]: ports["api"],
               DEMO_PORTS["relayer"]: ports["relayer"],
               **{DEMO_PORTS["oracles"] + i: ports["oracles"] + i for i in range(ORACLE_COUNT)}}
    text = re.sub(r"(?<![\d.])(8545|8600|8700|8720|871[0-7])(?!\d)", lambda m: str(mapping[int(m.group(1))]), text)
    return text.replace("var/demo", str(root))


def test_the_readme_marks_a_block_it_does_not_run_and_runs_the_rest() -> None:
    blocks = sh_blocks(README.read_text())
    skipped = [b for b in blocks if not b.runs]
    assert any("make demo" in b.text for b in skipped), "the `make demo` block must be marked as not run"
    assert sum(b.runs for b in blocks) >= 10, "the README's walk-through lost its runnable blocks"
    for block in skipped:  # a skipped block says why
        assert len(block.text.lstrip().splitlines()[0]) > len(SKIP_MARK) + 3, f"README.md line {block.line}: say why it is not run"


def test_every_readme_command_block_runs_against_the_demo(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    ports = {"rpc": free_port(), "node": free_port_range(len(MEMBER_NODES)), "api": free_port_range(len(MEMBER_NODES)),
             "relayer": free_port(), "oracles": free_port_range(ORACLE_COUNT)}
    demo = subprocess.Popen(
        [sys.executable, "-m", "waymark", "demo", "--root", str(root), "--day-seconds", "0.1", "--units", "12",
         "--rpc-port", str(ports["rpc"]), "--node-port", str(ports["node"]), "--api-port", str(ports["api"]),
         "--relayer-port", str(ports["relayer"]), "--oracle-port", str(ports["oracles"])],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert demo.stdout is not None
        deadline, seen = time.monotonic() + READY_WITHIN, list[str]()
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            if not line:
                raise AssertionError("the demo ended before it was ready:\n" + "".join(seen[-40:]))
            seen.append(line)
            if line.startswith("ready"):
                break
        else:
            raise AssertionError("the demo was not ready in time:\n" + "".join(seen[-40:]))
        # Keep reading what the demo says: a pipe nobody reads fills up and stops the demo where it prints.
        threading.Thread(target=seen.extend, args=(demo.stdout,), daemon=True).start()

        blocks = [b for b in sh_blocks(README.read_text()) if b.runs]
        script = ["set -eo pipefail"]
        for number, block in enumerate(blocks):
            script.append(f"echo '::block {number} (README.md line {block.line})::'")
            script.append(for_this_demo(block.text, ports, root))
        script.append("echo '::all blocks ran::'")
        env = {k: v for k, v in os.environ.items() if not k.startswith("WAYMARK_")}
        log = tmp_path / "readme-commands.log"
        with log.open("w") as out, (tmp_path / "readme-commands.err").open("w") as err:
            shell = subprocess.Popen(["bash", "-c", "\n".join(script)], cwd=PROJECT_ROOT, stdout=out, stderr=err,
                                     text=True, env={**env, "COLUMNS": "160"}, start_new_session=True)
            try:
                returncode = shell.wait(timeout=COMMANDS_WITHIN)
            except subprocess.TimeoutExpired:
                os.killpg(shell.pid, signal.SIGKILL)
                returncode = shell.wait(timeout=10)
        stdout, stderr = log.read_text(), (tmp_path / "readme-commands.err").read_text()
        output = stdout + stderr
        started = re.findall(r"::block (\d+) \(README.md line (\d+)\)::", stdout)
        where = f"README.md line {started[-1][1]}" if started else "before the first block"
        assert returncode == 0 and "::all blocks ran::" in stdout, (
            f"a README command failed in the block at {where} (exit code {returncode}):\n{output[-4000:]}")
        assert "Traceback" not in output, output[-4000:]
        # What the walk-through says happened, happened.
        assert "milestone 1 reached" in stdout
        assert re.search(r"order 0x[0-9a-f]{64} confirmed and released", stdout)
        assert "current=RESOLVED" in stderr and "exit code 7" in stdout
        assert "no discrepancies" in stdout
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGINT)
        try:
            demo.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait(timeout=10)
