"""The resolver: verdicts, content negotiation, Digital Link edge cases, structured errors.

One concern: what the GS1 resolver answers for a code, as a client sees it."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import jsonschema_rs
from fastapi.testclient import TestClient

from api.auth import sign_request
from node.member.runtime import build_anchorer, build_capture
from node.protocol import epcis

from waymark.devnet.consortium import devnet_account
from node.protocol.gs1 import UnitId
from node.protocol.issuance import sign_issuance, signed_link
from tests.api.conftest import JSON, path_of
from tests.api.world import PRODUCT_MASTER, World, journey, node_audience
from tests.node.story import CARRIER, GTIN, LOT, MANUFACTURER, by_anchoring_node, capture_document, iso, lot_story, sscc

# --- verdicts ------------------------------------------------------------------------------


def test_a_fully_anchored_unit_is_genuine_with_its_containers_events(client: TestClient, world: World) -> None:
    response = client.get(path_of(world, "genuine"), headers=JSON)
    assert response.status_code == 200
    passport = response.json()
    assert passport["verdict"] == "genuine" and passport["reasons"] == []
    assert passport["id"] == world.unit("genuine").canonical_uri
    assert passport["link"].startswith("https://scan.example/01/09521234543213/10/")
    assert passport["product"]["manufacturer"] == {"id": 1, "name": "Lumen Ceramics Co.", "country": "VN"}
    timeline = passport["timeline"]
    assert [t["bizStep"] for t in timeline] == [
        "commissioning", "inspecting", "packing", "packing", "loading", "shipping", "sensor_reporting",
        "wmc:declared", "wmc:cleared", "arriving", "unloading", "receiving",
    ]
    story = world.lots["genuine"]
    assert timeline[5]["via"] == [story.case.canonical_uri, story.pallet.canonical_uri, story.container.canonical_uri]
    for item in timeline:
        check = item["verification"]
        assert check["status"] == "verified"
        assert [c["name"] for c in check["checks"]] == ["event_hash", "signature", "role", "merkle_proof", "anchor", "confirmations"]
        assert check["anchor"]["txHash"].startswith("0x") and check["anchor"]["blockTime"] > 0
        assert check["merkle"]["root"].startswith("0x")
    assert timeline[7]["verification"]["signerOrg"]["name"] == "Customs Office Rotterdam"
    assert timeline[7]["verification"]["signerRole"] == "CUSTOMS"
    # The route follows where events happened, not who reported them: the Singapore carrier's
    # unloading in Rotterdam is in NL, its loading in Hai Phong in VN.
    route = passport["route"]
    assert [(stop["name"], stop["country"]) for stop in route] == [
        ("Lumen Ceramics factory, Hai Phong", "VN"), ("Port of Hai Phong", "VN"), (None, None),
        ("Port of Rotterdam", "NL"), ("Utrecht distribution centre", "NL"),
    ]
    assert route[1]["organisations"] == ["Bluewater Ocean Freight"] and route[3]["steps"] == ["wmc:declared", "wmc:cleared", "arriving", "unloading"]
    assert "Bluewater Ocean Freight" in route[3]["organisations"]
    assert timeline[10]["location"] == {"id": "https://id.gs1.org/414/9521234000037", "name": "Port of Rotterdam", "country": "NL", "unlocode": "NLRTM"}
    master = passport["product"]["master"]
    assert master["status"] == "verified" and master["name"] == "Glazed stoneware vase, 30 cm"
    assert master["images"][0]["alt"] == "The vase, front view" and master["countryOfOrigin"] == "VN"
    assert passport["lot"] == world.unit("genuine").lot
    assert passport["documents"] == [{"type": "inspection_report", "digest": "sha256:" + "ab" * 32, "status": "not_held", "eventId": timeline[1]["id"]}]
    assert passport["sensorExcursions"][0]["type"] == "Temperature" and passport["sensorExcursions"][0]["exception"] == "ALARM_CONDITION"
    assert passport["escrow"] is None  # no TradeEscrow in this deployment
    assert passport["chain"]["chainId"] == 31337


def test_a_unit_with_events_not_yet_anchored_is_unverified(client: TestClient, world: World) -> None:
    passport = client.get(path_of(world, "pending"), headers=JSON).json()
    assert passport["verdict"] == "unverified"
    assert [r["code"] for r in passport["reasons"]] == ["events_pending"]
    assert {t["verification"]["status"] for t in passport["timeline"]} == {"pending"}
    assert passport["timeline"][0]["verification"]["checks"][3] == {"name": "merkle_proof", "status": "pending", "detail": "not anchored yet"}


def test_a_unit_whose_stored_event_was_tampered_with_is_suspicious(client: TestClient, world: World) -> None:
    passport = client.get(path_of(world, "tampered"), headers=JSON).json()
    assert passport["verdict"] == "suspicious"
    assert passport["reasons"][0]["code"] == "event_failed"
    assert "failed the event_hash check" in passport["reasons"][0]["message"]
    inspected = next(t for t in passport["timeline"] if t["bizStep"] == "inspecting")
    assert inspected["verification"]["failedCheck"] == "event_hash"
    assert inspected["verification"]["failure"] == "hash_mismatch"


def test_an_unknown_serial_of_a_registered_product_says_its_records_may_still_be_arriving(client: TestClient) -> None:
    response = client.get(f"/01/{GTIN}/10/L1/21/NEVER1SSUED", headers=JSON)
    assert response.status_code == 404
    body = response.json()
    assert body["code"] == "unknown_code" and body["verdict"] == "unknown" and body["recordsMayBeArriving"] is True
    assert body["message"].startswith(f"https://id.gs1.org/01/{GTIN}/21/NEVER1SSUED: no record of this unit on this network yet")
    assert "members may still be delivering its records" in body["message"]


def test_a_well_formed_code_of_no_registered_product_is_unknown(client: TestClient) -> None:
    response = client.get("/01/09506000134352/21/NOBODY", headers=JSON)
    assert response.status_code == 404
    assert response.json() == {
        "code": "unknown_code",
        "message": "https://id.gs1.org/01/09506000134352/21/NOBODY is a well-formed code, but no product of this network carries it",
        "verdict": "unknown",
    }


def test_a_code_signed_by_its_manufacturer_but_without_events_is_unverified(client: TestClient, world: World) -> None:
    unit = UnitId(GTIN, "ISSUEDONLY1", "L9")
    link = signed_link(unit, sign_issuance(MANUFACTURER.key, unit, world.client.chain_id), "https://scan.example")
    passport = client.get(link.removeprefix("https://scan.example"), headers=JSON).json()
    assert passport["verdict"] == "unverified"
    assert [r["code"] for r in passport["reasons"]] == ["no_commissioning", "no_events"]


def test_a_code_signed_by_someone_else_than_its_manufacturer_is_suspicious(client: TestClient, world: World) -> None:
    unit = world.unit("edges", 0)
    forged = signed_link(unit, sign_issuance(CARRIER.key, unit, world.client.chain_id), "https://scan.example")
    passport = client.get(forged.removeprefix("https://scan.example"), headers=JSON).json()
    assert passport["verdict"] == "suspicious"
    assert "bad_issuance_signature" in [r["code"] for r in passport["reasons"]]
    genuine = signed_link(unit, sign_issuance(MANUFACTURER.key, unit, world.client.chain_id), "https://scan.example")
    assert client.get(genuine.removeprefix("https://scan.example"), headers=JSON).json()["verdict"] == "genuine"


def test_an_unissued_code_with_a_forged_signature_stays_unknown(client: TestClient, world: World) -> None:
    unit = UnitId(GTIN, "FORGED1", "L9")
    link = signed_link(unit, sign_issuance(devnet_account(12).key, unit, world.client.chain_id), "https://scan.example")
    assert client.get(link.removeprefix("https://scan.example"), headers=JSON).status_code == 404


def test_a_container_resolves_by_its_sscc(client: TestClient, world: World) -> None:
    sscc = world.lots["genuine"].container.sscc
    passport = client.get(f"/00/{sscc}", headers=JSON).json()
    assert passport["kind"] == "container" and passport["sscc"] == sscc and passport["gtin"] is None
    assert passport["verdict"] == "genuine"
    assert "shipping" in [t["bizStep"] for t in passport["timeline"]]


# --- content negotiation ---------------------------------------------------------------------------


def boot_of(html: str) -> dict[str, Any]:
    match = re.search(r'<script id="waymark-boot" type="application/json">(.*?)</script>', html, re.S)
    assert match, "no boot data in the page"
    boot: dict[str, Any] = json.loads(match.group(1))
    return boot


def test_a_browser_gets_the_scanner_page_with_the_passport_in_it(client: TestClient, world: World) -> None:
    response = client.get(path_of(world, "genuine", 1), headers={"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    boot = boot_of(response.text)
    assert boot["passport"]["verdict"] == "genuine"
    assert boot["config"]["rpcUrl"] == world.anvil.rpc_url
    assert boot["config"]["provenanceRegistry"] == world.deployment.address("ProvenanceRegistry")
    assert '<script defer src="/static/loader.js">' in response.text  # the loader, which runs the approved bundle
    assert response.headers["vary"] == "Accept, Accept-Encoding"  # it comes compressed for a browser too


def test_the_page_cannot_be_broken_out_of_by_data(client: TestClient, world: World) -> None:
    # The space makes it invalid, and the message quotes the decoded serial "</script><b> x".
    response = client.get(f"/01/{GTIN}/21/%3C%2Fscript%3E%3Cb%3E%20x", headers={"Accept": "text/html"})
    assert response.status_code == 400
    boot_text = response.text.split('<script id="waymark-boot" type="application/json">', 1)[1].split("</script>", 1)[0]
    assert "<" not in boot_text
    error = boot_of(response.text)["error"]
    assert error["code"] == "invalid_identifier" and "</script><b> x" in error["message"]


def test_json_and_linkset_are_negotiated(client: TestClient, world: World) -> None:
    path = path_of(world, "genuine", 2)
    assert client.get(path, headers={"Accept": "application/json"}).headers["content-type"] == "application/json"
    html_preferred = client.get(path, headers={"Accept": "application/json;q=0.5, text/html;q=0.9"})
    assert html_preferred.headers["content-type"].startswith("text/html")
    assert client.get(path, headers={"Accept": "*/*"}).headers["content-type"].startswith("text/html")
    assert client.get(path, headers={"Accept": "application/*"}).headers["content-type"] == "application/json"
    linkset = client.get(path, headers={"Accept": "application/linkset+json"})
    assert linkset.headers["content-type"] == "application/linkset+json"
    entry = linkset.json()["linkset"][0]
    assert entry["anchor"] == world.unit("genuine", 2).canonical_uri
    assert entry["https://gs1.org/voc/defaultLink"][0]["href"] == "https://scan.example/passport" + path
    assert "traceability" in " ".join(entry)
    assert entry["https://gs1.org/voc/pip"][0]["hreflang"] == ["en", "zh", "es", "fr", "de"]
    assert entry["https://gs1.org/voc/traceability"][0]["type"] == "application/json"
    assert client.get(path + "?linkType=all").json() == linkset.json()
    assert 'rel="linkset"' in linkset.headers["link"]


def test_a_link_type_redirects_to_that_link(client: TestClient, world: World) -> None:
    path = path_of(world, "genuine", 2)
    response = client.get(path + "?linkType=gs1:traceability", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"].startswith("https://scan.example/api/v1/passport?uri=https%3A%2F%2Fid.gs1.org%2F01%2F")
    followed = client.get(response.headers["location"].removeprefix("https://scan.example"))
    assert followed.json()["verdict"] == "genuine"
    missing = client.get(path + "?linkType=gs1:recipeInfo", headers=JSON)
    assert missing.status_code == 404 and missing.json()["code"] == "link_type_unavailable"


def test_an_unacceptable_media_type_is_406(client: TestClient, world: World) -> None:
    response = client.get(path_of(world, "genuine"), headers={"Accept": "image/png"})
    assert response.status_code == 406
    assert response.json()["code"] == "not_acceptable" and response.json()["field"] == "accept"


def test_an_unknown_code_in_a_browser_gets_the_page_saying_so(client: TestClient) -> None:
    response = client.get(f"/01/{GTIN}/21/NOPE404", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert boot_of(response.text)["error"]["verdict"] == "unknown"


# --- Digital Link edge cases --------------------------------------------------------------------


def test_shorter_gtins_are_read_as_their_gtin_14(client: TestClient, world: World) -> None:
    unit = world.unit("edges", 1)
    gtin13 = unit.gtin.lstrip("0")
    assert len(gtin13) == 13
    response = client.get(f"/01/{gtin13}/10/{unit.lot}/21/{unit.serial}", headers=JSON)
    assert response.status_code == 200
    assert response.json()["id"] == unit.canonical_uri and response.json()["gtin"] == unit.gtin


def test_a_gtin_8_or_12_is_padded_and_checked(client: TestClient) -> None:
    # Well-formed but not on this network: 404 (not a 400), with the GTIN-14 in the id.
    gtin12 = "614141000036"
    response = client.get(f"/01/{gtin12}/21/X1", headers=JSON)
    assert response.status_code == 404 and "/01/00614141000036/21/X1" in response.json()["message"]
    assert client.get("/01/96385074/21/X1", headers=JSON).status_code == 404  # GTIN-8


def test_a_bad_check_digit_is_named(client: TestClient, world: World) -> None:
    unit = world.unit("edges", 1)
    bad = unit.gtin[:13] + str((int(unit.gtin[13]) + 1) % 10)
    response = client.get(f"/01/{bad}/21/{unit.serial}", headers=JSON)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_identifier" and body["field"] == "gtin"
    assert f"bad GTIN check digit: expected {unit.gtin[13]}" in body["message"]
    sscc = world.lots["genuine"].container.sscc
    bad_sscc = sscc[:17] + str((int(sscc[17]) + 1) % 10)
    assert client.get(f"/00/{bad_sscc}", headers=JSON).json()["field"] == "sscc"


def test_qualifiers_in_the_wrong_order_are_refused_with_the_rule(client: TestClient, world: World) -> None:
    unit = world.unit("edges", 1)
    response = client.get(f"/01/{unit.gtin}/21/{unit.serial}/10/{unit.lot}", headers=JSON)
    assert response.status_code == 400
    assert "qualifier order: /10/ (lot) must come before /21/ (serial)" in response.json()["message"]


def test_percent_encoding_is_decoded_exactly(client: TestClient, world: World) -> None:
    unit = world.unit("edges", 2)
    encoded = "".join(f"%{ord(c):02X}" for c in unit.serial)  # every character escaped
    response = client.get(f"/01/{unit.gtin}/10/{unit.lot}/21/{encoded}", headers=JSON)
    assert response.status_code == 200 and response.json()["serial"] == unit.serial
    # An encoded '/' is part of the serial, not a path separator: a well-formed unknown code.
    slash = client.get(f"/01/{unit.gtin}/21/AB%2FCD", headers=JSON)
    assert slash.status_code == 404 and "/21/AB%2FCD" in slash.json()["message"]
    broken = client.get(f"/01/{unit.gtin}/21/AB%G1", headers=JSON)
    assert broken.status_code == 400 and "percent-encoding" in broken.json()["message"]
    space = client.get(f"/01/{unit.gtin}/21/AB%20CD", headers=JSON)
    assert space.status_code == 400 and "outside the GS1 AI set" in space.json()["message"]


def test_a_lot_nobody_made_is_unknown(client: TestClient, world: World) -> None:
    response = client.get(f"/01/{GTIN}/10/L1", headers=JSON)
    assert response.status_code == 404 and response.json()["verdict"] == "unknown"


def test_malformed_paths_get_clear_answers_never_a_500(client: TestClient) -> None:
    for path in ["/01/abc/21/x", "/01//21/x", "/01/%FF%FE/21/x", "/01/09521234543213/21/", "/00/123",
                 "/01/09521234543213/99/x/21/y", "/01/09521234543213/21/x/21/y", "/00/095212340004662866/21/x",
                 "/01/09521234543213/21/" + "A" * 21, "/01/09521234543213/21/x?s=zz", "/01/09521234543213/21/x?s=0x" + "11" * 65]:
        response = client.get(path, headers=JSON)
        assert 400 <= response.status_code < 500, (path, response.status_code)
        body = response.json()
        assert set(body) >= {"code", "message"}, path


def test_scan_api_takes_links_on_any_host_paths_and_epc_urns(client: TestClient, world: World) -> None:
    unit = world.unit("edges", 3)
    for uri in (unit.uri("id.gs1.org"), unit.uri("https://example.com/some/prefix"), path_of(world, "edges", 3),
                f"01/{unit.gtin}/21/{unit.serial}"):
        response = client.get("/api/v1/scan", params={"uri": uri}, headers={"Waymark-Device": "d-edges"})
        assert response.status_code == 200, (uri, response.text)
        assert response.json()["id"] == unit.canonical_uri
    assert client.get("/api/v1/scan", params={"uri": ""}).status_code == 422
    assert client.get("/api/v1/scan", params={"uri": "hello"}).json()["code"] == "invalid_identifier"


# --- GS1-Conformant Resolver: levels, default link, linksets, HEAD/OPTIONS/CORS ----------------------

# The GS1-Conformant Resolver linkset schema (https://ref.gs1.org/standards/resolver/linkset-schema,
# GS1 AISBL; the parts that constrain what we send, transcribed): link relation members and link
# objects with their href, title, hreflang and type patterns.
GS1_LINKSET_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["linkset"],
    "properties": {
        "linkset": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["anchor"],
                "properties": {
                    "anchor": {"type": "string", "pattern": "^https?:\\/\\/[a-zA-z0-9./]+"},
                    "itemDescription": {"type": "string"},
                    "description": {"type": "string"},
                },
                "patternProperties": {
                    "(?!(anchor|itemDescription|description))^([a-z-]+$)|(^https?:\\/\\/[a-zA-z0-9./]+$)": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["href"],
                            "properties": {
                                "href": {"type": "string", "pattern": "^https?:\\/\\/[a-zA-z0-9./]+"},
                                "title": {"type": "string"},
                                "hreflang": {"type": "array", "items": {"type": "string", "pattern": "(^\\w{2}$)|(^\\w{2}-\\w{2}$)"}},
                                "type": {"type": "string", "pattern": "\\w+/[-+.\\w]+"},
                            },
                        },
                    }
                },
                "additionalProperties": False,
            },
        }
    },
}
# The resolver description file schema (https://ref.gs1.org/standards/resolver/description-file-schema), transcribed.
GS1_DESCRIPTION_SCHEMA = {
    "type": "object",
    "required": ["resolverRoot", "supportedPrimaryKeys", "name"],
    "properties": {
        "resolverRoot": {"type": "string"},
        "supportedPrimaryKeys": {"type": "array", "items": {"type": "string", "enum": [
            "all", "01", "8006", "8013", "8010", "410", "411", "412", "413", "414", "415", "417", "8017", "8018", "255", "00", "253", "401", "402", "8003", "8004"]}},
        "name": {"type": "string"},
        "supportedLinkType": {"type": "array", "items": {"properties": {"namespace": {"type": "string"}, "prefix": {"type": "string", "pattern": "^[a-zA-Z_][A-Za-z0-9_-]*?:$"}}}},
        "linkTypeDefaultCanBeLinkset": {"type": "boolean"},
    },
}


def schema_errors(schema: dict[str, Any], data: Any) -> list[str]:
    return [error.message for error in jsonschema_rs.validator_for(schema).iter_errors(data)]


def test_a_browser_is_redirected_307_to_the_default_link_with_the_query_attributes_and_a_link_header(client: TestClient, world: World) -> None:
    path = path_of(world, "genuine", 3)
    response = client.get(path + "?17=261231&linkType=gs1:defaultLink&utm_source=box", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == f"https://scan.example/passport{path}?17=261231&utm_source=box"
    plain = client.get(path + "?17=261231", headers={"Accept": "text/html"}, follow_redirects=False)
    assert plain.status_code == 307 and plain.headers["location"] == f"https://scan.example/passport{path}?17=261231"
    link = plain.headers["link"]
    assert f'<https://scan.example{path}?linkType=linkset>; rel="linkset"; type="application/linkset+json"' in link
    assert f'<https://scan.example/passport{path}>; rel="https://gs1.org/voc/pip"; type="text/html"' in link
    assert plain.headers["access-control-allow-origin"] == "*" and "Link" in plain.headers["access-control-expose-headers"]
    # The page itself carries the passport (a scan) and the same Link header.
    followed = client.get(plain.headers["location"].removeprefix("https://scan.example"))
    assert followed.status_code == 200 and boot_of(followed.text)["passport"]["verdict"] == "genuine"
    assert followed.headers["link"] == link


def test_linksets_of_every_level_are_valid_against_the_gs1_linkset_schema(client: TestClient, world: World) -> None:
    unit = world.unit("genuine", 4)
    for path in (path_of(world, "genuine", 4), f"/01/{unit.gtin}", f"/01/{unit.gtin}/10/{unit.lot}", f"/00/{world.lots['genuine'].container.sscc}"):
        response = client.get(path + "?linkType=all")
        assert response.status_code == 200 and response.headers["content-type"] == "application/linkset+json", path
        assert schema_errors(GS1_LINKSET_SCHEMA, response.json()) == [], path
    product = client.get(f"/01/{unit.gtin}", headers={"Accept": "application/linkset+json"}).json()["linkset"][0]
    assert product["anchor"] == f"https://id.gs1.org/01/{unit.gtin}"
    assert product["description"] == product["itemDescription"] == "Glazed stoneware vase, 30 cm"
    assert product["https://gs1.org/voc/masterData"][0]["href"] == f"https://scan.example/api/v1/products/{unit.gtin}/master"
    lot = client.get(f"/01/{unit.gtin}/10/{unit.lot}?linkType=linkset").json()["linkset"][0]
    assert lot["https://gs1.org/voc/recallStatus"][0]["type"] == "application/json"


def test_the_resolver_description_file_is_at_the_well_known_location(client: TestClient) -> None:
    response = client.get("/.well-known/gs1resolver")
    assert response.status_code == 200 and response.headers["access-control-allow-origin"] == "*"
    description = response.json()
    assert schema_errors(GS1_DESCRIPTION_SCHEMA, description) == []
    assert description["resolverRoot"] == "https://scan.example"
    assert description["supportedPrimaryKeys"] == ["01", "00", "414", "417", "8004"]


def test_head_and_options_are_answered_with_cors(client: TestClient, world: World) -> None:
    path = path_of(world, "genuine", 3)
    head = client.head(path, headers=JSON)
    assert head.status_code == 200 and head.content == b"" and head.headers["content-type"] == "application/json"
    assert 'rel="linkset"' in head.headers["link"] and head.headers["access-control-allow-origin"] == "*"
    assert client.head(f"/01/{GTIN}/21/NOPE404", headers=JSON).status_code == 404
    redirect = client.head(path, headers={"Accept": "text/html"}, follow_redirects=False)
    assert redirect.status_code == 307
    options = client.options(path, headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "GET"})
    assert options.status_code == 204
    assert options.headers["access-control-allow-origin"] == "*"
    assert set(options.headers["allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
    assert client.get(path, headers=JSON).headers["access-control-allow-origin"] == "*"


def test_a_product_level_link_shows_the_product_and_its_lots(client: TestClient, world: World) -> None:
    unit = world.unit("genuine")
    for gtin in (unit.gtin, unit.gtin.lstrip("0")):  # GTIN-14 and GTIN-13: one product
        response = client.get(f"/01/{gtin}", headers=JSON)
        assert response.status_code == 200
        product = response.json()
        assert product["kind"] == "product" and product["gtin"] == unit.gtin
        assert product["manufacturer"]["name"] == "Lumen Ceramics Co."
        assert product["master"]["status"] == "verified" and product["master"]["brand"] == "Lumen"
        lots = {lot["lot"]: lot for lot in product["lots"]}
        assert unit.lot in lots and lots[unit.lot]["units"] >= 8 and lots[unit.lot]["inspections"]
    assert client.get("/01/96385074", headers=JSON).status_code == 404  # a GTIN nobody registered


def test_a_lot_level_link_shows_its_production_inspection_and_recall_state(client: TestClient, world: World) -> None:
    unit = world.unit("genuine")
    lot = client.get(f"/01/{unit.gtin}/10/{unit.lot}", headers=JSON).json()
    assert lot["kind"] == "lot" and lot["lot"] == unit.lot
    assert lot["producedAt"] and lot["recalled"] is False
    assert lot["inspections"][0]["eventId"].startswith("ni:///sha-256;")
    # The lot's times are its events' times as the passport's timeline writes them (milliseconds).
    timeline = client.get(path_of(world, "genuine"), headers=JSON).json()["timeline"]
    commissioned = [e["eventTime"] for e in timeline if e["bizStep"] == "commissioning" and not e["via"]]
    inspected = {e["id"]: e["eventTime"] for e in timeline}
    assert lot["producedAt"] <= commissioned[0] and len(lot["producedAt"]) == len(commissioned[0])
    assert lot["inspections"][0]["time"] == inspected[lot["inspections"][0]["eventId"]]
    assert lot["master"]["name"] == "Glazed stoneware vase, 30 cm"
    assert client.get(f"/01/{unit.gtin}/10/{unit.lot}", headers={"Accept": "text/html"}, follow_redirects=False).headers["location"] == \
        f"https://scan.example/passport/01/{unit.gtin}/10/{unit.lot}"


def test_bad_data_attributes_are_refused_naming_the_ai_and_others_ignored(client: TestClient, world: World) -> None:
    path = path_of(world, "genuine", 3)
    bad = client.get(path + "?17=261341", headers=JSON)
    assert bad.status_code == 400 and "AI (17)" in bad.json()["message"]
    assert "appears twice" in client.get(path + "?17=261231&17=261231", headers=JSON).json()["message"]
    assert client.get(path + "?17=261231&campaign=x", headers=JSON).json()["verdict"] == "genuine"


def test_a_link_naming_another_lot_than_the_units_is_flagged_suspicious(client: TestClient, world: World) -> None:
    unit = world.unit("edges", 5)
    wrong = UnitId(unit.gtin, unit.serial, "OTHERLOT")
    passport = client.get(wrong.uri("https://scan.example").removeprefix("https://scan.example"), headers=JSON).json()
    assert passport["verdict"] == "suspicious"
    assert passport["lot"] == unit.lot  # the lot it was commissioned in, not the link's
    flag = next(r for r in passport["reasons"] if r["code"] == "lot_mismatch")
    assert flag["message"] == f"the link names lot OTHERLOT, but this unit was commissioned in lot {unit.lot}"
    # the right lot, or no lot at all, stays genuine
    assert client.get(path_of(world, "edges", 5), headers=JSON).json()["verdict"] == "genuine"
    assert client.get(f"/01/{unit.gtin}/21/{unit.serial}", headers=JSON).json()["verdict"] == "genuine"


def test_master_data_is_stored_only_when_it_hashes_to_the_hash_registered_on_chain(client: TestClient, world: World) -> None:
    url = f"/api/v1/products/{GTIN}/master"
    assert client.get(url).content == PRODUCT_MASTER
    forged = PRODUCT_MASTER.replace(b"Glazed", b"Golden")
    refused = client.put(url, content=forged)
    assert refused.status_code == 409 and refused.json()["code"] == "master_data_hash_mismatch"
    assert client.put(url, content=b"{not json").json()["code"] == "invalid_master_data"
    accepted = client.put(url, content=PRODUCT_MASTER)
    assert accepted.status_code == 200 and accepted.json()["gtin"] == GTIN
    assert client.get(url).content == PRODUCT_MASTER


def test_members_register_location_master_data_with_a_signed_request(client: TestClient, world: World) -> None:
    body = json.dumps({"id": "https://id.gs1.org/414/9521234000051", "name": "Ho Chi Minh City depot", "country": "VN"}).encode()
    signed = sign_request(CARRIER.key, world.client.chain_id, "PUT", "/api/v1/locations", body, audience=node_audience(client))
    response = client.put("/api/v1/locations", content=body, headers={**signed, "Content-Type": "application/json"})
    assert response.status_code == 200 and response.json()["orgId"] == 3
    located = client.get("/414/9521234000051", headers=JSON).json()
    assert located == {"kind": "location", "id": "https://id.gs1.org/414/9521234000051", "name": "Ho Chi Minh City depot", "country": "VN"}
    outsider = devnet_account(15)
    signed = sign_request(outsider.key, world.client.chain_id, "PUT", "/api/v1/locations", body, audience=node_audience(client))
    assert client.put("/api/v1/locations", content=body, headers={**signed, "Content-Type": "application/json"}).status_code == 403
    assert client.put("/api/v1/locations", content=body, headers={"Content-Type": "application/json"}).status_code == 401


# --- a light page on a phone ----------------------------------------------------------------------


def test_the_page_of_a_unit_with_40_events_ships_a_slim_passport_before_first_paint(client: TestClient, world: World) -> None:
    start = int(world.client.w3.eth.get_block("latest")["timestamp"]) + 1
    # Serials and containers of its own: the world's lots were made from the same chain clock.
    story = replace(lot_story(start, 2), units=[UnitId(GTIN, f"S{start}P{i:04d}", LOT) for i in range(2)],
                    stray=UnitId(GTIN, f"S{start}PSTRAY", LOT), case=sscc(7000 + start % 10**6),
                    pallet=sscc(8000 + start % 10**6), container=sscc(9000 + start % 10**6))
    reading = [(epcis.object_event(epcs=[story.pallet], action="OBSERVE", event_time=iso(start + 20 + i), biz_step="sensor_reporting",
                                   sensor_elements=[epcis.sensor_element([epcis.temperature(20 + i / 10, time=iso(start + 20 + i))], time=iso(start + 20 + i))]), CARRIER)
               for i in range(28)]
    for anchorer, group in by_anchoring_node([*journey(story), *reading]):  # each organisation's node anchors its own
        build_capture(world.runtime).capture(json.dumps(capture_document(group, world.runtime.domain)).encode())
        build_anchorer(world.runtime, anchorer).drain()
    unit = story.units[0]
    full = client.get(f"/api/v1/passport?uri={unit.canonical_uri}").content
    assert len(json.loads(full)["timeline"]) == 40
    page = client.get("/passport" + unit.uri("https://scan.example").removeprefix("https://scan.example"))
    boot = boot_of(page.text)
    assert len(boot["passport"]["timeline"]) == 40 and boot["passport"]["slim"] is True
    assert "event" not in boot["passport"]["timeline"][0] and "merkle" not in boot["passport"]["timeline"][0]["verification"]
    before = len(page.content) - len(json.dumps(boot["passport"], separators=(",", ":")).encode()) + len(full)
    after = len(page.content)
    print(f"page of a 40-event unit: {before} bytes with the full passport inline, {after} bytes with the slim one")
    assert after < before / 3, (before, after)


def test_a_bare_sscc_or_gtin_is_the_same_key_as_its_digital_link(client: TestClient, world: World) -> None:
    sscc = world.lots["genuine"].container.sscc
    bare = client.get("/api/v1/passport", params={"uri": sscc}).json()
    assert bare["id"] == f"https://id.gs1.org/00/{sscc}" and bare["kind"] == "container"
    assert bare["timeline"] == client.get(f"/00/{sscc}", headers=JSON).json()["timeline"]
    product = client.get("/api/v1/passport", params={"uri": GTIN.lstrip("0")}).json()
    assert product["kind"] == "product" and product["id"] == f"https://id.gs1.org/01/{GTIN}"
    assert client.get("/api/v1/passport", params={"uri": "12345"}).status_code == 400
