"""The audit engine against a real Anvil and SQLite: an honest history gives zero discrepancies;
each single tamper gives exactly one discrepancy, of the right kind, naming the right thing."""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy import delete, select, text, update

from node.audit import AuditReport, DiscrepancyKind, audit_database
from node.db import Batch, Event, EventEpc
from node.provenance.event_hash import hash_from_digest
from tests.audit.conftest import World, capture_and_anchor
from tests.node.story import CARRIER, INSPECTOR, iso


def run(world: World, workers: int = 1, **kw: object) -> AuditReport:
    return audit_database(world.chain, world.deployment, world.db, workers=workers, **kw)  # type: ignore[arg-type]


def only(report: AuditReport) -> tuple[DiscrepancyKind, str]:
    assert len(report.discrepancies) == 1, [d.to_json() for d in report.discrepancies]
    found = report.discrepancies[0]
    return found.kind, found.subject


def an_event(world: World, index: int = 3) -> tuple[int, bytes]:
    with world.db.session() as s:
        row = s.execute(select(Event.id, Event.digest).order_by(Event.id).offset(index).limit(1)).one()
        return int(row[0]), bytes(row[1])


@pytest.mark.parametrize("workers", [1, 2])
def test_an_honest_history_has_no_discrepancies(world: World, workers: int) -> None:
    report = run(world, workers)
    assert report.ok, [d.to_json() for d in report.discrepancies]
    checked = report.checked
    assert (checked.events, checked.pending_events, checked.batches, checked.anchored_roots) == (24, 0, 2, 2)
    assert checked.escrow_orders == 2 and checked.escrow_transitions >= 8 and checked.escrow_signatures == 6
    assert checked.registry_changes > 0
    assert report.by_kind() == {k.value: 0 for k in DiscrepancyKind}
    assert AuditReport.from_json(orjson.loads(orjson.dumps(report.to_json()))) == report
