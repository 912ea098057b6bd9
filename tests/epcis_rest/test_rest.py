"""The EPCIS 2.0 REST interface on a node (real Anvil, both databases): corrections kept beside
their original and verified by the audit, query parameters and paging, signed member reads,
capture jobs' per-event errors, signed and retried webhook subscriptions, discovery headers."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from sqlalchemy import select
from eth_account import Account
from fastapi.testclient import TestClient

from node.audit import audit_database
from node.db import EpcisSubscription
from node.documents import sign_document_request
from node.member.epcis_rest import corrections_for, request_target_digest
from node.member.epcis_rest.subscriptions import Deliverer
from node.protocol import epcis
from node.protocol import vocabulary
from node.protocol.epcis import document_events
from node.protocol.event_hash import event_hash
from node.member.runtime import NodeRuntime, build_anchorer
from tests.epcis_rest.conftest import signing_hook
from tests.node.story import CARRIER, INSPECTOR, MANUFACTURER, attested, iso, lot_story, story_events

JSON = {"Content-Type": "application/json"}


def post_event(client: TestClient, event: dict[str, Any], signer: Any, runtime: NodeRuntime) -> Any:
    body = {"@context": event["@context"], **attested(event, signer, runtime.domain)}
    return client.post("/epcis/events", content=orjson.dumps(body), headers=JSON)


def capture_job(client: TestClient, document: dict[str, Any], behaviour: str = "rollback") -> dict[str, Any]:
    answer = client.post("/epcis/capture", content=orjson.dumps(document), headers={**JSON, "GS1-Capture-Error-Behaviour": behaviour})
    assert answer.status_code == 202, answer.text
    for _ in range(500):  # bounded poll
        job: dict[str, Any] = client.get(answer.headers["Location"]).json()
        if not job["running"]:
            return job
        time.sleep(0.01)
    raise AssertionError("capture job still running")


def test_an_error_declaration_is_kept_beside_its_original_and_the_audit_verifies_it(client: TestClient, runtime: NodeRuntime, chain_now: int) -> None:
    inspection = epcis.object_event(epcs=lot_story(chain_now).units[:1], action="OBSERVE", event_time=iso(chain_now + 1),
                                    biz_step="inspecting", disposition="conformant")
    assert post_event(client, inspection, INSPECTOR, runtime).status_code == 201
    declaration = {**inspection, "errorDeclaration": {"declarationTime": iso(chain_now + 50), "reason": "incorrect_data",
                                                      "correctiveEventIDs": ["urn:uuid:7e1b4bd2-5ad6-4b1c-a8a8-2b5c1f0e3c11"]}}
    assert event_hash(declaration) == event_hash(inspection)  # the standard's design: the same event hash
    answer = post_event(client, declaration, INSPECTOR, runtime)
    assert answer.status_code == 201, answer.text  # a correction, not a duplicate
    assert post_event(client, declaration, INSPECTOR, runtime).status_code == 409  # the same correction twice is

    event_id = event_hash(inspection)
    both = document_events(client.get(f"/epcis/events/{quote(event_id, safe='')}").json())
    assert [("errorDeclaration" in e, e["eventID"]) for e in both] == [(False, event_id), (True, event_id)]
    only = document_events(client.get("/epcis/events", params={"EXISTS_errorDeclaration": "true"}).json())
    assert len(only) == 1 and only[0]["errorDeclaration"]["reason"] == "incorrect_data"

    corrections = corrections_for(runtime.db, event_id)
    assert [(c.reason, c.corrective_event_ids, c.signer, c.role, c.status) for c in corrections] == [
        ("incorrect_data", ("urn:uuid:7e1b4bd2-5ad6-4b1c-a8a8-2b5c1f0e3c11",), INSPECTOR.address, "INSPECTOR", "pending")]

    build_anchorer(runtime, MANUFACTURER).drain()
    assert corrections_for(runtime.db, event_id)[0].status in ("anchored", "confirmed")
    report = audit_database(runtime.client, runtime.deployment, runtime.db, workers=1)
    assert report.ok, [d.to_json() for d in report.discrepancies]
    assert report.checked.events == 2


def test_what_capture_used_to_refuse_is_captured(client: TestClient, runtime: NodeRuntime, chain_now: int) -> None:
    """The issue's list: a GTIN-level EPC in epcList, a sensor-only ObjectEvent with bizRules
    and a reading without unit, an AssociationEvent, unprefixed keys nested in an extension,
    a bizStep outside the role table attested by an inspector."""
    t, gtin = chain_now + 1, "https://id.gs1.org/01/09521234543213"
    common: dict[str, Any] = {"@context": vocabulary.WAYMARK_CONTEXT, "eventTimeZoneOffset": "+00:00"}
    events: list[tuple[dict[str, Any], Any]] = [
        ({**common, "type": "ObjectEvent", "eventTime": iso(t), "action": "OBSERVE", "epcList": [gtin]}, CARRIER),
        ({**common, "type": "ObjectEvent", "eventTime": iso(t + 1), "action": "OBSERVE", "bizStep": "sensor_reporting",
          "readPoint": {"id": "https://id.gs1.org/414/9521234000006"},
          "sensorElementList": [{"sensorMetadata": {"bizRules": "https://example.org/rules/cold-chain"},
                                 "sensorReport": [{"type": "Count", "value": 12}, {"type": "Temperature", "value": 4.5, "uom": "CEL"}]}]},
         CARRIER),
        ({**common, "type": "AssociationEvent", "eventTime": iso(t + 2), "action": "ADD", "bizStep": "assembling",
          "parentID": "urn:epc:id:grai:4012345.55555.987", "childEPCs": ["urn:epc:id:giai:4000001.12345"]}, MANUFACTURER),
        ({**common, "type": "ObjectEvent", "eventTime": iso(t + 3), "action": "OBSERVE", "epcList": [gtin],
          "wm:carrierData": {"trip": {"leg": 2, "vehicle": {"plate": "AB-12"}}}}, CARRIER),
        ({**common, "type": "TransformationEvent", "eventTime": iso(t + 4), "inputEPCList": ["urn:epc:id:giai:4000001.1"],
          "outputEPCList": ["urn:epc:id:giai:4000001.2"], "bizStep": "https://ref.gs1.org/cbv/BizStep-transforming"}, INSPECTOR),
    ]
    job = capture_job(client, {**epcis.epcis_document([e for e, _ in events]),
                               "epcisBody": {"eventList": [attested(e, s, runtime.domain) for e, s in events]}})
    assert job["success"], job["errors"]
    assert job["eventIDs"] == [event_hash(e) for e, _ in events]


def test_query_parameters_select_and_pages_cover_every_event_once(client: TestClient, runtime: NodeRuntime, chain_now: int) -> None:
    story = lot_story(chain_now + 1)
    events = story_events(story)
    job = capture_job(client, {**epcis.epcis_document([e for e, _ in events]),
                               "epcisBody": {"eventList": [attested(e, s, runtime.domain) for e, s in events]}})
    assert job["success"], job["errors"]
    every = {event_hash(e) for e, _ in events}

    def ids(params: dict[str, str]) -> list[str]:
        answer = client.get("/epcis/events", params=params)
        assert answer.status_code == 200, answer.text
        return [event_hash(e) for e in document_events(answer.json())]

    assert set(ids({"EQ_bizStep": "commissioning|https://ref.gs1.org/cbv/BizStep-shipping"})) == {
        event_hash(e) for e, _ in events if e.get("bizStep") in ("commissioning", "shipping")}
    assert set(ids({"eventType": "AggregationEvent"})) == {event_hash(e) for e, _ in events if e["type"] == "AggregationEvent"}
    container = story.container.canonical_uri
    assert set(ids({"MATCH_anyEPC": container})) == {
        event_hash(e) for e, _ in events if container in (e.get("epcList") or []) + [e.get("parentID")]}
    assert set(ids({"GE_eventTime": iso(chain_now + 1 + 6), "LT_eventTime": iso(chain_now + 1 + 8)})) == {
        event_hash(e) for e, _ in events if iso(chain_now + 1 + 6) <= e["eventTime"] < iso(chain_now + 1 + 8)}
    via_path = client.get(f"/epcis/epcs/{quote(container, safe='')}/events")
    assert {event_hash(e) for e in document_events(via_path.json())} == set(ids({"MATCH_anyEPC": container}))

    seen: list[str] = []
    params = {"perPage": "5", "orderBy": "eventTime", "orderDirection": "DESC"}
    for _ in range(10):
        answer = client.get("/epcis/events", params=params)
        seen += [event_hash(e) for e in document_events(answer.json())]
        link = answer.headers.get("Link")
        if link is None:
            break
        assert link.endswith('; rel="next"')
        params = {**params, "nextPageToken": link.split("nextPageToken=")[1].split(">")[0]}
    assert len(seen) == len(every) and set(seen) == every
    assert ids({"eventCountLimit": "3"}) == ids({})[:3]

    bad = client.get("/epcis/events", params={"EQ_colour": "red"})
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"
    assert bad.json()["type"] == "epcisException:QueryParameterException" and "EQ_colour" in bad.json()["detail"]
    assert client.get("/epcis/events", params={"maxEventCount": "2"}).status_code == 413
    steps = client.get("/epcis/bizSteps").json()["member"]
    assert "commissioning" in steps and len(steps) == len(set(steps))


def test_reads_need_a_signature_of_a_member_account(runtime: NodeRuntime, client: TestClient) -> None:
    client.event_hooks = {"request": [], "response": []}
    unsigned = client.get("/epcis/events")
    assert unsigned.status_code == 401 and unsigned.json()["type"] == "epcisException:SecurityException"
    stranger = Account.create()
    client.event_hooks = {"request": [signing_hook(runtime, stranger)], "response": []}
    assert client.get("/epcis/events").status_code == 403
    client.event_hooks = {"request": [signing_hook(runtime, CARRIER)], "response": []}
    assert client.get("/epcis/events").status_code == 200
    # a signature covers one request: replayed on another query it fails
    registry = runtime.deployment.address("ConsortiumRegistry")
    headers = sign_document_request(CARRIER.key, runtime.client.chain_id, registry, "read", request_target_digest("GET", "/epcis/events"),
                                     audience=runtime.node.public_url)
    client.event_hooks = {"request": [], "response": []}
    assert client.get("/epcis/events", headers=headers).status_code == 200
    assert client.get("/epcis/events?eventType=ObjectEvent", headers=headers).status_code == 401


def test_capture_jobs_report_each_refused_event_with_its_path_and_rule(client: TestClient, runtime: NodeRuntime, chain_now: int) -> None:
    events = story_events(lot_story(chain_now + 1))[:3]
    body = [attested(e, s, runtime.domain) for e, s in events]
    body[1]["eventTimeZoneOffset"] = "+2"
    document = {**epcis.epcis_document([e for e, _ in events]), "epcisBody": {"eventList": body}}

    rolled_back = capture_job(client, document)
    assert not rolled_back["success"] and rolled_back["eventIDs"] == []
    [problem] = rolled_back["errors"]
    assert problem["field"] == "epcisBody.eventList[1].eventTimeZoneOffset"
    assert problem["pointer"] == "/epcisBody/eventList/1/eventTimeZoneOffset"
    assert problem["type"] == "epcisException:ValidationException" and "schema rule" in problem["detail"]

    proceeded = capture_job(client, document, "proceed")
    assert not proceeded["success"]
    assert proceeded["eventIDs"] == [event_hash(events[0][0]), event_hash(events[2][0])]
    assert [p["field"] for p in proceeded["errors"]] == ["epcisBody.eventList[1].eventTimeZoneOffset"]

    assert client.post("/epcis/capture", content=b"{}", headers={"Content-Type": "text/plain"}).status_code == 415
    assert client.post("/epcis/capture", content=b"{not json", headers=JSON).status_code == 400
    too_many = {**document, "epcisBody": {"eventList": body * (runtime.node.max_events_per_document // 3 + 1)}}
    over = client.post("/epcis/capture", content=orjson.dumps(too_many), headers=JSON)
    assert over.status_code == 413 and over.headers["GS1-EPCIS-Capture-Limit"] == str(runtime.node.max_events_per_document)


class _Webhook:
    """A subscriber's endpoint: answers 503 to the first delivery, then 204."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(503 if len(hook.received) == 1 else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/epcis-callback"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[_Webhook]:
    hook = _Webhook()
    yield hook
    hook.close()


def test_subscriptions_deliver_new_matching_events_signed_and_retry_after_a_failure(
    client: TestClient, runtime: NodeRuntime, chain_now: int, webhook: _Webhook
) -> None:
    query = {"name": "shipments", "query": {"EQ_bizStep": ["shipping"]}}
    created = client.post("/epcis/queries", content=orjson.dumps(query), headers=JSON)
    assert created.status_code == 201 and created.headers["Location"] == "/epcis/queries/shipments"
    assert client.post("/epcis/queries", content=orjson.dumps(query), headers=JSON).status_code == 409
    subscribed = client.post("/epcis/queries/shipments/subscriptions", headers=JSON,
                             content=orjson.dumps({"dest": webhook.url, "signatureToken": "s3cret", "stream": True}))
    assert subscribed.status_code == 201, subscribed.text
    events = story_events(lot_story(chain_now + 1))
    job = capture_job(client, {**epcis.epcis_document([e for e, _ in events]),
                               "epcisBody": {"eventList": [attested(e, s, runtime.domain) for e, s in events]}})
    assert job["success"]

    refusing = Deliverer(runtime.db)  # the default: the webhook is on loopback, never posted to
    now = int(time.time() * 1000)
    assert refusing.deliver_due(now) == 0 and webhook.received == []
    with runtime.db.session() as s:
        (refused,) = s.scalars(select(EpcisSubscription)).all()
        assert "not a public address" in (refused.last_error or "")
        refused.next_attempt_ms, refused.attempts = 0, 0
        s.commit()
    deliverer = Deliverer(runtime.db, private_destinations_ok=True)  # a test bench on loopback
    assert deliverer.deliver_due(now) == 0  # the endpoint answered 503
    assert deliverer.deliver_due(now) == 0  # not due again yet: backing off
    assert deliverer.deliver_due(now + 5_000) == 1
    assert deliverer.deliver_due(now + 10_000) == 0  # nothing new
    assert len(webhook.received) == 2
    first, second = (orjson.loads(body) for _, body in webhook.received)
    assert document_events(first) == document_events(second)  # the same events again
    headers, body = webhook.received[1]
    assert headers["gs1-signature"] == hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    delivered = orjson.loads(body)
    assert delivered["epcisBody"]["queryResults"]["queryName"] == "shipments"
    assert [event_hash(e) for e in document_events(delivered)] == [event_hash(e) for e, _ in events if e.get("bizStep") == "shipping"]
    assert client.get("/epcis/queries/shipments/events").json()["epcisBody"]["queryResults"]["queryName"] == "shipments"
    assert client.delete("/epcis/queries/shipments").status_code == 204
    assert client.get("/epcis/queries/shipments").status_code == 404


def test_options_and_every_answer_carry_the_gs1_headers(client: TestClient) -> None:
    answer = client.options("/epcis/capture")
    assert answer.status_code == 204 and answer.headers["Allow"] == "OPTIONS, GET, POST"
    for name in ("GS1-EPCIS-Version", "GS1-CBV-Version", "GS1-EPCIS-Capture-Limit", "GS1-EPCIS-Capture-File-Size-Limit"):
        assert answer.headers[name]
    assert client.get("/epcis/eventTypes").json()["member"] == [
        "AggregationEvent", "AssociationEvent", "ObjectEvent", "TransactionEvent", "TransformationEvent"]
    assert client.get("/epcis/events", headers={"GS1-EPCIS-Min": "3.0"}).status_code == 406
    assert client.get("/epcis/events", headers={"Accept": "application/xml"}).status_code == 406
