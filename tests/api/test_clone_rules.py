"""Clone rules, unit states and claims of the scan log on their own (a database, a clock we move)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from node.db import Database
from node.db.scans import Scan
from api.readmodel.claim_codes import AlreadyClaimed, AlreadyDecommissioned, ClaimRejected, claim_code_hash, device_hash, new_claim_code, normalize_claim_code
from api.readmodel.clone_rules import DAY_MS, WINDOW_CAP, CloneRules
from api.readmodel.scans import WRITES_TRACKED, ScanLog, read_window

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


def scan(log: ScanLog, device: str = "a", region: str | None = None, source: str = "proxy", unit: str = UNIT) -> list[str]:
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


def test_a_region_the_client_stated_or_its_language_suggested_is_not_judged(log: ScanLog, clock: Clock) -> None:
    # Rows from before regions came only from the trusted proxy: kept, never judged.
    assert scan(log, "a", "NL", "language") == []
    clock.advance(1)
    assert scan(log, "b", "CN", "language") == []
    clock.advance(1)
    assert scan(log, "c", "BR", "stated") == []
    assert log.status(UNIT).regions_in_window == ()


def test_scans_are_written_without_personal_data(log: ScanLog, db: Database) -> None:
    scan(log, "device-id-123", "NL")
    assert log.flush() == 1
    with db.session() as s:
        row = s.scalars(select(Scan)).one()
    assert row.unit_key == UNIT and row.region == "NL" and row.region_source == "proxy"
    assert row.device_hash == device_hash(SALT, "device-id-123") and len(row.device_hash) == 16
    assert b"device-id-123" not in row.device_hash


def test_the_window_survives_a_restart(db: Database, clock: Clock, log: ScanLog) -> None:
    for device in "abc":
        scan(log, device)
    log.flush()
    restarted = ScanLog(db, log.rules, clock=clock)
    assert scan(restarted, "d") == ["too_many_devices"]


def test_a_window_read_by_a_passport_build_is_kept_unless_the_units_scans_were_written_meanwhile(db: Database, clock: Clock) -> None:
    """A passport build process reads a cold unit's window in its own snapshot (window_ask, then
    read_window elsewhere, then take_window). The read is kept only if the writer wrote none of
    the unit's scans between the ask and the take: a read made before such a write would miss
    scans that are then in neither the database nor the buffer."""
    rules = CloneRules(max_devices=5, max_scans=50)
    earlier = ScanLog(db, rules, clock=clock)  # another API process, before this one started
    for device in "ab":
        scan(earlier, device)
    earlier.flush()
    other = "https://id.gs1.org/01/09521234543213/21/OTHER"

    log = ScanLog(db, rules, clock=clock, cache_size=1)
    ask = log.window_ask(UNIT)
    assert ask is not None
    read = read_window(db, UNIT, ask.since)
    scan(log, "x", unit=other)
    log.flush()  # the writer wrote another unit's scan meanwhile: the read still holds
    log.take_window(UNIT, ask, read)
    assert log.is_loaded(UNIT) and log.window_ask(UNIT) is None
    assert scan(log, "c") == []  # buffered

    scan(log, "y", unit=other)  # the unit leaves memory (a cache of one unit); c is still buffered
    assert not log.is_loaded(UNIT)
    ask = log.window_ask(UNIT)
    assert ask is not None
    stale = read_window(db, UNIT, ask.since)  # a and b: c is not written yet
    log.flush()
    log.take_window(UNIT, ask, stale)
    assert not log.is_loaded(UNIT)  # dropped: the unit's first scan reads its window again, c in it
    assert scan(log, "d") == [] and scan(log, "e") == []
    assert scan(log, "f") == ["too_many_devices"]  # a, b, c, d, e before it


def test_a_window_read_older_than_the_batches_the_log_remembers_is_dropped(db: Database, clock: Clock) -> None:
    log = ScanLog(db, CloneRules(max_devices=3), clock=clock)
    ask = log.window_ask(UNIT)
    assert ask is not None
    read = read_window(db, UNIT, ask.since)
    for i in range(WRITES_TRACKED + 1):
        scan(log, "a", unit=f"https://id.gs1.org/01/09521234543213/21/N{i}")
        log.flush()
    log.take_window(UNIT, ask, read)
    assert not log.is_loaded(UNIT)


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


def test_after_a_claim_other_devices_alert_then_trip_scanned_after_claim(log: ScanLog, clock: Clock) -> None:
    # One or two other devices after a claim are a household member, a gift or a resale as often as a
    # copy: each alerts the manufacturer; the third makes the unit suspicious for everyone.
    code = new_claim_code()
    log.register_claim_codes([(UNIT, claim_code_hash(UNIT, code))], org_id=1, registered_by="0xM")
    log.claim_with_code(UNIT, code, device_hash(SALT, "owner"))
    clock.advance(1)
    assert scan(log, "owner") == []
    assert scan(log, "partner") == ["handed_on_after_claim"]
    assert scan(log, "gift") == ["handed_on_after_claim"]
    assert log.status(UNIT).suspicion is None
    assert scan(log, "shop") == ["too_many_devices", "scanned_after_claim"]  # four devices in all, too
    assert log.status(UNIT).suspicion is not None


def test_devices_that_scan_many_units_are_not_counted_as_buyers(log: ScanLog) -> None:
    for index in range(5):  # a shop's device scans five different units
        scan(log, "shop-till", unit=f"{UNIT}{index}")
    for device in ("shop-till", "a", "b", "c"):
        assert scan(log, device) == []  # three buyers and the till: within max_devices=3
    assert scan(log, "d") == ["too_many_devices"]


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


# --- the unit's suspicion: the same for every scanner, ageing out -------------------------------------


def test_a_units_suspicion_is_the_same_for_every_scanner(log: ScanLog, clock: Clock) -> None:
    assert scan(log, "a", "NL") == []
    clock.advance(30)
    assert scan(log, "b", "CN") == ["implausible_places"]
    clock.advance(1)
    # A scanner with no region (and one reading the passport) trips nothing itself, yet sees the same suspicion.
    quiet = log.record(UNIT, device=device_hash(SALT, "c"), region=None, region_source="none", gtin="09521234543213", org_id=1)
    assert quiet.flags == ()
    assert quiet.suspicion is not None and [f.rule for f in quiet.suspicion.reasons] == ["implausible_places"]
    assert log.status(UNIT).suspicion == quiet.suspicion == log.status(UNIT, device_hash(SALT, "a")).suspicion


def test_suspicion_ages_out_after_its_documented_time_unless_renewed(db: Database, clock: Clock) -> None:
    log = ScanLog(db, CloneRules(max_devices=2, evidence_window_ms=DAY_MS, suspicion_ms=3 * DAY_MS), clock=clock)
    for device in "abc":
        scan(log, device)
    tripped_at = clock.now
    suspicion = log.status(UNIT).suspicion
    assert suspicion is not None and suspicion.since_ms == tripped_at and suspicion.until_ms == tripped_at + 3 * DAY_MS
    clock.advance(2 * 24 * 60)  # the evidence left the window, the suspicion stays
    assert log.status(UNIT).devices_in_window == 0 and log.status(UNIT).suspicion == suspicion
    clock.now = tripped_at + 3 * DAY_MS
    assert log.status(UNIT).suspicion is None
    assert scan(log, "d") == []  # one new device: nothing left to suspect
    assert log.status(UNIT).suspicion is None


def test_a_new_signal_extends_the_suspicion(log: ScanLog, clock: Clock) -> None:
    for device in "abcd":
        scan(log, device)
    first = log.status(UNIT).suspicion
    assert first is not None
    clock.advance(60)
    assert scan(log, "e") == ["too_many_devices"]
    later = log.status(UNIT).suspicion
    assert later is not None and later.since_ms == first.since_ms and later.until_ms == first.until_ms + 3_600_000


def test_the_suspicion_survives_a_restart(db: Database, clock: Clock, log: ScanLog) -> None:
    for device in "abcd":
        scan(log, device)
    before = log.status(UNIT).suspicion
    log.flush()
    restarted = ScanLog(db, log.rules, clock=clock)
    assert before is not None and restarted.status(UNIT).suspicion == before


def test_many_devices_in_two_countries_over_weeks_are_a_copy_sold_elsewhere(db: Database, clock: Clock) -> None:
    log = ScanLog(db, CloneRules(), clock=clock)  # the defaults: 5 devices anywhere, 3 across countries, 30 days
    assert scan(log, "buyer", "NL") == []
    clock.advance(5 * 24 * 60)
    assert scan(log, "buyer", "BR") == []  # the buyer travels
    assert scan(log, "friend", "BR") == [] and scan(log, "friend-2", "BR") == []  # and shows it to friends
    clock.advance(7 * 24 * 60)
    assert scan(log, "market-1", "BR") == ["devices_in_two_places"]
    suspicion = log.status(UNIT).suspicion
    assert suspicion is not None and "devices per country BR (4), NL (1)" in suspicion.reasons[0].message


def test_many_devices_in_one_country_within_the_limit_are_not_suspicious(db: Database, clock: Clock) -> None:
    log = ScanLog(db, CloneRules(), clock=clock)
    for device in ("shop", "buyer", "partner", "child", "neighbour"):
        clock.advance(24 * 60)
        assert scan(log, device, "NL") == []
    assert log.status(UNIT).suspicion is None


def test_too_many_scans_by_one_phone_alert_the_maker_but_do_not_make_the_unit_suspicious(log: ScanLog) -> None:
    for _ in range(5):
        scan(log)
    assert scan(log) == ["too_many_scans"]  # one client alone could trip it: alert only
    assert log.status(UNIT).suspicion is None
    assert [a.rule for a in log.alerts(1)] == ["too_many_scans"] and log.alerts(1)[0].suspected_until_ms is None


# --- unit states: claimed, decommissioned ---------------------------------------------------------------


def test_after_a_claim_the_owner_sees_the_suspicion_other_devices_caused(log: ScanLog, clock: Clock) -> None:
    code = new_claim_code()
    log.register_claim_codes([(UNIT, claim_code_hash(UNIT, code))], org_id=1, registered_by="0xM")
    assert log.claim_with_code(UNIT, code, device_hash(SALT, "owner")).state == "claimed"
    clock.advance(1)
    for device in ("copy-1", "copy-2"):
        assert scan(log, device) == ["handed_on_after_claim"]
    assert scan(log, "copy-3") == ["scanned_after_claim"]
    clock.advance(1)
    owner = log.record(UNIT, device=device_hash(SALT, "owner"), region=None, region_source="none", gtin="09521234543213", org_id=1)
    assert owner.ownership.by_this_device and "scanned_after_claim" not in {f.rule for f in owner.flags}
    assert owner.suspicion is not None
    reasons = {f.rule: f.message for f in owner.suspicion.reasons}
    assert "scanned by 3 devices other than its owner's after its owner claimed it on" in reasons["scanned_after_claim"]


def test_a_decommissioned_unit_scanned_by_another_device_is_a_clone_signal(log: ScanLog, clock: Clock) -> None:
    code = new_claim_code()
    log.register_claim_codes([(UNIT, claim_code_hash(UNIT, code))], org_id=1, registered_by="0xM")
    log.claim_with_code(UNIT, code, device_hash(SALT, "owner"))
    clock.advance(1)
    state = log.decommission(UNIT, by="0xM", reason="stolen")
    assert state.state == "decommissioned" and state.claimed and state.decommission_reason == "stolen"
    with pytest.raises(AlreadyDecommissioned):
        log.decommission(UNIT, by="0xM", reason="destroyed")
    clock.advance(1)
    assert scan(log, "owner") == []  # its owner may still look at it
    assert scan(log, "fence") == ["scanned_after_decommission"]
    suspicion = log.status(UNIT).suspicion
    assert suspicion is not None and "decommissioned it (stolen)" in suspicion.reasons[0].message


def test_a_decommissioning_survives_a_restart_and_is_refused_twice(db: Database, clock: Clock, log: ScanLog) -> None:
    log.decommission(UNIT, by="0xM", reason="recalled")
    clock.advance(1)
    restarted = ScanLog(db, log.rules, clock=clock)
    assert restarted.ownership(UNIT).state == "decommissioned"
    assert scan(restarted, "anyone") == ["scanned_after_decommission"]
    with pytest.raises(AlreadyDecommissioned):
        restarted.decommission(UNIT, by="0xM", reason="recalled")


# --- alerts say why -------------------------------------------------------------------------------------


def test_an_alert_names_the_rule_the_scans_the_regions_and_until_when(log: ScanLog, clock: Clock) -> None:
    start = clock.now
    scan(log, "a", "NL")
    clock.advance(30)
    scan(log, "b", "CN")
    (alert,) = log.alerts(1)
    assert alert.rule == "implausible_places" and "scanned in NL and CN 30 minutes apart" in alert.detail
    assert alert.created_at_ms == start + 30 * 60_000
    assert alert.suspected_until_ms == alert.created_at_ms + log.rules.suspicion_ms
    evidence = alert.evidence
    assert evidence is not None
    assert [(s["region"], s["device"]) for s in evidence["scans"]] == [("NL", device_hash(SALT, "a")[:4].hex()), ("CN", device_hash(SALT, "b")[:4].hex())]
    assert evidence["devicesPerRegion"] == {"CN": 1, "NL": 1} and evidence["state"] == "active"


def test_loading_a_unit_reads_at_most_the_window_cap(db: Database, clock: Clock, log: ScanLog) -> None:
    for _ in range(WINDOW_CAP + 10):
        clock.advance(0.01)
        log.record(UNIT, device=device_hash(SALT, "a"), region=None, region_source="none", gtin="09521234543213", org_id=1)
    log.flush()
    restarted = ScanLog(db, log.rules, clock=clock)
    assert restarted.status(UNIT).scans_in_window == WINDOW_CAP
