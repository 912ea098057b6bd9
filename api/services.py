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
from api.readmodel.chain_view import ChainView
from api.readmodel.passport import PassportBuilder, PassportCore
from node.documents import DocumentSettings, DocumentStore, FileBlobStore
from node.escrow.orders import OrderIndex
from node.member.epcis_rest.corrections import passport_corrections
from node.settings import ChainSettings
from node.protocol.gs1 import Identifier
from api.readmodel.scans import ScanLog


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



def passport_builder(api: ApiSettings, chain: ChainSettings, db: Database, view: ChainView, orders: OrderIndex | None) -> PassportBuilder:
    """The API's passport builder (the same in the API process and in its build processes)."""
    # Passports show each document as available / erased / not held, from the node's store.
    documents = DocumentStore(db, FileBlobStore(DocumentSettings().blob_dir))
    return PassportBuilder(
        db,
        view,
        resolver_url=api.public_url,
        browser_rpc_url=api.browser_rpc_url or chain.rpc_url,
        confirmations=chain.confirmations,
        orders=orders,
        document_status=documents.status,
        corrections=passport_corrections(db),
    )


ENTRY_OVERHEAD = 1024  # bytes an entry costs beyond its passport's JSON (objects, keys, the LRU's links)


@dataclass
class _Entry:
    expires: float
    core: PassportCore | None
    watermark: tuple[object, ...]
    built: float

    @property
    def cost(self) -> int:
        return ENTRY_OVERHEAD + (self.core.size if self.core is not None else 0)


class PassportCache:
    """Passport cores by canonical id: served from memory, refreshed in the background.

    A passport is fresh for `ttl` seconds (`pending_ttl` while events are pending or the code
    is unknown). When it expires it is still served while one background task refreshes it
    (stale-while-revalidate): if the node's tables have not changed since the build (its
    watermark) and the build is younger than `max_age`, the entry is just kept; otherwise the
    passport is rebuilt. Verification of anchored events does not change, so nothing is lost.
    A code seen for the first time waits for its build, shared by all concurrent scans of it.

    At most `build_threads` builds run at once, in threads of their own limit: a build is CPU
    work under the GIL, so more at once add no throughput, only connection-pool waits and a slower
    event loop for the scans the cache already answers; further builds queue in arrival order.
    With build processes (api.build_pool) no thread waits for them: the event loop awaits at most
    `build_threads` builds at once.

    Entries nobody scanned for `max_age` seconds after they went stale are dropped as new ones
    are stored: a cache full of units scanned once (every new unit, under steady production)
    would otherwise hold its whole byte budget for good. Such a passport would be rebuilt on
    its next scan anyway (older than `max_age`), so dropping it costs that scan one build.
    """

    def __init__(
        self, builder: PassportBuilder, *, ttl: float, pending_ttl: float, size: int, max_age: float = 300.0, max_bytes: int = 64 * 1024 * 1024,
        build_threads: int = 4,
    ) -> None:
        self.builder = builder
        self.ttl, self.pending_ttl, self.size, self.max_age = ttl, pending_ttl, size, max_age
        # Bounded by bytes as well as entries: one passport is a few hundred bytes or hundreds of KB.
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[PassportCore | None]] = {}
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task[None]] = set()  # keeps background refreshes referenced
        self.build_threads = build_threads
        self._build_limiter: anyio.CapacityLimiter | None = None  # made in the event loop, on first use
        self.builds = 0

    async def get(self, identifier: Identifier) -> PassportCore | None:
        key = identifier.canonical_uri
        entry = self._entries.get(key)
        if entry is not None:
            now = time.monotonic()
            if entry.expires < now and key not in self._inflight:
                if self.builder.cached_watermark() == entry.watermark and now - entry.built < self.max_age:
                    entry.expires = now + self._ttl(entry.core)  # nothing changed: no thread needed
                    with self._lock:
                        if key in self._entries:
                            self._entries.move_to_end(key)  # refreshed: last in refresh order
                else:
                    self._start(identifier, entry)  # refresh in the background, answer from the cache now
            return entry.core
        waiting = self._inflight.get(key) or self._start(identifier, None)
        return await asyncio.shield(waiting)

    def _refresh(self, identifier: Identifier, old: _Entry | None) -> _Entry:
        """`old` kept if nothing changed since it was built, else a new build (in this thread)."""
        now = time.monotonic()
        mark = self.builder.watermark()
        return self._kept(old, mark, now) or self._built(self.builder.build(identifier), mark, now)

    async def _refresh_remote(self, identifier: Identifier, old: _Entry | None) -> _Entry:
        """`_refresh` with the build in a build process, awaited on the event loop: a thread
        only reads the watermark when the one in memory is more than a second old."""
        now = time.monotonic()
        mark = self.builder.cached_watermark()
        if mark is None:
            mark = await anyio.to_thread.run_sync(self.builder.watermark)
        return self._kept(old, mark, now) or self._built(await self.builder.build_remote(identifier), mark, now)

    def _kept(self, old: _Entry | None, mark: tuple[object, ...], now: float) -> _Entry | None:
        """`old` for another ttl if the node's tables have not changed since it was built and it is younger than max_age."""
        if old is not None and old.watermark == mark and now - old.built < self.max_age:
            return _Entry(now + self._ttl(old.core), old.core, mark, old.built)
        return None

    def _built(self, core: PassportCore | None, mark: tuple[object, ...], now: float) -> _Entry:
        self.builds += 1
        return _Entry(now + self._ttl(core), core, mark, now)

    def _ttl(self, core: PassportCore | None) -> float:
        return self.pending_ttl if core is None or core.pending or core.verdict != "genuine" else self.ttl

    def _start(self, identifier: Identifier, old: _Entry | None) -> asyncio.Future[PassportCore | None]:
        key = identifier.canonical_uri
        future: asyncio.Future[PassportCore | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future

        limiter = self.limiter

        async def refresh() -> None:
            try:
                if self.builder.remote is not None:
                    async with limiter:  # as many in flight as there are build threads otherwise
                        entry = await self._refresh_remote(identifier, old)
                else:
                    entry = await anyio.to_thread.run_sync(self._refresh, identifier, old, limiter=limiter)
            except BaseException as error:  # noqa: BLE001 - handed to whoever waits on it
                future.set_exception(error)
                future.exception()  # retrieved: a background refresh has nobody waiting
            else:
                self._store(key, entry)
                future.set_result(entry.core)
            finally:
                self._inflight.pop(key, None)

        task = asyncio.ensure_future(refresh())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return future

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        """The threads builds run in (made in the event loop, on first use). A scan's other reads
        of the database (a unit's scan window) take turns in them too: reads that release the
        GIL around every statement contend for it when many threads run them at once, and each
        thread then gets less done than one alone."""
        if self._build_limiter is None:
            self._build_limiter = anyio.CapacityLimiter(self.build_threads)
        return self._build_limiter

    def _store(self, key: str, entry: _Entry) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= old.cost
            if entry.cost > self.max_bytes:
                return  # larger than the whole cache: served, not kept
            self._entries[key] = entry
            self.bytes += entry.cost
            # Stored order is refresh order: the first entry went longest without a scan refreshing it.
            refreshed_at = entry.expires - self._ttl(entry.core)
            idle_before = refreshed_at - self.max_age
            while self._entries and (len(self._entries) > self.size or self.bytes > self.max_bytes
                                     or next(iter(self._entries.values())).expires < idle_before):
                _key, evicted = self._entries.popitem(last=False)
                self.bytes -= evicted.cost

    def clear(self) -> None:
        """Forget every passport (master data changed: each is rebuilt on its next scan)."""
        with self._lock:
            self._entries.clear()
            self.bytes = 0

    def invalidate(self, key: str) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= old.cost

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
