"""The audit engine against a real Anvil and SQLite: an honest history gives zero discrepancies;
each single tamper gives exactly one discrepancy, of the right kind, naming the right thing."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from sqlalchemy import delete, select, text, update
from typer.testing import CliRunner

from node.audit import AuditReport, DiscrepancyKind, audit_database
from node.audit.chain import replay
from node.audit.escrow import check_escrow
from node.audit.evidence import DatabaseEvidence
from node.db import Batch, Event, EventEpc
from node.escrow import State
from node.escrow.signing import sign_customs_return
from node.member.proofs import build_bundle
from node.protocol import epcis
from node.protocol.event_hash import event_hash, hash_from_digest, record_digest
from node.protocol.gs1 import UnitId
from node.relayer.model import Kind, SignatureIn
from node.relayer.service import Relayer
from waymark.cmd_audit import app as audit_app
from waymark.cmd_node import app as node_app
from waymark.devnet.anvil import AnvilControl
from node.chain.registry import ProposalKind, RegistryClient, role_data
from waymark.devnet.governance import demo_voters, pass_proposal
from node.member.runtime import build_anchorer, build_capture
from tests.audit.conftest import World, capture_and_anchor
from tests.node.escrow_env import DAY, member
from tests.node.story import CARRIER, GTIN, INSPECTOR, capture_document, iso


def run(world: World, workers: int = 1, **kw: object) -> AuditReport:
    return audit_database(world.chain, world.deployment, world.db, workers=workers, **kw)


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
    assert (checked.events, checked.pending_events, checked.batches, checked.anchored_roots) == (24, 0, 8, 8)
    assert checked.escrow_orders == 2 and checked.escrow_transitions >= 8 and checked.escrow_signatures == 6
    assert checked.registry_changes > 0
    assert report.by_kind() == {k.value: 0 for k in DiscrepancyKind}
    assert AuditReport.from_json(orjson.loads(orjson.dumps(report.to_json()))) == report


def test_a_batch_of_one_event_whose_proof_is_empty_audits_clean(world: World) -> None:
    """The one leaf of a one-event batch is its root: its proof is empty, and it is anchored."""
    now = int(world.chain.w3.eth.get_block("latest")["timestamp"])
    lone = epcis.object_event(epcs=[UnitId(GTIN, "LONE1", "LOT1")], action="OBSERVE", event_time=iso(now + 300),
                              biz_step="inspecting")
    capture_and_anchor(world.runtime, [(lone, INSPECTOR)])
    with world.db.session() as s:
        batch = s.scalar(select(Batch).join(Event, Event.batch_id == Batch.id).where(Event.digest == record_digest(lone)))
        assert batch is not None and batch.event_count == 1
        assert s.scalar(select(Event.proof).where(Event.batch_id == batch.id)) == b""
    report = run(world)
    assert report.ok, [d.to_json() for d in report.discrepancies]
    assert report.checked.events == 25


def test_waymark_audit_verify_and_waymark_node_verify_agree_on_an_event_alone_in_its_batch(world: World, tmp_path: Path) -> None:
    """Both commands run node.protocol.verification: the lone event of a one-event batch (empty proof, its
    leaf is the root) is verified by both, and the same edit of it fails both, by the same check."""
    now = int(world.chain.w3.eth.get_block("latest")["timestamp"])
    lone = epcis.object_event(epcs=[UnitId(GTIN, "ALONE", "LOT1")], action="OBSERVE", event_time=iso(now + 300),
                              biz_step="inspecting")
    capture_and_anchor(world.runtime, [(lone, INSPECTOR)])
    bundle = build_bundle(world.db, event_hash(lone), chain_id=world.chain.chain_id,
                          registry_address=world.deployment.address("ProvenanceRegistry"))
    assert bundle["merkle"]["proof"] == [] and bundle["merkle"]["batchSize"] == 1
    chain = ["--rpc-url", world.chain.rpc_url, "--chain-id", str(world.chain.chain_id)]
    audit_args = ["verify", *chain, "--deployment", str(tmp_path / "deployments" / f"{world.chain.chain_id}.json"),
                  "--db", world.db.url.render_as_string(hide_password=False), "--workers", "1"]
    runner = CliRunner()

    (tmp_path / "lone.json").write_bytes(orjson.dumps(bundle))
    by_node = runner.invoke(node_app, ["verify", str(tmp_path / "lone.json"), *chain])
    by_audit = runner.invoke(audit_app, audit_args)
    assert (by_node.exit_code, by_audit.exit_code) == (0, 0), by_node.output + by_audit.output
    assert "verified" in by_node.output

    edited = orjson.loads(orjson.dumps(bundle))
    edited["event"]["readPoint"] = {"id": "urn:epc:id:sgln:9521234.54321.9"}
    (tmp_path / "edited.json").write_bytes(orjson.dumps(edited))
    with world.db.write() as s:
        s.execute(update(Event).where(Event.digest == record_digest(lone)).values(body=orjson.dumps(edited["event"]).decode()))
    by_node = runner.invoke(node_app, ["verify", str(tmp_path / "edited.json"), *chain])
    by_audit = runner.invoke(audit_app, [*audit_args, "--json", str(tmp_path / "report.json")])
    assert (by_node.exit_code, by_audit.exit_code) == (1, 6)
    assert "hash_mismatch" in by_node.output
    report = orjson.loads((tmp_path / "report.json").read_bytes())
    assert [(d["kind"], d["subject"]) for d in report["discrepancies"]] == [("hash_mismatch", event_hash(lone))]


# ---- events ----------------------------------------------------------------------------------


def test_an_edited_event_body_is_a_hash_mismatch_and_nothing_else(world: World) -> None:
    event_id, digest = an_event(world)
    with world.db.write() as s:
        body = orjson.loads(s.execute(select(Event.body).where(Event.id == event_id)).scalar_one())
        body["readPoint"] = {"id": "urn:epc:id:sgln:9521234.54321.9"}
        s.execute(update(Event).where(Event.id == event_id).values(body=orjson.dumps(body).decode()))
    assert only(run(world)) == (DiscrepancyKind.HASH_MISMATCH, hash_from_digest(digest))


def test_an_edited_event_id_is_a_hash_mismatch_and_nothing_else(world: World) -> None:
    event_id, digest = an_event(world)
    with world.db.write() as s:
        s.execute(update(Event).where(Event.id == event_id).values(digest=bytes(32 * [7])))
    assert only(run(world)) == (DiscrepancyKind.HASH_MISMATCH, hash_from_digest(bytes(32 * [7])))


def test_an_altered_signature_is_invalid_and_nothing_else(world: World) -> None:
    event_id, digest = an_event(world, 5)
    with world.db.write() as s:
        signature = bytearray(s.execute(select(Event.signature).where(Event.id == event_id)).scalar_one())
        signature[7] ^= 0x01
        s.execute(update(Event).where(Event.id == event_id).values(signature=bytes(signature)))
    assert only(run(world)) == (DiscrepancyKind.SIGNATURE_INVALID, hash_from_digest(digest))


def test_a_stored_signer_replaced_is_a_signature_invalid_and_no_root_problem(world: World) -> None:
    event_id, digest = an_event(world, 6)
    with world.db.write() as s:
        signer = s.execute(select(Event.signer).where(Event.id == event_id)).scalar_one()
        s.execute(update(Event).where(Event.id == event_id).values(signer=INSPECTOR.address))
    assert signer != INSPECTOR.address
    report = run(world)
    assert only(report) == (DiscrepancyKind.SIGNATURE_INVALID, hash_from_digest(digest))
    assert report.discrepancies[0].objects["recovered"] == signer


def test_an_event_signed_by_an_account_without_the_role_is_reported(world: World) -> None:
    now = int(world.chain.w3.eth.get_block("latest")["timestamp"])
    # An inspector attests a shipment: ingest would refuse it; it is stored past the role check.
    event = epcis.object_event(epcs=[UnitId(GTIN, f"R{now}", "LOT9")], action="OBSERVE", event_time=iso(now + 1),
                               biz_step="shipping")
    capture_and_anchor(world.runtime, [(event, INSPECTOR)], check_roles=False)
    report = run(world)
    assert only(report) == (DiscrepancyKind.SIGNER_LACKED_ROLE, event_hash(event))
    assert report.discrepancies[0].objects["signer"] == INSPECTOR.address


def test_an_event_whose_proof_was_altered_is_never_anchored_and_its_root_still_rebuilds(world: World) -> None:
    event_id, digest = an_event(world, 0)  # the manufacturer's first event: its batch holds two
    with world.db.write() as s:
        proof = bytearray(s.execute(select(Event.proof).where(Event.id == event_id)).scalar_one() or b"")
        proof[0] ^= 0xFF
        s.execute(update(Event).where(Event.id == event_id).values(proof=bytes(proof)))
    assert only(run(world)) == (DiscrepancyKind.EVENT_NEVER_ANCHORED, hash_from_digest(digest))


def test_an_unanchored_event_is_pending_inside_its_reporting_delay_and_never_anchored_past_it(world: World) -> None:
    now = int(world.chain.w3.eth.get_block("latest")["timestamp"])
    event = epcis.object_event(epcs=[UnitId(GTIN, f"P{now}", "LOT9")], action="OBSERVE", event_time=iso(now + 1),
                               biz_step="shipping")
    capture = build_capture(world.runtime)
    capture.store(capture.check(orjson.dumps(capture_document([(event, CARRIER)], world.runtime.domain))))
    young = run(world)
    assert young.ok and young.checked.pending_events == 1
    # The chain's time, not the auditor's clock or the node's receipt time, decides: past the delay it is never anchored.
    delay = RegistryClient(world.chain, world.deployment).max_reporting_delay_at(now + 1)
    control = AnvilControl(world.chain.rpc_url)
    control.set_next_block_timestamp(now + 1 + delay)
    control.mine()
    assert run(world).checked.pending_events == 1  # exactly at the delay: still pending
    control.set_next_block_timestamp(now + 2 + delay)  # one second later
    control.mine()
    report = run(world)
    assert only(report) == (DiscrepancyKind.EVENT_NEVER_ANCHORED, event_hash(event))
    assert report.checked.pending_events == 0


def test_an_event_anchored_past_its_delay_after_its_signer_lost_the_role_is_marked_late_and_signer_revoked(world: World) -> None:
    """A carrier key signs a shipment dated while it held CARRIER; the batch is anchored only after
    the maximum reporting delay, and after the consortium revoked CARRIER: accepted, but both marks."""
    now = int(world.chain.w3.eth.get_block("latest")["timestamp"])
    event = epcis.object_event(epcs=[UnitId(GTIN, f"B{now}", "LOT9")], action="OBSERVE", event_time=iso(now + 1),
                               biz_step="shipping")
    capture = build_capture(world.runtime)
    capture.store(capture.check(orjson.dumps(capture_document([(event, CARRIER)], world.runtime.domain))))
    registry = RegistryClient(world.chain, world.deployment)
    control = AnvilControl(world.chain.rpc_url)
    control.set_next_block_timestamp(now + 2 + registry.max_reporting_delay_at(now + 1))
    control.mine()
    pass_proposal(registry, ProposalKind.REVOKE_ROLE, role_data(3, "CARRIER"), demo_voters())
    build_anchorer(world.runtime, CARRIER).drain()  # the carrier organisation still holds ANCHORER
    report = run(world)
    found = sorted((d.kind, d.subject) for d in report.discrepancies)
    assert found == [(DiscrepancyKind.LATE, event_hash(event)), (DiscrepancyKind.SIGNER_REVOKED, event_hash(event))]
    assert report.checked.pending_events == 0


# ---- roots -----------------------------------------------------------------------------------


def test_a_stored_batch_root_that_was_never_anchored_is_reported_once(world: World) -> None:
    fake = bytes(range(32))
    with world.db.write() as s:
        first = s.execute(select(Batch.id).order_by(Batch.id).limit(1)).scalar_one()
        s.execute(update(Batch).where(Batch.id == first).values(root=fake))
    assert only(run(world)) == (DiscrepancyKind.ROOT_NOT_ON_CHAIN, "0x" + fake.hex())


def test_a_deleted_event_is_event_data_missing_naming_its_root_and_leaf(world: World) -> None:
    event_id, _ = an_event(world, 4)
    with world.db.write() as s:
        root, leaf = s.execute(select(Batch.root, Event.leaf_index).join(Batch, Batch.id == Event.batch_id)
                               .where(Event.id == event_id)).one()
        s.execute(delete(EventEpc).where(EventEpc.event_id == event_id))
        s.execute(delete(Event).where(Event.id == event_id))
    report = run(world)
    assert only(report) == (DiscrepancyKind.EVENT_DATA_MISSING, "0x" + bytes(root).hex())
    assert report.discrepancies[0].objects["missing_leaves"] == str(leaf)


def test_a_root_anchored_with_no_stored_events_is_event_data_missing_once(world: World) -> None:
    with world.db.write() as s:
        batch_id, root = s.execute(select(Batch.id, Batch.root).order_by(Batch.id.desc()).limit(1)).one()
        ids = select(Event.id).where(Event.batch_id == batch_id)
        s.execute(delete(EventEpc).where(EventEpc.event_id.in_(ids)))
        s.execute(delete(Event).where(Event.batch_id == batch_id))
        s.execute(delete(Batch).where(Batch.id == batch_id))
    assert only(run(world)) == (DiscrepancyKind.EVENT_DATA_MISSING, "0x" + bytes(root).hex())


# ---- escrow ----------------------------------------------------------------------------------


def test_an_altered_relay_signature_leaves_its_milestone_unbacked(world: World) -> None:
    order = world.relayed.order_id
    with world.db.write() as s:
        row_id, signature = s.execute(text(
            "SELECT id, signature FROM relay_signatures WHERE order_id = :o AND milestone = 1 ORDER BY id LIMIT 1"),
            {"o": f"0x{order:064x}"}).one()
        altered = bytearray(signature)
        altered[3] ^= 0x01
        s.execute(text("UPDATE relay_signatures SET signature = :s WHERE id = :i"), {"s": bytes(altered), "i": row_id})
    report = run(world)
    assert only(report) == (DiscrepancyKind.ESCROW_TRANSITION_UNBACKED, f"order 0x{order:064x} milestone 1")
    assert report.discrepancies[0].objects["source"] == "stored attestations"


def test_deleted_relay_signatures_leave_the_milestone_below_quorum(world: World) -> None:
    order = world.relayed.order_id
    with world.db.write() as s:
        s.execute(text("DELETE FROM relay_signatures WHERE order_id = :o AND milestone = 2"), {"o": f"0x{order:064x}"})
    assert only(run(world)) == (DiscrepancyKind.ESCROW_TRANSITION_UNBACKED, f"order 0x{order:064x} milestone 2")


def test_a_ruling_by_an_arbitrator_whose_role_was_revoked_before_is_unbacked(world: World) -> None:
    env = world.env
    disputed = env.open(env.terms(salt=3))
    env.reach(disputed, 0)
    env.escrow.dispute(disputed, b"\x03" * 32, env.buyer)
    env.escrow.rule(disputed, 2500, b"\x04" * 32, env.arbitrator)
    # The chain itself refuses a ruling without the role, so the auditor's own role history is
    # what is put to the test: forged here by replaying a registry without the grant.
    history = replay(world.chain, world.deployment)
    history.roles.roles.pop((6, "ARBITRATOR"))
    found, _ = check_escrow(world.chain, world.deployment, history, DatabaseEvidence(world.db))
    assert sorted(d.subject for d in found) == sorted(
        f"order 0x{o:064x} resolved" for o in (world.direct.order_id, disputed.order_id))
    assert all(d.kind is DiscrepancyKind.ESCROW_TRANSITION_UNBACKED for d in found)


def test_the_timeout_rule_is_checked_against_the_attested_facts(world: World) -> None:
    """A dispute that lapsed (shipped, within deliver-by) and one decided for the seller side
    (delivered during the dispute) are backed; against other terms (deliver-by already passed at
    the lapse) the same lapse is not."""
    env = world.env
    lapsing = env.open(env.terms(salt=5))
    env.reach(lapsing, 0)
    delivered = env.open(env.terms(salt=6))
    for terms in (lapsing, delivered):
        env.escrow.dispute(terms, b"\x05" * 32, env.buyer)
    for milestone in range(len(delivered.milestones)):
        env.reach(delivered, milestone)
    AnvilControl(world.chain.rpc_url).increase_time(env.escrow.dispute_timeout() + 1)
    env.escrow.resolve_expired(lapsing, env.outsider)
    env.escrow.resolve_expired(delivered, env.outsider)
    assert env.escrow.order(lapsing.order_id).state == State.FUNDED
    assert env.escrow.order(delivered.order_id).state == State.RESOLVED
    assert run(world).ok
    history = replay(world.chain, world.deployment)
    history.orders[lapsing.order_id] = replace(lapsing, deliver_by=env.now() - DAY)
    found, _ = check_escrow(world.chain, world.deployment, history, DatabaseEvidence(world.db))
    assert [(d.kind, d.subject) for d in found] == [
        (DiscrepancyKind.ESCROW_TRANSITION_UNBACKED, f"order 0x{lapsing.order_id:064x} lapsed")]
    assert "gave a lapse" in found[0].detail and "give 10000 basis points to the buyer" in found[0].detail


def test_a_customs_return_through_the_relayer_is_backed_until_a_stored_signature_is_altered(world: World) -> None:
    env = world.env
    relayer = Relayer(world.db, env.escrow, member(15), min_lifetime=60)
    returned = env.open(env.terms(salt=4))
    for milestone, kind, pool in ((0, Kind.MILESTONE, env.carriers), (1, Kind.CUSTOMS_RETURN, env.customs)):
        for signer in pool[:2]:
            deadline = env.now() + DAY
            sig = (sign_customs_return(signer, env.escrow.domain, returned.order_id, milestone, deadline)
                   if kind is Kind.CUSTOMS_RETURN else env.sign(signer, returned, milestone, deadline=deadline))
            relayer.receive(SignatureIn(returned.order_id, milestone, sig.signer, sig.signature, sig.deadline, kind=kind))
    assert env.escrow.order(returned.order_id).state == State.REFUNDED
    assert run(world).ok
    with world.db.write() as s:
        s.execute(text("UPDATE relay_signatures SET deadline = deadline + 1 WHERE order_id = :o AND kind = 'customs_return'"),
                  {"o": f"0x{returned.order_id:064x}"})
    assert only(run(world)) == (DiscrepancyKind.ESCROW_TRANSITION_UNBACKED, f"order 0x{returned.order_id:064x} milestone 1")
