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
`fork` would copy in whatever state they were in). The API process talks to each worker over a
socket pair that its event loop reads itself: a build costs the API process one small write and
one read, with no thread in between (concurrent.futures' process pool costs about ten times as
much CPU per task in the API process: a feeder thread and a manager thread, each a GIL handover
with the event loop). A worker ends when its socket closes: when the API closes the pool, or
when the API process ends, however it ends. A worker that dies (killed, out of memory) is
replaced and its builds are tried once more on another worker.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import socket
import struct
from dataclasses import dataclass, field
from multiprocessing import get_context
from multiprocessing.process import BaseProcess
from typing import Any

from api.readmodel.chain_view import ChainView
from api.readmodel.passport import BuildAsk, Built
from api.services import passport_builder
from api.settings import ApiSettings
from node.chain.client import ChainClient
from node.chain.deploy import load_deployment
from node.db import Database
from node.protocol.gs1 import Identifier
from node.settings import ChainSettings, DatabaseSettings

log = logging.getLogger("waymark.api")

# A frame: request id, length, then a pickle. Requests are (identifier, ask); answers are
# (True, Built | None) or (False, the exception the build raised). Id 0 is the worker's
# "ready", sent once its builder is set up.
_HEAD = struct.Struct("!QI")
_READY = 0
# Builds sent to one worker before it answers: the second waits in its socket, so the worker
# does not idle while its answer crosses the event loop; more would queue behind a slow build.
IN_FLIGHT = 2


class WorkerDied(RuntimeError):
    """A build process ended before it answered."""


class PoolClosed(RuntimeError):
    """A build asked of, or still waiting on, a pool that was closed."""


def _frame(request: int, value: Any) -> bytes:
    body = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEAD.pack(request, len(body)) + body


def _serve(sock: socket.socket, api: ApiSettings, chain: ChainSettings, database: DatabaseSettings) -> None:
    """A worker's life: set up its builder, say so, then build what it is asked until its socket closes."""
    client = ChainClient(chain.rpc_url, expected_chain_id=chain.chain_id)
    db = Database(database.url)  # the API process migrated it
    builder = passport_builder(api, chain, db, ChainView(client, load_deployment(chain.deployment_file), db=db), orders=None)
    sock.sendall(_frame(_READY, None))
    incoming = sock.makefile("rb")
    while len(head := incoming.read(_HEAD.size)) == _HEAD.size:
        request, length = _HEAD.unpack(head)
        identifier, ask = pickle.loads(incoming.read(length))
        try:
            answer: tuple[bool, Any] = (True, builder.build_core(identifier, ask))
        except Exception as error:  # noqa: BLE001 - handed to the API process, which raises it
            answer = (False, error)
        try:
            out = _frame(request, answer)
        except Exception as error:  # an exception that does not pickle: its text does
            out = _frame(request, (False, RuntimeError(f"a passport build failed: {answer[1]!r} ({error})")))
        try:
            sock.sendall(out)
        except (BrokenPipeError, ConnectionResetError):  # the pool closed while this build ran
            return


@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    sock: socket.socket
    pending: dict[int, asyncio.Future[Built | None]] = field(default_factory=dict)
    received: bytearray = field(default_factory=bytearray)
    ready: bool = False
    dead: bool = False


def _fail_pending(worker: _Worker, error: Exception) -> None:
    """Fail every build still waiting on `worker` (one whose scan went away is left as it is)."""
    for answer in worker.pending.values():
        if not answer.done():
            answer.set_exception(error)
    worker.pending.clear()


class BuildPool:
    """N worker processes building passport cores; `build` is awaited on the API's event loop."""

    def __init__(self, processes: int, api: ApiSettings, chain: ChainSettings, database: DatabaseSettings) -> None:
        self.processes = processes
        self._settings = (api, chain, database)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None
        self._requests = 0
        self._closed = False
        self._workers = [self._start_worker() for _ in range(processes)]

    def _start_worker(self) -> _Worker:
        ours, theirs = socket.socketpair()
        process = get_context("spawn").Process(target=_serve, args=(theirs, *self._settings), name="waymark-passport-build", daemon=True)
        process.start()
        theirs.close()  # the worker holds its end: its exit is our end's EOF
        ours.setblocking(False)
        worker = _Worker(process, ours)
        if self._loop is not None and not self._loop.is_closed():
            self._loop.add_reader(ours.fileno(), self._readable, worker)
        return worker

    def start(self) -> None:
        """Wait until every worker has set up its builder: a first scan does not wait for a worker
        to import the API, and workers that cannot start (a database they cannot reach) stop the
        API's start-up instead of failing its first scans."""
        for worker in self._workers:
            worker.sock.setblocking(True)
            try:
                while not worker.ready:
                    data = worker.sock.recv(1 << 16)
                    if not data:
                        self.close()
                        raise RuntimeError("the passport build processes could not start: their error is in the log above")
                    self._received(worker, data)
            finally:
                worker.sock.setblocking(False)

    async def build(self, identifier: Identifier, ask: BuildAsk = BuildAsk()) -> Built | None:
        """`PassportBuilder.build_core` in a worker, awaited on the event loop."""
        try:
            return await self._build(identifier, ask)
        except WorkerDied:
            log.warning("a passport build process died; building %s again", identifier.canonical_uri)
            for worker in self._workers:  # others may have ended with it (all killed at once)
                if not worker.dead and not worker.process.is_alive():
                    self._died(worker)
            return await self._build(identifier, ask)

    async def _build(self, identifier: Identifier, ask: BuildAsk) -> Built | None:
        if self._closed:
            raise PoolClosed("the passport build processes were stopped")
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._attach(loop)
        assert self._slots is not None
        async with self._slots:
            # A worker that died is replaced here, at the next build: one that cannot start
            # (a database gone) is then tried once per build, not in a loop of its own.
            self._workers = [self._start_worker() if w.dead else w for w in self._workers]
            # Fewer than IN_FLIGHT * processes builds are out, so one worker has a free place.
            worker = min(self._workers, key=lambda w: len(w.pending))
            self._requests += 1
            request = self._requests
            answer: asyncio.Future[Built | None] = loop.create_future()
            worker.pending[request] = answer
            try:
                worker.sock.send(_frame(request, (identifier, ask)))  # a few hundred bytes: the socket takes them whole
            except OSError:
                self._died(worker)
            return await answer

    def _attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Read the workers' answers on `loop` (the API has one loop; tests run one per call)."""
        live = [worker for worker in self._workers if not worker.dead]
        if self._loop is not None and not self._loop.is_closed():
            for worker in live:
                self._loop.remove_reader(worker.sock.fileno())
        self._loop, self._slots = loop, asyncio.Semaphore(IN_FLIGHT * self.processes)
        for worker in live:
            loop.add_reader(worker.sock.fileno(), self._readable, worker)

    def _readable(self, worker: _Worker) -> None:
        try:
            data = worker.sock.recv(1 << 20)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._died(worker)
            return
        self._received(worker, data)

    def _received(self, worker: _Worker, data: bytes) -> None:
        """Settle every whole answer received so far."""
        received = worker.received
        received += data
        start = 0
        while len(received) - start >= _HEAD.size:
            request, length = _HEAD.unpack_from(received, start)
            end = start + _HEAD.size + length
            if len(received) < end:
                break
            value = pickle.loads(memoryview(received)[start + _HEAD.size:end])
            start = end
            if request == _READY:
                worker.ready = True
                continue
            answer = worker.pending.pop(request, None)
            if answer is None or answer.done():  # its scan was cancelled meanwhile
                continue
            ok, result = value
            if ok:
                answer.set_result(result)
            else:
                answer.set_exception(result)
        del received[:start]

    def _died(self, worker: _Worker) -> None:
        """Fail the builds of a worker that ended (`build` tries each once more, on its replacement
        or another worker)."""
        if worker.dead:
            return
        worker.dead = True
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(worker.sock.fileno())
        worker.sock.close()
        _fail_pending(worker, WorkerDied(f"passport build process {worker.process.pid} ended"))
        worker.process.join(timeout=0)

    def close(self) -> None:
        """Close every worker's socket (each ends at its next read) and wait for them to end; a
        build still waiting fails with PoolClosed."""
        self._closed = True
        for worker in self._workers:
            _fail_pending(worker, PoolClosed("the passport build processes were stopped"))
            if not worker.dead and self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(worker.sock.fileno())
            worker.sock.close()
        for worker in self._workers:
            worker.process.join(timeout=10)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=10)
