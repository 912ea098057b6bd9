"""Each adapter's input, through the oracle's HTTP app, becomes the right EPCIS event, signed by
the organisation's account, ingested by a real node and anchored on a real chain (Anvil)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any
from urllib.parse import quote

import httpx
import orjson
from fastapi.testclient import TestClient

from node.chain.deploy import load_deployment
from node.documents import OrgKeystore, confidential_fields, open_sealed, sign_document_request
from node.protocol import epcis
from node.protocol import vocabulary
from node.protocol.vocabulary import CUSTOMS_NS
from oracle.app import create_app
from oracle.runtime import OracleRuntime
from tests.documents.keys import OrgKeys
from tests.oracle.conftest import OracleFactory
from tests.oracle.journey import GTIN, Journey, at
from tests.oracle.servers import NodeProcess
from waymark.devnet.consortium import devnet_account


def open_from(node: NodeProcess, keystore: OrgKeystore, account: Any, digest: str) -> bytes:
    """A sealed document from the node, opened with an organisation's keystore (as its member would)."""
    raw = bytes.fromhex(digest.removeprefix("sha256:"))
    registry = load_deployment(node.deployment_file).address("ConsortiumRegistry")
    headers = sign_document_request(account.key, node.chain_id, registry, "read", raw, audience=node.url)
    envelope = httpx.get(f"{node.url}/documents/{digest}/sealed", headers=headers, timeout=5).json()
    return open_sealed(base64.b64decode(envelope["ciphertext"]), base64.b64decode(envelope["wrappedKey"]), keystore.private_key, raw, keystore.org_id)

MANUFACTURER, INSPECTOR, CARRIER, CUSTOMS = (devnet_account(i).address for i in (1, 2, 3, 4))


def wait_delivered(runtime: OracleRuntime, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if runtime.queue.pending("document") == 0 and runtime.queue.pending("event") == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"still pending after {timeout}s: {runtime.queue.counts()}")


def post(client: TestClient, adapter: str, record: Any) -> dict[str, Any]:
    response = client.post(f"/webhooks/{adapter}", json=record)
    assert response.status_code == 202, response.text
    answer: dict[str, Any] = response.json()
    return answer


def node_event(node: NodeProcess, event_id: str) -> dict[str, Any]:
    response = httpx.get(f"{node.url}/events/{quote(event_id, safe='')}", timeout=5)
    assert response.status_code == 200, response.text
    event: dict[str, Any] = response.json()
    return event


def test_every_adapter_input_becomes_a_signed_ingested_anchored_event(
    make_oracle: OracleFactory, node: NodeProcess, chain_now: int, org_keys: OrgKeys
) -> None:
    j = Journey(chain_now + 5)
    manufacturer, inspector, carrier, customs = (make_oracle(m) for m in ("manufacturer", "inspector", "carrier", "customs"))
    expected: dict[str, tuple[str, str]] = {}  # event id -> (signer, what)

    with TestClient(create_app(manufacturer)) as app:
        produced = post(app, "production", j.production())
        # Packing lists arrive as a CSV file in the drop folder.
        (manufacturer.settings.csv_dir() / "inbox" / "packing_lot.csv").write_text(j.packing_csv())
        deadline = time.monotonic() + 20
        while not list((manufacturer.settings.csv_dir() / "processed").glob("*packing_lot.csv")):
            assert time.monotonic() < deadline, "CSV file not processed"
            time.sleep(0.05)
        report = next((manufacturer.settings.csv_dir() / "processed").glob("*packing_lot.csv.report.json")).read_text()
        packed = json.loads(report)
        assert packed["accepted"] == 5 and packed["rejected"] == 0
        # A whole EPCIS document from the manufacturer's own EPCIS repository.
        document = epcis.epcis_document([epcis.object_event(
            epcs=[j.units[3]], action="OBSERVE", event_time=at(j.t0, 41), biz_step="other", disposition="active")])
        captured = app.post("/capture", json=document)
        assert captured.status_code == 202, captured.text
        wait_delivered(manufacturer)
    for event_id in produced["eventIds"]:
        expected[event_id] = (MANUFACTURER, "commissioning")
    for event_id in packed["eventIds"]:
        expected[event_id] = (MANUFACTURER, "packing")
    expected[captured.json()["eventIds"][0]] = (MANUFACTURER, "other")

    with TestClient(create_app(inspector)) as app:
        inspected = post(app, "inspection", j.inspection())
        wait_delivered(inspector)
    expected[inspected["eventIds"][0]] = (INSPECTOR, "inspecting")

    with TestClient(create_app(carrier)) as app:
        booked = post(app, "carrier", j.booking())
        assert booked["eventIds"] == []
        loaded = post(app, "carrier", j.loaded())
        shipped = post(app, "carrier", j.shipped())
        sensed = post(app, "iot", j.readings())
        delivered = post(app, "carrier", j.delivered())
        wait_delivered(carrier)
    expected[loaded["eventIds"][0]] = (CARRIER, "loading")
    expected[shipped["eventIds"][0]] = (CARRIER, "shipping")
    assert len(sensed["eventIds"]) == 2 and sensed["notes"]["excursions"] == 1
    expected[sensed["eventIds"][0]] = (CARRIER, "sensor_reporting")
    expected[sensed["eventIds"][1]] = (CARRIER, "excursion")
    expected[delivered["eventIds"][0]] = (CARRIER, "receiving")

    with TestClient(create_app(customs)) as app:
        declared = post(app, "customs", j.declaration_record())
        cleared = post(app, "customs", j.decision())
        wait_delivered(customs)
    expected[declared["eventIds"][0]] = (CUSTOMS, f"{CUSTOMS_NS}declared")
    expected[cleared["eventIds"][0]] = (CUSTOMS, f"{CUSTOMS_NS}duty_assessed")
    expected[cleared["eventIds"][1]] = (CUSTOMS, f"{CUSTOMS_NS}cleared")

    anchored = node.wait_anchored(list(expected))
    for event_id, (signer, what) in expected.items():
        stored = anchored[event_id]
        assert stored["signer"] == signer, (what, stored)
        event = stored["event"]
        step = event.get("bizStep")
        if what == "excursion":
            reports = event["sensorElementList"][0]["sensorReport"]
            assert [r["value"] for r in reports] == [92.5]
            assert reports[0]["exception"] == "ALARM_CONDITION" and reports[0]["wm:allowedMax"] == 85
        else:
            assert step == what, (what, event)

    commissioning = anchored[produced["eventIds"][0]]["event"]
    assert commissioning["action"] == "ADD" and commissioning["ilmd"]["cbvmda:lotNumber"] == "L2025-07"
    assert len(commissioning["epcList"]) == 4 and all(e.startswith(f"https://id.gs1.org/01/{GTIN}/21/") for e in commissioning["epcList"])
    inspection = anchored[inspected["eventIds"][0]]["event"]
    assert inspection["disposition"] == "conformant"
    digest = inspection["wm:documents"][0]["wm:digest"]
    assert digest == "sha256:" + hashlib.sha256(base64.b64decode(j.inspection()["report"]["contentBase64"])).hexdigest()
    status = httpx.get(f"{node.url}/documents/{digest}/status", timeout=5).json()
    assert status == {"digest": digest, "documentType": "inspection_report", "status": "available"}
    # Customs events say where and when, and name the sealed documents; no value, duty or HS code.
    for event_id in (declared["eventIds"][0], *cleared["eventIds"]):
        assert confidential_fields(anchored[event_id]["event"]) == []
        assert anchored[event_id]["event"]["bizLocation"]["id"] == f"{vocabulary.WAYMARK_NS}unlocode/NLRTM"
    clearance = anchored[cleared["eventIds"][1]]["event"]
    assert "wmc:duty" not in clearance and clearance["wmc:customsOffice"] == "NL000396"
    # The duty is in the sealed assessment both customs events name; customs opens it with its keystore.
    (assessment,) = clearance["wm:documents"]
    assert assessment["wm:documentType"] == "customs_duty_assessment"
    assert anchored[cleared["eventIds"][0]]["event"]["wm:documents"] == [assessment]
    opened = orjson.loads(open_from(node, org_keys.keystore("customs"), devnet_account(4), assessment["wm:digest"]))
    assert opened["duty"] == {"amount": "736.00", "currency": "EUR"} and opened["declarationId"] == j.declaration
    # The unit's history on the node reaches the container's excursion through carton and pallet.
    history = httpx.get(f"{node.url}/units/{quote(j.units[0], safe='')}/history", timeout=5).json()
    assert sensed["eventIds"][1] in [h["eventId"] for h in history]
