"""The passport cache is bounded by bytes as well as by entries: passports of a few hundred KB
cannot grow the API's memory past its budget, whatever the entry limit; builds, and the scan
path's other database reads, run in a bounded number of threads."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from collections.abc import Callable
from typing import Any

import orjson

from api.readmodel.passport import FinishedPassport, PassportCore
from api.readmodel.scans import ScanLog
from api.routes.answers import scan
from api.services import ENTRY_OVERHEAD, PassportCache, _Entry
from node.db import Database
from node.protocol.digital_link import ParsedLink
from node.protocol.gs1 import UnitId


def core(size: int) -> PassportCore:
    """A passport that holds about `size` bytes in the cache (random padding: it does not compress below that)."""
    return PassportCore({"timeline": [], "padding": os.urandom(size).hex()}, "genuine", [], False, "09521234543213", 1)


def cache(max_bytes: int, size: int = 50_000) -> PassportCache:
    builder: Any = None  # storing and evicting never build
    return PassportCache(builder, ttl=60, pending_ttl=2, size=size, max_bytes=max_bytes)


def test_large_passports_are_evicted_by_bytes_least_recently_used_first() -> None:
    passports = cache(max_bytes=1_000_000)
    for i in range(20):
        passports._store(f"unit-{i}", _Entry(0.0, core(200_000), (), 0.0))
        assert passports.bytes <= passports.max_bytes
    assert len(passports) == 4  # 4 x (200 KB + overhead) fit in 1 MB, not 5
    assert list(passports._entries) == [f"unit-{i}" for i in range(16, 20)]
    assert passports.bytes == sum(e.core.size + ENTRY_OVERHEAD for e in passports._entries.values() if e.core is not None)


def test_replacing_and_invalidating_keep_the_byte_count_exact() -> None:
    passports = cache(max_bytes=10_000_000)
    passports._store("a", _Entry(0.0, core(100_000), (), 0.0))
    passports._store("a", _Entry(0.0, core(10_000), (), 0.0))
    passports._store("b", _Entry(0.0, None, (), 0.0))
    assert passports.bytes == passports._entries["a"].cost + ENTRY_OVERHEAD
    passports.invalidate("a")
    passports.invalidate("b")
    assert passports.bytes == 0 and len(passports) == 0


def test_a_passport_larger_than_the_whole_budget_is_not_kept() -> None:
    passports = cache(max_bytes=100_000)
    passports._store("small", _Entry(0.0, core(1_000), (), 0.0))
    passports._store("huge", _Entry(0.0, core(500_000), (), 0.0))
    assert list(passports._entries) == ["small"]


def test_the_entry_limit_still_applies_to_small_passports() -> None:
    passports = cache(max_bytes=10_000_000, size=3)
    for i in range(10):
        passports._store(f"u{i}", _Entry(0.0, core(10), (), 0.0))
    assert len(passports) == 3


class _CountingBuilder:
    """Builds block until released; records how many ran at once (no database, no chain)."""

    remote = None  # builds in this process's threads

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = self.most = 0
        self.release = threading.Event()

    def watermark(self) -> tuple[Any, ...]:
        return ()

    def cached_watermark(self) -> tuple[Any, ...] | None:
        return ()

    def build(self, identifier: Any) -> PassportCore:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        self.release.wait(30)
        with self.lock:
            self.running -= 1
        return core(10)


def scan_twelve_units_with_three_build_threads(builder: Any, release: Callable[[], None]) -> PassportCache:
    """Twelve first scans at once: three builds start and the rest queue until `release`."""
    passports = PassportCache(builder, ttl=60, pending_ttl=2, size=1000, build_threads=3)
    units = [UnitId("09521234543213", f"S{i}", "L1") for i in range(12)]

    async def scan_all() -> list[PassportCore | None]:
        scans = [asyncio.ensure_future(passports.get(unit)) for unit in units]
        deadline = time.monotonic() + 30
        while builder.running < 3 and time.monotonic() < deadline:  # the first three builds started; the rest must queue
            await asyncio.sleep(0)
        for _ in range(100):  # let every queued scan reach the limiter
            await asyncio.sleep(0)
        assert builder.running == 3
        release()
        return await asyncio.gather(*scans)

    built = asyncio.run(scan_all())
    assert all(c is not None for c in built) and len(passports) == 12 and passports.builds == 12
    return passports


def test_no_more_than_build_threads_passports_are_built_at_once() -> None:
    builder = _CountingBuilder()
    scan_twelve_units_with_three_build_threads(builder, builder.release.set)
    assert builder.most == 3


class _RemoteBuilder:
    """Builds in build processes: awaited on the event loop until released; records how many
    ran at once and in which threads they were awaited (no database, no chain)."""

    remote = object()  # set: builds go to build processes

    def __init__(self) -> None:
        self.running = self.most = 0
        self.release = asyncio.Event()
        self.threads: set[int] = set()

    def watermark(self) -> tuple[Any, ...]:
        return ()

    def cached_watermark(self) -> tuple[Any, ...] | None:
        return ()

    async def build_remote(self, identifier: Any) -> PassportCore:
        self.threads.add(threading.get_ident())
        self.running += 1
        self.most = max(self.most, self.running)
        await self.release.wait()
        self.running -= 1
        return core(10)


def test_builds_in_build_processes_are_awaited_on_the_event_loop_at_most_build_threads_at_once() -> None:
    builder = _RemoteBuilder()
    scan_twelve_units_with_three_build_threads(builder, builder.release.set)
    assert builder.most == 3
    assert builder.threads == {threading.get_ident()}  # the event loop's: no thread waited for a build process


def test_a_passport_is_held_compressed_and_served_unchanged() -> None:
    body = {"timeline": [{"id": f"ni:///sha-256;{i:064x}?ver=CBV2.0", "via": [], "event": {"bizStep": "shipping", "readPoint": "urn:epc:id:sgln:9521234.00001.0"}}
                         for i in range(40)], "verdict": "genuine", "link": "https://id.gs1.org/01/09521234543213/21/S1"}
    passport = PassportCore(body, "genuine", [], False, "09521234543213", 1)
    assert passport.body == body and list(passport.parts) == list(body)
    assert passport.size * 4 < len(passport.json)  # repetitive JSON: held at least four times smaller


def test_a_units_first_scan_reads_its_window_in_the_build_threads(tmp_path: Path) -> None:
    """With one build thread, the window read of a unit whose passport is cached waits while
    another unit's passport is built: the scan path's database reads take turns in the build
    threads instead of contending for the GIL in threads of their own."""
    db = Database(f"sqlite:///{tmp_path / 'scans.sqlite3'}")
    db.migrate()
    builder = _CountingBuilder()
    passports = PassportCache(builder, ttl=60, pending_ttl=2, size=1000, build_threads=1)  # type: ignore[arg-type]
    scans = ScanLog(db)
    builds_running_at_preload: list[int] = []
    real_preload = scans.preload

    def preload(key: str) -> None:
        builds_running_at_preload.append(builder.running)
        real_preload(key)

    scans.preload = preload  # type: ignore[method-assign,assignment]
    services: Any = SimpleNamespace(passports=passports, scans=scans)
    cold, cached = UnitId("09521234543213", "S1", "L1"), UnitId("09521234543213", "S2", "L1")
    passports._store(cached.canonical_uri, _Entry(time.monotonic() + 60, core(10), (), time.monotonic()))

    async def both() -> list[FinishedPassport]:
        first = asyncio.ensure_future(scan(services, ParsedLink(cold, "", None), None))
        deadline = time.monotonic() + 30
        while builder.running < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0)
        second = asyncio.ensure_future(scan(services, ParsedLink(cached, "", None), None))
        for _ in range(100):  # the cached unit's scan reaches its window read and must wait there
            await asyncio.sleep(0.001)
        assert builds_running_at_preload == [] and not second.done()
        builder.release.set()
        return list(await asyncio.gather(first, second))

    answers = asyncio.run(both())
    assert all(orjson.loads(a.json())["verdict"] == "genuine" for a in answers)
    assert builds_running_at_preload == [0, 0]
    db.dispose()
