"""Public and confidential parts, over every kind of event the oracles produce: source records
go through the oracles (real HTTP apps) to a real node process, are anchored on Anvil, and an
anonymous scan of a unit gets its passport and its page from the real API. Neither carries a
declared value, an HS code, a duty, a price, an invoice or a customs reason; the passport
shows "cleared by customs at Rotterdam" with its time, and the sealed documents by hash."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
from fastapi.testclient import TestClient

from api.main import create_app as create_api
from api.settings import ApiSettings
from node.documents import confidential_fields
from node.protocol import epcis
from node.protocol import vocabulary
from node.settings import ChainSettings, DatabaseSettings
from oracle.app import create_app as create_oracle_app
from tests.documents.keys import OrgKeys
from tests.oracle.conftest import OracleFactory
from tests.oracle.journey import GTIN, LOT, NL, Journey, at
from tests.oracle.servers import NodeProcess
from tests.oracle.test_end_to_end import post, wait_delivered

INVOICE = b"%PDF-1.7 Commercial invoice LC-311: 1,000 stoneware vases at EUR 18.40, total EUR 18,400.00"
SECRETS = ("691390", "18400", "18,400", "736.00", "18.40", "goods not as declared", "undervalued", "Commercial invoice", "LC-311", "hsCode", "declaredValue", "originCountry", "wmc:duty\"")
"""Commercial content of the source records below, as it would appear in any rendering."""


def test_an_anonymous_passport_and_its_page_carry_no_commercial_field_of_any_event(
    make_oracle: OracleFactory, node: NodeProcess, chain_now: int, org_keys: OrgKeys, tmp_path: Path
) -> None:
    j = Journey(chain_now + 5)
    manufacturer, inspector, carrier, customs = (make_oracle(m) for m in ("manufacturer", "inspector", "carrier", "customs"))
    ids: list[str] = []
    with TestClient(create_oracle_app(manufacturer)) as app:
        ids += post(app, "production", j.production())["eventIds"]
        ids += post(app, "packing", {"packingId": "PK-C", "parent": j.carton, "children": j.units, "packedAt": at(j.t0, 30),
                                     "site": {"unlocode": "VNSGN"}})["eventIds"]
        ids += post(app, "packing", {"packingId": "PK-P", "parent": j.pallet, "children": [j.carton], "packedAt": at(j.t0, 40)})["eventIds"]
        # An EPCIS document from the manufacturer's own repository: its events are public too...
        document = epcis.epcis_document([epcis.object_event(
            epcs=[j.units[0]], action="OBSERVE", event_time=at(j.t0, 41), biz_step="other", disposition="active")])
        captured = app.post("/capture", json=document)
        assert captured.status_code == 202, captured.text
        ids += captured.json()["eventIds"]
        # ...and one that carries commercial content is refused, naming the field.
        leaky = epcis.epcis_document([epcis.object_event(
            epcs=[j.units[0]], action="OBSERVE", event_time=at(j.t0, 42), biz_step="other",
            extensions={"wmc:declaredValue": {"wmc:amount": "18400.00", "wmc:currency": "EUR"}})])
        refused = app.post("/capture", json=leaky)
        assert refused.status_code == 422 and refused.json()["field"].endswith("wmc:declaredValue"), refused.text
        wait_delivered(manufacturer)
    with TestClient(create_oracle_app(inspector)) as app:
        ids += post(app, "inspection", j.inspection())["eventIds"]
        wait_delivered(inspector)
    with TestClient(create_oracle_app(carrier)) as app:
        assert post(app, "carrier", j.booking())["eventIds"] == []
        for status, seconds, extra in (
            ("loaded", 50, {"contents": [j.pallet]}), ("picked_up", 55, {}), ("shipped", 60, {}), ("departed", 62, {}),
            ("in_transit", 65, {}), ("arrived", 95, {"place": "NLRTM"}), ("unloaded", 120, {"place": "NLRTM", "contents": [j.pallet]}),
            ("out_for_delivery", 125, {"place": "NLRTM", "contents": [j.pallet]}), ("delivered", 130, {"place": "NLAMS", "contents": [j.pallet]}),
        ):
            ids += post(app, "carrier", j.carrier(status, seconds, **extra))["eventIds"]
        ids += post(app, "iot", j.readings())["eventIds"]  # one in-range report, one excursion
        wait_delivered(carrier)
    manufacturer_org = org_keys.org_ids["manufacturer"]
    with TestClient(create_oracle_app(customs)) as app:
        ids += post(app, "customs", j.declaration_record(readers=(manufacturer_org,), invoice=INVOICE))["eventIds"]
        ids += post(app, "customs", {**j.decision("detained"), "reason": "undervalued, goods not as declared",
                                     "decidedAt": at(j.t0, 105, NL)})["eventIds"]
        ids += post(app, "customs", j.decision("cleared"))["eventIds"]
        # A second declaration of the container, returned: every customs event kind.
        second = {**j.declaration_record(), "declarationId": j.declaration + "R", "lodgedAt": at(j.t0, 111, NL)}
        ids += post(app, "customs", second)["eventIds"]
        ids += post(app, "customs", {**j.decision("returned"), "declarationId": j.declaration + "R", "decidedAt": at(j.t0, 112, NL)})["eventIds"]
        wait_delivered(customs)
    anchored = node.wait_anchored(ids)

    # Every event as stored and anchored is public by construction.
    for event_id in ids:
        assert confidential_fields(anchored[event_id]["event"]) == [], anchored[event_id]["event"]

    # An anonymous scan: the passport (JSON) and the page the API serves for the unit's link.
    deployments = tmp_path / "api-deployments"
    deployments.mkdir()
    shutil.copy(node.deployment_file, deployments / f"{node.chain_id}.json")
    api = create_api(
        ApiSettings(port=8700, public_url="http://127.0.0.1:8700", device_salt_file=tmp_path / "device-salt",
                    rate_limit_per_minute=100_000, rate_limit_burst=10_000),
        ChainSettings(rpc_url=node.rpc_url, chain_id=node.chain_id, deployments_dir=deployments),
        DatabaseSettings(url=node.db_url),
    )
    serial_path = f"/01/{GTIN}/10/{LOT}/21/{j.serials[0]}"
    with TestClient(api) as client:
        response = client.get(f"/api/v1/passport?uri={quote('https://id.gs1.org' + serial_path, safe='')}")
        assert response.status_code == 200, response.text
        page = client.get(f"/passport{serial_path}", headers={"Accept": "text/html"})
        assert page.status_code == 200, page.text
    passport: dict[str, Any] = response.json()
    timeline = passport["timeline"]
    steps = {item["bizStep"] for item in timeline}
    # Every kind of event the oracles produce reaches this unit's passport (through carton, pallet, container).
    assert {"commissioning", "packing", "other", "inspecting", "accepting", "loading", "shipping", "departing", "transporting",
            "arriving", "unloading", "receiving", "sensor_reporting", "wmc:declared", "wmc:detained", "wmc:duty_assessed",
            "wmc:cleared", "wmc:returned"} <= steps, steps
    assert any(r.get("exception") == "ALARM_CONDITION" for item in timeline
               for element in item["event"].get("sensorElementList", []) for r in element["sensorReport"])
    for item in timeline:
        assert confidential_fields(item["event"]) == [], item["event"]
    for rendering in (orjson.dumps(passport).decode(), page.text):
        for secret in SECRETS:
            assert secret not in rendering, secret
        assert base64.b64encode(INVOICE).decode()[:40] not in rendering
    # What it does show: cleared by customs, at Rotterdam, at its time; and the sealed documents by hash.
    (cleared,) = [item for item in timeline if item["bizStep"] == "wmc:cleared"]
    assert cleared["bizLocation"] == f"{vocabulary.WAYMARK_NS}unlocode/NLRTM" and cleared["eventTime"].startswith(at(j.t0, 110)[:10])
    assert cleared["verification"]["signerOrg"]["id"] == org_keys.org_ids["customs"]
    kinds = {d["type"] for d in passport["documents"]}
    assert {"customs_declaration", "commercial_invoice", "certificate_of_origin", "customs_duty_assessment", "customs_decision",
            "inspection_report"} <= kinds
    assert {d["status"] for d in passport["documents"]} == {"available"}
