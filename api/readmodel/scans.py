"""The scan log, the clone rules, units' states, ownership claims and manufacturers' alerts.

What is kept of a scan: the unit's canonical id, a coarse region (an ISO country code set by a
trusted reverse proxy the operator configured, else none: what a client says about its own
place is never read), a salted hash of the device, the time, and the rules it tripped. No
address, no account, no raw device id.

A unit's state is FMD-like: `active` -> `claimed` (its buyer proved ownership: the claim flow
below) -> `decommissioned` (its manufacturer took it out of circulation with a signed request:
destroyed, recalled, stolen, ...). Decommissioning may follow either earlier state.

Clone signals make the unit suspicious; the suspicion belongs to the unit, so every scanner
(and every passport read) sees the same verdict, with the same reasons:

| rule | signal when |
|---|---|
| too_many_devices | more distinct devices (not counting trade devices, below) scanned it than `max_devices` within the evidence window (45 days by default) |
| devices_in_two_places | it was scanned in two or more regions and by more than `max_devices_across_regions` distinct devices within the evidence window (a copy sold in another country; a traveller or a gift brings one or two devices, not a market) |
| implausible_places | within the short window (24 hours by default) it was scanned in more regions than `max_regions`, or in two regions closer in time than `min_travel` |
| scanned_after_claim | more devices than `claim_handover_devices` (2 by default) other than the claimer's (and trade devices) scanned it after its buyer claimed it |
| scanned_after_decommission | a device other than its claimer's scans it after its manufacturer decommissioned it |

Suspicion ages out: it lasts `suspicion` (30 days by default) after the last signal; the
passport shows until when, and a new signal extends it. Alert-only rules raise an alert for
the manufacturer but do not change the verdict, because one client alone can trip them:

| rule | alert when |
|---|---|
| too_many_scans | it was scanned more often than `max_scans` within the short window |
| handed_on_after_claim | a device other than the claimer's scanned it after its buyer claimed it, within `claim_handover_devices` (a household member, a gift, a resale, or the first copy) |
| unknown_serial | a well-formed code of a registered product that was never issued |
| bad_issuance_signature | the code carries an issuance signature that is not its manufacturer's (that link's own verdict is suspicious) |
| lot_mismatch | the link names a lot other than the unit's (that link's own verdict is suspicious) |

Devices that scanned `trade_device_units` different units (a shop's, an inspector's) are not
counted by the device rules; that count is kept in memory for the most recent DEVICE_CACHE
devices (after a restart a trade device is recognised again after a few units).

Regions count only when set by the trusted proxy (`region_source` "proxy"); scans without one
count as devices, not as places. Each trip raises at most one alert per unit, rule and UTC day,
addressed to the organisation that registered the product, with its evidence: the scans the
rules read (time, region, a short device tag), the regions and their device counts, the state.

Scans are buffered in memory and written in batches by a background thread (`start()`), so
that a scan costs microseconds; the rules read a per-unit window kept in memory (at most
WINDOW_CAP scans), loaded from the database on a unit's first scan with its state. Work per
scan is bounded by WINDOW_CAP.

Ownership: a buyer claims a unit with the one-time code from inside its packaging (only a
hash of it is stored, registered by the manufacturer), or with the escrow order that bought
it (checked by the caller against the chain). A unit is claimed once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from typing import Any, Literal, cast, get_args

from sqlalchemy import Table, select, update

from node.db import Database
from node.db.scans import ClaimCode, OwnershipClaim, Scan, ScanAlert, UnitState
from node.db.upsert import insert_ignore, upsert
from node.errors import WaymarkError
from node.periodic import Periodic

#: Signals that make the unit suspicious.
SUSPICION_RULES = (
    "too_many_devices",
    "devices_in_two_places",
    "implausible_places",
    "scanned_after_claim",
    "scanned_after_decommission",
)
#: Rules that only alert the manufacturer.
ALERT_RULES = ("too_many_scans", "handed_on_after_claim", "unknown_serial", "bad_issuance_signature", "lot_mismatch")
RULES = SUSPICION_RULES + ALERT_RULES
DecommissionReason = Literal["destroyed", "recalled", "expired", "stolen", "returned", "other"]
UnitStateName = Literal["active", "claimed", "decommissioned"]
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
_SCAN_COLUMNS = ("unit_key", "gtin", "known", "region", "region_source", "device_hash", "at_ms", "flags")
WINDOW_CAP = 1024
DEVICE_CACHE = 200_000
EVIDENCE_SCANS = 20


class ScanError(WaymarkError):
    code = "scan_error"


class ClaimRejected(ScanError):
    """An ownership claim that cannot be accepted; `reason` is a stable code."""

    code = "claim_rejected"

    def __init__(self, unit_key: str, reason: str, detail: str) -> None:
        self.unit_key, self.reason = unit_key, reason
        super().__init__(f"cannot claim {unit_key}: {detail}")


class AlreadyClaimed(ClaimRejected):
    code = "already_claimed"

    def __init__(self, unit_key: str, claimed_at_ms: int) -> None:
        self.claimed_at_ms = claimed_at_ms
        super().__init__(unit_key, "already_claimed", f"it was already claimed at {_iso(claimed_at_ms)}")


class AlreadyDecommissioned(ScanError):
    code = "already_decommissioned"

    def __init__(self, unit_key: str, at_ms: int) -> None:
        self.unit_key, self.at_ms = unit_key, at_ms
        super().__init__(f"{unit_key} was already decommissioned at {_iso(at_ms)}")


class InvalidClaimCode(ScanError):
    code = "invalid_claim_code"

    def __init__(self, problem: str) -> None:
        super().__init__(f"invalid claim code: {problem}")


@dataclass(frozen=True)
class CloneRules:
    #: Short window: scans counted for too_many_scans, regions for implausible_places.
    window_ms: int = DAY_MS
    max_devices: int = 5
    max_scans: int = 30
    max_regions: int = 2
    min_travel_ms: int = 120 * 60_000
    #: Evidence window: devices (and the regions they scanned in) counted for the device rules.
    evidence_window_ms: int = 45 * DAY_MS
    max_devices_across_regions: int = 3
    #: Devices other than the claimer's that may scan a claimed unit before it is suspicious.
    claim_handover_devices: int = 2
    #: A device that scanned this many different units in a row is a shop's, a warehouse's or an
    #: inspector's: it does not count towards the device rules (nor can one phone flag many units).
    trade_device_units: int = 5
    #: How long a unit stays suspicious after its last clone signal.
    suspicion_ms: int = 30 * DAY_MS


@dataclass(frozen=True)
class Flag:
    rule: str
    message: str


@dataclass(frozen=True)
class Ownership:
    claimed: bool
    method: str | None = None
    claimed_at_ms: int | None = None
    #: The device asking is the one the claim was made from.
    by_this_device: bool = False
    state: UnitStateName = "active"
    decommissioned_at_ms: int | None = None
    decommission_reason: str | None = None


UNCLAIMED = Ownership(False)


@dataclass(frozen=True)
class Suspicion:
    """The unit's clone suspicion: the same for every scanner until `until_ms`."""

    reasons: tuple[Flag, ...]
    since_ms: int
    until_ms: int


@dataclass(frozen=True)
class ScanOutcome:
    #: What this scan tripped (alerts and metrics); the verdict follows `suspicion`.
    flags: tuple[Flag, ...]
    suspicion: Suspicion | None
    scans_in_window: int
    devices_in_window: int
    regions_in_window: tuple[str, ...]
    ownership: Ownership


@dataclass(frozen=True)
class Alert:
    id: int
    org_id: int | None
    gtin: str | None
    unit_key: str
    rule: str
    detail: str
    created_at_ms: int
    evidence: dict[str, Any] | None = None
    suspected_until_ms: int | None = None


@dataclass
class _Claim:
    method: str
    claimed_at_ms: int
    device: bytes | None


@dataclass
class _Decommission:
    at_ms: int
    by: str
    reason: str


@dataclass
class _Signal:
    message: str
    first_ms: int
    last_ms: int


@dataclass
class _Unit:
    # The evidence window's scans (time, trusted region, device), with running counts of devices
    # and of devices per region so that a scan costs O(1) for them. At most WINDOW_CAP scans.
    scans: deque[tuple[int, str | None, bytes]] = field(default_factory=deque)
    devices: Counter[bytes] = field(default_factory=Counter)
    regions: dict[str, Counter[bytes]] = field(default_factory=dict)
    claim: _Claim | None = None
    decommission: _Decommission | None = None
    signals: dict[str, _Signal] = field(default_factory=dict)
    suspected_until_ms: int = 0
    failed_claims: deque[int] = field(default_factory=deque)
    used_ms: int = 0  # last scan or claim (idle units leave the cache: ScanLog.idle_ms)

    def add(self, scan: tuple[int, str | None, bytes]) -> None:
        if len(self.scans) >= WINDOW_CAP:
            self._drop()
        self.scans.append(scan)
        self.devices[scan[2]] += 1
        if scan[1]:
            self.regions.setdefault(scan[1], Counter())[scan[2]] += 1

    def expire(self, horizon: int) -> None:
        while self.scans and self.scans[0][0] < horizon:
            self._drop()

    def _drop(self) -> None:
        _at, region, device = self.scans.popleft()
        self.devices[device] -= 1
        if not self.devices[device]:
            del self.devices[device]
        if region:
            counts = self.regions[region]
            counts[device] -= 1
            if not counts[device]:
                del counts[device]
                if not counts:
                    del self.regions[region]

    def suspicion(self, now: int) -> Suspicion | None:
        if self.suspected_until_ms <= now or not self.signals:
            return None
        reasons = tuple(Flag(rule, signal.message) for rule, signal in self.signals.items())
        return Suspicion(reasons, min(signal.first_ms for signal in self.signals.values()), self.suspected_until_ms)

    def state(self) -> UnitStateName:
        return "decommissioned" if self.decommission else "claimed" if self.claim else "active"


# --- codes and devices ----------------------------------------------------------------------

_CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
_CODE_ALIASES = str.maketrans({"I": "1", "L": "1", "O": "0"})
CLAIM_CODE_CHARS = 16  # 80 bits


def new_claim_code() -> str:
    """A fresh one-time code to print inside a unit's packaging (80 random bits, XXXX-XXXX-XXXX-XXXX)."""
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(CLAIM_CODE_CHARS))
    return "-".join(raw[i : i + 4] for i in range(0, CLAIM_CODE_CHARS, 4))


def normalize_claim_code(code: str) -> str:
    """Upper-case, without separators, with look-alike letters read as digits."""
    text = "".join(ch for ch in code.upper() if ch not in " -_").translate(_CODE_ALIASES)
    if len(text) != CLAIM_CODE_CHARS or any(ch not in _CODE_ALPHABET for ch in text):
        raise InvalidClaimCode(f"expected {CLAIM_CODE_CHARS} characters of 0-9 and A-Z (no U)")
    return text


def claim_code_hash(unit_key: str, code: str) -> bytes:
    """What is stored of a claim code: SHA-256 over a label, the unit's canonical id and the code."""
    return hashlib.sha256(b"waymark-claim-code-v1\x00" + unit_key.encode() + b"\x00" + normalize_claim_code(code).encode()).digest()


def device_hash(salt: bytes, device_id: str) -> bytes:
    """The salted 16-byte hash under which a device's scans are kept."""
    return hmac.new(salt, b"device\x00" + device_id.encode("utf-8", "replace"), hashlib.sha256).digest()[:16]


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


# --- the log ----------------------------------------------------------------------------------


class ScanLog:
    """Scan log, clone rules, unit states, claims and alerts over one database (one API process)."""

    def __init__(
        self,
        db: Database,
        rules: CloneRules = CloneRules(),
        *,
        clock: Callable[[], int] | None = None,
        cache_size: int = 100_000,
        idle_ms: int = 300_000,
        max_failed_claims_per_hour: int = 10,
    ) -> None:
        self.db = db
        self.rules = rules
        self.clock = clock or (lambda: int(time.time() * 1000))
        self.cache_size = cache_size
        # A unit's state is a copy of its rows (reloaded on its next scan): one not used for
        # `idle_ms` leaves memory, so units scanned once under steady production do not pile up
        # to `cache_size` (each holds ~2 KB of deques and counters).
        self.idle_ms = idle_ms
        self.max_failed_claims = max_failed_claims_per_hour
        self._units: OrderedDict[str, _Unit] = OrderedDict()
        # Per device: (hash of the last unit it scanned, how many different units it scanned in a row).
        self._device_units: OrderedDict[bytes, tuple[int, int]] = OrderedDict()
        self._lock = threading.RLock()
        # Buffered scan rows, as tuples in _SCAN_COLUMNS order (written by the DB-API directly).
        self._pending_scans: list[tuple[Any, ...]] = []
        self._pending_alerts: list[dict[str, object]] = []
        # Units whose suspicion changed since the last write (the latest values are written).
        self._pending_states: dict[str, _Unit] = {}
        self._alerted: set[tuple[str, str, int]] = set()
        self._flush_lock = threading.Lock()
        self._writer = Periodic("scan-log writer", self.flush)

    # ---- background writer ------------------------------------------------------------------

    def start(self, interval: float = 0.2) -> None:
        """Write the buffer every `interval` seconds in a thread of its own (a failed write keeps it for the next)."""
        self._writer.start(interval)

    def stop(self) -> None:
        """Stop the writer and write what is buffered."""
        self._writer.stop()
        self.flush()

    def flush(self) -> int:
        """Write buffered scans, suspicions and alerts; returns the number of scans written."""
        with self._flush_lock:
            with self._lock:
                scans, self._pending_scans = self._pending_scans, []
                alerts, self._pending_alerts = self._pending_alerts, []
                changed, self._pending_states = self._pending_states, {}
                states = [self._state_row(key, unit) for key, unit in changed.items()]
            if not scans and not alerts and not states:
                return 0
            try:
                with self.db.connect(write=True) as conn:
                    if scans:
                        # Straight to the driver: executemany of tuples runs in C, so the writer
                        # holds the GIL (and stalls the event loop) for far less than ORM rows would.
                        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
                        sql = f"INSERT INTO scans ({', '.join(_SCAN_COLUMNS)}) VALUES ({', '.join([mark] * len(_SCAN_COLUMNS))})"
                        conn.exec_driver_sql(sql, scans)
                    if states:
                        conn.execute(upsert(conn, cast(Table, UnitState.__table__), ("unit_key",), ("signals", "suspected_until_ms", "updated_at_ms")), states)
                    if alerts:
                        conn.execute(insert_ignore(conn, cast(Table, ScanAlert.__table__), ("unit_key", "rule", "day")), alerts)
            except Exception:
                with self._lock:  # put them back in front, in order
                    self._pending_scans[:0] = scans
                    self._pending_alerts[:0] = alerts
                    self._pending_states = {**changed, **self._pending_states}
                raise
            return len(scans)

    def _state_row(self, unit_key: str, unit: _Unit) -> dict[str, object]:
        signals = {rule: {"message": s.message, "firstMs": s.first_ms, "lastMs": s.last_ms} for rule, s in unit.signals.items()}
        decommission = unit.decommission
        return {
            "unit_key": unit_key,
            "decommissioned_at_ms": decommission.at_ms if decommission else None,
            "decommissioned_by": decommission.by if decommission else None,
            "decommission_reason": decommission.reason if decommission else None,
            "signals": json.dumps(signals) if signals else None,
            "suspected_until_ms": unit.suspected_until_ms or None,
            "updated_at_ms": self.clock(),
        }

    # ---- per-unit state -----------------------------------------------------------------------

    def _unit(self, unit_key: str, now: int) -> _Unit:
        """The unit's window and state, loaded on first use. Caller holds the lock."""
        unit = self._units.get(unit_key)
        if unit is not None:
            self._units.move_to_end(unit_key)
            unit.used_ms = now
            return unit
        unit = self._pending_states.get(unit_key) or _Unit()
        if not unit.scans:
            self._load(unit_key, unit, now)
        unit.used_ms = now
        self._units[unit_key] = unit
        idle_before = now - self.idle_ms
        while self._units:  # least recently used first
            key, oldest = next(iter(self._units.items()))
            if len(self._units) <= self.cache_size and oldest.used_ms >= idle_before:
                break
            if len(self._units) <= self.cache_size and oldest.failed_claims and oldest.failed_claims[-1] > now - HOUR_MS:
                self._units.move_to_end(key)  # its failed claims count for an hour (the claim limit): kept
                break
            del self._units[key]
        return unit

    def _load(self, unit_key: str, unit: _Unit, now: int) -> None:
        since = now - self.rules.evidence_window_ms
        with self.db.connect() as conn:
            # The newest WINDOW_CAP scans at most: loading a unit costs the same however often it was scanned.
            rows = conn.execute(
                select(Scan.at_ms, Scan.region, Scan.device_hash, Scan.region_source)
                .where(Scan.unit_key == unit_key, Scan.at_ms >= since)
                .order_by(Scan.at_ms.desc(), Scan.id.desc())
                .limit(WINDOW_CAP)
            ).all()
            claim = conn.execute(
                select(OwnershipClaim.method, OwnershipClaim.claimed_at_ms, OwnershipClaim.device_hash).where(
                    OwnershipClaim.unit_key == unit_key
                )
            ).first()
            state = conn.execute(
                select(UnitState.decommissioned_at_ms, UnitState.decommissioned_by, UnitState.decommission_reason, UnitState.signals, UnitState.suspected_until_ms)
                .where(UnitState.unit_key == unit_key)
            ).first()
        buffered = [(s[6], _placed(s[3], s[4]), s[5]) for s in self._pending_scans if s[0] == unit_key]
        loaded = [(int(r[0]), _placed(r[1], r[3]), bytes(r[2])) for r in rows]
        for scan in sorted(loaded + buffered, key=lambda x: x[0])[-WINDOW_CAP:]:
            unit.add(scan)
        if claim is not None:
            unit.claim = _Claim(claim[0], int(claim[1]), bytes(claim[2]) if claim[2] is not None else None)
        if state is not None:
            if state.decommissioned_at_ms is not None:
                unit.decommission = _Decommission(int(state.decommissioned_at_ms), state.decommissioned_by or "", state.decommission_reason or "other")
            if state.signals:
                unit.signals = {rule: _Signal(v["message"], int(v["firstMs"]), int(v["lastMs"])) for rule, v in json.loads(state.signals).items()}
            unit.suspected_until_ms = int(state.suspected_until_ms or 0)

    @staticmethod
    def _ownership(unit: _Unit, device: bytes | None) -> Ownership:
        claim, decommission = unit.claim, unit.decommission
        if claim is None and decommission is None:
            return UNCLAIMED
        return Ownership(
            claim is not None,
            claim.method if claim else None,
            claim.claimed_at_ms if claim else None,
            claim is not None and device is not None and device == claim.device,
            unit.state(),
            decommission.at_ms if decommission else None,
            decommission.reason if decommission else None,
        )

    def _outcome(self, unit: _Unit, flags: Sequence[Flag], device: bytes | None, now: int) -> ScanOutcome:
        return ScanOutcome(tuple(flags), unit.suspicion(now), len(unit.scans), len(unit.devices), tuple(sorted(unit.regions)), self._ownership(unit, device))

    def _short_window(self, unit: _Unit, now: int) -> list[tuple[int, str | None, bytes]]:
        """The scans of the short window, oldest first (at most WINDOW_CAP)."""
        horizon = now - self.rules.window_ms
        if not unit.scans or unit.scans[0][0] >= horizon:
            return list(unit.scans)
        recent: list[tuple[int, str | None, bytes]] = []
        for scan in reversed(unit.scans):
            if scan[0] < horizon:
                break
            recent.append(scan)
        recent.reverse()
        return recent

    # ---- scans --------------------------------------------------------------------------------

    def record(
        self,
        unit_key: str,
        *,
        device: bytes,
        region: str | None,
        region_source: str,
        gtin: str | None = None,
        known: bool = True,
        org_id: int | None = None,
        extra_flags: Sequence[Flag] = (),
    ) -> ScanOutcome:
        """Log one scan, apply the clone rules to the unit, raise alerts; return what tripped and the unit's suspicion."""
        now = self.clock()
        with self._lock:
            unit = self._unit(unit_key, now)
            unit.expire(now - self.rules.evidence_window_ms)
            self._note_device(device, unit_key)
            placed = _placed(region, region_source)
            unit.add((now, placed, device))
            recent = self._short_window(unit, now)
            signals = self._signals(unit, recent, placed, device, now) if known else []
            alert_only = self._alert_only(unit, recent, signals, device, now) if known else []
            flags = [*extra_flags, *signals, *alert_only]
            if signals:
                self._suspect(unit_key, unit, signals, now)
            outcome = self._outcome(unit, flags, device, now)
            self._pending_scans.append((unit_key, gtin, known, region, region_source, device, now, ",".join(f.rule for f in flags)[:160]))
            day = now // DAY_MS
            for flag in flags:
                key = (unit_key, flag.rule, day)
                if key in self._alerted:
                    continue
                self._alerted.add(key)
                suspected = flag.rule in SUSPICION_RULES
                self._pending_alerts.append({
                    "org_id": org_id, "gtin": gtin, "unit_key": unit_key, "rule": flag.rule, "detail": flag.message, "day": day, "created_at_ms": now,
                    "evidence": json.dumps(self._evidence(unit, now)), "suspected_until_ms": unit.suspected_until_ms if suspected else None,
                })
            if len(self._alerted) > 4 * self.cache_size:
                self._alerted = {k for k in self._alerted if k[2] == day}  # older days are deduplicated by the table
        return outcome

    def _note_device(self, device: bytes, unit_key: str) -> None:
        """Count the different units a device scans in a row (bounded: DEVICE_CACHE devices, least recent dropped)."""
        key = hash(unit_key)
        last, count = self._device_units.pop(device, (None, 0))
        self._device_units[device] = (key, count + (key != last))
        if len(self._device_units) > DEVICE_CACHE:
            self._device_units.popitem(last=False)

    def _trade(self, device: bytes) -> bool:
        entry = self._device_units.get(device)
        return entry is not None and entry[1] >= self.rules.trade_device_units

    def _signals(self, unit: _Unit, recent: Sequence[tuple[int, str | None, bytes]], region: str | None, device: bytes, now: int) -> list[Flag]:
        rules = self.rules
        found: list[Flag] = []
        evidence = _span(rules.evidence_window_ms)
        devices = len(unit.devices)
        if devices > min(rules.max_devices, rules.max_devices_across_regions):  # only then may trade devices matter
            devices -= sum(1 for d in unit.devices if self._trade(d))
        if devices > rules.max_devices:
            found.append(Flag("too_many_devices", f"scanned by {devices} different devices within {evidence}"))
        elif len(unit.regions) >= 2 and devices > rules.max_devices_across_regions:
            places = ", ".join(f"{r} ({len(d)})" for r, d in sorted(unit.regions.items()))
            found.append(Flag("devices_in_two_places", f"scanned by {devices} different devices in {len(unit.regions)} countries within {evidence}: devices per country {places}"))
        found.extend(self._place_flags(recent, region, now))
        claim, decommission = unit.claim, unit.decommission
        if decommission is not None and now > decommission.at_ms and (claim is None or device != claim.device):
            found.append(Flag("scanned_after_decommission", f"scanned after its manufacturer decommissioned it ({decommission.reason}) on {_iso(decommission.at_ms)}"))
        elif claim is not None and now > claim.claimed_at_ms and device != claim.device:
            others = self._others_since_claim(unit, claim)
            if others > rules.claim_handover_devices:
                found.append(Flag("scanned_after_claim", f"scanned by {others} devices other than its owner's after its owner claimed it on {_iso(claim.claimed_at_ms)}"))
        return found

    def _others_since_claim(self, unit: _Unit, claim: _Claim) -> int:
        """Distinct devices but the claimer's (and trade devices) that scanned the unit after its claim (within the window)."""
        return len({d for at, _r, d in unit.scans if at > claim.claimed_at_ms and d != claim.device and not self._trade(d)})

    def _alert_only(self, unit: _Unit, recent: Sequence[tuple[int, str | None, bytes]], signals: Sequence[Flag], device: bytes, now: int) -> list[Flag]:
        found: list[Flag] = []
        scans = len(recent)
        if scans > self.rules.max_scans:
            found.append(Flag("too_many_scans", f"scanned {scans} times within {_span(self.rules.window_ms)}"))
        claim = unit.claim
        if claim is not None and now > claim.claimed_at_ms and device != claim.device and not signals:
            found.append(Flag("handed_on_after_claim", f"scanned by another device after its owner claimed it on {_iso(claim.claimed_at_ms)}: "
                                                        f"a gift, a resale or a copy ({self.rules.claim_handover_devices + 1} such devices make it suspicious)"))
        return found

    def _place_flags(self, recent: Sequence[tuple[int, str | None, bytes]], region: str | None, now: int) -> list[Flag]:
        rules = self.rules
        regions = sorted({r for _at, r, _d in recent if r})
        if len(regions) > rules.max_regions:
            return [Flag("implausible_places", f"scanned in {len(regions)} countries ({', '.join(regions)}) within {_span(rules.window_ms)}")]
        if region is None or len(regions) < 2:
            return []
        # The latest earlier scan in another region: too close in time to have travelled?
        for at, other, _device in reversed(recent[:-1]):
            if other and other != region:
                if now - at < rules.min_travel_ms:
                    minutes = max(1, round((now - at) / 60_000))
                    return [Flag("implausible_places", f"scanned in {other} and {region} {minutes} minutes apart")]
                break
        return []

    def _suspect(self, unit_key: str, unit: _Unit, signals: Sequence[Flag], now: int) -> None:
        """Record clone signals on the unit: suspicious for everyone until `suspicion` after the last."""
        if unit.suspected_until_ms <= now:
            unit.signals = {}  # an aged-out suspicion starts afresh
        for flag in signals:
            known = unit.signals.get(flag.rule)
            unit.signals[flag.rule] = _Signal(flag.message, known.first_ms if known else now, now)
        unit.suspected_until_ms = now + self.rules.suspicion_ms
        self._pending_states[unit_key] = unit

    def _evidence(self, unit: _Unit, now: int) -> dict[str, Any]:
        """Why, for an alert: the latest scans the rules read, the regions, the unit's state."""
        latest = list(unit.scans)[-EVIDENCE_SCANS:]
        evidence: dict[str, Any] = {
            "scans": [{"at": _iso(at), "region": region, "device": device[:4].hex()} for at, region, device in latest],
            "scansInEvidenceWindow": len(unit.scans),
            "devicesInEvidenceWindow": len(unit.devices),
            "devicesPerRegion": {region: len(devices) for region, devices in sorted(unit.regions.items())},
            "evidenceWindow": _span(self.rules.evidence_window_ms),
            "state": unit.state(),
        }
        if unit.claim is not None:
            evidence["claimedAt"] = _iso(unit.claim.claimed_at_ms)
            evidence["claimDevice"] = unit.claim.device[:4].hex() if unit.claim.device else None
        if unit.decommission is not None:
            evidence["decommissionedAt"] = _iso(unit.decommission.at_ms)
            evidence["decommissionReason"] = unit.decommission.reason
        return evidence

    def status(self, unit_key: str, device: bytes | None = None) -> ScanOutcome:
        """The unit as any scanner sees it now, without logging a scan."""
        now = self.clock()
        with self._lock:
            unit = self._unit(unit_key, now)
            unit.expire(now - self.rules.evidence_window_ms)
            return self._outcome(unit, (), device, now)

    def ownership(self, unit_key: str, device: bytes | None = None) -> Ownership:
        with self._lock:
            return self._ownership(self._unit(unit_key, self.clock()), device)

    # ---- decommissioning ------------------------------------------------------------------------

    def decommission(self, unit_key: str, *, by: str, reason: DecommissionReason) -> Ownership:
        """Take a unit out of circulation (its manufacturer's signed request, checked by the caller).
        Later scans by any device but its claimer's are clone signals. Raises AlreadyDecommissioned."""
        if reason not in get_args(DecommissionReason):
            raise ScanError(f"unknown decommission reason {reason!r}; expected one of {', '.join(get_args(DecommissionReason))}")
        now = self.clock()
        with self._lock:
            unit = self._unit(unit_key, now)
            if unit.decommission is not None:
                raise AlreadyDecommissioned(unit_key, unit.decommission.at_ms)
            decommission = _Decommission(now, by, reason)
            with self.db.connect(write=True) as conn:
                conn.execute(insert_ignore(conn, cast(Table, UnitState.__table__), ("unit_key",)), [{"unit_key": unit_key, "updated_at_ms": now}])
                # Only the first decommissioning counts, also against another API process.
                done = conn.execute(
                    update(UnitState)
                    .where(UnitState.unit_key == unit_key, UnitState.decommissioned_at_ms.is_(None))
                    .values(decommissioned_at_ms=now, decommissioned_by=by, decommission_reason=reason, updated_at_ms=now)
                )
                if done.rowcount == 0:
                    at = conn.execute(select(UnitState.decommissioned_at_ms).where(UnitState.unit_key == unit_key)).scalar_one()
                    raise AlreadyDecommissioned(unit_key, at or now)
            unit.decommission = decommission
            return self._ownership(unit, None)

    # ---- claim codes and claims -----------------------------------------------------------------

    def register_claim_codes(self, entries: Iterable[tuple[str, bytes]], *, org_id: int, registered_by: str) -> int:
        """Store code hashes for units (first registration wins); returns how many were new."""
        now = self.clock()
        rows = [
            {"unit_key": key, "code_hash": code_hash, "org_id": org_id, "registered_by": registered_by, "registered_at_ms": now}
            for key, code_hash in entries
        ]
        if not rows:
            return 0
        with self.db.connect(write=True) as conn:
            before = conn.execute(select(ClaimCode.unit_key).where(ClaimCode.unit_key.in_([r["unit_key"] for r in rows]))).scalars().all()
            conn.execute(insert_ignore(conn, cast(Table, ClaimCode.__table__), ("unit_key",)), rows)
        return len({r["unit_key"] for r in rows} - set(before))

    def claim_with_code(self, unit_key: str, code: str, device: bytes | None) -> Ownership:
        """Claim with the one-time code from the packaging. Raises ClaimRejected."""
        now = self.clock()
        try:
            presented = claim_code_hash(unit_key, code)
        except InvalidClaimCode as error:
            raise ClaimRejected(unit_key, "malformed_code", str(error)) from None
        with self._lock:
            unit = self._unit(unit_key, now)
            if unit.claim is not None:
                raise AlreadyClaimed(unit_key, unit.claim.claimed_at_ms)
            failed = unit.failed_claims
            while failed and failed[0] < now - 3_600_000:
                failed.popleft()
            if len(failed) >= self.max_failed_claims:
                raise ClaimRejected(unit_key, "too_many_attempts", "too many wrong codes in the last hour; try again later")
            with self.db.session() as s:
                stored = s.get(ClaimCode, unit_key)
            if stored is None:
                raise ClaimRejected(unit_key, "no_claim_code", "its manufacturer registered no claim code for it")
            if not hmac.compare_digest(bytes(stored.code_hash), presented):
                failed.append(now)
                raise ClaimRejected(unit_key, "wrong_code", "the code does not match")
            return self._store_claim(unit, unit_key, "code", None, None, device, now)

    def claim_with_order(self, unit_key: str, *, order_id: str, owner: str, device: bytes | None) -> Ownership:
        """Record a claim proven by an escrow order (the caller checked the order on chain)."""
        now = self.clock()
        with self._lock:
            unit = self._unit(unit_key, now)
            if unit.claim is not None:
                raise AlreadyClaimed(unit_key, unit.claim.claimed_at_ms)
            return self._store_claim(unit, unit_key, "escrow", order_id, owner, device, now)

    def _store_claim(self, unit: _Unit, unit_key: str, method: str, order_id: str | None, owner: str | None, device: bytes | None, now: int) -> Ownership:
        with self.db.connect(write=True) as conn:
            result = conn.execute(
                insert_ignore(conn, cast(Table, OwnershipClaim.__table__), ("unit_key",)),
                [{"unit_key": unit_key, "method": method, "order_id": order_id, "owner": owner, "device_hash": device, "claimed_at_ms": now}],
            )
            if result.rowcount == 0:  # claimed by another process meanwhile
                at = conn.execute(select(OwnershipClaim.claimed_at_ms).where(OwnershipClaim.unit_key == unit_key)).scalar_one()
                unit.claim = _Claim(method, int(at), None)
                raise AlreadyClaimed(unit_key, int(at))
        unit.claim = _Claim(method, now, device)
        return self._ownership(unit, device)

    # ---- alerts ------------------------------------------------------------------------------

    def alerts(self, org_id: int, *, after_id: int = 0, limit: int = 100, gtin: str | None = None) -> list[Alert]:
        """Alerts about one organisation's products, oldest first, after `after_id`."""
        self.flush()
        query = select(ScanAlert).where(ScanAlert.org_id == org_id, ScanAlert.id > after_id)
        if gtin is not None:
            query = query.where(ScanAlert.gtin == gtin)
        with self.db.session() as s:
            rows = s.execute(query.order_by(ScanAlert.id).limit(limit)).scalars().all()
        return [
            Alert(r.id, r.org_id, r.gtin, r.unit_key, r.rule, r.detail, r.created_at_ms, json.loads(r.evidence) if r.evidence else None, r.suspected_until_ms)
            for r in rows
        ]


def _placed(region: object, source: object) -> str | None:
    """The region the place rules use: only one a trusted proxy set. Older rows whose region a
    client stated (or Accept-Language suggested) are kept but never judged: anyone can say anything."""
    return region if isinstance(region, str) and source == "proxy" else None


def _span(ms: int) -> str:
    hours = ms / 3_600_000
    if hours >= 48 and hours % 24 == 0:
        return f"{hours / 24:g} days"
    return f"{hours:g} hours" if hours != 1 else "an hour"
