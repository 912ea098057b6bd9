"""Bad input per adapter gets a clear rejection naming the problem, and nothing already
accepted is lost or duplicated (checked on the node, which has every good event once)."""

from __future__ import annotations

import csv
import json
from typing import Any
from urllib.parse import quote

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from oracle.app import create_app
from tests.oracle.conftest import OracleFactory
from tests.oracle.journey import Journey, at
from tests.oracle.servers import NodeProcess
from tests.oracle.test_end_to_end import post, wait_delivered


def rejected(client: TestClient, adapter: str, body: Any, *, raw: bytes | None = None) -> dict[str, Any]:
    path = "/capture" if adapter == "epcis" else f"/webhooks/{adapter}"
    response = client.post(path, content=raw) if raw is not None else client.post(path, json=body)
    assert response.status_code == 422, response.text
    answer: dict[str, Any] = response.json()
    assert answer["code"] == "rejected" and answer["adapter"] == adapter
    return answer


def node_event_count(node: NodeProcess) -> int:
    engine = create_engine(node.db_url)
    with engine.connect() as conn:
        count = int(conn.execute(text("SELECT COUNT(*) FROM events")).scalar_one())
        distinct = int(conn.execute(text("SELECT COUNT(DISTINCT digest) FROM events")).scalar_one())
    engine.dispose()
    assert count == distinct
    return count


def test_malformed_json_and_bad_records_are_refused_by_field(make_oracle: OracleFactory, node: NodeProcess, chain_now: int) -> None:
    j = Journey(chain_now + 5, tag=1)
    manufacturer, carrier, customs = make_oracle("manufacturer"), make_oracle("carrier"), make_oracle("customs")
    with TestClient(create_app(manufacturer)) as app:
        good = post(app, "production", j.production())
        answer = rejected(app, "production", None, raw=b'{"runId": "PR-1", "gtin": ')
        assert answer["field"] == "(body)" and "malformed JSON" in answer["message"]
        bad_gtin = {**j.production(), "gtin": "09521234543214"}
        assert rejected(app, "production", bad_gtin)["field"] == "gtin"
        assert "check digit" in rejected(app, "production", bad_gtin)["message"]
        answer = rejected(app, "production", {**j.production(), "customerName": "J. Jansen"})
        assert answer["field"] == "customerName" and "unknown field" in answer["message"]
        answer = rejected(app, "packing", {"packingId": "P", "parent": j.pallet, "children": [], "packedAt": at(j.t0, 1)})
        assert answer["field"] == "children"
        document: dict[str, Any] = {"@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"], "type": "EPCISDocument",
                    "schemaVersion": "2.0", "creationDate": at(j.t0, 1),
                    "epcisBody": {"eventList": [{"type": "ObjectEvent", "eventTime": at(j.t0, 1), "eventTimeZoneOffset": "+00:00",
                                                 "epcList": ["not a uri"], "action": "OBSERVE"}]}}
        answer = rejected(app, "epcis", document)
        assert answer["field"] == "epcisBody.eventList[0].epcList[0]"
        # An event this organisation may not attest (inspecting needs INSPECTOR) is refused at once.
        document["epcisBody"]["eventList"][0].update(epcList=[j.units[0]], bizStep="inspecting")
        answer = rejected(app, "epcis", document)
        assert answer["field"] == "events[0].bizStep" and "INSPECTOR" in answer["message"]
        # The good record sent again: same ids, nothing new queued.
        again = post(app, "production", j.production())
        assert again["eventIds"] == good["eventIds"] and again["accepted"] == 0 and again["duplicates"] == 1
        wait_delivered(manufacturer)

    with TestClient(create_app(carrier)) as app:
        post(app, "carrier", j.booking())
        shipped = post(app, "carrier", j.shipped())
        answer = rejected(app, "carrier", {**j.shipped(), "status": "teleported"})
        assert answer["field"] == "status"
        answer = rejected(app, "carrier", {**j.shipped(), "shipmentId": "NEVER-BOOKED"})
        assert answer["field"] == "containers" and "never booked" in answer["message"]
        wrong_unit = j.readings()
        wrong_unit["readings"][2]["unit"] = "mmHg"
        answer = rejected(app, "iot", wrong_unit)
        assert answer["field"] == "readings[2].unit" and "mmHg" in answer["message"]
        no_range = {**j.readings(), "object": "095212340000000457"}
        assert rejected(app, "iot", no_range)["field"] == "object"
        readings = post(app, "iot", j.readings())
        wait_delivered(carrier)

    with TestClient(create_app(customs)) as app:
        answer = rejected(app, "customs", j.decision())
        assert answer["field"] == "declarationId" and "unknown shipment" in answer["message"]
        declared = post(app, "customs", j.declaration_record())
        assert rejected(app, "customs", {**j.declaration_record(), "hsCode": "69-13"})["field"] == "hsCode"
        answer = rejected(app, "customs", {**j.decision(), "duty": {"amount": 736.0, "currency": "EUR"}})
        assert answer["field"] == "duty.amount" and "decimal string" in answer["message"]
        returned = post(app, "customs", j.decision("returned"))
        answer = rejected(app, "customs", j.decision("cleared"))
        assert answer["field"] == "decision" and "final" in answer["message"]
        answer = rejected(app, "fx", {"base": "EUR", "quote": "EUR", "rate": "1", "observedAt": at(j.t0, 1)})
        assert "base and quote" in answer["message"]
        wait_delivered(customs)

    accepted = good["eventIds"] + shipped["eventIds"] + readings["eventIds"] + declared["eventIds"] + returned["eventIds"]
    node.wait_anchored(accepted)
    assert node_event_count(node) == len(set(accepted))
    for runtime in (manufacturer, carrier, customs):
        assert runtime.queue.rejected() == []


def test_csv_with_bad_rows_accepts_the_good_ones_and_reports_each_bad_row(make_oracle: OracleFactory, node: NodeProcess, chain_now: int) -> None:
    j = Journey(chain_now + 5, tag=2)
    manufacturer = make_oracle("manufacturer")
    inbox = manufacturer.settings.csv_dir() / "inbox"
    t = j.production()["producedAt"]
    lines = [
        "run_id,gtin,lot,serial,produced_at,site_gln,site_unlocode",
        f"R1,09521234543213,L2025-07,{j.serials[0]},{t},9521234000013,VNSGN",
        f"R1,09521234543214,L2025-07,BADCHECK,{t},9521234000013,VNSGN",          # line 3: GTIN check digit
        f"R1,09521234543213,L2025-07,{j.serials[1]},{t},9521234000013,VNSGN",
        f"R1,09521234543213,L2025-07,{j.serials[2]},not-a-time,9521234000013,VNSGN",  # line 5: time
        f"R1,09521234543213,L2025-08,{j.serials[3]},{t},9521234000013,VNSGN",    # line 6: other lot than the run
        f"R2,09521234543213,L2025-07,,{t},,VNSGN",                              # line 7: no serial
    ]
    (inbox / ".production_run.csv").write_text("\n".join(lines) + "\n")
    (inbox / ".production_run.csv").rename(inbox / "production_run.csv")
    reports = manufacturer.csv.scan()  # type: ignore[union-attr]
    assert len(reports) == 1
    report = reports[0]
    assert (report.rows, report.accepted_rows) == (6, 2)
    assert [(r["line"], r["column"]) for r in report.rejected] == [(3, "gtin"), (5, "produced_at"), (6, "lot"), (7, "serial")]
    rejected_dir = manufacturer.settings.csv_dir() / "rejected"
    moved = list(rejected_dir.glob("*production_run.csv"))
    assert len(moved) == 1 and not list(inbox.iterdir())
    with open(moved[0].with_name(moved[0].name + ".rejected.csv")) as handle:
        rows = list(csv.DictReader(handle))
    assert [r["line"] for r in rows] == ["3", "5", "6", "7"]
    assert "check digit" in rows[0]["problem"] and json.loads(rows[0]["row"])["serial"] == "BADCHECK"
    assert "differs from line 2" in rows[2]["problem"]
    # The fixed file dropped again: the two good rows' event is the same, only the new run is new.
    fixed = [lines[0], lines[1], lines[3], f"R2,09521234543213,L2025-07,{j.serials[2]},{t},9521234000013,VNSGN"]
    (inbox / "production_fixed.csv").write_text("\n".join(fixed) + "\n")
    second = manufacturer.csv.scan()[0]  # type: ignore[union-attr]
    assert second.rejected == [] and second.event_ids[0] == report.event_ids[0] and len(second.event_ids) == 2
    assert list((manufacturer.settings.csv_dir() / "processed").glob("*production_fixed.csv"))
    manufacturer.start()
    wait_delivered(manufacturer)
    node.wait_anchored(second.event_ids)
    assert node_event_count(node) == 2
    history = httpx.get(f"{node.url}/units/{quote(j.units[0], safe='')}/history", timeout=5).json()
    assert len(history) == 1
