"""A JSON-RPC front for a test Anvil that limits `eth_getLogs` the way Besu does.

Besu refuses an `eth_getLogs` whose `toBlock - fromBlock` exceeds `--rpc-max-logs-range` with
JSON-RPC error -32005 "Requested range exceeds maximum RPC range limit". Anvil has no such limit,
so this front forwards every request to Anvil and answers over-wide `eth_getLogs` itself with
Besu's error. It records every method asked and every `eth_getLogs` range, and can be told to fail (HTTP 503)
after a number of them, as a node going away in the middle of a sync.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from node.chain.logs import BESU_RANGE_REFUSAL


@dataclass
class LogsLimitedNode:
    upstream: str
    max_logs_range: int
    asked: list[tuple[int, int, bool]] = field(default_factory=list)
    """(fromBlock, toBlock, refused) of every eth_getLogs, in order."""
    fail_after: int | None = None
    """Answer HTTP 503 to eth_getLogs once this many have been answered (None: never)."""
    url: str = ""
    methods: list[str] = field(default_factory=list)
    """The method of every request forwarded or answered, in order."""

    def answer(self, request: dict[str, Any]) -> dict[str, Any] | None:
        if request.get("method") != "eth_getLogs":
            return None
        params = request["params"][0]
        first, last = int(params["fromBlock"], 16), int(params["toBlock"], 16)
        refused = last - first > self.max_logs_range
        self.asked.append((first, last, refused))
        if refused:
            return {"jsonrpc": "2.0", "id": request.get("id"), "error": {"code": -32005, "message": BESU_RANGE_REFUSAL}}
        return None

    def answered(self) -> int:
        return sum(1 for *_r, refused in self.asked if not refused)


@contextmanager
def logs_limited(upstream: str, max_logs_range: int) -> Iterator[LogsLimitedNode]:
    node = LogsLimitedNode(upstream, max_logs_range)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            request = json.loads(body)
            node.methods.append(str(request.get("method")) if isinstance(request, dict) else "batch")
            if (request.get("method") == "eth_getLogs" and node.fail_after is not None
                    and node.answered() >= node.fail_after):
                self.send_response(503)
                self.end_headers()
                return
            own = node.answer(request) if isinstance(request, dict) else None
            if own is not None:
                payload = json.dumps(own).encode()
            else:
                payload = requests.post(node.upstream, data=body, headers={"Content-Type": "application/json"},
                                        timeout=10).content
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    node.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield node
    finally:
        server.shutdown()
        server.server_close()
