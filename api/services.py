"""What the API holds while it runs: database, chain views, passport cache, scan log, limits.

Built by the lifespan in `api.main`; routes reach it through `api.deps`.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from api.auth import RequestVerifier
from api.metrics import Metrics
from api.ratelimit import RateLimiter
from api.settings import ApiSettings
from node.chain.client import ChainClient
from node.chain.deploy import Deployment
from node.db import Database
from node.passport import ChainView, PassportBuilder, PassportCore
from node.provenance.gs1 import Identifier
from node.scans import ScanLog


def load_salt(path: Path) -> bytes:
    """The device-hash salt: read from its file, created there (mode 600) on first use."""
    if path.exists():
        data = path.read_bytes()
        if len(data) >= 16:
            return data
    path.parent.mkdir(parents=True, exist_ok=True)
    salt = secrets.token_bytes(32)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(salt)
    tmp.chmod(0o600)
    tmp.replace(path)
    return salt


_MISSING = object()


class PassportCache:
    """Passport cores by canonical id, with a TTL per entry and one build at a time per id.

    Verification of anchored events does not change, so a complete passport is kept for
    `ttl` seconds (new events may still arrive); one with pending events, or an unknown code,
    for `pending_ttl`. Concurrent scans of an uncached code wait for a single build.
    """

    def __init__(self, builder: PassportBuilder, *, ttl: float, pending_ttl: float, size: int) -> None:
        self.builder = builder
        self.ttl, self.pending_ttl, self.size = ttl, pending_ttl, size
        self._entries: OrderedDict[str, tuple[float, PassportCore | None]] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[PassportCore | None]] = {}
        self._lock = threading.Lock()
        self.builds = 0

    def peek(self, key: str) -> object:
        """The cached core (or None for a cached unknown code), or _MISSING."""
        hit = self._entries.get(key)
        if hit is None or hit[0] < time.monotonic():
            return _MISSING
        return hit[1]

    async def get(self, identifier: Identifier) -> PassportCore | None:
        key = identifier.canonical_uri
        cached = self.peek(key)
        if cached is not _MISSING:
            return cached  # type: ignore[return-value]
        waiting = self._inflight.get(key)
        if waiting is not None:
            return await asyncio.shield(waiting)
        future: asyncio.Future[PassportCore | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            core = await anyio.to_thread.run_sync(self.builder.build, identifier)
            self.builds += 1
            self.put(key, core)
            future.set_result(core)
            return core
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # mark retrieved: waiters re-raise it, nobody else needs to
            raise
        finally:
            self._inflight.pop(key, None)

    def put(self, key: str, core: PassportCore | None) -> None:
        ttl = self.pending_ttl if core is None or core.pending or core.verdict != "genuine" else self.ttl
        with self._lock:
            self._entries[key] = (time.monotonic() + ttl, core)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def invalidate(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)


@dataclass
class Services:
    settings: ApiSettings
    db: Database
    client: ChainClient
    deployment: Deployment
    chain: ChainView
    builder: PassportBuilder
    passports: PassportCache
    scans: ScanLog
    limiter: RateLimiter
    verifier: RequestVerifier
    metrics: Metrics
    salt: bytes
    page_template: bytes = b""
    extra: dict[str, object] = field(default_factory=dict)
