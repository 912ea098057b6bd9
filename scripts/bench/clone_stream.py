"""The simulated scan stream of scripts/bench/clones.py (its docstring describes it), its scoring
against the ground truth, and `rules_only`: the same stream through the scan log's rules in this
process with a simulated clock (no API, no chain)."""

from __future__ import annotations

import os
import random
import statistics
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from api.readmodel.claim_codes import ClaimRejected, claim_code_hash, device_hash, new_claim_code
from api.readmodel.clone_rules import SUSPICION_RULES
from api.readmodel.scans import ScanLog
from node.db import Database

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
COUNTRIES = ["NL", "DE", "FR", "BE", "ES", "IT", "PL", "SE", "GB", "US", "BR", "CN", "VN", "TR", "AE", "JP"]
WEIGHTS = [8, 10, 8, 4, 6, 6, 4, 3, 8, 10, 5, 8, 3, 4, 2, 4]


@dataclass(frozen=True)
class Step:
    at_ms: int  # simulated time since the stream's start
    unit: int
    device: str
    kind: str = "scan"  # scan | claim | bad_claim
    region: str | None = None  # set by the trusted proxy
    spoof: str | None = None  # a country the client states itself, from a non-proxy address
    fake: bool = False  # a scan of a fake (ground truth: never shown to the API)


@dataclass
class Stream:
    steps: list[Step]
    cloned: set[int]
    first_fake_ms: dict[int, int]
    category: dict[int, str]


@dataclass
class Outcome:
    flagged_at_ms: dict[int, int] = field(default_factory=dict)  # simulated time of the scan that made the unit suspicious
    rules: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))


def generate(units: int, days: int, seed: int, min_fakes: int = 3) -> Stream:
    """The scan stream (see the module's docstring), sorted by time."""
    rng = random.Random(seed)
    steps: list[Step] = []
    cloned: set[int] = set()
    first_fake: dict[int, int] = {}
    category: dict[int, str] = {}
    shops = [(f"shop-{i}", rng.choices(COUNTRIES, WEIGHTS)[0]) for i in range(300)]
    shops_in: dict[str, list[str]] = defaultdict(list)
    for name, country in shops:
        shops_in[country].append(name)
    horizon = days * DAY_MS

    def hours(low: float, high: float) -> int:
        return int(rng.uniform(low, high) * HOUR_MS)

    def abroad(home: str) -> str:
        return rng.choice([c for c in COUNTRIES if c != home])

    def place(country: str) -> str | None:
        return country if rng.random() < 0.7 else None

    def add(at: int, unit: int, device: str, country: str, kind: str = "scan", fake: bool = False) -> None:
        if at >= horizon:
            return
        spoof = rng.choice(COUNTRIES) if kind == "scan" and rng.random() < 0.03 else None
        steps.append(Step(at, unit, device, kind, None if spoof else place(country), spoof, fake))

    for unit in range(units):
        home = rng.choices(COUNTRIES, WEIGHTS)[0]
        roll = rng.random()
        kind = "clone" if roll < 0.01 else "traveller" if roll < 0.07 else "gift" if roll < 0.13 else "plain"
        # A clone's copies must reach the market within the stream; other units sell until its last days.
        sale = int(rng.uniform(0, max(1, days - (30 if kind == "clone" else 10))) * DAY_MS)
        buyer = f"u{unit}-buyer"
        category[unit] = kind
        if rng.random() < 0.3 and shops_in[home]:
            add(sale - hours(0, 48), unit, rng.choice(shops_in[home]), home)
        last = sale + hours(0, 48)
        if kind == "gift":
            if rng.random() < 0.6:
                add(last, unit, buyer, home)
            if rng.random() < 0.05:  # the giver claims it before giving it away
                add(last + hours(0.1, 1), unit, buyer, home, "claim")
            given = last + hours(24, 20 * 24)
            where = abroad(home) if rng.random() < 0.5 else home
            recipient = f"u{unit}-recipient"
            at = given
            for _ in range(rng.randint(1, 3)):
                add(at, unit, recipient, where)
                at += hours(1, 15 * 24)
            if rng.random() < 0.25:
                add(given + hours(0.1, 2), unit, recipient, where, "claim")
            if rng.random() < 0.15:
                add(given + hours(2, 20 * 24), unit, f"u{unit}-recipient-household", where)
            continue
        add(last, unit, buyer, home)
        if rng.random() < 0.25:
            add(last + hours(0.1, 24), unit, buyer, home, "claim")
        if rng.random() < 0.5:
            last += hours(2, 14 * 24)
            add(last, unit, buyer, home)
        if rng.random() < 0.2:
            add(last + hours(24, 50 * 24), unit, buyer, home)
        household = sale + hours(2, 30 * 24) if rng.random() < 0.15 else None
        if kind == "traveller":
            there = abroad(home)
            leave = last + hours(4, 20 * 24)
            if household is not None and household < leave:  # at home, while the unit is there
                add(household, unit, f"u{unit}-household", home)
            add(leave, unit, buyer, there)
            stay = hours(3 * 24, 14 * 24)
            if rng.random() < 0.5:
                add(leave + hours(1, stay / HOUR_MS), unit, buyer, there)
            if rng.random() < 0.3:
                add(leave + hours(1, stay / HOUR_MS), unit, f"u{unit}-friend-abroad", there)
            if rng.random() < 0.5:
                add(leave + stay + hours(4, 7 * 24), unit, buyer, home)
            continue
        if household is not None:
            add(household, unit, f"u{unit}-household", home)
        if kind == "clone":
            cloned.add(unit)
            market = abroad(home)
            start = sale + hours(3 * 24, 20 * 24)
            span = rng.uniform(10, 40) * 24
            fakes = min(40, min_fakes + int(rng.expovariate(1 / 6)))
            for index in range(fakes):
                bought = start + hours(0, span)
                if bought >= horizon:
                    continue
                first_fake[unit] = min(first_fake.get(unit, bought), bought)
                device = f"u{unit}-fake-{index}"
                add(bought, unit, device, market, fake=True)
                if rng.random() < 0.4:
                    add(bought + hours(1, 10 * 24), unit, device, market, fake=True)
                if rng.random() < 0.2:
                    add(bought + hours(0.1, 2), unit, device, market, "bad_claim", fake=True)
    steps.sort(key=lambda s: s.at_ms)
    return Stream(steps, {u for u in cloned if u in first_fake}, first_fake, category)


def score(stream: Stream, outcome: Outcome) -> dict[str, Any]:
    flagged = set(outcome.flagged_at_ms)
    true = flagged & stream.cloned
    precision = len(true) / len(flagged) if flagged else 1.0
    recall = len(true) / len(stream.cloned) if stream.cloned else 1.0
    delays = sorted((outcome.flagged_at_ms[u] - stream.first_fake_ms[u]) / HOUR_MS for u in true)
    false_by = Counter(f"{stream.category[u]}:{'+'.join(sorted(outcome.rules[u]))}" for u in flagged - stream.cloned)
    missed = Counter(sum(1 for s in stream.steps if s.unit == u and s.fake and s.kind == "scan") for u in stream.cloned - flagged)
    return {
        "cloned_units": len(stream.cloned),
        "flagged_units": len(flagged),
        "true_positives": len(true),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "false_positives_by_category_and_rule": dict(false_by.most_common()),
        "missed_clones_by_fake_scans": dict(sorted(missed.items())),
        "simulated_hours_first_fake_scan_to_suspicion": quantiles(delays),
    }


def quantiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p90": None, "max": None}
    ordered = sorted(values)
    return {"median": round(statistics.median(ordered), 2), "p90": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))], 2),
            "max": round(ordered[-1], 2)}


# --- rules only: the same stream through ScanLog in this process --------------------------------


def rules_only(stream: Stream) -> Outcome:
    folder = Path(tempfile.mkdtemp(prefix="waymark-bench-clones-"))
    db = Database(f"sqlite:///{folder / 'scans.sqlite3'}")
    db.migrate()
    now = [0]
    log = ScanLog(db, clock=lambda: now[0] + 1_800_000_000_000)
    salt = os.urandom(32)
    keys = {u: f"https://id.gs1.org/01/09521234543213/21/S{u:08d}" for u in {s.unit for s in stream.steps}}
    codes = {u: new_claim_code() for u in keys}
    log.register_claim_codes([(keys[u], claim_code_hash(keys[u], codes[u])) for u in keys], org_id=1, registered_by="0xM")
    outcome = Outcome()
    for step in stream.steps:
        now[0] = step.at_ms
        device = device_hash(salt, step.device)
        if step.kind != "scan":
            try:
                log.claim_with_code(keys[step.unit], codes[step.unit] if step.kind == "claim" else new_claim_code(), device)
            except ClaimRejected:
                pass
            continue
        result = log.record(keys[step.unit], device=device, region=step.region, region_source="proxy" if step.region else "none", gtin="09521234543213", org_id=1)
        for flag in result.flags:
            if flag.rule in SUSPICION_RULES:
                outcome.flagged_at_ms.setdefault(step.unit, step.at_ms)
                outcome.rules[step.unit].add(flag.rule)
    log.flush()
    db.dispose()
    return outcome
