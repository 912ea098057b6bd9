"""A stand-in for a member node's public URL: passes requests through to the node, or withholds
its batch bundles (503), or serves them with one event altered. The mode changes while it runs."""

from __future__ import annotations

import gzip

import httpx
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response


class BundleProxy:
    def __init__(self, target: str) -> None:
        self.target = target
        self.mode = "pass"  # pass | withhold | tamper
        self.app = FastAPI()
        self.app.add_api_route("/{path:path}", self.forward, methods=["GET"])

    def forward(self, path: str, request: Request) -> Response:
        bundle = path.startswith("batches/0x") and path.endswith("/bundle")
        if bundle and self.mode == "withhold":
            return Response(status_code=503)
        with httpx.stream("GET", f"{self.target}/{path}", params=request.query_params, timeout=30) as upstream:
            body = b"".join(upstream.iter_raw())
            headers = {k: v for k, v in upstream.headers.items() if k.lower() in ("content-type", "content-encoding")}
            status = upstream.status_code
        if bundle and self.mode == "tamper" and status == 200:
            body = altered(body)
        return Response(body, status_code=status, headers=headers)


def altered(raw: bytes, leaf_index: int = 0) -> bytes:
    """The bundle with the event of one leaf changed: its readPoint moved."""
    line = leaf_index + 1  # after the header
    lines = gzip.decompress(raw).split(b"\n")
    leaf = orjson.loads(lines[line])
    leaf["event"]["readPoint"] = {"id": "urn:epc:id:sgln:9521234.00000.1"}
    lines[line] = orjson.dumps(leaf)
    return gzip.compress(b"\n".join(lines))
