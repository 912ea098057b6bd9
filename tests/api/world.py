"""A small Waymark world for the API, browser tests and the scan benchmark.

On a real Anvil: the demo consortium deployed, the story's product registered by its
manufacturer, and lots of units taken through the node's own capture and anchorer
(tests/node/story.py: commissioning, inspection, packing into case, pallet and container,
shipping, customs, arrival, unloading, receipt), each event signed by the member holding the
role. Lots are `genuine` (anchored), `pending` (captured, not anchored) and `tampered`
(anchored, then one stored event edited in the database, as an intruder with database
access would).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_account.signers.local import LocalAccount

import orjson
from sqlalchemy import select, update

from node.chain.client import ChainClient
from node.chain.deploy import Deployment, deploy, waymark_steps
from node.db import Database, Event
from node.devnet.anvil import AnvilProcess
from node.devnet.consortium import DEPLOYER_INDEX, demo_consortium, devnet_account
from node.provenance.gs1 import UnitId
from node.service import NodeRuntime, build_anchorer, build_capture
from node.service_settings import NodeSettings
from node.settings import ChainSettings, DatabaseSettings
from node.provenance import epcis
from tests.node.story import CARRIER, CUSTOMS, GTIN, INSPECTOR, MANUFACTURER, Story, capture_document, iso, lot_story

if TYPE_CHECKING:
    from api.settings import ApiSettings

Signed = list[tuple[dict[str, Any], LocalAccount]]


def journey(s: Story) -> Signed:
    """A lot's life, in time order, each event with the account that attests it: made in VN,
    inspected, packed, shipped by sea (a temperature alarm on the way), cleared by customs in
    NL, unloaded and received."""
    t = s.start
    obj, agg = epcis.object_event, epcis.aggregation_event
    customs = epcis.CUSTOMS_STEP_IRIS
    alarm = epcis.sensor_element([epcis.temperature(31.5, exception="ALARM_CONDITION", time=iso(t + 6))], time=iso(t + 6))
    return [
        (obj(epcs=[*s.units, s.stray], action="ADD", event_time=iso(t + 1), biz_step="commissioning", disposition="active"), MANUFACTURER),
        (obj(epcs=s.units, action="OBSERVE", event_time=iso(t + 2), biz_step="inspecting",
             documents=[epcis.document_ref("inspection_report", "ab" * 32)]), INSPECTOR),
        (agg(parent_id=s.case, child_epcs=s.units, action="ADD", event_time=iso(t + 3), biz_step="packing"), MANUFACTURER),
        (agg(parent_id=s.pallet, child_epcs=[s.case], action="ADD", event_time=iso(t + 4), biz_step="packing"), CARRIER),
        (agg(parent_id=s.container, child_epcs=[s.pallet], action="ADD", event_time=iso(t + 5), biz_step="loading"), CARRIER),
        (obj(epcs=[s.container], action="OBSERVE", event_time=iso(t + 6), biz_step="shipping", disposition="in_transit"), CARRIER),
        (obj(epcs=[s.container], action="OBSERVE", event_time=iso(t + 7), biz_step="sensor_reporting", sensor_elements=[alarm]), CARRIER),
        (obj(epcs=[s.container], action="OBSERVE", event_time=iso(t + 8), biz_step=customs["declared"],
             extensions=epcis.customs_fields(declaration_id="NL-2025-0001", customs_office="NL000396")), CUSTOMS),
        (obj(epcs=[s.container], action="OBSERVE", event_time=iso(t + 9), biz_step=customs["cleared"],
             extensions=epcis.customs_fields(customs_office="NL000396")), CUSTOMS),
        (obj(epcs=[s.container], action="OBSERVE", event_time=iso(t + 10), biz_step="arriving"), CARRIER),
        (agg(parent_id=s.container, child_epcs=[s.pallet], action="DELETE", event_time=iso(t + 11), biz_step="unloading"), CARRIER),
        (obj(epcs=[s.pallet], action="OBSERVE", event_time=iso(t + 12), biz_step="receiving", disposition="in_progress"), CARRIER),
    ]


@dataclass
class World:
    anvil: AnvilProcess
    client: ChainClient
    deployment: Deployment
    chain_settings: ChainSettings
    database: DatabaseSettings
    db: Database
    runtime: NodeRuntime
    lots: dict[str, Story] = field(default_factory=dict)

    def unit(self, lot: str, index: int = 0) -> UnitId:
        return self.lots[lot].units[index]


def register_product(client: ChainClient, deployment: Deployment, gtin: str = GTIN) -> None:
    registry = client.contract("ProvenanceRegistry", deployment.address("ProvenanceRegistry"))
    org_id, _registered, _meta = client.call(registry.functions.productOf(int(gtin)))
    if not org_id:
        client.transact(registry.functions.registerProduct(int(gtin), b"\x01" * 32), sender=MANUFACTURER)


def build_world(anvil: AnvilProcess, folder: Path, *, lots: dict[str, str] | None = None, lot_size: int = 4) -> World:
    """Deploy and populate. `lots` maps a lot name to genuine | pending | tampered."""
    lots = lots or {"genuine": "genuine", "pending": "pending", "tampered": "tampered"}
    client = ChainClient(anvil.rpc_url, expected_chain_id=anvil.chain_id)
    chain_settings = ChainSettings(rpc_url=anvil.rpc_url, chain_id=anvil.chain_id, deployments_dir=folder / "deployments")
    deployment, _ = deploy(client, devnet_account(DEPLOYER_INDEX), waymark_steps(demo_consortium()), chain_settings.deployment_file)
    register_product(client, deployment)
    database = DatabaseSettings(url=f"sqlite:///{folder / 'waymark.sqlite3'}")
    db = Database(database.url)
    db.migrate()
    node = NodeSettings(max_future_skew=10**9, role_refresh_interval=0.05, batch_size=500, max_batch_delay=0.05)
    runtime = NodeRuntime(node, chain_settings, db, client, deployment)
    world = World(anvil, client, deployment, chain_settings, database, db, runtime)
    capture = build_capture(runtime)
    start = int(client.w3.eth.get_block("latest")["timestamp"]) + 1
    # Anchor what must be anchored first, then capture the pending lots.
    order = sorted(lots.items(), key=lambda item: item[1] == "pending")
    anchored = False
    for index, (name, kind) in enumerate(order):
        story = lot_story(start + 100 * index, lot_size)
        world.lots[name] = story
        if kind == "pending" and not anchored:
            build_anchorer(runtime, MANUFACTURER).drain()
            anchored = True
        capture.capture(orjson.dumps(capture_document(journey(story), runtime.domain)))
    if not anchored:
        build_anchorer(runtime, MANUFACTURER).drain()
    for name, kind in lots.items():
        if kind == "tampered":
            tamper(db, world.lots[name])
    return world


def tamper(db: Database, story: Story) -> None:
    """Edit the stored inspection event of the lot: move its time by a day (id, signature and
    proof untouched), as someone with write access to the database could."""
    unit_uri = story.units[0].canonical_uri
    with db.connect(write=True) as conn:
        rows = conn.execute(select(Event.id, Event.body).where(Event.biz_step.like("%inspecting%"))).all()
        for event_id, body in rows:
            event = orjson.loads(body)
            if unit_uri in [e if isinstance(e, str) else "" for e in event.get("epcList", [])] or any(unit_uri.endswith(e.rsplit("/", 1)[-1]) for e in event.get("epcList", [])):
                event["eventTime"] = event["eventTime"].replace("T", "T", 1)
                moved = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(_unix(event["eventTime"]) - 86400)) + event["eventTime"][19:]
                event["eventTime"] = moved
                conn.execute(update(Event).where(Event.id == event_id).values(body=orjson.dumps(event).decode()))
                return
    raise AssertionError("no inspection event to tamper with")


def _unix(text: str) -> int:
    return int(time.mktime(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone)


# --- running the API against a world ------------------------------------------------------------


def api_settings(world: World, folder: Path, port: int = 8700, **overrides: Any) -> "ApiSettings":
    from api.settings import ApiSettings

    values: dict[str, Any] = {
        "port": port,
        "public_url": f"http://127.0.0.1:{port}",
        "device_salt_file": folder / "device-salt",
        "rate_limit_per_minute": 100_000,
        "rate_limit_burst": 10_000,
        "scan_flush_interval": 0.05,
    }
    values.update(overrides)
    return ApiSettings(**values)


class ApiServer:
    """The API served by uvicorn on a free port, in a thread of this process."""

    def __init__(self, world: World, folder: Path, **overrides: Any) -> None:
        import uvicorn

        from api.main import create_app
        from node.devnet.anvil import free_port

        self.port = free_port()
        self.settings = api_settings(world, folder, self.port, **overrides)
        self.app = create_app(self.settings, world.chain_settings, world.database)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "ApiServer":
        import threading

        import requests

        self.thread = threading.Thread(target=self.server.run, name="api-server", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/health/live", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError("the API server did not start")

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
