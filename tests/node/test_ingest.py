"""Capture: every check of a capture document, on a real chain's registry and both databases."""

from __future__ import annotations

import pickle
import time

import orjson
import pytest
from sqlalchemy import func, select

from node.db import Database, Event, EventEpc
from node.member.ingest.capture import BadAttestation, CaptureService, MalformedCapture, SignerLacksRole, precheck_document
from node.protocol.attestation import AttestationDomain
from node.protocol.roles import in_role_table, roles_for_bizstep
from node.protocol import epcis
from node.protocol import vocabulary
from node.protocol.event_hash import event_hash
from node.member.runtime import NodeRuntime, build_capture
from tests.node.story import CARRIER, INSPECTOR, MANUFACTURER, capture_document, iso, lot_story, story_events


def _count(db: Database) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Event)) or 0)


@pytest.fixture
def capture(runtime: NodeRuntime) -> CaptureService:
    return build_capture(runtime)


def test_accepts_the_whole_story_and_stores_it_pending(capture: CaptureService, runtime: NodeRuntime, chain_now: int) -> None:
    events = story_events(lot_story(chain_now))
    document = capture_document(events, runtime.domain)
    result = capture.capture(orjson.dumps(document))
    assert result.new == len(events) and result.duplicates == 0
    assert result.event_ids == [event_hash(e) for e, _ in events]
    with runtime.db.session() as s:
        rows = s.scalars(select(Event).order_by(Event.id)).all()
        assert all(r.batch_id is None for r in rows)
        assert [r.role for r in rows][:3] == ["MANUFACTURER", "INSPECTOR", "MANUFACTURER"]
        assert rows[6].role == "CUSTOMS" and rows[0].signer == MANUFACTURER.address
        assert "wm:attestation" not in rows[0].body
        epcs = s.scalar(select(func.count()).select_from(EventEpc))
        assert epcs is not None and epcs > len(events)


def test_resubmitting_is_idempotent(capture: CaptureService, runtime: NodeRuntime, chain_now: int) -> None:
    document = orjson.dumps(capture_document(story_events(lot_story(chain_now))[:3], runtime.domain))
    first = capture.capture(document)
    again = capture.capture(document)
    assert (first.new, again.new, again.duplicates) == (3, 0, 3)
    assert again.event_ids == first.event_ids
    assert _count(runtime.db) == 3


def test_malformed_event_names_the_field(capture: CaptureService, runtime: NodeRuntime, chain_now: int) -> None:
    document = capture_document(story_events(lot_story(chain_now))[:2], runtime.domain)
    document["epcisBody"]["eventList"][1]["action"] = "SHAKE"
    with pytest.raises(MalformedCapture) as info:
        capture.capture(orjson.dumps(document))
    assert info.value.field == "epcisBody.eventList[1].action"
    assert _count(runtime.db) == 0  # all or nothing


def test_not_json_is_malformed(capture: CaptureService) -> None:
    with pytest.raises(MalformedCapture) as info:
        capture.capture(b"{not json")
    assert info.value.field == "(body)"


def test_bizstep_outside_the_role_table_is_accepted_from_any_attesting_role(capture: CaptureService, runtime: NodeRuntime, chain_now: int) -> None:
    event = epcis.object_event(epcs=lot_story(chain_now).units, action="OBSERVE", event_time=iso(chain_now + 1),
                               biz_step="urn:example:bizstep:juggling")
    result = capture.capture(orjson.dumps(capture_document([(event, INSPECTOR)], runtime.domain)))
    assert result.new == 1
    with runtime.db.session() as s:
        assert s.scalars(select(Event.role)).all() == ["INSPECTOR"]


def test_tampered_event_fails_the_signature(capture: CaptureService, runtime: NodeRuntime, chain_now: int) -> None:
    document = capture_document(story_events(lot_story(chain_now))[:1], runtime.domain)
    document["epcisBody"]["eventList"][0]["disposition"] = "destroyed"  # changed after signing
    with pytest.raises(BadAttestation) as info:
        capture.capture(orjson.dumps(document))
    assert info.value.field == "epcisBody.eventList[0].wm:attestation.signature"


def test_signature_of_another_account_is_refused(capture: CaptureService, runtime: NodeRuntime, chain_now: int) -> None:
    document = capture_document(story_events(lot_story(chain_now))[:1], runtime.domain)
    document["epcisBody"]["eventList"][0]["wm:attestation"]["signer"] = CARRIER.address
    with pytest.raises(BadAttestation, match="not by the declared signer"):
        capture.capture(orjson.dumps(document))


def test_missing_attestation_is_refused(capture: CaptureService, runtime: NodeRuntime, chain_now: int) -> None:
    document = capture_document(story_events(lot_story(chain_now))[:1], runtime.domain)
    del document["epcisBody"]["eventList"][0]["wm:attestation"]
    with pytest.raises(BadAttestation) as info:
        capture.capture(orjson.dumps(document))
    assert info.value.field == "epcisBody.eventList[0].wm:attestation"


def test_signer_without_the_role_is_refused(capture: CaptureService, runtime: NodeRuntime, chain_now: int) -> None:
    commissioning, _ = story_events(lot_story(chain_now))[0]
    with pytest.raises(SignerLacksRole) as info:
        capture.capture(orjson.dumps(capture_document([(commissioning, INSPECTOR)], runtime.domain)))
    assert info.value.roles == ("MANUFACTURER",) and info.value.signer == INSPECTOR.address


def test_event_dated_before_the_consortium_existed_is_refused(capture: CaptureService, runtime: NodeRuntime, chain_now: int) -> None:
    story = lot_story(chain_now)
    early = epcis.object_event(epcs=story.units, action="ADD", event_time=iso(chain_now - 10**6), biz_step="commissioning")
    with pytest.raises(SignerLacksRole):
        capture.capture(orjson.dumps(capture_document([(early, MANUFACTURER)], runtime.domain)))


def test_too_many_events_in_one_document(runtime: NodeRuntime, chain_now: int) -> None:
    from node.member.ingest.capture import CaptureTooLarge

    small = CaptureService(runtime.db, runtime.domain, build_capture(runtime).roles, max_events=2)
    document = capture_document(story_events(lot_story(chain_now))[:3], runtime.domain)
    with pytest.raises(CaptureTooLarge):
        small.capture(orjson.dumps(document))


def test_role_table() -> None:
    assert roles_for_bizstep("commissioning") == ("MANUFACTURER",)
    assert roles_for_bizstep("https://ref.gs1.org/cbv/BizStep-inspecting") == ("INSPECTOR",)
    assert roles_for_bizstep("urn:epcglobal:cbv:bizstep:shipping") == ("CARRIER",)
    assert roles_for_bizstep("wmc:cleared", vocabulary.WAYMARK_CONTEXT) == ("CUSTOMS",)
    assert roles_for_bizstep(vocabulary.customs_step("duty_assessed")) == ("CUSTOMS",)
    assert "CARRIER" in (roles_for_bizstep("packing") or ())
    assert roles_for_bizstep(None) == ("MANUFACTURER", "INSPECTOR", "CARRIER", "CUSTOMS", "ORACLE")
    assert roles_for_bizstep("juggling") == roles_for_bizstep(None)  # outside the table: any attesting role
    assert not in_role_table("juggling") and in_role_table("commissioning") and in_role_table(None)


def test_checked_events_come_back_from_a_worker_process_unchanged() -> None:
    # Checks run in worker processes: what they answer is pickled there and read here.
    domain = AttestationDomain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
    document = capture_document(story_events(lot_story(int(time.time()) - 1000)), domain)
    checked = precheck_document(orjson.dumps(document), domain, 100, 300)
    checked[0].org, checked[0].role = 7, "MANUFACTURER"
    assert pickle.loads(pickle.dumps(checked)) == checked
