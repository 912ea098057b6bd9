"""What the scanner page's browser tests serve it with: the page built for a world's consortium
and approved by vote, member nodes in their own processes listed in the registry's node
directory, and a lying server (the adversary under test) in front of an honest API."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from api.page_bundle import PageAnchors, build_page
from waymark.ports import free_port
from waymark.devnet.consortium import devnet_account
from waymark.devnet.governance import approve_verifier_bundle
from node.chain.registry import RegistryClient
from tests.api.world import World

def approve_bundle(world: World, digest: bytes) -> None:
    """The members vote `digest` into ConsortiumRegistry.verifierBundleHash (SetVerifierBundle)."""
    approve_verifier_bundle(world.client, world.deployment, digest)
    assert RegistryClient(world.client, world.deployment).verifier_bundle_hash() == digest


def served_page(world: World, folder: Path) -> Path:
    """The page built for the world's consortium (its chain, registries and RPC), approved by vote."""
    static = folder / "page"
    anchors = PageAnchors.of(world.deployment, world.anvil.rpc_url, world.chain_settings.confirmations)
    approve_bundle(world, build_page(anchors, static))
    return static


def set_node_record(world: World, account_index: int, url: str) -> None:
    """The organisation of devnet account `account_index` lists its node at `url`."""
    RegistryClient(world.client, world.deployment).set_node_record(url, None, devnet_account(account_index))


# --- member nodes ---------------------------------------------------------------------------------


def copy_database(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database (its backup API, not a file copy)."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def drop_event(database: Path, event_id: str) -> None:
    """Remove one event from a node's database, as a node that lost or withholds it would lack it."""
    digest = bytes.fromhex(event_id.split(";")[1][:64])
    with sqlite3.connect(database) as conn:
        (row_id,) = conn.execute("SELECT id FROM events WHERE digest = ?", (digest,)).fetchone()
        conn.execute("DELETE FROM event_epcs WHERE event_id = ?", (row_id,))
        conn.execute("DELETE FROM events WHERE id = ?", (row_id,))


class NodeProcess:
    """A member node's HTTP app (node.member.app) in its own process, on its own SQLite database."""

    def __init__(self, world: World, database: Path, folder: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("WAYMARK_")},
            "WAYMARK_CHAIN_RPC_URL": world.anvil.rpc_url,
            "WAYMARK_CHAIN_CHAIN_ID": str(world.client.chain_id),
            "WAYMARK_CHAIN_DEPLOYMENTS_DIR": str(world.chain_settings.deployments_dir),
            "WAYMARK_DB_URL": f"sqlite:///{database}",
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "NodeProcess":
        log = (self.folder / "node.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "node.member.app:app_from_environment", "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", "warning"],
            env=self.env, cwd=self.folder, stdout=log, stderr=subprocess.STDOUT,
        )
        return self

    def wait(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, (self.folder / "node.log").read_text()[-3000:]
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError(f"the node at {self.url} did not start: {(self.folder / 'node.log').read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


# --- the adversary: a server that lies ------------------------------------------------------------

BOOT = re.compile(rb'(<script id="waymark-boot" type="application/json">)(.*?)(</script>)', re.S)
FORWARDED = ("Accept", "Waymark-Device", "Content-Type")


class LyingServer:
    """Serves what an honest API serves, with lies: `claims` replaces trust anchors the API states
    (the page's boot config and every passport's `chain`: chainId, registry addresses, rpcUrl);
    `bundle` replaces the verifier script /static/app.js. The HTML and the loader are the honest
    ones (a server that rewrites those too is outside what a page can defend; scanner_web/README.md)."""

    def __init__(self, upstream: str, *, claims: dict[str, Any] | None = None, bundle: bytes | None = None) -> None:
        self.upstream = upstream
        self.claims = claims or {}
        self.bundle = bundle
        liar = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path.split("?")[0] == "/static/app.js" and liar.bundle is not None:
                    return self.answer(200, "text/javascript", liar.bundle, {})
                got = requests.get(liar.upstream + self.path, headers={k: v for k in FORWARDED if (v := self.headers.get(k))},
                                   allow_redirects=False, timeout=30)
                kind = got.headers.get("Content-Type", "")
                body = liar.lie(got.content, kind)
                keep = {k: got.headers[k] for k in ("Location", "Cache-Control", "Access-Control-Allow-Origin") if k in got.headers}
                self.answer(got.status_code, kind, body, keep)

            def answer(self, status: int, kind: str, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def lie(self, body: bytes, kind: str) -> bytes:
        if not self.claims:
            return body
        if kind.startswith("text/html"):
            def boot(match: re.Match[bytes]) -> bytes:
                data = json.loads(match.group(2))
                data["config"] = {**(data.get("config") or {}), **self.claims}
                if isinstance(data.get("passport"), dict) and "chain" in data["passport"]:
                    data["passport"]["chain"] = {**data["passport"]["chain"], **self.claims}
                return match.group(1) + json.dumps(data).replace("<", "\\u003c").encode() + match.group(3)
            return BOOT.sub(boot, body, count=1)
        if kind.startswith("application/json"):
            data = json.loads(body)
            if isinstance(data, dict) and isinstance(data.get("chain"), dict):
                data["chain"] = {**data["chain"], **self.claims}
                return json.dumps(data).encode()
        return body

    def __enter__(self) -> "LyingServer":
        self.thread = threading.Thread(target=self.server.serve_forever, name="lying-server", daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
