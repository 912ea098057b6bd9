"""The scan log, the clone rules, ownership claims and manufacturers' alerts.

What is kept of a scan: the unit's canonical id, a coarse region (an ISO country code the
client stated, or one derived from the request), a salted hash of the device, the time, and
the rules it tripped. No address, no account, no raw device id.

Clone rules, over a sliding window (24 hours by default), for one code:

| rule | trips when |
|---|---|
| too_many_devices | more distinct devices scanned it than `max_devices` |
| too_many_scans | it was scanned more often than `max_scans` |
| implausible_places | it was scanned in more regions than `max_regions`, or in two regions closer in time than `min_travel` (regions stated by the client or set by a trusted proxy; one guessed from Accept-Language is logged, not judged) |
| scanned_after_claim | a device other than the claimer's scans it after its buyer claimed it |
| unknown_serial | a well-formed code of a registered product that was never issued (alert only) |
| bad_issuance_signature | the code carries an issuance signature that is not its manufacturer's (alert only) |

Each trip raises at most one alert per unit, rule and UTC day, addressed to the organisation
that registered the product. Scans are buffered in memory and written in batches by a
background thread (`start()`), so that a scan costs microseconds; the rules read a per-unit
window kept in memory, loaded from the database on a unit's first scan.

Ownership: a buyer claims a unit with the one-time code from inside its packaging (only a
hash of it is stored, registered by the manufacturer), or with the escrow order that bought
it (checked by the caller against the chain). A unit is claimed once.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from typing import Any, cast

from sqlalchemy import Table, select

from node.db import Database
from node.db.scans import ClaimCode, OwnershipClaim, Scan, ScanAlert
from node.db.upsert import insert_ignore
from node.errors import WaymarkError

log = logging.getLogger(__name__)

RULES = (
    "too_many_devices",
    "too_many_scans",
    "implausible_places",
    "scanned_after_claim",
    "unknown_serial",
    "bad_issuance_signature",
)
REGION_SOURCES = ("stated", "proxy", "language", "none")
DAY_MS = 86_400_000
_SCAN_COLUMNS = ("unit_key", "gtin", "known", "region", "region_source", "device_hash", "at_ms", "flags")
WINDOW_CAP = 1024


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


class InvalidClaimCode(ScanError):
    code = "invalid_claim_code"

    def __init__(self, problem: str) -> None:
        super().__init__(f"invalid claim code: {problem}")


@dataclass(frozen=True)
class CloneRules:
    window_ms: int = DAY_MS
    max_devices: int = 5
    max_scans: int = 30
    max_regions: int = 2
    min_travel_ms: int = 120 * 60_000


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


UNCLAIMED = Ownership(False)


@dataclass(frozen=True)
class ScanOutcome:
    flags: tuple[Flag, ...]
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


@dataclass
class _Claim:
    method: str
    claimed_at_ms: int
    device: bytes | None


@dataclass
class _Unit:
    # The window's scans (time, region, device), with running counts of devices and regions so
    # that a scan costs O(1). Bounded: the rules only count up to their limits.
    scans: deque[tuple[int, str | None, bytes]] = field(default_factory=deque)
    devices: Counter[bytes] = field(default_factory=Counter)
    regions: Counter[str] = field(default_factory=Counter)
    claim: _Claim | None = None
    failed_claims: deque[int] = field(default_factory=deque)

    def add(self, scan: tuple[int, str | None, bytes]) -> None:
        if len(self.scans) >= WINDOW_CAP:
            self._drop()
        self.scans.append(scan)
        self.devices[scan[2]] += 1
        if scan[1]:
            self.regions[scan[1]] += 1

    def expire(self, horizon: int) -> None:
        while self.scans and self.scans[0][0] < horizon:
            self._drop()

    def _drop(self) -> None:
        _at, region, device = self.scans.popleft()
        self.devices[device] -= 1
        if not self.devices[device]:
            del self.devices[device]
        if region:
            self.regions[region] -= 1
            if not self.regions[region]:
                del self.regions[region]


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
    """Scan log, clone rules, claims and alerts over one database (one API process)."""

    def __init__(
        self,
        db: Database,
        rules: CloneRules = CloneRules(),
        *,
        clock: Callable[[], int] | None = None,
        cache_size: int = 100_000,
        max_failed_claims_per_hour: int = 10,
    ) -> None:
        self.db = db
        self.rules = rules
        self.clock = clock or (lambda: int(time.time() * 1000))
        self.cache_size = cache_size
        self.max_failed_claims = max_failed_claims_per_hour
        self._units: OrderedDict[str, _Unit] = OrderedDict()
        self._lock = threading.RLock()
        # Buffered scan rows, as tuples in _SCAN_COLUMNS order (written by the DB-API directly).
        self._pending_scans: list[tuple[Any, ...]] = []
        self._pending_alerts: list[dict[str, object]] = []
        self._alerted: set[tuple[str, str, int]] = set()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- background writer ------------------------------------------------------------------

    def start(self, interval: float = 0.2) -> None:
        if self._thread is not None:
            return
        self._stop.clear()

        def run() -> None:
            while not self._stop.wait(interval):
                try:
                    self.flush()
                except Exception:  # noqa: BLE001 - keep the buffer and retry at the next tick
                    log.exception("writing the scan log failed; retrying")

        self._thread = threading.Thread(target=run, name="scan-log-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the writer and write what is buffered."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.flush()

    def flush(self) -> int:
        """Write buffered scans and alerts; returns the number of scans written."""
        with self._flush_lock:
            with self._lock:
                scans, self._pending_scans = self._pending_scans, []
                alerts, self._pending_alerts = self._pending_alerts, []
            if not scans and not alerts:
                return 0
            try:
                with self.db.connect(write=True) as conn:
                    if scans:
                        # Straight to the driver: executemany of tuples runs in C, so the writer
                        # holds the GIL (and stalls the event loop) for far less than ORM rows would.
                        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
                        sql = f"INSERT INTO scans ({', '.join(_SCAN_COLUMNS)}) VALUES ({', '.join([mark] * len(_SCAN_COLUMNS))})"
                        conn.exec_driver_sql(sql, scans)
                    if alerts:
                        conn.execute(insert_ignore(conn, cast(Table, ScanAlert.__table__), ("unit_key", "rule", "day")), alerts)
            except Exception:
                with self._lock:  # put them back in front, in order
                    self._pending_scans[:0] = scans
                    self._pending_alerts[:0] = alerts
                raise
            return len(scans)

    # ---- per-unit state -----------------------------------------------------------------------

    def _unit(self, unit_key: str, now: int) -> _Unit:
        """The unit's window, loaded on first use. Caller holds the lock."""
        unit = self._units.get(unit_key)
        if unit is not None:
            self._units.move_to_end(unit_key)
            return unit
        unit = _Unit()
        since = now - self.rules.window_ms
        with self.db.connect() as conn:
            rows = conn.execute(
                select(Scan.at_ms, Scan.region, Scan.device_hash, Scan.region_source)
                .where(Scan.unit_key == unit_key, Scan.at_ms >= since)
                .order_by(Scan.at_ms, Scan.id)
            ).all()
            claim = conn.execute(
                select(OwnershipClaim.method, OwnershipClaim.claimed_at_ms, OwnershipClaim.device_hash).where(
                    OwnershipClaim.unit_key == unit_key
                )
            ).first()
        buffered = [(s[6], _placed(s[3], s[4]), s[5]) for s in self._pending_scans if s[0] == unit_key]
        loaded = [(int(r[0]), _placed(r[1], r[3]), bytes(r[2])) for r in rows]
        for scan in sorted(loaded + buffered, key=lambda x: x[0]):
            unit.add(scan)
        if claim is not None:
            unit.claim = _Claim(claim[0], int(claim[1]), bytes(claim[2]) if claim[2] is not None else None)
        self._units[unit_key] = unit
        while len(self._units) > self.cache_size:
            self._units.popitem(last=False)
        return unit

    @staticmethod
    def _ownership(unit: _Unit, device: bytes | None) -> Ownership:
        if unit.claim is None:
            return UNCLAIMED
        return Ownership(True, unit.claim.method, unit.claim.claimed_at_ms, device is not None and device == unit.claim.device)

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
        """Log one scan, apply the clone rules to the unit's window, raise alerts; return what tripped."""
        now = self.clock()
        rules = self.rules
        with self._lock:
            unit = self._unit(unit_key, now)
            unit.expire(now - rules.window_ms)
            placed = _placed(region, region_source)
            unit.add((now, placed, device))
            flags: list[Flag] = list(extra_flags)
            if known:
                if len(unit.devices) > rules.max_devices:
                    flags.append(Flag("too_many_devices", f"scanned by {len(unit.devices)} different devices within {_hours(rules.window_ms)}"))
                if len(unit.scans) > rules.max_scans:
                    flags.append(Flag("too_many_scans", f"scanned {len(unit.scans)} times within {_hours(rules.window_ms)}"))
                flags.extend(self._place_flags(unit, placed, now))
                if unit.claim is not None and now > unit.claim.claimed_at_ms and device != unit.claim.device:
                    flags.append(Flag("scanned_after_claim", f"scanned by another device after its owner claimed it on {_iso(unit.claim.claimed_at_ms)}"))
            outcome = ScanOutcome(tuple(flags), len(unit.scans), len(unit.devices), tuple(sorted(unit.regions)), self._ownership(unit, device))
            self._pending_scans.append((unit_key, gtin, known, region, region_source, device, now, ",".join(f.rule for f in flags)[:160]))
            day = now // DAY_MS
            for flag in flags:
                key = (unit_key, flag.rule, day)
                if key in self._alerted:
                    continue
                self._alerted.add(key)
                self._pending_alerts.append(
                    {"org_id": org_id, "gtin": gtin, "unit_key": unit_key, "rule": flag.rule, "detail": flag.message, "day": day, "created_at_ms": now}
                )
            if len(self._alerted) > 4 * self.cache_size:
                self._alerted = {k for k in self._alerted if k[2] == day}  # older days are deduplicated by the table
        return outcome

    def _place_flags(self, unit: _Unit, region: str | None, now: int) -> list[Flag]:
        rules = self.rules
        if len(unit.regions) > rules.max_regions:
            regions = ", ".join(sorted(unit.regions))
            return [Flag("implausible_places", f"scanned in {len(unit.regions)} countries ({regions}) within {_hours(rules.window_ms)}")]
        if region is None or len(unit.regions) < 2:
            return []
        # The latest earlier scan in another region: too close in time to have travelled?
        scans = unit.scans
        for i in range(len(scans) - 2, -1, -1):
            at, other, _device = scans[i]
            if other and other != region:
                if now - at < rules.min_travel_ms:
                    minutes = max(1, round((now - at) / 60_000))
                    return [Flag("implausible_places", f"scanned in {other} and {region} {minutes} minutes apart")]
                break
        return []

    def status(self, unit_key: str, device: bytes | None = None) -> ScanOutcome:
        """The unit's current window without logging a scan."""
        now = self.clock()
        with self._lock:
            unit = self._unit(unit_key, now)
            unit.expire(now - self.rules.window_ms)
            return ScanOutcome((), len(unit.scans), len(unit.devices), tuple(sorted(unit.regions)), self._ownership(unit, device))

    def ownership(self, unit_key: str, device: bytes | None = None) -> Ownership:
        with self._lock:
            return self._ownership(self._unit(unit_key, self.clock()), device)

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
        return [Alert(r.id, r.org_id, r.gtin, r.unit_key, r.rule, r.detail, r.created_at_ms) for r in rows]


def _placed(region: object, source: object) -> str | None:
    """The region the place rules use: only one the client stated or a trusted proxy set.
    A region guessed from Accept-Language is logged but would flag travellers and expats."""
    return region if isinstance(region, str) and source in ("stated", "proxy") else None


def _hours(ms: int) -> str:
    hours = ms / 3_600_000
    return f"{hours:g} hours" if hours != 1 else "an hour"
