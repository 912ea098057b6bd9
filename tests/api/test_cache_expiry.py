"""Caches of the scan API let go of what nobody asks for: under steady production every new unit
is scanned once or twice and then never again, and a cache that keeps such entries until its
limits push them out holds its whole budget for good (the soak, issue 17)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from api.readmodel.passport import PassportCore
from api.readmodel.claim_codes import device_hash
from api.readmodel.clone_rules import CloneRules
from api.readmodel.scans import ScanLog
from api.services import ENTRY_OVERHEAD, PassportCache, _Entry
from node.db import Database

TTL, MAX_AGE = 10.0, 300.0


def core() -> PassportCore:
    return PassportCore({"timeline": [], "padding": "x" * 1000}, "genuine", [], False, "09521234543213", 1)


def cache() -> PassportCache:
    builder: Any = None  # storing and evicting never build
    return PassportCache(builder, ttl=TTL, pending_ttl=2, size=50_000, max_age=MAX_AGE, max_bytes=64 * 1024 * 1024)


def stored_at(t: float) -> _Entry:
    return _Entry(t + TTL, core(), (), t)


def test_passports_not_scanned_for_max_age_are_dropped_as_new_ones_arrive() -> None:
    passports = cache()
    for second in range(0, 1200):  # one new unit a second for 20 minutes, each scanned once
        passports._store(f"unit-{second}", stored_at(float(second)))
    # What stays: the units stored within the last ttl + max_age seconds, not all 1,200.
    assert len(passports) == int(TTL + MAX_AGE) + 1
    assert next(iter(passports._entries)) == f"unit-{1199 - int(TTL + MAX_AGE)}"
    assert passports.bytes == len(passports) * (core().size + ENTRY_OVERHEAD)


def test_a_passport_refreshed_by_scans_stays() -> None:
    passports = cache()
    passports._store("popular", stored_at(0.0))
    for second in range(1, 1200):
        if second % 60 == 0:
            passports._store("popular", stored_at(float(second)))  # a scan after it went stale refreshes it
        passports._store(f"unit-{second}", stored_at(float(second)))
    assert "popular" in passports._entries


def test_clearing_resets_the_byte_count() -> None:
    passports = cache()
    passports._store("a", stored_at(0.0))
    passports.clear()
    assert passports.bytes == 0 and len(passports) == 0


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000_000

    def __call__(self) -> int:
        return self.now


def unit(i: int) -> str:
    return f"https://id.gs1.org/01/09521234543213/21/S{i}"


def test_units_not_scanned_for_idle_ms_leave_the_scan_log_and_come_back_from_the_database(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'scans.sqlite3'}")
    db.migrate()
    clock = Clock()
    log = ScanLog(db, CloneRules(), clock=clock, idle_ms=300_000)
    try:
        for second in range(1200):  # one new unit a second for 20 minutes, each scanned once
            clock.now += 1000
            log.record(unit(second), device=device_hash(b"s" * 32, f"phone-{second}"), region=None, region_source="none")
            if second % 10 == 0:
                log.flush()
        log.flush()
        assert len(log._units) == 301  # the last 5 minutes' units, not all 1,200
        clock.now += 1000
        again = log.record(unit(0), device=device_hash(b"s" * 32, "another phone"), region=None, region_source="none")
        assert again.scans_in_window == 2 and again.devices_in_window == 2  # its first scan, reloaded from the database
    finally:
        log.stop()
        db.dispose()
