"""Ending: the auditor re-verifies everything from the chain.

- The auditor, Fjord Assurance (NO), trusts nothing but the chain: it replays the registry, the
  anchors and the escrow from the deployment block, takes the event data from the network's
  database, recomputes every root, checks every signature and role, and checks every escrow
  transition against the attestations behind it. After the whole story: no discrepancy, and
  every token paid into escrow has been withdrawn.
- Whatever the machine's load, an event the audit sees before its batch is anchored is pending:
  not anchored yet and inside the consortium's maximum reporting delay by the chain's own time
  (node.protocol.verification), never "never anchored"; an event alone in its batch (its proof is empty,
  its leaf is the root), which a loaded machine makes likely, is verified like any other. Both
  were the cause of the audit story's occasional `event_never_anchored` under load: the auditor
  had its own copy of the Merkle check (an empty proof read as none) and a wall-clock grace since
  receipt instead of the rule.
- Then someone edits the database (a copy of it): one event's body (the inspection result), one
  event's signature (the production run), and one relayed milestone signature (a carrier's
  attestation of the first order's shipment). The same audit reports exactly those three, each
  by its kind.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.audit import AuditReport, audit_database
from node.db import Database
from node.escrow.store import order_key
from node.protocol.event_hash import hash_from_digest
from tests.e2e.world import deliver, demo_world
from waymark.demo.story import Story

KINDS = ("event_data_missing", "hash_mismatch", "signature_invalid", "signer_lacked_role", "event_never_anchored",
         "root_not_on_chain", "escrow_transition_unbacked", "late", "signer_revoked", "batch_withheld")


@pytest.fixture(scope="module")
def ended(tmp_path_factory: pytest.TempPathFactory, block_time: float | None) -> Iterator[Story]:
    """The whole story played on a world of its own (the other stories' world may be at any
    chapter): delivery, confirmation, withdrawals, the dispute, the counterfeit scans."""
    with demo_world(tmp_path_factory.mktemp("e2e-audit"), block_time) as story:
        deliver(story).play(wait=False)
        yield story


def run_audit(story: Story, db_url: str) -> AuditReport:
    db = Database(db_url)
    try:
        return audit_database(story.client, story.network.deployment, db, workers=1)
    finally:
        db.engine.dispose()


@pytest.fixture
def copy(ended: Story, tmp_path: Path) -> Iterator[Path]:
    """A consistent copy of the network's SQLite database (the backup API, WAL included)."""
    source = sqlite3.connect(str(ended.network.root / "waymark.sqlite3"))
    path = tmp_path / "tampered.sqlite3"
    target = sqlite3.connect(str(path))
    source.backup(target)
    source.close()
    target.close()
    yield path


def test_the_audit_of_the_whole_story_finds_no_discrepancy(ended: Story) -> None:
    report = run_audit(ended, ended.network.db_url)
    assert report.ok, [(d.kind, d.subject, d.detail) for d in report.discrepancies]
    assert report.by_kind() == {kind: 0 for kind in KINDS}
    assert report.checked.events >= 40 and report.checked.escrow_orders == 2
    assert report.checked.escrow_signatures >= 2 * 3 + 2 * 2 - 1
    # Everything paid into escrow was paid out and withdrawn.
    escrow = ended.network.deployment.address("TradeEscrow")
    token = ended.client.contract("DevStablecoin", ended.token.address)
    assert int(ended.client.call(token.functions.balanceOf(escrow))) == 0


def test_the_audit_reports_exactly_a_tampered_body_signature_and_escrow_attestation(ended: Story, copy: Path) -> None:
    order = order_key(ended.terms["happy"].order_id)
    with sqlite3.connect(str(copy)) as conn:
        inspected_id, inspected_digest, body = conn.execute(
            "SELECT id, digest, body FROM events WHERE biz_step LIKE '%inspecting' ORDER BY id LIMIT 1").fetchone()
        # The inspection said conformant; someone makes the stored record say otherwise.
        edited = json.loads(body)
        edited["inspectionResult"] = "non-conformant"
        conn.execute("UPDATE events SET body = ? WHERE id = ?", (json.dumps(edited), inspected_id))

        made_id, made_digest, signature = conn.execute(
            "SELECT id, digest, signature FROM events WHERE biz_step LIKE '%commissioning' ORDER BY id LIMIT 1").fetchone()
        forged = bytes(signature[:10]) + bytes([signature[10] ^ 0x01]) + bytes(signature[11:])
        conn.execute("UPDATE events SET signature = ? WHERE id = ?", (forged, made_id))

        # The Shipped milestone of the first order was reached with exactly two carriers' signatures.
        rows = conn.execute("SELECT id, signature FROM relay_signatures WHERE order_id = ? AND milestone = 0 AND kind = 'milestone' "
                            "ORDER BY id", (order,)).fetchall()
        assert len(rows) == 2
        relayed_id, relayed = rows[0]
        conn.execute("UPDATE relay_signatures SET signature = ? WHERE id = ?",
                     (bytes(relayed[:5]) + bytes([relayed[5] ^ 0x01]) + bytes(relayed[6:]), relayed_id))

    report = run_audit(ended, f"sqlite:///{copy}")

    assert report.by_kind() == {kind: 0 for kind in KINDS} | {"hash_mismatch": 1, "signature_invalid": 1, "escrow_transition_unbacked": 1}
    found = {d.kind.value: d.subject for d in report.discrepancies}
    assert found["hash_mismatch"] == hash_from_digest(bytes(inspected_digest))
    assert found["signature_invalid"] == hash_from_digest(bytes(made_digest))
    assert found["escrow_transition_unbacked"] == f"order {order} milestone 0"
