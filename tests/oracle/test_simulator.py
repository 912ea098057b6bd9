"""The demo simulator plays a whole journey through the oracles' adapters into a real node."""

from __future__ import annotations

import importlib.util
import random
import sys
from types import ModuleType
from pathlib import Path
from urllib.parse import quote

import httpx
from sqlalchemy import create_engine, text

from waymark.devnet.anvil import AnvilProcess
from node.paths import PROJECT_ROOT
from eth_utils.crypto import keccak

from node.chain.client import ChainClient
from node.chain.deploy import Deployment
from node.escrow.client import EscrowClient
from node.escrow.terms import State
from tests.oracle.servers import NodeProcess, ServedApp


def simulator() -> ModuleType:
    """scripts/simulate.py as a module (scripts/ is not a package)."""
    if "waymark_simulate" in sys.modules:
        return sys.modules["waymark_simulate"]
    spec = importlib.util.spec_from_file_location("waymark_simulate", PROJECT_ROOT / "scripts" / "simulate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["waymark_simulate"] = module
    spec.loader.exec_module(module)
    return module


def test_the_plan_covers_production_to_delivery_with_one_excursion() -> None:
    sim = simulator()
    shipment = sim.Shipment(1_750_000_000, 86400, random.Random(7), 48)
    plan = sim.build_plan(shipment)
    channels = {step.channel for step in plan}
    assert channels >= {"webhook:production", "webhook:inspection", "csv", "capture", "webhook:carrier", "webhook:iot",
                        "webhook:customs", "webhook:fx"}
    assert [s.day for s in plan] == sorted(s.day for s in plan)
    humid = [r["value"] for s in plan if s.channel == "webhook:iot" for r in s.record["readings"] if r["type"] == "humidity"]
    assert sum(1 for h in humid if h > 85) == 2 and len(humid) == 25 * 4
    assert len(shipment.cartons) == 4 and shipment.duty == (shipment.declared_value * sim.DUTY_RATE).quantize(sim.Decimal("0.01"))


def test_simulated_journey_reaches_the_node_and_releases_the_escrow_milestones(
    anvil: AnvilProcess, node: NodeProcess, relayer: ServedApp, chain: ChainClient, deployment: Deployment, deployment_file: Path,
    chain_now: int, tmp_path: Path,
) -> None:
    sim = simulator()
    code = sim.main([
        "--node-url", node.url, "--relayer-url", relayer.url, "--order", "--rpc-url", anvil.rpc_url, "--chain-id", str(anvil.chain_id), "--deployment", str(deployment_file),
        "--data-dir", str(tmp_path / "simulation"), "--units", "24", "--day-seconds", "600", "--start", str(chain_now + 10),
        "--no-wait", "--seed", "3", "--timeout", "60",
    ])
    assert code == 0
    engine = create_engine(node.db_url)
    with engine.connect() as conn:
        steps = [r[0] for r in conn.execute(text("SELECT biz_step FROM events"))]
    engine.dispose()
    # production, inspection, 2 cartons, 2 pallets, 8 carrier steps, 25 logger days + 1 excursion, declaration, duty, clearance, delivery
    assert steps.count("commissioning") == 1 and steps.count("inspecting") == 1 and steps.count("packing") == 4
    assert steps.count("sensor_reporting") == 26
    assert "https://ns.waymark.example/customs/cleared" in steps and steps.count("receiving") == 1
    shipment = sim.Shipment(chain_now + 10, 600, random.Random(3), 24)
    history = httpx.get(f"{node.url}/units/{quote(shipment.unit_links()[0], safe='')}/history", timeout=10).json()
    seen = [h["bizStep"] for h in history]
    assert seen[0] == "commissioning" and "receiving" in seen and "https://ns.waymark.example/customs/cleared" in seen
    assert any(r.get("exception") for h in history for e in h["event"].get("sensorElementList", []) for r in e["sensorReport"])
    (terms,) = EscrowClient.from_deployment(chain, deployment).find_orders(shipment_ref=keccak(text=shipment.canonical(shipment.container)))
    order = EscrowClient.from_deployment(chain, deployment).order(terms.order_id)
    assert order.state is State.DELIVERED and order.milestones_reached == 3
