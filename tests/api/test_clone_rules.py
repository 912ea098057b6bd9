"""Clone rules and claims of the scan log on their own (a database, a clock we move)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from node.db import Database
from node.db.scans import Scan
from node.scans import AlreadyClaimed, ClaimRejected, CloneRules, ScanLog, claim_code_hash, device_hash, new_claim_code, normalize_claim_code

UNIT = "https://id.gs1.org/01/09521234543213/21/ABC"
SALT = b"s" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000_000

    def __call__(self) -> int:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += int(minutes * 60_000)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'scans.sqlite3'}")
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def log(db: Database, clock: Clock) -> ScanLog:
    return ScanLog(db, CloneRules(max_devices=3, max_scans=5, max_regions=2, min_travel_ms=120 * 60_000), clock=clock)


def scan(log: ScanLog, device: str = "a", region: str | None = None, source: str = "stated", unit: str = UNIT) -> list[str]:
    return [f.rule for f in log.record(unit, device=device_hash(SALT, device), region=region, region_source=source, gtin="09521234543213", org_id=1).flags]


def test_a_few_scans_by_a_few_devices_trip_nothing(log: ScanLog) -> None:
    assert scan(log, "a") == [] and scan(log, "b") == [] and scan(log, "a") == []


def test_more_devices_than_allowed_trip_too_many_devices(log: ScanLog) -> None:
    for device in "abc":
        assert scan(log, device) == []
    assert scan(log, "d") == ["too_many_devices"]


def test_more_scans_than_allowed_trip_too_many_scans(log: ScanLog) -> None:
    for _ in range(5):
        assert scan(log) == []
    assert scan(log) == ["too_many_scans"]


def test_the_window_slides(log: ScanLog, clock: Clock) -> None:
    for _ in range(5):
        scan(log)
    clock.advance(24 * 60 + 1)
    assert scan(log) == []


def test_two_countries_too_close_in_time_are_implausible(log: ScanLog, clock: Clock) -> None:
    assert scan(log, "a", "NL") == []
    clock.advance(30)
    assert scan(log, "b", "CN") == ["implausible_places"]
    clock.advance(180)
    assert scan(log, "c", "NL") == []  # three hours later: a flight is plausible


def test_more_countries_than_allowed_in_a_day_are_implausible(log: ScanLog, clock: Clock) -> None:
    for region in ("NL", "DE"):
        assert scan(log, "a", region) == []
        clock.advance(300)
    assert scan(log, "a", "FR") == ["implausible_places"]


def test_a_region_guessed_from_the_language_is_not_judged(log: ScanLog, clock: Clock) -> None:
    assert scan(log, "a", "NL", "language") == []
    clock.advance(1)
    assert scan(log, "b", "CN", "language") == []


def test_scans_are_written_without_personal_data(log: ScanLog, db: Database) -> None:
    scan(log, "device-id-123", "NL")
    assert log.flush() == 1
    with db.session() as s:
        row = s.scalars(select(Scan)).one()
    assert row.unit_key == UNIT and row.region == "NL" and row.region_source == "stated"
    assert row.device_hash == device_hash(SALT, "device-id-123") and len(row.device_hash) == 16
    assert b"device-id-123" not in row.device_hash


def test_the_window_survives_a_restart(db: Database, clock: Clock, log: ScanLog) -> None:
    for device in "abc":
        scan(log, device)
    log.flush()
    restarted = ScanLog(db, log.rules, clock=clock)
    assert scan(restarted, "d") == ["too_many_devices"]


def test_claim_with_the_right_code_once(log: ScanLog) -> None:
    code = new_claim_code()
    assert log.register_claim_codes([(UNIT, claim_code_hash(UNIT, code))], org_id=1, registered_by="0xM") == 1
    with pytest.raises(ClaimRejected) as wrong:
        log.claim_with_code(UNIT, new_claim_code(), device_hash(SALT, "owner"))
    assert wrong.value.reason == "wrong_code"
    owned = log.claim_with_code(UNIT, code.lower().replace("-", " "), device_hash(SALT, "owner"))
    assert owned.claimed and owned.method == "code" and owned.by_this_device
    with pytest.raises(AlreadyClaimed):
        log.claim_with_code(UNIT, code, device_hash(SALT, "other"))


def test_after_a_claim_other_devices_trip_scanned_after_claim(log: ScanLog, clock: Clock) -> None:
    code = new_claim_code()
    log.register_claim_codes([(UNIT, claim_code_hash(UNIT, code))], org_id=1, registered_by="0xM")
    log.claim_with_code(UNIT, code, device_hash(SALT, "owner"))
    clock.advance(1)
    assert scan(log, "owner") == []
    assert scan(log, "shop") == ["scanned_after_claim"]


def test_guessing_codes_is_cut_off(log: ScanLog) -> None:
    log.register_claim_codes([(UNIT, claim_code_hash(UNIT, new_claim_code()))], org_id=1, registered_by="0xM")
    for _ in range(10):
        with pytest.raises(ClaimRejected):
            log.claim_with_code(UNIT, new_claim_code(), None)
    with pytest.raises(ClaimRejected) as blocked:
        log.claim_with_code(UNIT, new_claim_code(), None)
    assert blocked.value.reason == "too_many_attempts"


def test_claim_codes_are_80_bits_and_forgiving_to_type() -> None:
    code = new_claim_code()
    assert len(normalize_claim_code(code)) == 16
    assert normalize_claim_code("abcd-efgh-jkmn-p0o1") == "ABCDEFGHJKMNP001"


def test_one_alert_per_unit_rule_and_day(log: ScanLog, clock: Clock) -> None:
    for device in "abcde":  # d and e both trip it: one alert
        scan(log, device)
    alerts = log.alerts(1)
    assert [a.rule for a in alerts] == ["too_many_devices"]
    clock.advance(24 * 60 + 1)
    for device in "ghij":
        scan(log, device)
    assert [a.rule for a in log.alerts(1)] == ["too_many_devices", "too_many_devices"]
    assert log.alerts(2) == []
