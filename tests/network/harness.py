"""Member nodes as separate processes (`waymark node run`), each with its own database and its
own environment, on one test chain; and a proxy that can stand in front of a node's bundles.

Every process is started in a session of its own, so stopping or SIGKILLing a node takes its
services process with it; `NodeProcess.kill` is the crash, `stop` the clean end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from tests.node.conftest import POSTGRES_URL, postgres_unreachable
from waymark.demo.processes import NoAnswer, await_answer
from waymark.ports import free_port_range

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class NodeProcess:
    name: str
    env: dict[str, str]
    log: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    extra: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> NodeProcess:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "waymark", "node", "run", *self.extra],
                env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
            )
        process = self.process
        try:
            answer = await_answer(f"{self.url}/health", timeout, running=lambda: process.poll() is None, ready=lambda r: r.status_code == 200)
        except NoAnswer as exc:
            self.kill()
            raise RuntimeError(f"node {self.name}: {exc}:\n{self.log.read_text()[-4000:]}") from None
        if answer is None:
            raise RuntimeError(f"node {self.name} exited with {process.returncode}:\n{self.log.read_text()[-4000:]}")
        return self

    def _signal_group(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL the node and its services process, at whatever they were doing."""
        self._signal_group(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(15)
        self._reap_group()

    def stop(self) -> None:
        self._signal_group(signal.SIGTERM)
        if self.process is not None:
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.process.wait(10)
        self._reap_group()

    def _reap_group(self) -> None:
        # the services process (a fork of the node) leaves with its parent; make sure of it
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30, **kw)

    def post(self, path: str, content: bytes) -> httpx.Response:
        return httpx.post(self.url + path, content=content, headers={"Content-Type": "application/json"}, timeout=60)


def node_env(*, rpc_url: str, chain_id: int, deployments: Path, db_url: str, port: int, public_url: str | None = None,
             anchor_account: int, **settings: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WAYMARK_")}
    env.update({
        "WAYMARK_CHAIN_RPC_URL": rpc_url,
        "WAYMARK_CHAIN_CHAIN_ID": str(chain_id),
        "WAYMARK_CHAIN_DEPLOYMENTS_DIR": str(deployments),
        "WAYMARK_DB_URL": db_url,
        "WAYMARK_NODE_HOST": "127.0.0.1",
        "WAYMARK_NODE_PORT": str(port),
        "WAYMARK_NODE_PUBLIC_URL": public_url or f"http://127.0.0.1:{port}",
        "WAYMARK_NODE_ANCHOR_DEVNET_ACCOUNT": str(anchor_account),
        # event times follow the chain's clock, which earlier tests may have moved ahead
        "WAYMARK_NODE_MAX_FUTURE_SKEW": str(10**9),
        "WAYMARK_NODE_MAX_BATCH_DELAY": "0.2",
        "WAYMARK_NODE_ANCHOR_INTERVAL": "0",
        "WAYMARK_NODE_INDEXER_POLL": "0.1",
        "WAYMARK_NODE_REPLICATION_POLL": "0.1",
        "WAYMARK_NODE_HOLDERS_POLL": "0.2",
        "WAYMARK_NODE_DIRECTORY_TTL": "0.5",
        "WAYMARK_NODE_ROLE_REFRESH_INTERVAL": "0.1",
        "WAYMARK_NODE_REPLICATION_RETRY_BASE": "0.1",
        "WAYMARK_NODE_REPLICATION_RETRY_MAX": "0.5",
        "WAYMARK_NODE_REPLICATION_FETCH_TIMEOUT": "10",
        "PYTHONUNBUFFERED": "1",
    })
    env.update({f"WAYMARK_NODE_{k.upper()}": str(v) for k, v in settings.items()})
    return env


@contextmanager
def postgres_database() -> Iterator[str | None]:
    """A PostgreSQL database of its own (URL), dropped afterwards; None (with the reason printed) if there is no server."""
    reason = postgres_unreachable()
    if reason is not None:
        print(f"SKIP postgres node (SQLite instead): {reason}")
        yield None
        return
    name = f"wm_net_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 60.0, interval: float = 0.1) -> Any:
    """Poll `probe` until it returns something truthy (returned), at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")


def free_ports(n: int) -> list[int]:
    base = free_port_range(n)
    return list(range(base, base + n))
