"""The verification record written at accept time (events.signer_org, verified_at_ms), and how a
passport uses it: signature and role taken from the record, the event hash recomputed, the
recorded signer bound by the Merkle leaf, rows without a record verified in full; and the marks a passport
and the page's verifier give a backdated event of a revoked key."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import orjson
import pytest
from sqlalchemy import select, update

from node.db import Event
from waymark.devnet.anvil import AnvilControl
from api.readmodel import timeline as timeline_module
from api.readmodel.chain_view import ChainView
from api.readmodel.passport import PassportBuilder
from node.paths import PROJECT_ROOT
from node.protocol import epcis
from node.protocol.event_hash import digest_from_hash, event_hash
from node.protocol.verification import verify_anchoring
from node.chain.registry import ProposalKind, RegistryClient, role_data
from waymark.devnet.governance import demo_voters, pass_proposal
from node.member.runtime import NodeRuntime, build_anchorer, build_capture
from tests.api.world import register_product
from tests.node.story import CARRIER, CUSTOMS, INSPECTOR, MANUFACTURER, capture_and_anchor, capture_document, iso, lot_story, story_events

VERIFY_CLI = PROJECT_ROOT / "tests" / "scanner_web" / "verify_cli.mjs"


def _captured(runtime: NodeRuntime, chain_now: int) -> Any:
    """The lot's events captured and anchored, each organisation's by its own node (the inspector's
    by the manufacturer's, which hosts it)."""
    story = lot_story(chain_now, size=1)
    capture_and_anchor(runtime, story_events(story))
    return story


def _timeline(runtime: NodeRuntime, story: Any) -> list[dict[str, Any]]:
    builder = PassportBuilder(runtime.db, ChainView(runtime.client, runtime.deployment), resolver_url="http://r", browser_rpc_url="http://b")
    core = builder.build(story.units[0])
    assert core is not None
    timeline: list[dict[str, Any]] = core.body["timeline"]
    return timeline


def test_capture_records_the_signers_organisation_and_when_it_checked(runtime: NodeRuntime, chain_now: int) -> None:
    _captured(runtime, chain_now)
    with runtime.db.connect() as conn:
        rows = conn.execute(select(Event.signer, Event.role, Event.signer_org, Event.verified_at_ms)).all()
    orgs = {MANUFACTURER.address: 1, INSPECTOR.address: 2, CARRIER.address: 3, CUSTOMS.address: 4}  # the demo consortium's
    assert rows and all(r.verified_at_ms and r.signer_org == orgs[r.signer] for r in rows), rows


def test_a_passport_takes_signature_and_role_from_the_record(runtime: NodeRuntime, chain_now: int) -> None:
    story = _captured(runtime, chain_now)
    timeline = _timeline(runtime, story)
    assert all(item["verification"]["status"] == "verified" for item in timeline)
    signature = [next(c for c in item["verification"]["checks"] if c["name"] == "signature") for item in timeline]
    assert all("checked when this node accepted it" in c["detail"] for c in signature)
    assert {item["verification"]["signerOrg"]["id"] for item in timeline} == {1, 2, 3, 4}


def test_a_row_without_a_record_is_verified_in_full(runtime: NodeRuntime, chain_now: int) -> None:
    story = _captured(runtime, chain_now)
    with runtime.db.connect(write=True) as conn:
        conn.execute(update(Event).values(verified_at_ms=None, signer_org=None))
    timeline = _timeline(runtime, story)
    assert all(item["verification"]["status"] == "verified" for item in timeline)
    signature = [next(c for c in item["verification"]["checks"] if c["name"] == "signature") for item in timeline]
    assert not any("accepted" in c["detail"] for c in signature)
    assert {item["verification"]["signerOrg"]["id"] for item in timeline} == {1, 2, 3, 4}  # asked of the chain


def test_an_edited_body_or_signer_still_fails_with_a_record(runtime: NodeRuntime, chain_now: int) -> None:
    story = _captured(runtime, chain_now)
    with runtime.db.connect(write=True) as conn:
        inspecting, body = conn.execute(select(Event.id, Event.body).where(Event.biz_step.like("%inspecting%"))).one()
        edited = orjson.loads(body)
        assert not edited["eventTime"].endswith(".999Z")
        edited["eventTime"] = edited["eventTime"][:-4] + "999Z"  # a millisecond later
        conn.execute(update(Event).where(Event.id == inspecting).values(body=orjson.dumps(edited).decode()))
        commissioning = conn.execute(select(Event.id).where(Event.biz_step.like("%commissioning%"))).scalar_one()
        conn.execute(update(Event).where(Event.id == commissioning).values(signer=CARRIER.address))  # the record's org and role untouched
    failed = {item["bizStep"]: item["verification"]["failedCheck"] for item in _timeline(runtime, story) if item["verification"]["status"] == "failed"}
    assert failed == {"inspecting": "event_hash", "commissioning": "merkle_proof"}


def test_a_proof_edited_after_a_build_fails_at_the_next_build_of_the_same_builder(runtime: NodeRuntime, chain_now: int) -> None:
    """Check 4 is remembered per attestation, root and proof: a changed proof is checked again."""
    story = _captured(runtime, chain_now)
    builder = PassportBuilder(runtime.db, ChainView(runtime.client, runtime.deployment), resolver_url="http://r", browser_rpc_url="http://b")
    first = builder.build(story.units[0])
    assert first is not None and all(item["verification"]["status"] == "verified" for item in first.body["timeline"])
    assert builder.verifier._proofs  # remembered
    with runtime.db.connect(write=True) as conn:
        row = conn.execute(select(Event.id, Event.digest, Event.proof).where(Event.biz_step.like("%packing%"))).first()
        assert row is not None and row.proof
        packing, digest = row.id, row.digest
        edited_proof = bytes([row.proof[0] ^ 1]) + row.proof[1:]
        conn.execute(update(Event).where(Event.id == packing).values(proof=edited_proof))
    again = builder.build(story.units[0])
    assert again is not None
    failed = {item["bizStep"]: item["verification"]["failedCheck"] for item in again.body["timeline"] if item["verification"]["status"] == "failed"}
    assert failed == {"packing": "merkle_proof"}
    edited = next(item for item in again.body["timeline"] if item["digest"] == "0x" + bytes(digest).hex())
    assert edited["verification"]["merkle"]["proof"][0] == "0x" + edited_proof[:32].hex()


def test_a_backdated_event_from_a_revoked_key_is_marked_on_the_passport_and_by_the_pages_verifier(
    runtime: NodeRuntime, chain_now: int
) -> None:
    """A carrier key signs an arrival dated while it held CARRIER; its node anchors it only after
    the maximum reporting delay, once the consortium revoked CARRIER. The passport and the page's
    own verifier both verify it and mark it late and signer_revoked: the unit is not shown as
    plainly genuine."""
    register_product(runtime.client, runtime.deployment)
    story = _captured(runtime, chain_now)
    unit = story.units[0]
    arrival = epcis.object_event(epcs=[unit], action="OBSERVE", event_time=iso(chain_now + 50), biz_step="arriving")
    build_capture(runtime).capture(orjson.dumps(capture_document([(arrival, CARRIER)], runtime.domain)))
    registry = RegistryClient(runtime.client, runtime.deployment)
    control = AnvilControl(runtime.client.rpc_url)
    control.set_next_block_timestamp(chain_now + 51 + registry.max_reporting_delay_at(chain_now + 50))
    control.mine()
    pass_proposal(registry, ProposalKind.REVOKE_ROLE, role_data(3, "CARRIER"), demo_voters())
    build_anchorer(runtime, CARRIER).drain()  # the carrier organisation still holds ANCHORER

    builder = PassportBuilder(runtime.db, ChainView(runtime.client, runtime.deployment), resolver_url="http://r",
                              browser_rpc_url=runtime.client.rpc_url)
    core = builder.build(unit)
    assert core is not None
    marked = {item["id"]: item["verification"]["marks"] for item in core.body["timeline"] if item["verification"]["marks"]}
    assert marked == {event_hash(arrival): ["late", "signer_revoked"]}
    assert all(item["verification"]["status"] == "verified" for item in core.body["timeline"])
    assert core.verdict == "unverified"
    assert {"events_late", "events_signer_revoked"} <= {r["code"] for r in core.reasons}

    done = subprocess.run(
        ["node", str(VERIFY_CLI)], input=orjson.dumps({"passport": core.body, "config": builder.chain_info}).decode(),
        capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["status"] == "marked", out
    in_browser = {item["id"]: r["marks"] for item, r in zip(core.body["timeline"], out["results"]) if r["marks"]}
    assert in_browser == marked


def test_the_remembered_outcomes_stay_bounded(runtime: NodeRuntime, chain_now: int,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    story = _captured(runtime, chain_now)
    monkeypatch.setattr(timeline_module, "MEMO_SIZE", 3)
    builder = PassportBuilder(runtime.db, ChainView(runtime.client, runtime.deployment), resolver_url="http://r", browser_rpc_url="http://b")
    first = builder.build(story.units[0])
    assert first is not None and len(first.body["timeline"]) > 3
    memo, proofs, shown = builder.verifier._memo, builder.verifier._proofs, builder.verifier._shown
    assert len(memo) == 3 and len(proofs) == 3 and len(shown) == 3  # not one per event
    again = builder.build(story.units[0])  # most outcomes checked again: the same answer
    assert again is not None and again.body["timeline"] == first.body["timeline"]
    assert len(memo) == 3 and len(proofs) == 3 and len(shown) == 3


def test_a_single_units_events_leave_the_remembered_outcomes_before_shared_ones(
    runtime: NodeRuntime, chain_now: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two units of one lot, each with one event of its own after the eleven shared ones of its
    history; room is kept for eleven of each kind. The first unit's own event is not kept at the shared
    ones' cost, so the second unit's build checks only its own event again (least recently used
    alone, it would push out the first shared event, which that build would check again)."""
    story = lot_story(chain_now, size=2)
    own = [epcis.object_event(epcs=[unit], action="OBSERVE", event_time=iso(chain_now + 13), biz_step="encoding") for unit in story.units]
    shared = story_events(story)
    capture_and_anchor(runtime, [*shared, *((e, MANUFACTURER) for e in own)])
    in_history = len(shared) - 1  # the container's departure, once emptied, is not the units'
    monkeypatch.setattr(timeline_module, "MEMO_SIZE", in_history)
    builder = _builder(runtime)
    first = builder.build(story.units[0])
    assert first is not None and [item["bizStep"] for item in first.body["timeline"]][-1] == "encoding"
    assert len(first.body["timeline"]) == in_history + 1 and len(builder.verifier._shown) == in_history
    checked = _counting_anchoring(monkeypatch)
    second = builder.build(story.units[1])
    assert second is not None and len(second.body["timeline"]) == in_history + 1
    assert checked == [digest_from_hash(event_hash(own[1]))]


def _builder(runtime: NodeRuntime, confirmations: int = 0) -> PassportBuilder:
    return PassportBuilder(runtime.db, ChainView(runtime.client, runtime.deployment), resolver_url="http://r",
                           browser_rpc_url="http://b", confirmations=confirmations)


def _at_head(builder: PassportBuilder, runtime: NodeRuntime) -> None:
    """Until the builder's chain view reads the chain's head (it reads it at most once a second)."""
    head = runtime.client.w3.eth.block_number
    deadline = time.monotonic() + 10
    while builder.chain.head() != head:
        assert time.monotonic() < deadline, "the chain view did not read the new head"
        time.sleep(0.05)


def _counting_anchoring(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The events verify_anchoring checks from now on (their digests)."""
    checked: list[bytes] = []
    real = verify_anchoring

    def counted(*args: Any, **kwargs: Any) -> Any:
        checked.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(timeline_module, "verify_anchoring", counted)
    return checked


def test_a_kept_verification_is_shown_again_with_the_confirmations_counted_at_the_new_head(
    runtime: NodeRuntime, chain_now: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event anchored by its own organisation, or by the one hosting it at the event time (the
    inspector's, by the manufacturer's node), keeps its verification as shown; a later build takes
    it again and counts only the confirmations at the new head (pending turns verified), and shows
    what a new builder shows at that head."""
    story = _captured(runtime, chain_now)
    unit, required = story.units[0], 50
    builder = _builder(runtime, required)
    first = builder.build(unit)
    assert first is not None
    timeline = first.body["timeline"]
    hosted = [item for item in timeline if item["verification"]["anchor"]["orgId"] != item["verification"]["signerOrg"]["id"]]
    assert hosted and all(item["verification"]["signerOrg"]["id"] == 2 for item in hosted)  # the inspector's, by its host
    assert all(item["verification"]["status"] == "pending" for item in timeline)  # fewer than 50 blocks on top
    assert len(builder.verifier._shown) == len(timeline)

    AnvilControl(runtime.client.rpc_url).mine(required)
    _at_head(builder, runtime)
    checked = _counting_anchoring(monkeypatch)
    again = builder.build(unit)
    assert again is not None
    assert checked == []  # every event's verification taken again
    assert all(item["verification"]["status"] == "verified" for item in again.body["timeline"])
    depth = {item["id"]: item["verification"]["anchor"]["confirmations"] for item in timeline}
    assert all(item["verification"]["anchor"]["confirmations"] == depth[item["id"]] + required for item in again.body["timeline"])
    assert again.body["timeline"] == _builder(runtime, required).build(unit).body["timeline"]  # type: ignore[union-attr]


def test_a_hosted_events_kept_verification_gives_way_to_its_own_organisations_anchor(
    runtime: NodeRuntime, chain_now: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The inspector's events count their host's anchor until the inspector's organisation anchors
    the same root itself: from then on its own anchor counts (counted_anchor's first choice), and
    the kept verification is not taken again, though the registry did not change."""
    story = _captured(runtime, chain_now)
    unit = story.units[0]
    # A chain view that keeps nothing: the inspector's anchor is seen at the next build, not after
    # the cache's time.
    builder = PassportBuilder(runtime.db, ChainView(runtime.client, runtime.deployment, ttl=0.0), resolver_url="http://r",
                              browser_rpc_url="http://b")
    first = builder.build(unit)
    assert first is not None and len(builder.verifier._shown) == len(first.body["timeline"])
    inspected = [item for item in first.body["timeline"] if item["verification"]["signerOrg"]["id"] == 2]
    assert inspected and all(item["verification"]["anchor"]["orgId"] == 1 for item in inspected)
    roots = {bytes.fromhex(item["verification"]["merkle"]["root"][2:]) for item in inspected}
    writer = runtime.client.contract("ProvenanceRegistry", runtime.deployment.address("ProvenanceRegistry"))
    for root in roots:
        runtime.client.transact(writer.functions.anchorBatch(root, 1, "inspector://"), sender=INSPECTOR)
    _at_head(builder, runtime)
    checked = _counting_anchoring(monkeypatch)
    again = builder.build(unit)
    assert again is not None
    assert len(checked) == len(inspected)  # only the inspector's events checked again
    shown = {item["id"]: item["verification"]["anchor"]["orgId"] for item in again.body["timeline"]}
    assert all(shown[item["id"]] == 2 for item in inspected)
    assert again.body["timeline"] == _builder(runtime).build(unit).body["timeline"]  # type: ignore[union-attr]


def test_a_registry_change_makes_every_kept_verification_checked_again(
    runtime: NodeRuntime, chain_now: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kept verifications hold for one state of the registry: once the consortium changes it,
    the next build checks every event again."""
    story = _captured(runtime, chain_now)
    unit = story.units[0]
    builder = _builder(runtime)
    first = builder.build(unit)
    assert first is not None and builder.verifier._shown
    registry = RegistryClient(runtime.client, runtime.deployment)
    pass_proposal(registry, ProposalKind.REVOKE_ROLE, role_data(3, "CARRIER"), demo_voters())
    _at_head(builder, runtime)
    checked = _counting_anchoring(monkeypatch)
    again = builder.build(unit)
    assert again is not None and len(checked) == len(first.body["timeline"])
    assert again.body["timeline"] == _builder(runtime).build(unit).body["timeline"]  # type: ignore[union-attr]
