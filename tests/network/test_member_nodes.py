"""Member nodes as separate processes on one Anvil, each with its own database (one on PostgreSQL):
what each organisation's node anchors appears on every node; a node SIGKILLed while it replicates
catches up after a restart with nothing lost or doubled; a batch nobody serves becomes `withheld`
after the timeout, is reported so by health and the audit, and is imported once it is served."""

from __future__ import annotations

import re
from functools import partial
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from eth_account.signers.local import LocalAccount
from sqlalchemy import func, select

from node.audit.verify import audit_database
from node.chain.client import ChainClient
from node.chain.deploy import Deployment, deploy, waymark_steps
from node.db import Batch, Database, Event
from node.db.models import NetworkBatch, NetworkFailure
from waymark.devnet.anvil import AnvilProcess
from waymark.devnet.consortium import demo_consortium, demo_member, demo_org_id
from api.readmodel.chain_view import ChainView
from api.readmodel.passport import PassportBuilder
from node.protocol import epcis
from node.protocol.gs1 import UnitId
from tests.network.harness import NodeProcess, free_ports, node_env, postgres_database, wait_for
from tests.network.proxy import BundleProxy
from tests.network.serve import serving
from tests.node.story import CARRIER, CUSTOMS, GTIN, INSPECTOR, MANUFACTURER, capture_document, iso, lot_story, story_events

ORG = {name: demo_org_id(name) for name in ("manufacturer", "carrier", "customs")}
# each node anchors from its organisation's dedicated anchor account (it holds ANCHORER)
ACCOUNT = {name: int(demo_member(name).anchor_account_index or 0) for name in ORG}


@pytest.fixture
def deployments(chain: ChainClient, accounts: list[LocalAccount], tmp_path: Path) -> tuple[Path, Deployment]:
    folder = tmp_path / "deployments"
    deployed, _ = deploy(chain, accounts[0], waymark_steps(demo_consortium()), folder / f"{chain.chain_id}.json")
    return folder, deployed


class Network:
    def __init__(self, anvil: AnvilProcess, folder: Path, tmp: Path, stack: ExitStack) -> None:
        self.anvil, self.folder, self.tmp, self.stack = anvil, folder, tmp, stack
        self.nodes: dict[str, NodeProcess] = {}
        self.db_urls: dict[str, str] = {}

    def add(self, name: str, *, postgres: bool = False, port: int | None = None, public_url: str | None = None,
            start: bool = True, **settings: Any) -> NodeProcess:
        port = port or free_ports(1)[0]
        db_url = None
        if postgres:
            db_url = self.stack.enter_context(postgres_database())
        db_url = db_url or f"sqlite:///{self.tmp / f'{name}.sqlite3'}"
        env = node_env(rpc_url=self.anvil.rpc_url, chain_id=self.anvil.chain_id, deployments=self.folder, db_url=db_url,
                       port=port, public_url=public_url, anchor_account=ACCOUNT[name], **settings)
        node = NodeProcess(name, env, self.tmp / f"{name}.log", port)
        self.stack.callback(node.stop)
        self.nodes[name], self.db_urls[name] = node, db_url
        return node.start() if start else node

    def database(self, name: str) -> Database:
        db = Database(self.db_urls[name])
        self.stack.callback(db.dispose)
        return db


@pytest.fixture
def network(anvil: AnvilProcess, deployments: tuple[Path, Deployment], tmp_path: Path) -> Iterator[Network]:
    with ExitStack() as stack:
        yield Network(anvil, deployments[0], tmp_path, stack)


def _now(chain: ChainClient) -> int:
    return int(chain.w3.eth.get_block("latest")["timestamp"])


def _capture(node: NodeProcess, events: list[tuple[dict[str, Any], LocalAccount]], chain: ChainClient, deployment: Deployment) -> list[str]:
    from node.protocol.attestation import AttestationDomain

    domain = AttestationDomain(chain.chain_id, deployment.address("ProvenanceRegistry"))
    response = node.post("/capture", orjson.dumps(capture_document(events, domain)))
    assert response.status_code in (200, 201), response.text
    return list(response.json()["eventIds"])


def _anchored_on(node: NodeProcess, event_ids: list[str]) -> bool:
    for event_id in event_ids:
        response = node.get(f"/events/{quote(event_id, safe='')}")
        if response.status_code != 200 or response.json()["status"] not in ("anchored", "confirmed"):
            return False
    return True


def _passport(db: Database, chain: ChainClient, deployment: Deployment, unit: UnitId) -> dict[str, Any]:
    builder = PassportBuilder(db, ChainView(chain, deployment), resolver_url="https://id.example", browser_rpc_url="http://rpc.example")
    core = builder.build(unit)
    assert core is not None
    return {**core.body, "reasons": list(core.reasons)}


def _commissioning(start: int, n: int, prefix: str) -> list[tuple[dict[str, Any], LocalAccount]]:
    return [
        (epcis.object_event(epcs=[UnitId(GTIN, f"{prefix}{start}N{i:05d}", "L1")], action="ADD", event_time=iso(start + 1),
                            biz_step="commissioning", disposition="active"), MANUFACTURER)
        for i in range(n)
    ]


def test_each_organisations_events_appear_on_every_node_with_equal_passports(
    network: Network, chain: ChainClient, deployments: tuple[Path, Deployment]
) -> None:
    deployment = deployments[1]
    manufacturer = network.add("manufacturer")
    carrier = network.add("carrier", postgres=True)
    customs = network.add("customs")
    story = lot_story(_now(chain))
    events = story_events(story)
    # the inspector runs no node: the manufacturer's node hosts it (registry hostOf)
    own = {name: [e for e in events if e[1].address in {s.address for s in signers}] for name, signers in
           (("manufacturer", (MANUFACTURER, INSPECTOR)), ("carrier", (CARRIER,)), ("customs", (CUSTOMS,)))}

    # a node takes in only its own organisation's events and its hosted ones, and says where the others belong
    refused = manufacturer.post("/capture", orjson.dumps(capture_document(own["carrier"], _domain(chain, deployment))))
    assert refused.status_code == 403 and refused.json()["code"] == "wrong_node", refused.text
    assert f"organisation {ORG['carrier']}" in refused.json()["message"] and carrier.url in refused.json()["message"]

    ids = {name: _capture(network.nodes[name], own[name], chain, deployment) for name in own}
    every = [i for name in ids for i in ids[name]]
    for node in (manufacturer, carrier, customs):
        wait_for(f"every event on {node.name}", partial(_anchored_on, node, every), timeout=90)
    for node in (manufacturer, carrier, customs):
        proofs = [node.get(f"/events/{quote(i, safe='')}/proof").json() for i in every]
        assert proofs == [manufacturer.get(f"/events/{quote(i, safe='')}/proof").json() for i in every]

    dbs = {name: network.database(name) for name in network.nodes}
    unit = story.units[0]

    def passports() -> list[dict[str, Any]] | None:
        found = [_passport(dbs[name], chain, deployment, unit) for name in ("manufacturer", "carrier", "customs")]
        return found if all(p["network"]["holders"] and {h["nodes"] for h in p["network"]["holders"]} == {3} for p in found) else None

    # holder counts converge once every node has read the others' held feeds (peers from the directory)
    found = wait_for("every node holds every event, by every node's count", passports, timeout=60)
    # per node: when it checked the signature itself (capture or import); everything else is the same
    bare = [orjson.loads(re.sub(rb" \(checked when this node accepted it[^)]*\)", b"", orjson.dumps(
        {k: v for k, v in p.items() if k not in ("generatedAt", "network")}))) for p in found]
    assert bare[0] == bare[1] == bare[2], _diff(bare[0], bare[1]) + _diff(bare[0], bare[2])
    # the unit's timeline on each node carries each organisation's events, wherever they were anchored
    signers = {t["verification"]["signer"] for t in found[1]["timeline"]}
    assert signers == {MANUFACTURER.address, INSPECTOR.address, CARRIER.address, CUSTOMS.address}

    for name, db in dbs.items():
        report = audit_database(chain, deployment, db, workers=1)
        assert report.ok, (name, [d.to_json() for d in report.discrepancies])


def _domain(chain: ChainClient, deployment: Deployment) -> Any:
    from node.protocol.attestation import AttestationDomain

    return AttestationDomain(chain.chain_id, deployment.address("ProvenanceRegistry"))


def _network_status(node: NodeProcess) -> dict[str, Any]:
    return dict(node.get("/health").json()["network"])


def test_a_node_killed_while_replicating_catches_up_with_nothing_lost_or_doubled(
    network: Network, chain: ChainClient, deployments: tuple[Path, Deployment]
) -> None:
    deployment = deployments[1]
    manufacturer = network.add("manufacturer", batch_size=100)
    customs = network.add("customs", start=False, replication_concurrency=1)
    start = _now(chain)
    batches, per_batch = 24, 100
    ids = _capture(manufacturer, _commissioning(start, batches * per_batch, "K"), chain, deployment)
    wait_for("the manufacturer anchored everything", lambda: _anchored_on(manufacturer, ids[-1:]) and _anchored_on(manufacturer, ids[:1]), timeout=120)

    customs.start()
    held_at_kill = wait_for("customs imported some batches", lambda: _network_status(customs)["held"], timeout=120, interval=0.02)
    customs.kill()
    assert held_at_kill < batches, "the node finished before it could be killed mid-way"
    customs.start()
    wait_for("customs caught up", lambda: _network_status(customs)["held"] == batches, timeout=180)
    db = network.database("customs")
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Event)) == batches * per_batch
        assert s.scalar(select(func.count(func.distinct(Event.digest)))) == batches * per_batch
        assert s.scalar(select(func.count()).select_from(Batch)) == batches
        assert s.scalar(select(func.count()).select_from(Event).where(Event.proof.is_(None))) == 0


def test_a_withheld_batch_is_reported_and_imported_once_served(
    network: Network, chain: ChainClient, deployments: tuple[Path, Deployment]
) -> None:
    deployment = deployments[1]
    port = free_ports(1)[0]
    proxy = BundleProxy(f"http://127.0.0.1:{port}")
    with serving(proxy.app) as public:
        manufacturer = network.add("manufacturer", port=port, public_url=public)
        customs = network.add("customs", withheld_after=1.0)
        start = _now(chain)
        first = _capture(manufacturer, _commissioning(start, 3, "W"), chain, deployment)
        wait_for("customs holds the first batch", lambda: _anchored_on(customs, first), timeout=90)

        proxy.mode = "withhold"
        # the same units again: the unit's history on the customs node involves the withholding organisation
        later = [(epcis.object_event(epcs=[UnitId(GTIN, f"W{start}N{i:05d}", "L1")], action="OBSERVE",
                                     event_time=iso(start + 2), biz_step="packing"), MANUFACTURER) for i in range(3)]
        second = _capture(manufacturer, later, chain, deployment)
        wait_for("the second batch anchored", lambda: _anchored_on(manufacturer, second), timeout=90)
        withheld = wait_for("customs records the batch withheld", lambda: _network_status(customs)["withheld"], timeout=60)
        assert len(withheld) == 1 and withheld[0]["orgId"] == ORG["manufacturer"]

        db = network.database("customs")
        report = audit_database(chain, deployment, db, workers=1)
        assert [(d.kind.value, d.subject, d.objects.get("org")) for d in report.discrepancies] == [
            ("batch_withheld", withheld[0]["root"], "1")]
        unit = UnitId(GTIN, f"W{start}N00000", "L1")
        passport = _passport(db, chain, deployment, unit)
        assert passport["network"]["withheld"] == [{"orgId": 1, "batches": 1}]
        assert "records_withheld" in [r["code"] for r in passport["reasons"]]

        proxy.mode = "pass"
        wait_for("customs imports it once served", lambda: _anchored_on(customs, second), timeout=60)
        assert _network_status(customs)["withheld"] == []
        assert audit_database(chain, deployment, db, workers=1).ok


def _diff(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _diff(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _diff(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"[:300]]


def test_a_peer_serving_an_altered_bundle_is_refused_and_the_good_copy_is_imported_from_another(
    network: Network, chain: ChainClient, deployments: tuple[Path, Deployment]
) -> None:
    deployment = deployments[1]
    port = free_ports(1)[0]
    proxy = BundleProxy(f"http://127.0.0.1:{port}")
    with serving(proxy.app) as public:
        # the manufacturer's node is reached (on-chain uri, directory) through a proxy that will alter its bundles
        manufacturer = network.add("manufacturer", port=port, public_url=public)
        carrier = network.add("carrier")
        ids = _capture(manufacturer, _commissioning(_now(chain), 4, "T"), chain, deployment)
        wait_for("the carrier holds the batch", lambda: _anchored_on(carrier, ids), timeout=90)

        proxy.mode = "tamper"
        customs = network.add("customs")
        wait_for("customs imports the good copy", lambda: _anchored_on(customs, ids), timeout=90)
    db = network.database("customs")
    with db.session() as s:
        failures = s.scalars(select(NetworkFailure).order_by(NetworkFailure.id)).all()
        imported = s.scalars(select(NetworkBatch)).one()
        stored = set(s.scalars(select(Event.body)))
    assert failures, "the altered bundle was not refused"
    assert {(f.source.split("/batches/")[0], f.event_id, f.check) for f in failures} == {(public, ids[0], "event_hash")}
    assert imported.state == "held" and imported.source == f"{carrier.url}/batches/0x{imported.root.hex()}/bundle"
    assert not any("9521234.00000.1" in body for body in stored)  # nothing of the altered copy was stored
