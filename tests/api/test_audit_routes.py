"""Auditor routes: only signed requests by an AUDITOR organisation's account get the report or a
bundle (401 unsigned, 403 others); the report is cached, not re-run per request; a downloaded
bundle verifies against the chain alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient

from api.auth import sign_request
from api.main import create_app
from api.settings import ApiSettings
from node.audit import audit
from node.audit.bundle import BundleEvidence
from node.chain.client import ChainClient
from node.escrow import order_key
from tests.api.world import node_audience
from tests.audit.test_bundle import AuditWorld, own_audit_world
from tests.node.escrow_env import member
from tests.node.story import GTIN, LOT, MANUFACTURER

AUDITOR = member(7)  # the demo consortium's auditor organisation (Fjord Assurance AS)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditWorld]:
    with own_audit_world(tmp_path_factory.mktemp("audit-api")) as built:
        yield built


@pytest.fixture(scope="module")
def client(world: AuditWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    folder = tmp_path_factory.mktemp("api")
    settings = ApiSettings(device_salt_file=folder / "salt", rate_limit_per_minute=100_000, rate_limit_burst=10_000)
    with TestClient(create_app(settings, world.chain_settings, world.database), raise_server_exceptions=False) as test_client:
        yield test_client


def signed_get(client: TestClient, world: AuditWorld, path: str, account: LocalAccount = AUDITOR) -> Any:
    return client.get(path, headers=sign_request(account.key, world.client.chain_id, "GET", path, audience=node_audience(client)))


@pytest.mark.parametrize("path", ["/api/v1/audit/report", f"/api/v1/audit/bundle?product={GTIN}"])
def test_unsigned_requests_get_401_and_non_auditors_403(client: TestClient, world: AuditWorld, path: str) -> None:
    unsigned = client.get(path)
    assert unsigned.status_code == 401 and unsigned.json()["code"] == "unauthenticated"
    manufacturer = signed_get(client, world, path, MANUFACTURER)
    assert manufacturer.status_code == 403 and manufacturer.json()["code"] == "forbidden"
    assert "AUDITOR" in manufacturer.json()["message"]
    outsider = signed_get(client, world, path, world.env.outsider)
    assert outsider.status_code == 403
    forged = client.get(path, headers={**sign_request(MANUFACTURER.key, world.client.chain_id, "GET", path, audience=node_audience(client)),
                                       "Waymark-Account": AUDITOR.address})
    assert forged.status_code == 401


def test_an_auditor_gets_the_report_and_it_is_cached_not_rerun(client: TestClient, world: AuditWorld) -> None:
    first = signed_get(client, world, "/api/v1/audit/report")
    assert first.status_code == 200, first.text
    report = first.json()
    assert report["schema"] == "waymark.audit.report/1" and report["ok"] is True
    assert report["checked"]["events"] == 24 and report["chainId"] == world.client.chain_id
    again = signed_get(client, world, "/api/v1/audit/report?refresh=true")  # too soon to run another
    assert again.json()["startedAt"] == report["startedAt"] and again.json()["elapsedSeconds"] == report["elapsedSeconds"]
    page = signed_get(client, world, "/api/v1/audit/report?format=html")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "No discrepancies" in page.text


def test_an_auditor_downloads_a_bundle_that_verifies_against_the_chain(client: TestClient, world: AuditWorld, tmp_path: Path) -> None:
    response = signed_get(client, world, f"/api/v1/audit/bundle?order={order_key(world.order.order_id)}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"].startswith('attachment; filename="evidence-')
    (tmp_path / "order.zip").write_bytes(response.content)
    evidence = BundleEvidence(tmp_path / "order.zip")
    assert evidence.manifest_problems == [] and evidence.orders() == {world.order.order_id}
    report = audit(ChainClient(world.anvil.rpc_url, expected_chain_id=evidence.bundle.chain_id),
                   evidence.bundle.deployment, evidence, workers=1)
    assert report.ok, report.discrepancies
    assert report.checked.events == 11 and report.checked.escrow_signatures == 2

    lot = signed_get(client, world, f"/api/v1/audit/bundle?product={GTIN}&lot={LOT}")
    assert lot.status_code == 200 and len(lot.content) > 1000


def test_bundle_selection_errors_are_json_with_code_and_field(client: TestClient, world: AuditWorld) -> None:
    nothing = signed_get(client, world, "/api/v1/audit/bundle")
    assert nothing.status_code == 400 and nothing.json()["code"] == "invalid_selection"
    both = signed_get(client, world, f"/api/v1/audit/bundle?product={GTIN}&order=0x01")
    assert both.status_code == 400 and both.json()["field"] == "order"
    lot_alone = signed_get(client, world, f"/api/v1/audit/bundle?lot={LOT}")
    assert lot_alone.status_code == 400 and lot_alone.json()["field"] == "lot"
    half = signed_get(client, world, "/api/v1/audit/bundle?from=2025-01-01T00:00:00Z")
    assert half.status_code == 400 and half.json()["field"] == "to"
    bad_time = signed_get(client, world, "/api/v1/audit/bundle?from=yesterday&to=today")
    assert bad_time.status_code == 400 and bad_time.json()["field"] == "from"
    empty = signed_get(client, world, f"/api/v1/audit/bundle?product={GTIN}&lot=NOPE")
    assert empty.status_code == 404 and empty.json()["code"] == "nothing_to_export"
    unknown_order = signed_get(client, world, "/api/v1/audit/bundle?order=0x01")
    assert unknown_order.status_code in (400, 404) and unknown_order.json()["code"] != "internal_error"


def test_the_audit_routes_are_in_the_openapi_spec(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    report = spec["paths"]["/api/v1/audit/report"]["get"]
    assert {"401", "403"} <= set(report["responses"])
    assert "/api/v1/audit/bundle" in spec["paths"]
