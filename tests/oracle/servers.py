"""Starting and stopping a real node process for the oracle tests (tests/oracle/node_main.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import uvicorn

from node.paths import PROJECT_ROOT
from waymark.ports import free_port
from waymark.demo.processes import NoAnswer, await_answer


@dataclass
class NodeProcess:
    rpc_url: str
    chain_id: int
    deployment_file: Path
    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    keystore: Path | None = None
    anchor_account: int | None = None
    replicate: float = 0.0
    peers: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.workdir / 'node.sqlite3'}"

    def start(self, timeout: float = 60.0) -> "NodeProcess":
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / "node.log", "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.oracle.node_main", "--port", str(self.port), "--rpc-url", self.rpc_url,
             "--chain-id", str(self.chain_id), "--deployment", str(self.deployment_file), "--db", self.db_url,
             "--blobs", str(self.workdir / "blobs"), *self._document_args()],
            cwd=PROJECT_ROOT, stdout=log, stderr=log, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        )
        process = self.process
        try:
            answer = await_answer(f"{self.url}/health", timeout, running=lambda: process.poll() is None,
                                  ready=lambda r: r.status_code in (200, 503))
        except NoAnswer:
            self.stop()
            raise
        if answer is None:
            raise RuntimeError(f"node exited with {process.returncode}: {(self.workdir / 'node.log').read_text()[-3000:]}")
        return self

    def _document_args(self) -> list[str]:
        args = ["--keystore", str(self.keystore)] if self.keystore else []
        args += ["--anchor-account", str(self.anchor_account)] if self.anchor_account is not None else []
        args += ["--replicate", str(self.replicate)] if self.replicate else []
        for peer in self.peers:
            args += ["--peer", peer]
        return args

    def stop(self, kill: bool = False) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def wait_anchored(self, event_ids: list[str], timeout: float = 60.0) -> dict[str, dict[str, Any]]:
        """Poll GET /events/{id} until every event is anchored (bounded); their answers."""
        deadline = time.monotonic() + timeout
        answers: dict[str, dict[str, Any]] = {}
        while time.monotonic() < deadline:
            for event_id in event_ids:
                if event_id in answers:
                    continue
                response = httpx.get(f"{self.url}/events/{quote(event_id, safe='')}", timeout=5)
                if response.status_code == 200 and response.json()["status"] in ("anchored", "confirmed"):
                    answers[event_id] = response.json()
            if len(answers) == len(event_ids):
                return answers
            time.sleep(0.2)
        missing = [e for e in event_ids if e not in answers]
        raise AssertionError(f"{len(missing)} of {len(event_ids)} events not anchored in {timeout}s, e.g. {missing[:2]}")


class ServedApp:
    """An ASGI app served over real HTTP by uvicorn in a thread (for services the tests run in-process)."""

    def __init__(self, app: object) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))  # type: ignore[arg-type]
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "ServedApp":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the app did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
