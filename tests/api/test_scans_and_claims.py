"""Scans through the API: clone flags on the verdict, ownership claims, manufacturers' alerts
behind signed requests."""

from __future__ import annotations

import json
import time
from typing import Any, cast

import httpx
import orjson
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient

from api.auth import sign_claim, sign_request
from node.devnet.consortium import devnet_account
from node.scans import claim_code_hash, new_claim_code
from tests.api.conftest import JSON, path_of
from tests.api.world import World, node_audience
from tests.node.story import CARRIER, GTIN, MANUFACTURER


def scan(client: TestClient, path: str, device: str, region: str | None = None) -> dict[str, Any]:
    headers = {**JSON, "Waymark-Device": device}
    if region:
        headers["Waymark-Region"] = region
    response = client.get(path, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# Starlette types TestClient against httpx2, which is not installed, so mypy sees its responses as Any.
def signed_get(
    client: TestClient, world: World, path: str, account: LocalAccount = MANUFACTURER, **kwargs: Any
) -> httpx.Response:
    return cast(httpx.Response, client.get(path, headers=sign_request(account.key, world.client.chain_id, "GET", path, audience=node_audience(client), **kwargs)))


def signed_post(
    client: TestClient, world: World, path: str, body: dict[str, Any], account: LocalAccount = MANUFACTURER
) -> httpx.Response:
    data = orjson.dumps(body)
    headers = {**sign_request(account.key, world.client.chain_id, "POST", path, data, audience=node_audience(client)), "Content-Type": "application/json"}
    return cast(httpx.Response, client.post(path, content=data, headers=headers))


# --- clone rules on the verdict --------------------------------------------------------------------


def test_a_code_scanned_by_too_many_devices_turns_suspicious(client: TestClient, world: World) -> None:
    path = path_of(world, "clones", 0)
    for i in range(5):
        assert scan(client, path, f"device-{i}")["verdict"] == "genuine"
    passport = scan(client, path, "device-5")
    assert passport["verdict"] == "suspicious"
    assert passport["scans"]["flags"][0]["code"] == "too_many_devices"
    assert passport["scans"]["devicesInWindow"] == 6


def test_a_code_scanned_in_two_countries_minutes_apart_is_suspicious(client: TestClient, world: World) -> None:
    path = path_of(world, "clones", 1)
    assert scan(client, path, "shop-nl", "NL")["verdict"] == "genuine"
    passport = scan(client, path, "shop-cn", "cn")
    assert passport["verdict"] == "suspicious"
    assert [f["code"] for f in passport["scans"]["flags"]] == ["implausible_places"]
    assert "scanned in NL and CN" in passport["scans"]["flags"][0]["message"]


def test_a_code_scanned_too_often_is_suspicious(client: TestClient, world: World) -> None:
    path = path_of(world, "clones", 2)
    verdicts = [scan(client, path, "same-phone")["verdict"] for _ in range(31)]
    assert verdicts[:30] == ["genuine"] * 30 and verdicts[30] == "suspicious"


def test_reading_a_passport_is_not_a_scan(client: TestClient, world: World) -> None:
    unit = world.unit("clones", 3)
    for i in range(8):
        response = client.get("/api/v1/passport", params={"uri": unit.uri()}, headers={"Waymark-Device": f"auditor-{i}"})
        assert response.json()["verdict"] == "genuine"
    assert scan(client, path_of(world, "clones", 3), "buyer")["scans"]["scansInWindow"] == 1


# --- ownership ---------------------------------------------------------------------------------------


def test_claim_with_the_packaging_code_then_other_scans_are_flagged(client: TestClient, world: World) -> None:
    unit = world.unit("claims", 0)
    code = new_claim_code()
    registered = signed_post(client, world, "/api/v1/claim-codes", {"codes": [{"uri": unit.uri(), "codeHash": "0x" + claim_code_hash(unit.canonical_uri, code).hex()}]})
    assert registered.status_code == 200, registered.text
    assert registered.json() == {"registered": 1, "already": 0}
    again = signed_post(client, world, "/api/v1/claim-codes", {"codes": [{"uri": unit.uri(), "codeHash": "0x" + "00" * 32}]})
    assert again.json() == {"registered": 0, "already": 1}  # the first code stays

    def claim(value: str, device: str) -> httpx.Response:
        return cast(httpx.Response, client.post("/api/v1/ownership/claims", json={"method": "code", "uri": unit.uri(), "code": value},
                                                headers={"Waymark-Device": device}))

    wrong = claim(new_claim_code(), "buyer-phone")
    assert wrong.status_code == 422 and wrong.json()["code"] == "claim_rejected" and "does not match" in wrong.json()["message"]
    assert claim("nonsense", "buyer-phone").status_code == 422
    ok = claim(code, "buyer-phone")
    assert ok.status_code == 201
    assert ok.json()["claimed"] is True and ok.json()["method"] == "code" and ok.json()["byThisDevice"] is True
    taken = claim(code, "someone-else")
    assert taken.status_code == 409 and taken.json()["code"] == "already_claimed"

    mine = scan(client, path_of(world, "claims", 0), "buyer-phone")
    assert mine["verdict"] == "genuine" and mine["ownership"]["claimed"] and mine["ownership"]["byThisDevice"]
    theirs = scan(client, path_of(world, "claims", 0), "market-stall")
    assert theirs["verdict"] == "suspicious"
    assert [f["code"] for f in theirs["scans"]["flags"]] == ["scanned_after_claim"]
    assert theirs["ownership"]["claimed"] and not theirs["ownership"]["byThisDevice"]
    status = client.get("/api/v1/ownership", params={"uri": unit.uri()}, headers={"Waymark-Device": "x"})
    assert status.json()["claimed"] is True


def test_a_unit_without_a_registered_code_cannot_be_claimed_by_code(client: TestClient, world: World) -> None:
    response = client.post("/api/v1/ownership/claims", json={"method": "code", "uri": world.unit("claims", 1).uri(), "code": new_claim_code()})
    assert response.status_code == 422 and "registered no claim code" in response.json()["message"]


def test_only_the_products_manufacturer_registers_claim_codes(client: TestClient, world: World) -> None:
    body = {"codes": [{"uri": world.unit("claims", 2).uri(), "codeHash": "0x" + "11" * 32}]}
    carrier = signed_post(client, world, "/api/v1/claim-codes", body, account=CARRIER)
    assert carrier.status_code == 403 and carrier.json()["code"] == "forbidden"
    unsigned = client.post("/api/v1/claim-codes", json=body)
    assert unsigned.status_code == 401 and unsigned.json()["field"] == "waymark-account"


def test_a_claim_by_escrow_order_needs_a_known_order(client: TestClient, world: World) -> None:
    unit = world.unit("claims", 3)
    buyer = devnet_account(10)
    issued = int(time.time())
    body = {"method": "escrow", "uri": unit.uri(), "orderId": "0x2a", "issuedAt": issued,
            "signature": sign_claim(buyer.key, world.client.chain_id, unit.canonical_uri, 42, issued)}
    response = client.post("/api/v1/ownership/claims", json=body)
    assert response.status_code == 422
    assert "escrow order 42 is not known" in response.json()["message"]
    body["signature"] = "0x" + "00" * 65
    assert client.post("/api/v1/ownership/claims", json=body).json()["code"] == "bad_signature"


def test_logistic_units_cannot_be_claimed(client: TestClient, world: World) -> None:
    sscc = world.lots["claims"].pallet.sscc
    response = client.post("/api/v1/ownership/claims", json={"method": "code", "uri": f"https://id.gs1.org/00/{sscc}", "code": new_claim_code()})
    assert response.status_code == 400


# --- manufacturers' alerts ------------------------------------------------------------------------------


def test_the_manufacturer_reads_alerts_about_its_products(client: TestClient, world: World) -> None:
    path = path_of(world, "clones", 4)
    scan(client, path, "a", "NL")
    scan(client, path, "b", "BR")
    client.get(f"/01/{GTIN}/21/NEVERMADE7", headers={**JSON, "Waymark-Device": "c"})  # an invented serial
    response = signed_get(client, world, f"/api/v1/alerts?gtin={GTIN}&limit=500")
    assert response.status_code == 200, response.text
    alerts = response.json()["alerts"]
    rules = {(a["unit"], a["rule"]) for a in alerts}
    assert (world.unit("clones", 4).canonical_uri, "implausible_places") in rules
    assert (f"https://id.gs1.org/01/{GTIN}/21/NEVERMADE7", "unknown_serial") in rules
    assert all(a["gtin"] == GTIN for a in alerts)
    after = response.json()["nextAfter"]
    assert signed_get(client, world, f"/api/v1/alerts?after={after}").json()["alerts"] == []


def test_alerts_need_a_signed_request_from_a_manufacturer(client: TestClient, world: World) -> None:
    assert client.get("/api/v1/alerts").status_code == 401
    assert signed_get(client, world, "/api/v1/alerts", account=CARRIER).status_code == 403
    outsider = signed_get(client, world, "/api/v1/alerts", account=devnet_account(12))
    assert outsider.status_code == 403
    stale = signed_get(client, world, "/api/v1/alerts", timestamp=int(time.time()) - 3600)
    assert stale.status_code == 401 and stale.json()["field"] == "waymark-timestamp"
    headers = sign_request(MANUFACTURER.key, world.client.chain_id, "GET", "/api/v1/alerts?after=0", audience=node_audience(client))
    tampered = client.get("/api/v1/alerts?after=1", headers=headers)  # signed for another query
    assert tampered.status_code == 401 and tampered.json()["field"] == "waymark-signature"
    other_chain = client.get("/api/v1/alerts", headers=sign_request(MANUFACTURER.key, 1, "GET", "/api/v1/alerts", audience=node_audience(client)))
    assert other_chain.status_code == 401
    # signed for another member's node: refused here, naming the audience (never replayable across nodes)
    elsewhere = sign_request(MANUFACTURER.key, world.client.chain_id, "GET", "/api/v1/alerts", audience="https://node.other-member.example")
    refused = client.get("/api/v1/alerts", headers=elsewhere)
    assert refused.status_code == 401 and refused.json()["field"] == "waymark-audience"
    assert "node.other-member.example" in refused.json()["message"]


def test_a_signed_write_cannot_be_replayed(client: TestClient, world: World) -> None:
    data = json.dumps({"codes": [{"uri": world.unit("claims", 4).uri(), "codeHash": "0x" + "22" * 32}]}).encode()
    headers = {**sign_request(MANUFACTURER.key, world.client.chain_id, "POST", "/api/v1/claim-codes", data, audience=node_audience(client)), "Content-Type": "application/json"}
    assert client.post("/api/v1/claim-codes", content=data, headers=headers).status_code == 200
    replay = client.post("/api/v1/claim-codes", content=data, headers=headers)
    assert replay.status_code == 401 and "already used" in replay.json()["message"]
