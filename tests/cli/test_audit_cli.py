"""`waymark audit` as an auditor runs it: verify prints the summary table and writes the JSON
and HTML reports; exit code 0 when clean, 6 when discrepancies are found (a tampered database
or bundle), 2 on bad usage; export writes a bundle that verifies with only an RPC URL."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from sqlalchemy import create_engine, distinct, func, select, text

from node.db import Event
from node.protocol.event_hash import digest_from_hash
from tests.audit.test_bundle import AuditWorld, own_audit_world
from tests.cli.test_cli import assert_clean_failure, run_cli
from tests.cli.test_cli_mistakes import fails
from tests.node.story import GTIN, LOT


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditWorld]:
    with own_audit_world(tmp_path_factory.mktemp("audit-cli")) as built:
        yield built


def chain_args(world: AuditWorld) -> list[str]:
    return ["--rpc-url", world.anvil.rpc_url, "--chain-id", str(world.anvil.chain_id),
            "--deployment", str(world.chain_settings.deployment_file)]


def test_verify_of_a_clean_database_prints_the_table_writes_both_reports_and_exits_0(world: AuditWorld, tmp_path: Path) -> None:
    result = run_cli("audit", "verify", *chain_args(world), "--db", world.database.url,
                     "--json", str(tmp_path / "r.json"), "--html", str(tmp_path / "r.html"), "--workers", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    for line in ("Events verified", "Roots checked against the chain", "Hash mismatch", "Escrow transition without backing", "no discrepancies"):
        assert line in result.stdout, result.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["schema"] == "waymark.audit.report/1" and report["ok"] is True
    assert report["checked"]["events"] == 24 and report["checked"]["escrowOrders"] == 1
    page = (tmp_path / "r.html").read_text()
    assert "No discrepancies" in page and f"Chain id</th><td>{world.anvil.chain_id}" in page


def test_verify_of_a_tampered_database_lists_the_discrepancy_and_exits_6(world: AuditWorld, tmp_path: Path) -> None:
    copy = tmp_path / "copy.sqlite3"
    with create_engine(world.database.url).connect() as conn:  # a consistent copy of the live file
        conn.exec_driver_sql(f"VACUUM INTO '{copy}'")
    engine = create_engine(f"sqlite:///{copy}")
    with engine.begin() as conn:
        row = conn.execute(text("SELECT id, body FROM events WHERE biz_step = 'inspecting' ORDER BY id LIMIT 1")).one()
        body = orjson.loads(row.body)
        body["eventTime"] = body["eventTime"][:-4] + "999Z"
        conn.execute(text("UPDATE events SET body = :b WHERE id = :i"), {"b": orjson.dumps(body).decode(), "i": row.id})
    engine.dispose()
    result = run_cli("audit", "verify", *chain_args(world), "--db", f"sqlite:///{copy}",
                     "--json", str(tmp_path / "r.json"), "--workers", "1")
    assert result.returncode == 6, result.stdout + result.stderr
    assert "hash_mismatch" in result.stdout and "1 discrepancies" in result.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["ok"] is False and report["byKind"]["hash_mismatch"] == 1
    assert [d["subject"] for d in report["discrepancies"]] == [world.ids_a[1]]


def test_export_then_verify_the_bundle_with_only_an_rpc_url(world: AuditWorld, tmp_path: Path) -> None:
    bundle = tmp_path / "lot.zip"
    exported = run_cli("audit", "export", "--lot", GTIN, LOT, "--out", str(bundle), *chain_args(world), "--db", world.database.url)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    # Each organisation's node anchors its own events (the inspector's by its host): one root each.
    with world.db.session() as s:
        roots = s.scalar(select(func.count(distinct(Event.batch_id))).where(
            Event.digest.in_([digest_from_hash(i) for i in world.ids_a])))
    assert roots and roots > 1
    assert f"11 event(s) under {roots} root(s)" in exported.stdout
    # No deployment file, no database, no chain id: the bundle says which chain and contracts.
    result = run_cli("audit", "verify", "--bundle", str(bundle), "--rpc-url", world.anvil.rpc_url,
                     "--html", str(tmp_path / "b.html"), env={"WAYMARK_DB_URL": "sqlite:////nonexistent/db"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no discrepancies" in result.stdout


def test_verify_of_an_edited_bundle_names_the_file_and_the_discrepancy_and_exits_6(world: AuditWorld, tmp_path: Path) -> None:
    bundle = tmp_path / "lot.zip"
    assert run_cli("audit", "export", "--lot", GTIN, LOT, "--out", str(bundle), *chain_args(world), "--db", world.database.url).returncode == 0
    with zipfile.ZipFile(bundle) as archive:
        contents = {n: archive.read(n) for n in archive.namelist()}
    events = orjson.loads(contents["events.json"])
    events[1]["attestation"]["signer"] = world.env.outsider.address  # claim someone else signed it
    contents["events.json"] = orjson.dumps(events)
    edited = tmp_path / "edited.zip"
    with zipfile.ZipFile(edited, "w") as archive:
        for name, data in contents.items():
            archive.writestr(name, data)
    result = run_cli("audit", "verify", "--bundle", str(edited), "--rpc-url", world.anvil.rpc_url,
                     "--json", str(tmp_path / "r.json"), "--html", str(tmp_path / "r.html"))
    assert result.returncode == 6, result.stdout + result.stderr
    assert "bundle altered: events.json: sha-256" in result.stdout
    assert "signature_invalid" in result.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["bundle"]["manifestProblems"][0].startswith("events.json: sha-256")
    assert report["byKind"]["signature_invalid"] == 1
    assert "The bundle was altered after export" in (tmp_path / "r.html").read_text()


def test_export_usage_errors_exit_2_with_one_message(world: AuditWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Run through the console script's entry point in this process, as tests/cli/test_cli_mistakes.py
    # runs mistakes (a subprocess per case takes seconds on a loaded machine).
    fails(capsys, 2, "audit", "export", "--product", GTIN, "--order", "0x01", *chain_args(world), "--db", world.database.url,
          says=("name exactly one of",))
    fails(capsys, 2, "audit", "export", "--from", "2025-01-01T00:00:00Z", *chain_args(world), "--db", world.database.url,
          says=("a time range needs both from and to",))
    fails(capsys, 1, "audit", "export", "--lot", GTIN, "NOPE", "--out", str(tmp_path / "x.zip"), *chain_args(world),
          "--db", world.database.url, says=("the database holds no anchored event for lot NOPE",))


def test_verify_of_a_bundle_of_another_chain_exits_3(world: AuditWorld, tmp_path: Path) -> None:
    bundle = tmp_path / "lot.zip"
    assert run_cli("audit", "export", "--lot", GTIN, LOT, "--out", str(bundle), *chain_args(world), "--db", world.database.url).returncode == 0
    result = run_cli("audit", "verify", "--bundle", str(bundle), "--rpc-url", world.anvil.rpc_url, "--chain-id", "2024")
    assert_clean_failure(result, 3, f"is of chain {world.anvil.chain_id}, not of chain 2024")
