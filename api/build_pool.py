"""Passports built in worker processes, so that cold passports use more than one core.

A cold passport is CPU work in Python (its reads, verification and assembly: a few ms), and one
process runs Python on one core at a time: with builds in its own threads the API cannot answer
more cold scans per second than one core builds. With `WAYMARK_API_PASSPORT_BUILD_PROCESSES=N`,
N worker processes build passport cores (`PassportBuilder.build_core`); the API process keeps
everything a scan shares with other scans: the passport cache, the scan log and its clone rules,
claims, rate limits and the escrow order index. A worker also reads, in its build's snapshot,
the orders of the unit's shipment keys and, for a unit the scan log does not hold, its scan
window; the API process takes them where nothing it wrote since could have changed them
(`OrderIndex.take`, `ScanLog.take_window`), so that a cold scan reads nothing in the API process.

Each worker opens its own database connections and its own read-only chain caches, from the
same settings as the API. Workers are started with `spawn` (the API process runs threads, which
`fork` would copy in whatever state they were in) and end when the API process ends, however it
ends. A worker that dies (killed, out of memory) breaks the pool: a new one is started and the
build is tried once more on it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context

from api.readmodel.chain_view import ChainView
from api.readmodel.passport import BuildAsk, Built, PassportBuilder
from api.services import passport_builder
from api.settings import ApiSettings
from node.chain.client import ChainClient
from node.chain.deploy import load_deployment
from node.db import Database
from node.lifetime import exit_with_parent
from node.protocol.gs1 import Identifier
from node.settings import ChainSettings, DatabaseSettings

log = logging.getLogger("waymark.api")

_builder: PassportBuilder | None = None  # the worker's own (set by _start_worker)


def _start_worker(parent: int, api: ApiSettings, chain: ChainSettings, database: DatabaseSettings) -> None:
    global _builder
    exit_with_parent(parent)
    client = ChainClient(chain.rpc_url, expected_chain_id=chain.chain_id)
    db = Database(database.url)  # the API process migrated it
    _builder = passport_builder(api, chain, db, ChainView(client, load_deployment(chain.deployment_file), db=db), orders=None)


def _build_core(identifier: Identifier, ask: BuildAsk) -> Built | None:
    assert _builder is not None, "not a build worker"
    return _builder.build_core(identifier, ask)


def _ready() -> None:
    """Answered once a worker's initializer has set up its builder (a failing one breaks the pool)."""


class BuildPool:
    """N worker processes building passport cores; `build` is awaited on the API's event loop."""

    def __init__(self, processes: int, api: ApiSettings, chain: ChainSettings, database: DatabaseSettings) -> None:
        self.processes = processes
        self._settings = (api, chain, database)
        self._lock = threading.Lock()
        self._executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.processes, mp_context=get_context("spawn"), initializer=_start_worker,
                                   initargs=(os.getpid(), *self._settings))

    def start(self) -> None:
        """Start the workers now and wait until one has built its builder: a first scan does not wait
        for a worker to import the API, and workers that cannot start (a database they cannot
        reach) stop the API's start-up instead of failing its first scans."""
        executor = self._executor
        try:
            for ready in [executor.submit(_ready) for _ in range(self.processes)]:
                ready.result()
        except BrokenProcessPool as error:
            raise RuntimeError("the passport build processes could not start: their error is in the log above") from error

    async def build(self, identifier: Identifier, ask: BuildAsk = BuildAsk()) -> Built | None:
        """`PassportBuilder.build_core` in a worker, awaited on the event loop."""
        executor = self._executor
        try:
            return await asyncio.wrap_future(executor.submit(_build_core, identifier, ask))
        except BrokenProcessPool:
            log.warning("a passport build process died; starting new ones and building %s again", identifier.canonical_uri)
            with self._lock:
                if self._executor is executor:
                    executor.shutdown(wait=False, cancel_futures=True)
                    self._executor = self._new_executor()
            return await asyncio.wrap_future(self._executor.submit(_build_core, identifier, ask))

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
