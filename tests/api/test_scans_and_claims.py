"""Scans through the API: the unit's clone suspicion on the verdict (regions only from the
operator's trusted proxy), unit states (claims, decommissioning), manufacturers' alerts behind
signed requests."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import orjson
import pytest
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient
from pydantic import ValidationError

from api.auth import sign_claim, sign_request
from api.main import create_app
from api.settings import ApiSettings
from waymark.devnet.consortium import devnet_account
from api.readmodel.claim_codes import claim_code_hash, new_claim_code
from tests.api.conftest import JSON, path_of
from tests.api.world import World, api_settings, node_audience
from tests.node.story import CARRIER, GTIN, MANUFACTURER

MS_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")  # how the API writes every time
COUNTRY = "X-Country"  # the header the operator's reverse proxy sets
PROXY = "10.20.30.40"


def app_behind_proxy(world: World, folder: Path, peer: str) -> TestClient:
    """The API configured to believe COUNTRY from PROXY only, asked from `peer`."""
    settings = api_settings(world, folder, public_url="https://scan.example", trusted_region_header=COUNTRY, trusted_proxies=[PROXY])
    app = create_app(settings, world.chain_settings, world.database)
    return TestClient(app, base_url="https://scan.example", raise_server_exceptions=False, client=(peer, 50000))


@pytest.fixture(scope="module")
def proxied(world: World, api_folder: Path) -> Iterator[TestClient]:
    """Requests arriving through the operator's proxy."""
    with app_behind_proxy(world, api_folder, PROXY) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def stranger(world: World, api_folder: Path) -> Iterator[TestClient]:
    """Requests arriving straight from a client, not through the proxy (another API process, same database)."""
    with app_behind_proxy(world, api_folder, "198.51.100.7") as test_client:
        yield test_client


def scan(client: TestClient, path: str, device: str, region: str | None = None) -> dict[str, Any]:
    headers = {**JSON, "Waymark-Device": device}
    if region:
        headers[COUNTRY] = region
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


def test_a_code_scanned_in_two_countries_minutes_apart_is_suspicious(proxied: TestClient, world: World) -> None:
    path = path_of(world, "clones", 1)
    assert scan(proxied, path, "shop-nl", "NL")["verdict"] == "genuine"
    passport = scan(proxied, path, "shop-cn", "cn")
    assert passport["verdict"] == "suspicious"
    assert [f["code"] for f in passport["scans"]["flags"]] == ["implausible_places"]
    assert "scanned in NL and CN" in passport["scans"]["flags"][0]["message"]
    assert passport["scans"]["regionsInWindow"] == ["CN", "NL"]


def test_a_code_scanned_too_often_by_one_phone_alerts_its_maker_without_changing_the_verdict(client: TestClient, world: World) -> None:
    # too_many_scans became alert-only: one client alone trips it, and the verdict is now the unit's for everyone.
    path = path_of(world, "clones", 2)
    verdicts = [scan(client, path, "same-phone")["verdict"] for _ in range(31)]
    assert verdicts == ["genuine"] * 31
    alerts = signed_get(client, world, f"/api/v1/alerts?gtin={GTIN}&limit=1000").json()["alerts"]
    mine = [a for a in alerts if a["unit"] == world.unit("clones", 2).canonical_uri]
    assert [a["rule"] for a in mine] == ["too_many_scans"] and mine[0]["suspectedUntil"] is None


# --- regions only from the trusted proxy; one verdict for every scanner --------------------------------


def test_a_region_header_from_a_client_that_is_not_the_proxy_is_ignored(stranger: TestClient, client: TestClient, world: World) -> None:
    path = path_of(world, "clones", 5)
    spoofed = {**JSON, COUNTRY: "NL", "Waymark-Region": "NL"}
    assert stranger.get(path, headers={**spoofed, "Waymark-Device": "a"}).json()["verdict"] == "genuine"
    other = stranger.get(path + "?region=CN", headers={**spoofed, COUNTRY: "CN", "Waymark-Region": "CN", "Waymark-Device": "b"}).json()
    assert other["verdict"] == "genuine" and other["scans"]["regionsInWindow"] == []
    # Nor does an API with no trusted proxy configured believe anyone.
    third = client.get(path, headers={**spoofed, COUNTRY: "BR", "Accept-Language": "pt-BR", "Waymark-Device": "c"}).json()
    assert third["verdict"] == "genuine" and third["scans"]["regionsInWindow"] == []


def test_the_verdict_is_the_same_for_every_scanner_and_every_reader(proxied: TestClient, world: World) -> None:
    unit = world.unit("clones", 6)
    path = path_of(world, "clones", 6)
    scan(proxied, path, "shop-nl", "NL")
    flagged = scan(proxied, path, "market-br", "BR")
    assert flagged["verdict"] == "suspicious"
    no_region = scan(proxied, path, "phone-without-region")
    first = scan(proxied, path, "shop-nl")  # the first scanner again, its country unknown this time
    read = proxied.get("/api/v1/passport", params={"uri": unit.uri()}).json()
    for seen in (no_region, first, read):
        assert seen["verdict"] == "suspicious"
        assert seen["scans"]["flags"] == flagged["scans"]["flags"]
        assert seen["scans"]["suspectedUntil"] == flagged["scans"]["suspectedUntil"] is not None


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
    # One answer, one spelling: the claim's answer is the passport's ownership section, times in milliseconds.
    assert mine["ownership"] == ok.json() and MS_TIME.fullmatch(ok.json()["claimedAt"])
    # One or two other devices are a household or a gift as often as a copy: they alert the maker only.
    for other in ("partner-phone", "gift-recipient"):
        assert scan(client, path_of(world, "claims", 0), other)["verdict"] == "genuine"
    theirs = scan(client, path_of(world, "claims", 0), "market-stall")
    assert theirs["verdict"] == "suspicious"
    assert [f["code"] for f in theirs["scans"]["flags"]] == ["scanned_after_claim"]
    assert theirs["ownership"]["claimed"] and not theirs["ownership"]["byThisDevice"] and theirs["ownership"]["state"] == "claimed"
    # The suspicion is the unit's: its owner now sees it too, and why.
    owners = scan(client, path_of(world, "claims", 0), "buyer-phone")
    assert owners["verdict"] == "suspicious" and owners["ownership"]["byThisDevice"]
    assert [f["code"] for f in owners["scans"]["flags"]] == ["scanned_after_claim"]
    status = client.get("/api/v1/ownership", params={"uri": unit.uri()}, headers={"Waymark-Device": "buyer-phone"})
    assert status.json() == owners["ownership"]


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


def test_the_manufacturer_reads_alerts_about_its_products(proxied: TestClient, world: World) -> None:
    client = proxied
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


def test_an_alert_says_which_rule_which_scans_and_regions_and_when(proxied: TestClient, world: World) -> None:
    unit = world.unit("clones", 7)
    path = path_of(world, "clones", 7)
    before = time.time()
    scan(proxied, path, "shop-nl", "NL")
    scan(proxied, path, "market-br", "BR")
    alerts = signed_get(proxied, world, f"/api/v1/alerts?gtin={GTIN}&limit=1000").json()["alerts"]
    (alert,) = [a for a in alerts if a["unit"] == unit.canonical_uri]
    assert alert["rule"] == "implausible_places" and "scanned in NL and BR" in alert["detail"]
    assert MS_TIME.fullmatch(alert["createdAt"])
    created = time.mktime(time.strptime(alert["createdAt"], "%Y-%m-%dT%H:%M:%S.%fZ")) - time.timezone
    assert before - 1 <= created <= time.time() + 1
    evidence = alert["evidence"]
    assert [s["region"] for s in evidence["scans"]] == ["NL", "BR"]
    assert len({s["device"] for s in evidence["scans"]}) == 2
    assert evidence["devicesPerRegion"] == {"BR": 1, "NL": 1} and evidence["state"] == "active"
    assert alert["suspectedUntil"] is not None and alert["suspectedUntil"] > alert["createdAt"]


# --- decommissioning ---------------------------------------------------------------------------------------


def test_a_decommissioned_unit_scanned_by_any_device_is_suspicious_and_says_why(client: TestClient, world: World) -> None:
    unit = world.unit("edges", 0)
    path = path_of(world, "edges", 0)
    assert scan(client, path, "shop")["ownership"]["state"] == "active"
    body = {"uri": unit.uri(), "reason": "stolen"}
    carrier = signed_post(client, world, "/api/v1/units/decommission", body, account=CARRIER)
    assert carrier.status_code == 403
    unsigned = client.post("/api/v1/units/decommission", json=body)
    assert unsigned.status_code == 401
    bad = signed_post(client, world, "/api/v1/units/decommission", {"uri": unit.uri(), "reason": "lost-interest"})
    assert bad.status_code == 422 and "reason" in bad.text
    done = signed_post(client, world, "/api/v1/units/decommission", body)
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "decommissioned" and done.json()["decommissionReason"] == "stolen"
    twice = signed_post(client, world, "/api/v1/units/decommission", {"uri": unit.uri(), "reason": "destroyed"})
    assert twice.status_code == 409 and twice.json()["code"] == "already_decommissioned"
    seen = scan(client, path, "market-stall")
    assert seen["verdict"] == "suspicious" and seen["ownership"]["state"] == "decommissioned"
    assert seen["ownership"] == done.json() and MS_TIME.fullmatch(done.json()["decommissionedAt"])
    assert done.json()["decommissionedAt"] in seen["scans"]["flags"][0]["message"]
    assert [f["code"] for f in seen["scans"]["flags"]] == ["scanned_after_decommission"]
    assert "decommissioned it (stolen)" in seen["scans"]["flags"][0]["message"]
    alerts = signed_get(client, world, f"/api/v1/alerts?gtin={GTIN}&limit=1000").json()["alerts"]
    (alert,) = [a for a in alerts if a["unit"] == unit.canonical_uri]
    assert alert["rule"] == "scanned_after_decommission" and alert["evidence"]["decommissionReason"] == "stolen"


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


def test_the_old_region_header_setting_is_refused_and_names_what_replaces_it() -> None:
    with pytest.raises(ValidationError, match="WAYMARK_API_TRUSTED_REGION_HEADER"):
        ApiSettings(region_header="CF-IPCountry")
