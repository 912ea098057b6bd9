"""The scan log, the clone rules, units' states, ownership claims and manufacturers' alerts.

What is kept of a scan: the unit's canonical id, a coarse region (an ISO country code set by a
trusted reverse proxy the operator configured, else none: what a client says about its own
place is never read), a salted hash of the device, the time, and the rules it tripped. No
address, no account, no raw device id.

A unit's state is FMD-like: `active` -> `claimed` (its buyer proved ownership: the claim flow
below) -> `decommissioned` (its manufacturer took it out of circulation with a signed request:
destroyed, recalled, stolen, ...). Decommissioning may follow either earlier state.

The clone rules (which scans make a unit suspicious or alert its manufacturer) are
api.readmodel.clone_rules'; claim codes and device hashes are api.readmodel.claim_codes'.

Scans are buffered in memory and written in batches by a background thread (`start()`), so
that a scan costs microseconds; the rules read a per-unit window kept in memory (at most
WINDOW_CAP scans), loaded from the database on a unit's first scan with its state. Work per
scan is bounded by WINDOW_CAP.

Ownership: a buyer claims a unit with the one-time code from inside its packaging (only a
hash of it is stored, registered by the manufacturer), or with the escrow order that bought
it (checked by the caller against the chain). A unit is claimed once.

One concern: the scan log, one lock over each unit's window and state that scans, claims and
decommissions read and change together (the rules themselves are clone_rules').
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast, get_args

from sqlalchemy import Table, bindparam, select, update

from api.readmodel.claim_codes import AlreadyClaimed, AlreadyDecommissioned, ClaimRejected, InvalidClaimCode, ScanError, claim_code_hash
from api.readmodel.clone_rules import (
    DAY_MS,
    HOUR_MS,
    SUSPICION_RULES,
    WINDOW_CAP,
    Claim,
    CloneRules,
    Decommission,
    DecommissionReason,
    Flag,
    Signal,
    Suspicion,
    UnitStateName,
    UnitWindow,
    alert_only_flags,
    clone_signals,
    evidence_of,
    trusted_region,
)
from node.protocol.timestamps import iso_ms
from node.db import Database
from node.db.plain import PlainSelect, side_by_side
from node.db.locks import ALERTS_FEED, in_id_order
from node.db.scans import ClaimCode, OwnershipClaim, Scan, ScanAlert, UnitState, insert_scans
from node.db.upsert import insert_ignore, upsert
from node.periodic import Periodic

# Devices whose run of different units is remembered, least recently seen leaving first: a trade
# device scans all day and stays; a phone seen once leaves. 200,000 filled for hours under steady
# traffic (about 250 bytes each); this many fill within minutes and then hold about 4 MB.
DEVICE_CACHE = 16_384


# A unit's first scan reads its window, claim and state in one statement (built once: building a
# statement costs more than running it): the claim's and the state's columns (each at most one row,
# their unit_key NULL where there is none) beside the newest WINDOW_CAP scans at most (none: the
# scan's columns NULL), so loading a unit costs the same however often it was scanned.
_WINDOW = (
    select(Scan.id, Scan.at_ms, Scan.region, Scan.device_hash, Scan.region_source)
    .where(Scan.unit_key == bindparam("unit"), Scan.at_ms >= bindparam("since"))
    .order_by(Scan.at_ms.desc(), Scan.id.desc())
    .limit(WINDOW_CAP)
    .subquery("window")
)
_CLAIM = select(
    OwnershipClaim.unit_key, OwnershipClaim.method, OwnershipClaim.claimed_at_ms, OwnershipClaim.device_hash,
).where(OwnershipClaim.unit_key == bindparam("unit")).subquery("claim")
_STATE = select(
    UnitState.unit_key, UnitState.decommissioned_at_ms, UnitState.decommissioned_by, UnitState.decommission_reason, UnitState.signals,
    UnitState.suspected_until_ms,
).where(UnitState.unit_key == bindparam("unit")).subquery("state")
_UNIT_READ = PlainSelect(
    select(*_CLAIM.c, *_STATE.c, *list(_WINDOW.c)[1:], _WINDOW.c.id)
    .select_from(side_by_side(_CLAIM, _STATE, _WINDOW))
    .order_by(_WINDOW.c.at_ms.desc(), _WINDOW.c.id.desc())
)
_CLAIM_END = len(_CLAIM.c)
_STATE_END = _CLAIM_END + len(_STATE.c)

# Batches of the writer whose units are remembered (`ScanLog._written`): a unit's window read
# after the log last wrote any of them can be checked against what was written since. 64 is
# about 13 s of batches at the default interval, far longer than a passport build takes.
WRITES_TRACKED = 64

UnitRead = tuple[list[tuple[Any, ...]], tuple[Any, ...] | None, tuple[Any, ...] | None]
"""A unit's scans in its evidence window (newest first, at most WINDOW_CAP), claim and state, as
plain tuples (so that a build process can hand them over): a scan's (at_ms, region, device_hash,
region_source), a claim's (method, claimed_at_ms, device_hash), a state's (decommissioned_at_ms,
decommissioned_by, decommission_reason, signals, suspected_until_ms)."""


def read_window(db: Database, unit_key: str, since: int) -> UnitRead:
    """What the database holds of a unit for its scan window, in one statement (`_UNIT_READ`; a
    passport build's snapshot, when a build process reads it for the API's scan log)."""
    with db.connect() as conn:
        rows = _UNIT_READ.rows(conn, {"unit": unit_key, "since": since})
    first = rows[0]
    claim = first[1:_CLAIM_END] if first[0] is not None else None
    state = first[_CLAIM_END + 1:_STATE_END] if first[_CLAIM_END] is not None else None
    return [row[_STATE_END:-1] for row in rows if row[-1] is not None], claim, state


@dataclass(frozen=True)
class WindowAsk:
    """A unit's window to be read (`read_window` from `since`) for a log whose writer had the
    count `writes` when it was asked for (see `ScanLog.take_window`)."""

    since: int
    writes: int
    now: int


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

    def view(self) -> dict[str, Any]:
        """As answered (schema.OwnershipView): by the ownership routes and in the passport."""
        return {
            "claimed": self.claimed,
            "method": self.method,
            "claimedAt": iso_ms(self.claimed_at_ms) if self.claimed_at_ms else None,
            "byThisDevice": self.by_this_device,
            "state": self.state,
            "decommissionedAt": iso_ms(self.decommissioned_at_ms) if self.decommissioned_at_ms else None,
            "decommissionReason": self.decommission_reason,
        }


UNCLAIMED = Ownership(False)


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
        self.idle_ms = idle_ms  # units scanned once under steady production leave memory (rows stay)
        self.max_failed_claims = max_failed_claims_per_hour
        self._units: OrderedDict[str, UnitWindow] = OrderedDict()
        # Per device: (hash of the last unit it scanned, how many different units it scanned in a row).
        self._device_units: OrderedDict[bytes, tuple[int, int]] = OrderedDict()
        self._lock = threading.RLock()
        # Buffered scan rows, as tuples in node.db.scans.SCAN_COLUMNS order (written by the DB-API directly).
        self._pending_scans: list[tuple[Any, ...]] = []
        self._pending_alerts: list[dict[str, object]] = []
        # Units whose suspicion changed since the last write (the latest values are written).
        self._pending_states: dict[str, UnitWindow] = {}
        # Odd while the writer is writing a batch it took from the buffers: a unit read from the
        # database meanwhile may miss scans that are in neither (see `take_window`). Each batch is
        # numbered by the odd count it set; `_written` holds the last batch that wrote each unit,
        # for the units of the last WRITES_TRACKED batches.
        self._writes = 0
        self._written: OrderedDict[str, int] = OrderedDict()
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
                self._writes += 1
                self._note_written([scan[0] for scan in scans] + list(changed))
            try:
                with self.db.connect(write=True) as conn:
                    if alerts:
                        in_id_order(conn, ALERTS_FEED)  # manufacturers read their alerts by id
                    if scans:
                        insert_scans(conn, scans)
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
            finally:
                with self._lock:
                    self._writes += 1
            return len(scans)

    def _state_row(self, unit_key: str, unit: UnitWindow) -> dict[str, object]:
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

    def _unit(self, unit_key: str, now: int) -> UnitWindow:
        """The unit's window and state, loaded on first use. Caller holds the lock."""
        unit = self._units.get(unit_key)
        if unit is not None:
            self._units.move_to_end(unit_key)
            unit.used_ms = now
            return unit
        unit = self._pending_states.get(unit_key) or UnitWindow()
        if not unit.scans:
            self._load(unit_key, unit, now)
        unit.used_ms = now
        self._keep(unit_key, unit)
        return unit

    def is_loaded(self, unit_key: str) -> bool:
        """Whether the unit's window is in memory (a scan of it reads no database)."""
        return unit_key in self._units

    def preload(self, unit_key: str) -> None:
        """Read a unit's window and state into memory if it is not there yet, without holding the
        log's lock while the database answers (the API calls this in a worker thread before
        `record`, so that a unit's first scan does not read the database on the event loop)."""
        ask = self.window_ask(unit_key)
        if ask is not None:
            self.take_window(unit_key, ask, read_window(self.db, unit_key, ask.since))

    def window_ask(self, unit_key: str) -> WindowAsk | None:
        """What to read of a unit that is not in memory (None if it is): a passport build reads it
        in its own snapshot, so that the unit's first scan reads nothing more (`take_window`)."""
        now = self.clock()
        with self._lock:
            if unit_key in self._units or unit_key in self._pending_states:
                return None
            return WindowAsk(now - self.rules.evidence_window_ms, self._writes, now)

    def take_window(self, unit_key: str, ask: WindowAsk, read: UnitRead) -> None:
        """Keep a unit's window read after `ask`, unless the unit is in memory by now or the
        writer may have written its scans or state between the two (a read that missed scans
        neither the database nor the buffer held then); its first scan then reads it again."""
        with self._lock:
            if unit_key in self._units or unit_key in self._pending_states or self._written_since(unit_key, ask.writes):
                return
            unit = UnitWindow(used_ms=ask.now)
            self._fill(unit_key, unit, read)
            self._keep(unit_key, unit)

    def _note_written(self, unit_keys: Iterable[str]) -> None:
        """Remember the units of the batch numbered `_writes`, and forget batches beyond WRITES_TRACKED. Caller holds the lock."""
        batch, written = self._writes, self._written
        for key in unit_keys:
            written[key] = batch
            written.move_to_end(key)
        while written and next(iter(written.values())) <= batch - 2 * WRITES_TRACKED:
            written.popitem(last=False)

    def _written_since(self, unit_key: str, writes: int) -> bool:
        """Whether a batch the writer started at or after the count `writes` wrote the unit (a batch
        in progress then counts: a read may or may not see it), or may have: batches too old to
        be remembered count as having written it. Caller holds the lock."""
        first = writes if writes % 2 else writes + 1  # the first batch a read after `writes` may have missed
        if first <= self._writes - 2 * WRITES_TRACKED:
            return True
        return self._written.get(unit_key, 0) >= first

    def _keep(self, unit_key: str, unit: UnitWindow) -> None:
        """Cache the unit; drop the least recently used beyond `cache_size`, and those idle for
        `idle_ms` unless a failed claim in the last hour still counts against the claim limit."""
        self._units[unit_key] = unit
        idle_before = unit.used_ms - self.idle_ms
        while self._units:  # least recently used first
            key, oldest = next(iter(self._units.items()))
            if len(self._units) <= self.cache_size and oldest.used_ms >= idle_before:
                break
            if len(self._units) <= self.cache_size and oldest.failed_claims and oldest.failed_claims[-1] > unit.used_ms - HOUR_MS:
                self._units.move_to_end(key)
                break
            del self._units[key]

    def _load(self, unit_key: str, unit: UnitWindow, now: int) -> None:
        self._fill(unit_key, unit, read_window(self.db, unit_key, now - self.rules.evidence_window_ms))

    def _fill(self, unit_key: str, unit: UnitWindow, read: UnitRead) -> None:
        """Put what `read_window` found, and the scans still buffered, into the unit's window. Caller holds the lock."""
        rows, claim, state = read
        buffered = [(s[6], trusted_region(s[3], s[4]), s[5]) for s in self._pending_scans if s[0] == unit_key]
        loaded = [(int(r[0]), trusted_region(r[1], r[3]), bytes(r[2])) for r in rows]
        for scan in sorted(loaded + buffered, key=lambda x: x[0])[-WINDOW_CAP:]:
            unit.add(scan)
        if claim is not None:
            unit.claim = Claim(claim[0], int(claim[1]), bytes(claim[2]) if claim[2] is not None else None)
        if state is not None:
            decommissioned_at_ms, decommissioned_by, decommission_reason, signals, suspected_until_ms = state
            if decommissioned_at_ms is not None:
                unit.decommission = Decommission(int(decommissioned_at_ms), decommissioned_by or "", decommission_reason or "other")
            if signals:
                unit.signals = {rule: Signal(v["message"], int(v["firstMs"]), int(v["lastMs"])) for rule, v in json.loads(signals).items()}
            unit.suspected_until_ms = int(suspected_until_ms or 0)

    @staticmethod
    def _ownership(unit: UnitWindow, device: bytes | None) -> Ownership:
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

    def _outcome(self, unit: UnitWindow, flags: Sequence[Flag], device: bytes | None, now: int) -> ScanOutcome:
        return ScanOutcome(tuple(flags), unit.suspicion(now), len(unit.scans), len(unit.devices), tuple(sorted(unit.regions)), self._ownership(unit, device))

    def _short_window(self, unit: UnitWindow, now: int) -> list[tuple[int, str | None, bytes]]:
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
            placed = trusted_region(region, region_source)
            unit.add((now, placed, device))
            recent = self._short_window(unit, now)
            signals = clone_signals(self.rules, self._trade, unit, recent, placed, device, now) if known else []
            alert_only = alert_only_flags(self.rules, unit, recent, signals, device, now) if known else []
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
                    "evidence": json.dumps(evidence_of(self.rules, unit, now)), "suspected_until_ms": unit.suspected_until_ms if suspected else None,
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

    def _suspect(self, unit_key: str, unit: UnitWindow, signals: Sequence[Flag], now: int) -> None:
        """Record clone signals on the unit: suspicious for everyone until `suspicion` after the last."""
        if unit.suspected_until_ms <= now:
            unit.signals = {}  # an aged-out suspicion starts afresh
        for flag in signals:
            known = unit.signals.get(flag.rule)
            unit.signals[flag.rule] = Signal(flag.message, known.first_ms if known else now, now)
        unit.suspected_until_ms = now + self.rules.suspicion_ms
        self._pending_states[unit_key] = unit

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
            decommission = Decommission(now, by, reason)
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

    def _store_claim(self, unit: UnitWindow, unit_key: str, method: str, order_id: str | None, owner: str | None, device: bytes | None, now: int) -> Ownership:
        with self.db.connect(write=True) as conn:
            result = conn.execute(
                insert_ignore(conn, cast(Table, OwnershipClaim.__table__), ("unit_key",)),
                [{"unit_key": unit_key, "method": method, "order_id": order_id, "owner": owner, "device_hash": device, "claimed_at_ms": now}],
            )
            if result.rowcount == 0:  # claimed by another process meanwhile
                at = conn.execute(select(OwnershipClaim.claimed_at_ms).where(OwnershipClaim.unit_key == unit_key)).scalar_one()
                unit.claim = Claim(method, int(at), None)
                raise AlreadyClaimed(unit_key, int(at))
        unit.claim = Claim(method, now, device)
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


