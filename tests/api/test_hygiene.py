"""API hygiene: rate limits, structured errors without stack traces, health, metrics, docs."""

from __future__ import annotations

import re

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from node.chain.errors import RpcUnreachable
from tests.api.conftest import JSON, path_of
from tests.api.world import World, api_settings


@pytest.fixture
def limited(world: World, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(api_settings(world, tmp_path, rate_limit_per_minute=1, rate_limit_burst=3), world.chain_settings, world.database)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_public_scan_routes_are_rate_limited_per_client(limited: TestClient, world: World) -> None:
    path = path_of(world, "edges", 4)
    answers = [limited.get(path, headers=JSON) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[3].json()["code"] == "rate_limited"
    assert int(answers[3].headers["retry-after"]) >= 1
    assert limited.get("/api/v1/scan", params={"uri": path}).status_code == 429
    other_client = limited.get(path, headers={**JSON, "X-Forwarded-For": "10.0.0.9"})
    assert other_client.status_code == 429  # X-Forwarded-For is not trusted unless configured
    assert limited.get("/health/live").status_code == 200  # not a scan route
    html = limited.get(path, headers={"Accept": "text/html"})
    assert html.status_code == 429 and html.headers["content-type"].startswith("text/html")


def test_behind_a_trusted_proxy_clients_are_told_apart(world: World, tmp_path: Path) -> None:
    settings = api_settings(world, tmp_path, rate_limit_per_minute=1, rate_limit_burst=1, trust_forwarded_for=True)
    with TestClient(create_app(settings, world.chain_settings, world.database)) as client:
        path = path_of(world, "edges", 4)
        assert client.get(path, headers={**JSON, "X-Forwarded-For": "10.0.0.1"}).status_code == 200
        assert client.get(path, headers={**JSON, "X-Forwarded-For": "10.0.0.2"}).status_code == 200
        assert client.get(path, headers={**JSON, "X-Forwarded-For": "10.0.0.1"}).status_code == 429


def test_an_unexpected_failure_is_a_500_with_a_reference_and_no_trace(client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]

    def broken(_identifier: object) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(services.passports.builder, "build", broken)
    response = client.get("/api/v1/passport", params={"uri": world.unit("edges", 5).uri()})
    assert response.status_code == 500
    body = response.json()
    assert body["code"] == "internal_error" and body["message"].startswith("internal error; reference ")
    assert "secret" not in response.text and "Traceback" not in response.text


def test_a_chain_outage_is_a_503(client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]

    def down(_identifier: object) -> None:
        raise RpcUnreachable("http://chain.invalid", "ConnectionError")

    monkeypatch.setattr(services.passports.builder, "build", down)
    response = client.get(path_of(world, "edges", 6), headers=JSON)
    assert response.status_code == 503 and response.json()["code"] == "rpc_unreachable"


def test_unknown_routes_and_methods_are_structured(client: TestClient) -> None:
    assert client.get("/nowhere").json() == {"code": "not_found", "message": "Not Found"}
    assert client.delete("/health").json()["code"] == "method_not_allowed"
    bad = client.post("/api/v1/ownership/claims", content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_request"


def test_health_and_metrics(client: TestClient, world: World) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["chainId"] == 31337 and health["database"] == "ok"
    client.get(path_of(world, "edges", 7), headers=JSON)
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'waymark_api_scans_total{verdict="genuine"}' in text
    assert 'waymark_api_request_seconds_bucket{le="0.025",route="/01/{gtin}/..."}' in text
    assert "waymark_api_passport_cache_entries" in text


def builds_total(client: TestClient) -> float:
    match = re.search(r"^waymark_api_passport_builds_total (\S+)$", client.get("/metrics").text, re.M)
    assert match is not None
    return float(match.group(1))


def test_metrics_count_the_passports_built(client: TestClient, world: World) -> None:
    unit = world.unit("edges", 5)
    client.app.state.services.passports.invalidate(unit.canonical_uri)  # type: ignore[attr-defined]
    before = builds_total(client)
    assert client.get(path_of(world, "edges", 5), headers=JSON).status_code == 200  # a cache miss: built
    after = builds_total(client)
    assert after >= before + 1
    assert builds_total(client) == after  # scraping again counts nothing twice


def test_openapi_documents_every_route_and_error_shape(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/01/{gtin}/10/{lot}/21/{serial}", "/00/{sscc}", "/api/v1/scan", "/api/v1/alerts", "/api/v1/ownership/claims", "/health", "/metrics"} <= set(spec["paths"])
    resolver = spec["paths"]["/01/{gtin}/21/{serial}"]["get"]["responses"]
    # Browsers are sent (307) to the default link, the page at /passport/...; the resolver's own 200s are data.
    assert set(resolver["200"]["content"]) == {"application/json", "application/linkset+json"}
    assert "307" in resolver
    assert resolver["404"]["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/UnknownCodeBody"
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    assert client.get("/docs").status_code == 200


def test_config_tells_the_page_where_to_verify(client: TestClient, world: World) -> None:
    config = client.get("/api/v1/config").json()
    assert config["rpcUrl"] == world.anvil.rpc_url
    assert config["consortiumRegistry"] == world.deployment.address("ConsortiumRegistry")
