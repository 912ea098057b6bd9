"""Evidence bundles on a real Anvil and SQLite: exported for a product, a lot, an order and a
time range; verified clean with nothing but an RPC endpoint; an edited file caught by the
manifest and by the engine; a chain that never saw the roots reports them by kind.

`audit_world` (also used by the CLI and API tests): the demo consortium with TradeEscrow and
test stablecoins, the story's product registered, two lots taken through capture and anchoring
(tests/node/story.py, commissioning with ILMD lot numbers), and one escrow order for lot A
whose SHIPPED milestone the relayer reached from two carriers' signatures.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from node.audit import DiscrepancyKind, audit
from node.audit.bundle import (
    Bundle,
    BundleEvidence,
    Lot,
    MalformedEvidenceBundle,
    NothingToExport,
    OrderSel,
    Product,
    TimeRange,
    export_bundle,
    make_selector,
)
from node.chain.client import ChainClient
from node.chain.deploy import Deployment
from node.chain.build import build
from node.db import Database
from waymark.devnet.anvil import AnvilProcess
from waymark.ports import free_port
from node.escrow import OrderTerms, order_key
from node.protocol.crypto import keccak256
from node.protocol.event_hash import event_hash
from node.relayer.model import SignatureIn, Status
from node.relayer.service import Relayer
from node.member.runtime import NodeRuntime
from tests.helpers import fast_node_settings
from node.settings import ChainSettings, DatabaseSettings
from tests.api.world import register_product
from tests.node.escrow_env import EscrowEnv, escrow_env, member
from tests.audit.conftest import capture_and_anchor
from tests.node.story import GTIN, LOT, Story, lot_story, story_events

LOT_B = "L2025-08"
EMPTY_CONTAINER_DEPARTS = 10  # story_events index of the empty container's departure: no unit's history


@dataclass
class AuditWorld:
    anvil: AnvilProcess
    folder: Path
    env: EscrowEnv
    chain_settings: ChainSettings
    database: DatabaseSettings
    db: Database
    lot_a: Story
    lot_b: Story
    ids_a: list[str]
    ids_b: list[str]
    order: OrderTerms

    @property
    def client(self) -> ChainClient:
        return self.env.chain

    @property
    def deployment(self) -> Deployment:
        return self.env.deployment


def lot_events(story: Story, lot: str) -> list[tuple[dict[str, Any], Any]]:
    events = story_events(story)
    events[0][0]["ilmd"] = {"cbvmda:lotNumber": lot}  # commissioning names the lot, as the oracle does
    return events


def build_audit_world(anvil: AnvilProcess, folder: Path) -> AuditWorld:
    client = ChainClient(anvil.rpc_url, expected_chain_id=anvil.chain_id)
    env = escrow_env(client, folder)
    register_product(client, env.deployment)
    chain_settings = ChainSettings(rpc_url=anvil.rpc_url, chain_id=anvil.chain_id, deployments_dir=folder / "deployments")
    database = DatabaseSettings(url=f"sqlite:///{folder / 'waymark.sqlite3'}")
    db = Database(database.url)
    db.migrate()
    node = fast_node_settings(max_batch_delay=0.05)
    runtime = NodeRuntime(node, chain_settings, db, client, env.deployment)
    # Dated an hour ahead: a chain deployed later in the module (the one without the roots) must
    # also have granted the roles by the event times, however long the tests before it took.
    start = int(client.w3.eth.get_block("latest")["timestamp"]) + 3600
    lot_a, lot_b = lot_story(start), lot_story(start + 100)
    events_a, events_b = lot_events(lot_a, LOT), lot_events(lot_b, LOT_B)
    capture_and_anchor(runtime, events_a)  # each organisation's events in a root of its own, per lot
    capture_and_anchor(runtime, events_b)
    # An order for lot A (its shipmentRef names the lot), shipped by 2 of 3 carriers through the relayer.
    terms = env.open(env.terms(shipment_ref=keccak256(Lot(GTIN, LOT).class_uri.encode())))
    relayer = Relayer(db, env.escrow, member(15), min_lifetime=60)
    for carrier in env.carriers[:2]:
        sig = env.sign(carrier, terms, 0)
        outcome = relayer.receive(SignatureIn(terms.order_id, 0, sig.signer, sig.signature, sig.deadline))
    assert outcome.status is Status.REACHED, outcome
    return AuditWorld(anvil, folder, env, chain_settings, database, db, lot_a, lot_b,
                      [event_hash(e) for e, _ in events_a], [event_hash(e) for e, _ in events_b], terms)


@contextmanager
def own_audit_world(folder: Path) -> Iterator[AuditWorld]:
    """An audit world on an Anvil of its own (tests may take its chain's snapshots freely)."""
    build()
    anvil = AnvilProcess(port=free_port()).start()
    try:
        world = build_audit_world(anvil, folder)
        yield world
        world.db.dispose()
    finally:
        anvil.stop()


@pytest.fixture(scope="module")
def audit_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditWorld]:
    with own_audit_world(tmp_path_factory.mktemp("audit-world")) as world:
        yield world


def event_ids(bundle: Bundle) -> list[str]:
    return [str(e["eventId"]) for e in bundle.events]


def without_empty_departure(ids: list[str]) -> set[str]:
    return set(ids) - {ids[EMPTY_CONTAINER_DEPARTS]}


def export(world: AuditWorld, selector: Any, path: Path) -> Bundle:
    export_bundle(world.db, world.client, world.deployment, selector, path)
    return Bundle(path)


# ---- export ------------------------------------------------------------------------------------


def test_a_product_bundle_holds_every_unit_event_and_their_containers_events(audit_world: AuditWorld, tmp_path: Path) -> None:
    bundle = export(audit_world, Product(GTIN), tmp_path / "product.zip")
    assert set(event_ids(bundle)) == without_empty_departure(audit_world.ids_a) | without_empty_departure(audit_world.ids_b)
    assert bundle.problems == []
    # Per lot, each of the four organisations anchored its own events: 2 x 4 roots.
    assert len(bundle.roots) == 8 and all(r["blockTime"] and r["txHash"].startswith("0x") for r in bundle.roots)
    assert sorted(r["orgId"] for r in bundle.roots) == [1, 1, 2, 2, 3, 3, 4, 4]
    assert bundle.chain_id == audit_world.client.chain_id
    assert bundle.deployment.address("ProvenanceRegistry") == audit_world.deployment.address("ProvenanceRegistry")
    assert bundle.escrow["orders"] == []
    names = set(zipfile.ZipFile(tmp_path / "product.zip").namelist())
    assert names == {"manifest.json", "chain.json", "events.json", "roots.json", "escrow.json"}
    assert bundle.manifest["version"] == 1 and set(bundle.manifest["files"]) == names - {"manifest.json"}


def test_a_lot_bundle_holds_that_lot_only_with_case_pallet_and_container_events(audit_world: AuditWorld, tmp_path: Path) -> None:
    bundle = export(audit_world, Lot(GTIN, LOT_B), tmp_path / "lot.zip")
    assert set(event_ids(bundle)) == without_empty_departure(audit_world.ids_b)
    shipping = next(e for e in bundle.events if e["event"].get("bizStep") == "shipping")
    assert shipping["event"]["epcList"] == [audit_world.lot_b.container.canonical_uri]  # the container's, not a unit's
    first = bundle.events[0]
    assert set(first) >= {"eventId", "event", "attestation", "merkle", "anchor"}
    assert set(first["attestation"]) == {"signer", "signature", "subject", "eventTime", "role"}
    assert set(first["merkle"]) == {"root", "leafIndex", "proof", "batchSize"}
    # The lot's roots, one per organisation that attested its events, and only those.
    assert sorted(r["root"] for r in bundle.roots) == sorted({e["merkle"]["root"] for e in bundle.events})
    assert len(bundle.roots) == 4


def test_an_order_bundle_holds_its_terms_attestations_and_shipment(audit_world: AuditWorld, tmp_path: Path) -> None:
    bundle = export(audit_world, OrderSel(audit_world.order.order_id), tmp_path / "order.zip")
    (order,) = bundle.escrow["orders"]
    assert order["orderId"] == order_key(audit_world.order.order_id)
    assert order["terms"] == audit_world.order.to_json()
    assert sorted(a["signer"] for a in order["attestations"]) == sorted(c.address for c in audit_world.env.carriers[:2])
    assert [(s["milestone"], s["status"]) for s in order["submissions"]] == [(0, "reached")]
    assert set(event_ids(bundle)) == without_empty_departure(audit_world.ids_a)  # the lot its shipmentRef names
    assert BundleEvidence(tmp_path / "order.zip").orders() == {audit_world.order.order_id}


def test_a_time_range_bundle_holds_the_events_of_those_times(audit_world: AuditWorld, tmp_path: Path) -> None:
    start = audit_world.lot_a.start
    bundle = export(audit_world, make_selector(time_from=str(start + 1), time_to=str(start + 3)), tmp_path / "range.zip")
    assert event_ids(bundle) == audit_world.ids_a[:3]


def test_nothing_to_export_is_said_by_name(audit_world: AuditWorld, tmp_path: Path) -> None:
    with pytest.raises(NothingToExport, match="lot NOPE of product 09521234543213"):
        export_bundle(audit_world.db, audit_world.client, audit_world.deployment, Lot(GTIN, "NOPE"), tmp_path / "x.zip")
    assert not (tmp_path / "x.zip").exists()
    with pytest.raises(NothingToExport):
        export_bundle(audit_world.db, audit_world.client, audit_world.deployment, TimeRange(0, 1000), tmp_path / "x.zip")


# ---- verify ------------------------------------------------------------------------------------


def test_a_bundle_verifies_clean_with_only_an_rpc_endpoint(audit_world: AuditWorld, tmp_path: Path) -> None:
    path = tmp_path / "order.zip"
    export_bundle(audit_world.db, audit_world.client, audit_world.deployment, OrderSel(audit_world.order.order_id), path)
    evidence = BundleEvidence(path)
    # Nothing but the RPC URL: the chain id and the contracts come from the bundle.
    client = ChainClient(audit_world.anvil.rpc_url, expected_chain_id=evidence.bundle.chain_id)
    report = audit(client, evidence.bundle.deployment, evidence, workers=1)
    assert report.ok, report.discrepancies
    assert report.checked.events == 11
    assert report.checked.batches == 4  # the lot's roots: one per organisation that attested its events


def rewrite(path: Path, name: str, edit: Any) -> None:
    """Edit one file of a bundle in place, leaving the manifest as it was."""
    with zipfile.ZipFile(path) as archive:
        contents = {n: archive.read(n) for n in archive.namelist()}
    contents[name] = orjson.dumps(edit(orjson.loads(contents[name])))
    with zipfile.ZipFile(path, "w") as archive:
        for n, data in contents.items():
            archive.writestr(n, data)


def test_an_edited_event_in_a_bundle_is_caught_by_the_manifest_and_by_the_audit(audit_world: AuditWorld, tmp_path: Path) -> None:
    path = tmp_path / "lot.zip"
    export_bundle(audit_world.db, audit_world.client, audit_world.deployment, Lot(GTIN, LOT), path)

    def move_inspection(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        inspection = next(e for e in events if e["event"].get("bizStep") == "inspecting")
        inspection["event"]["eventTime"] = inspection["event"]["eventTime"][:-4] + "999Z"  # a later time, same second
        return events

    rewrite(path, "events.json", move_inspection)
    evidence = BundleEvidence(path)
    (problem,) = evidence.manifest_problems
    assert problem.file == "events.json" and "does not match the manifest" in str(problem)
    report = audit(audit_world.client, evidence.bundle.deployment, evidence, workers=1)
    assert [(d.kind, d.subject) for d in report.discrepancies] == [(DiscrepancyKind.HASH_MISMATCH, audit_world.ids_a[1])]


def test_a_bundle_against_a_chain_without_its_roots_reports_root_not_on_chain(audit_world: AuditWorld, tmp_path: Path) -> None:
    path = tmp_path / "lot.zip"
    export_bundle(audit_world.db, audit_world.client, audit_world.deployment, Lot(GTIN, LOT), path)
    roots = sorted(r["root"] for r in Bundle(path).roots)
    # The same deployment (same deployer, same nonces: same addresses) on a chain that anchored nothing.
    other = AnvilProcess(port=free_port()).start()
    try:
        client = ChainClient(other.rpc_url, expected_chain_id=other.chain_id)
        redeployed = escrow_env(client, tmp_path / "other").deployment
        assert redeployed.address("ProvenanceRegistry") == audit_world.deployment.address("ProvenanceRegistry")
        evidence = BundleEvidence(path)
        report = audit(client, evidence.bundle.deployment, evidence, workers=1)
    finally:
        other.stop()
    assert evidence.manifest_problems == []
    assert [(d.kind, d.subject) for d in report.discrepancies] == [(DiscrepancyKind.ROOT_NOT_ON_CHAIN, r) for r in roots]


def test_a_file_that_is_not_a_bundle_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "x.zip").write_bytes(b"PK not really")
    with pytest.raises(MalformedEvidenceBundle, match="not a readable zip"):
        Bundle(tmp_path / "x.zip")
    with zipfile.ZipFile(tmp_path / "y.zip", "w") as archive:
        archive.writestr("manifest.json", b'{"format": "something else"}')
    with pytest.raises(MalformedEvidenceBundle, match="does not name the format"):
        Bundle(tmp_path / "y.zip")
