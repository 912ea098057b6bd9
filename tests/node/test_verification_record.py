"""The verification record written at accept time (events.signer_org, verified_at_ms), and how a
passport uses it: signature and role taken from the record, the event hash recomputed, the
recorded signer bound by the Merkle leaf, rows without a record verified in full."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import select, update

from node.db import Event
from node.passport import ChainView, PassportBuilder
from node.service import NodeRuntime, build_anchorer, build_capture
from tests.node.story import CARRIER, CUSTOMS, INSPECTOR, MANUFACTURER, capture_document, lot_story, story_events


def _captured(runtime: NodeRuntime, chain_now: int) -> Any:
    """The lot's events captured and anchored, each organisation's by its own node (the inspector's
    by the manufacturer's, which hosts it)."""
    story = lot_story(chain_now, size=1)
    events = story_events(story)
    for signer, anchorer in ((MANUFACTURER, MANUFACTURER), (INSPECTOR, MANUFACTURER), (CARRIER, CARRIER), (CUSTOMS, CUSTOMS)):
        build_capture(runtime).capture(orjson.dumps(capture_document([(e, s) for e, s in events if s is signer], runtime.domain)))
        build_anchorer(runtime, anchorer).drain()
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
