"""The lot's whole journey through the node's HTTP API: captured, anchored, proven, verified on
chain (OpenZeppelin MerkleProof in ProvenanceRegistry.verifyLeaf) and by the Python verifier;
the unit's history follows it through case, pallet and container; tampering is caught by name."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from node.member.app import create_app
from node.db import Batch, Event
from waymark.devnet.anvil import AnvilControl, AnvilProcess
from node.member.ingest.capture import CaptureService
from node.member.proofs import verify_bundle
from node.protocol import epcis
from node.protocol import vocabulary
from node.protocol.event_hash import event_hash
from node.member.runtime import NodeRuntime, build_anchorer, build_capture
from tests.node.story import CARRIER, INSPECTOR, MANUFACTURER, Story, by_anchoring_node, capture_document, iso, lot_story, story_events


@pytest.fixture
def api(runtime: NodeRuntime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime, run_indexer=False)) as client:
        yield client


def _path(event_id: str) -> str:
    return quote(event_id, safe="")


def _capture_and_anchor(api: TestClient, runtime: NodeRuntime, story: Story) -> list[str]:
    """The story's events, each organisation's anchored by its own node; their ids in story order."""
    for anchorer, group in by_anchoring_node(story_events(story)):
        response = api.post("/capture", content=orjson.dumps(capture_document(group, runtime.domain)))
        assert response.status_code == 201, response.text
        build_anchorer(runtime, anchorer).drain()
    return [event_hash(e) for e, _ in story_events(story)]


def test_every_event_of_the_journey_verifies_on_chain_and_in_python(
    api: TestClient, runtime: NodeRuntime, chain_now: int, anvil: AnvilProcess
) -> None:
    story = lot_story(chain_now)
    ids = _capture_and_anchor(api, runtime, story)
    assert ids == [event_hash(e) for e, _ in story_events(story)]
    registry = runtime.client.contract("ProvenanceRegistry", runtime.registry_address)
    for event_id in ids:
        response = api.get(f"/events/{_path(event_id)}/proof")
        assert response.status_code == 200, response.text
        bundle = response.json()
        assert bundle["eventId"] == event_id
        merkle = bundle["merkle"]
        on_chain = registry.functions.verifyLeaf(
            bytes.fromhex(merkle["root"][2:]),
            [bytes.fromhex(p[2:]) for p in merkle["proof"]],
            bytes.fromhex(event_id.split(";")[1][:64]),
            bundle["attestation"]["signer"],
        ).call()
        assert on_chain, event_id
        result = verify_bundle(bundle, anvil.rpc_url, registry_address=runtime.registry_address)
        assert result.ok, result.checks
    assert api.get(f"/events/{ids[0][14:78]}").json()["status"] in ("anchored", "confirmed")


def test_unit_history_includes_its_containers_while_it_was_inside(
    api: TestClient, runtime: NodeRuntime, chain_now: int
) -> None:
    story = lot_story(chain_now)
    ids = _capture_and_anchor(api, runtime, story)
    history = api.get(f"/units/{_path(story.units[0].uri('example.com'))}/history").json()
    steps = [(h["bizStep"], tuple(h["via"])) for h in history]
    case, pallet, container = story.case.canonical_uri, story.pallet.canonical_uri, story.container.canonical_uri
    assert steps == [
        ("commissioning", ()),
        ("inspecting", ()),
        ("packing", ()),  # the unit into the case
        ("packing", (case,)),  # the case onto the pallet
        ("loading", (case, pallet)),  # the pallet into the container
        ("shipping", (case, pallet, container)),
        (vocabulary.customs_step("declared"), (case, pallet, container)),
        ("wmc:cleared", (case, pallet, container)),
        ("arriving", (case, pallet, container)),
        ("unloading", (case, pallet)),  # the pallet out of the container
        ("receiving", (case, pallet)),  # the pallet, no longer in the container
    ]  # the empty container's departure is not the unit's
    assert all(h["anchored"] for h in history)
    assert {h["eventId"] for h in history} == set(ids) - {ids[10]}
    stray = api.get(f"/units/{_path(story.stray.canonical_uri)}/history").json()
    assert [h["bizStep"] for h in stray] == ["commissioning"]


def test_capture_errors_are_json_with_code_and_field(api: TestClient, runtime: NodeRuntime, chain_now: int) -> None:
    events = story_events(lot_story(chain_now))
    document = capture_document(events[:2], runtime.domain)
    document["epcisBody"]["eventList"][0]["eventTime"] = "yesterday"
    response = api.post("/capture", content=orjson.dumps(document))
    assert response.status_code == 422
    assert response.json()["code"] == "malformed" and response.json()["field"] == "epcisBody.eventList[0].eventTime"

    document = capture_document(events[:1], runtime.domain)
    document["epcisBody"]["eventList"][0]["wm:attestation"]["signature"] = "0x" + "11" * 65
    response = api.post("/capture", content=orjson.dumps(document))
    assert response.status_code == 401 and response.json()["code"] == "bad_signature"

    response = api.post("/capture", content=orjson.dumps(capture_document([(events[0][0], INSPECTOR)], runtime.domain)))
    assert response.status_code == 403 and response.json()["code"] == "missing_role"
    assert response.json()["field"] == "epcisBody.eventList[0].wm:attestation"

    response = api.post("/capture", content=b"{" + b" " * (runtime.node.max_body_bytes + 1) + b"}")
    assert response.status_code == 413 and response.json()["code"] == "too_large"


def test_resubmission_answers_200_with_the_same_ids(api: TestClient, runtime: NodeRuntime, chain_now: int) -> None:
    body = orjson.dumps(capture_document(story_events(lot_story(chain_now))[:2], runtime.domain))
    first, again = api.post("/capture", content=body), api.post("/capture", content=body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == {"eventIds": first.json()["eventIds"], "accepted": 0, "duplicates": 2}


def test_proof_of_a_pending_or_unknown_event(api: TestClient, runtime: NodeRuntime, chain_now: int) -> None:
    body = orjson.dumps(capture_document(story_events(lot_story(chain_now))[:1], runtime.domain))
    (event_id,) = api.post("/capture", content=body).json()["eventIds"]
    assert api.get(f"/events/{_path(event_id)}/proof").status_code == 409
    assert api.get(f"/events/{'ab' * 32}/proof").json()["code"] == "event_not_found"
    assert api.get("/health").json()["pending"] == 1


# ---- tampering ---------------------------------------------------------------------------


def _bundle_after(api: TestClient, runtime: NodeRuntime, event_id: str, change: Any) -> dict[str, Any]:
    with runtime.db.connect(write=True) as conn:
        change(conn)
    response = api.get(f"/events/{_path(event_id)}/proof")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _digest(event_id: str) -> bytes:
    return bytes.fromhex(event_id.split(";")[1][:64])


def _edit_body(event_id: str, **fields: Any) -> Any:
    def change(conn: Any) -> None:
        body = orjson.loads(conn.execute(select(Event.body).where(Event.digest == _digest(event_id))).scalar_one())
        body.update(fields)
        conn.execute(update(Event).where(Event.digest == _digest(event_id)).values(body=orjson.dumps(body).decode()))

    return change


@pytest.mark.parametrize(
    ("field", "value"),
    [("disposition", "destroyed"), ("eventTime", "2020-01-01T00:00:00.000Z"), ("bizStep", "receiving"),
     ("epcList", ["https://id.gs1.org/01/09521234543213/21/FAKE"]), ("readPoint", {"id": "urn:epc:id:sgln:9521234.54321.0"})],
)
def test_tampered_event_content_fails_the_hash_check(
    api: TestClient, runtime: NodeRuntime, chain_now: int, anvil: AnvilProcess, field: str, value: Any
) -> None:
    ids = _capture_and_anchor(api, runtime, lot_story(chain_now))
    bundle = _bundle_after(api, runtime, ids[0], _edit_body(ids[0], **{field: value}))
    result = verify_bundle(bundle, anvil.rpc_url)
    assert not result.ok and result.failure == "hash_mismatch"


@pytest.mark.parametrize(
    ("column", "value", "failure"),
    [
        ("signature", bytes.fromhex("22" * 64 + "1b"), "bad_signature"),
        ("signer", CARRIER.address, "bad_signature"),  # ids[1] is the inspector's
        ("proof", b"\x33" * 32 * 4, "proof_invalid"),
    ],
)
def test_tampered_attestation_or_proof_fails_by_name(
    api: TestClient, runtime: NodeRuntime, chain_now: int, anvil: AnvilProcess, column: str, value: Any, failure: str
) -> None:
    ids = _capture_and_anchor(api, runtime, lot_story(chain_now))

    def change(conn: Any) -> None:
        conn.execute(update(Event).where(Event.digest == _digest(ids[1])).values(**{column: value}))

    result = verify_bundle(_bundle_after(api, runtime, ids[1], change), anvil.rpc_url)
    assert result.failure == failure, result.checks


def test_tampered_root_fails_the_proof(api: TestClient, runtime: NodeRuntime, chain_now: int, anvil: AnvilProcess) -> None:
    ids = _capture_and_anchor(api, runtime, lot_story(chain_now))

    def change(conn: Any) -> None:
        batch = select(Event.batch_id).where(Event.digest == bytes.fromhex(ids[0][14:78])).scalar_subquery()
        conn.execute(update(Batch).where(Batch.id == batch).values(root=b"\x44" * 32))

    result = verify_bundle(_bundle_after(api, runtime, ids[0], change), anvil.rpc_url)
    assert result.failure == "proof_invalid"


def test_signer_without_the_role_fails_the_role_check(
    api: TestClient, runtime: NodeRuntime, chain_now: int, anvil: AnvilProcess
) -> None:
    # A node that skipped the role check: the inspector "commissions" units.
    story = lot_story(chain_now)
    capture: CaptureService = build_capture(runtime)
    forged = epcis.object_event(epcs=story.units, action="ADD", event_time=iso(chain_now + 1), biz_step="commissioning")
    checked = capture.check(orjson.dumps(capture_document([(forged, MANUFACTURER)], runtime.domain)))
    from dataclasses import replace

    from node.protocol.attestation import sign_attestation

    signature = sign_attestation(INSPECTOR.key, runtime.domain, forged).signature
    capture.store([replace(checked[0], signer=INSPECTOR.address, signature=signature)])
    build_anchorer(runtime, MANUFACTURER).drain()
    bundle = api.get(f"/events/{_path(event_hash(forged))}/proof").json()
    result = verify_bundle(bundle, anvil.rpc_url)
    assert result.failure == "signer_lacked_role"
    assert "INSPECTOR" not in result.checks[-1].detail and INSPECTOR.address in result.checks[-1].detail


def test_root_missing_on_chain_and_too_few_confirmations(
    api: TestClient, runtime: NodeRuntime, chain_now: int, anvil: AnvilProcess, devnet: AnvilControl
) -> None:
    snapshot = devnet.snapshot()
    ids = _capture_and_anchor(api, runtime, lot_story(chain_now))
    bundle = api.get(f"/events/{_path(ids[0])}/proof").json()
    shallow = verify_bundle(bundle, anvil.rpc_url, min_confirmations=5)
    assert shallow.failure == "not_enough_confirmations"
    devnet.mine(5)
    assert verify_bundle(bundle, anvil.rpc_url, min_confirmations=5).ok
    devnet.revert(snapshot)
    gone = verify_bundle(bundle, anvil.rpc_url)
    assert gone.failure == "root_not_anchored"


def test_capture_checks_in_worker_processes_answer_the_same(runtime: NodeRuntime, chain_now: int) -> None:
    runtime.node.check_processes = 1
    with TestClient(create_app(runtime, run_indexer=False)) as api:
        events = story_events(lot_story(chain_now))
        accepted = api.post("/capture", content=orjson.dumps(capture_document(events[:3], runtime.domain)))
        assert accepted.status_code == 201 and accepted.json()["accepted"] == 3
        document = capture_document(events[3:4], runtime.domain)
        document["epcisBody"]["eventList"][0]["action"] = "SHAKE"
        refused = api.post("/capture", content=orjson.dumps(document))
        assert refused.status_code == 422 and refused.json()["field"] == "epcisBody.eventList[0].action"
        wrong_role = api.post("/capture", content=orjson.dumps(capture_document([(events[0][0], INSPECTOR)], runtime.domain)))
        assert wrong_role.status_code == 403


def test_waymark_node_verify_exit_codes(api: TestClient, runtime: NodeRuntime, chain_now: int, anvil: AnvilProcess, tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from waymark.cmd_node import app

    ids = _capture_and_anchor(api, runtime, lot_story(chain_now))
    bundle = api.get(f"/events/{_path(ids[0])}/proof").json()
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_bytes(orjson.dumps(bundle))
    bundle["event"]["disposition"] = "destroyed"
    bad.write_bytes(orjson.dumps(bundle))
    runner = CliRunner()
    ok = runner.invoke(app, ["verify", str(good), "--rpc-url", anvil.rpc_url, "--chain-id", str(anvil.chain_id)])
    assert ok.exit_code == 0, ok.output
    assert "verified" in ok.output
    failed = runner.invoke(app, ["verify", str(bad), "--rpc-url", anvil.rpc_url, "--chain-id", str(anvil.chain_id)])
    assert failed.exit_code == 1 and "hash_mismatch" in failed.output
