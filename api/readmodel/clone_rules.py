"""The clone rules: which scans make a unit suspicious or alert its manufacturer.

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

The rules read a unit's window (`UnitWindow`: its scans within the evidence window, at most
WINDOW_CAP, with running counts of devices and of devices per region) and its state; the scan
log (api.readmodel.scans) keeps the windows, logs the scans and raises the alerts.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from node.protocol.timestamps import iso_ms

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
WINDOW_CAP = 1024
EVIDENCE_SCANS = 20
#: Whether a device is a trade device (a shop's, an inspector's): not counted by the device rules.
Trade = Callable[[bytes], bool]


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
class Suspicion:
    """The unit's clone suspicion: the same for every scanner until `until_ms`."""

    reasons: tuple[Flag, ...]
    since_ms: int
    until_ms: int


@dataclass
class Claim:
    method: str
    claimed_at_ms: int
    device: bytes | None


@dataclass
class Decommission:
    at_ms: int
    by: str
    reason: str


@dataclass
class Signal:
    message: str
    first_ms: int
    last_ms: int


@dataclass
class UnitWindow:
    """A unit's evidence window and state, as the rules read it."""

    # The evidence window's scans (time, trusted region, device), with running counts of devices
    # and of devices per region so that a scan costs O(1) for them. At most WINDOW_CAP scans.
    scans: deque[tuple[int, str | None, bytes]] = field(default_factory=deque)
    devices: Counter[bytes] = field(default_factory=Counter)
    regions: dict[str, Counter[bytes]] = field(default_factory=dict)
    claim: Claim | None = None
    decommission: Decommission | None = None
    signals: dict[str, Signal] = field(default_factory=dict)
    suspected_until_ms: int = 0
    failed_claims: deque[int] = field(default_factory=deque)
    used_ms: int = 0  # last scan or claim (idle units leave the scan log's cache: ScanLog.idle_ms)

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


def clone_signals(rules: CloneRules, trade: Trade, unit: UnitWindow, recent: Sequence[tuple[int, str | None, bytes]], region: str | None, device: bytes, now: int) -> list[Flag]:
    found: list[Flag] = []
    within = span(rules.evidence_window_ms)
    devices = len(unit.devices)
    if devices > min(rules.max_devices, rules.max_devices_across_regions):  # only then may trade devices matter
        devices -= sum(1 for d in unit.devices if trade(d))
    if devices > rules.max_devices:
        found.append(Flag("too_many_devices", f"scanned by {devices} different devices within {within}"))
    elif len(unit.regions) >= 2 and devices > rules.max_devices_across_regions:
        places = ", ".join(f"{r} ({len(d)})" for r, d in sorted(unit.regions.items()))
        found.append(Flag("devices_in_two_places", f"scanned by {devices} different devices in {len(unit.regions)} countries within {within}: devices per country {places}"))
    found.extend(place_flags(rules, recent, region, now))
    claim, decommission = unit.claim, unit.decommission
    if decommission is not None and now > decommission.at_ms and (claim is None or device != claim.device):
        found.append(Flag("scanned_after_decommission", f"scanned after its manufacturer decommissioned it ({decommission.reason}) on {iso_ms(decommission.at_ms)}"))
    elif claim is not None and now > claim.claimed_at_ms and device != claim.device:
        others = others_since_claim(trade, unit, claim)
        if others > rules.claim_handover_devices:
            found.append(Flag("scanned_after_claim", f"scanned by {others} devices other than its owner's after its owner claimed it on {iso_ms(claim.claimed_at_ms)}"))
    return found


def others_since_claim(trade: Trade, unit: UnitWindow, claim: Claim) -> int:
    """Distinct devices but the claimer's (and trade devices) that scanned the unit after its claim (within the window)."""
    return len({d for at, _r, d in unit.scans if at > claim.claimed_at_ms and d != claim.device and not trade(d)})


def alert_only_flags(rules: CloneRules, unit: UnitWindow, recent: Sequence[tuple[int, str | None, bytes]], signals: Sequence[Flag], device: bytes, now: int) -> list[Flag]:
    found: list[Flag] = []
    scans = len(recent)
    if scans > rules.max_scans:
        found.append(Flag("too_many_scans", f"scanned {scans} times within {span(rules.window_ms)}"))
    claim = unit.claim
    if claim is not None and now > claim.claimed_at_ms and device != claim.device and not signals:
        found.append(Flag("handed_on_after_claim", f"scanned by another device after its owner claimed it on {iso_ms(claim.claimed_at_ms)}: "
                                                    f"a gift, a resale or a copy ({rules.claim_handover_devices + 1} such devices make it suspicious)"))
    return found


def place_flags(rules: CloneRules, recent: Sequence[tuple[int, str | None, bytes]], region: str | None, now: int) -> list[Flag]:
    regions = sorted({r for _at, r, _d in recent if r})
    if len(regions) > rules.max_regions:
        return [Flag("implausible_places", f"scanned in {len(regions)} countries ({', '.join(regions)}) within {span(rules.window_ms)}")]
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


def evidence_of(rules: CloneRules, unit: UnitWindow, now: int) -> dict[str, Any]:
    """Why, for an alert: the latest scans the rules read, the regions, the unit's state."""
    latest = list(unit.scans)[-EVIDENCE_SCANS:]
    evidence: dict[str, Any] = {
        "scans": [{"at": iso_ms(at), "region": region, "device": device[:4].hex()} for at, region, device in latest],
        "scansInEvidenceWindow": len(unit.scans),
        "devicesInEvidenceWindow": len(unit.devices),
        "devicesPerRegion": {region: len(devices) for region, devices in sorted(unit.regions.items())},
        "evidenceWindow": span(rules.evidence_window_ms),
        "state": unit.state(),
    }
    if unit.claim is not None:
        evidence["claimedAt"] = iso_ms(unit.claim.claimed_at_ms)
        evidence["claimDevice"] = unit.claim.device[:4].hex() if unit.claim.device else None
    if unit.decommission is not None:
        evidence["decommissionedAt"] = iso_ms(unit.decommission.at_ms)
        evidence["decommissionReason"] = unit.decommission.reason
    return evidence


def trusted_region(region: object, source: object) -> str | None:
    """The region the place rules use: only one a trusted proxy set. Older rows whose region a
    client stated (or Accept-Language suggested) are kept but never judged: anyone can say anything."""
    return region if isinstance(region, str) and source == "proxy" else None


def span(ms: int) -> str:
    hours = ms / 3_600_000
    if hours >= 48 and hours % 24 == 0:
        return f"{hours / 24:g} days"
    return f"{hours:g} hours" if hours != 1 else "an hour"
