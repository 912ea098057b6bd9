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

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

import orjson
import uvicorn
from sqlalchemy import select, update

from api.main import create_app
from api.settings import ApiSettings
from node.chain.client import ChainClient
from node.chain.deploy import Deployment, deploy, waymark_steps
from node.db import Database, Event
from waymark.demo.processes import await_answer
from waymark.devnet.anvil import AnvilProcess
from waymark.ports import free_port
from waymark.devnet.consortium import DEPLOYER_INDEX, demo_consortium, devnet_account
from api.readmodel.locations import LocationRecord, store_location
from api.readmodel.product_master import master_hash, store_master
from node.protocol.gs1 import UnitId
from node.member.runtime import NodeRuntime, build_anchorer, build_capture
from tests.helpers import fast_node_settings
from node.settings import ChainSettings, DatabaseSettings
from node.protocol import epcis
from node.protocol import vocabulary
from tests.node.story import CARRIER, CUSTOMS, GTIN, INSPECTOR, MANUFACTURER, Story, by_anchoring_node, capture_document, iso, lot_story

Signed = list[tuple[dict[str, Any], LocalAccount]]


# Where the story happens (GLNs of the story's company prefix; location master data below).
FACTORY = "https://id.gs1.org/414/9521234000013"
PORT_HAIPHONG = "https://id.gs1.org/414/9521234000020"
PORT_ROTTERDAM = "urn:epc:id:sgln:9521234.00003.0"  # an SGLN URN: the same place as .../414/9521234000037
WAREHOUSE_NL = "https://id.gs1.org/414/9521234000044"
LOCATIONS = [
    LocationRecord(id=FACTORY, name="Lumen Ceramics factory, Hai Phong", country="VN"),
    LocationRecord(id=PORT_HAIPHONG, name="Port of Hai Phong", country="VN", unlocode="VNHPH"),
    LocationRecord(id="https://id.gs1.org/414/9521234000037", name="Port of Rotterdam", country="NL", unlocode="NLRTM"),
    LocationRecord(id=WAREHOUSE_NL, name="Utrecht distribution centre", country="NL"),
]
# The product's master data, as the manufacturer publishes it: these bytes hash to the
# metadata hash registered on chain. The picture is a 1x1 PNG, inline.
PICTURE = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
PRODUCT_MASTER = orjson.dumps({
    "name": "Glazed stoneware vase, 30 cm",
    "description": "Hand-glazed stoneware vase, fired at 1,280 °C.",
    "brand": "Lumen",
    "countryOfOrigin": "VN",
    "images": [{"url": PICTURE, "alt": "The vase, front view"}],
    "materials": ["stoneware clay", "lead-free glaze"],
    "certifications": [{"name": "EU 84/500/EEC food contact", "issuer": "Inspection agency"}],
})


def journey(s: Story) -> Signed:
    """A lot's life, in time order, each event with the account that attests it: made in VN,
    inspected, packed, shipped by sea from Hai Phong (a temperature alarm on the way) by a
    Singapore carrier, cleared by customs in Rotterdam, unloaded there and received in Utrecht."""
    t = s.start
    obj, agg = epcis.object_event, epcis.aggregation_event
    customs = vocabulary.CUSTOMS_STEP_IRIS
    alarm = epcis.sensor_element([epcis.temperature(31.5, exception="ALARM_CONDITION", time=iso(t + 6))], time=iso(t + 6))
    lot = s.units[0].lot
    return [
        (obj(epcs=[*s.units, s.stray], action="ADD", event_time=iso(t + 1), biz_step="commissioning", disposition="active",
             biz_location=FACTORY, ilmd={"cbvmda:lotNumber": lot} if lot else None), MANUFACTURER),
        (obj(epcs=s.units, action="OBSERVE", event_time=iso(t + 2), biz_step="inspecting", biz_location=FACTORY,
             documents=[epcis.document_ref("inspection_report", "ab" * 32)]), INSPECTOR),
        (agg(parent_id=s.case, child_epcs=s.units, action="ADD", event_time=iso(t + 3), biz_step="packing", biz_location=FACTORY), MANUFACTURER),
        (agg(parent_id=s.pallet, child_epcs=[s.case], action="ADD", event_time=iso(t + 4), biz_step="packing", biz_location=PORT_HAIPHONG), CARRIER),
        (agg(parent_id=s.container, child_epcs=[s.pallet], action="ADD", event_time=iso(t + 5), biz_step="loading", biz_location=PORT_HAIPHONG), CARRIER),
        (obj(epcs=[s.container], action="OBSERVE", event_time=iso(t + 6), biz_step="shipping", disposition="in_transit", read_point=PORT_HAIPHONG), CARRIER),
        (obj(epcs=[s.container], action="OBSERVE", event_time=iso(t + 7), biz_step="sensor_reporting", sensor_elements=[alarm]), CARRIER),
        (obj(epcs=[s.container], action="OBSERVE", event_time=iso(t + 8), biz_step=customs["declared"], biz_location=PORT_ROTTERDAM,
             extensions=epcis.customs_fields(declaration_id="NL-2025-0001", customs_office="NL000396")), CUSTOMS),
        (obj(epcs=[s.container], action="OBSERVE", event_time=iso(t + 9), biz_step=customs["cleared"], biz_location=PORT_ROTTERDAM,
             extensions=epcis.customs_fields(customs_office="NL000396")), CUSTOMS),
        (obj(epcs=[s.container], action="OBSERVE", event_time=iso(t + 10), biz_step="arriving", read_point=PORT_ROTTERDAM), CARRIER),
        (agg(parent_id=s.container, child_epcs=[s.pallet], action="DELETE", event_time=iso(t + 11), biz_step="unloading", biz_location=PORT_ROTTERDAM), CARRIER),
        (obj(epcs=[s.pallet], action="OBSERVE", event_time=iso(t + 12), biz_step="receiving", disposition="in_progress", biz_location=WAREHOUSE_NL), CARRIER),
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


def register_product(client: ChainClient, deployment: Deployment, gtin: str = GTIN, metadata_hash: bytes = master_hash(PRODUCT_MASTER)) -> None:
    """Register the product with the hash of its master data (PRODUCT_MASTER)."""
    registry = client.contract("ProvenanceRegistry", deployment.address("ProvenanceRegistry"))
    org_id, _registered, _meta = client.call(registry.functions.productOf(int(gtin)))
    if not org_id:
        client.transact(registry.functions.registerProduct(int(gtin), metadata_hash), sender=MANUFACTURER)


def build_world(anvil: AnvilProcess, folder: Path, *, lots: dict[str, str] | None = None, lot_size: int = 4, db_url: str | None = None) -> World:
    """Deploy and populate. `lots` maps a lot name to genuine | pending | tampered; the database
    is a SQLite file in `folder` unless `db_url` names another (an empty PostgreSQL database)."""
    lots = lots or {"genuine": "genuine", "pending": "pending", "tampered": "tampered"}
    client = ChainClient(anvil.rpc_url, expected_chain_id=anvil.chain_id)
    chain_settings = ChainSettings(rpc_url=anvil.rpc_url, chain_id=anvil.chain_id, deployments_dir=folder / "deployments")
    deployment, _ = deploy(client, devnet_account(DEPLOYER_INDEX), waymark_steps(demo_consortium()), chain_settings.deployment_file)
    register_product(client, deployment)
    database = DatabaseSettings(url=db_url or f"sqlite:///{folder / 'waymark.sqlite3'}")
    db = Database(database.url)
    db.migrate()
    store_master(db, GTIN, PRODUCT_MASTER, master_hash(PRODUCT_MASTER))
    for record in LOCATIONS:
        store_location(db, record, org_id=3)  # the carrier's organisation registered the places it calls at
    node = fast_node_settings(max_batch_delay=0.05)
    runtime = NodeRuntime(node, chain_settings, db, client, deployment)
    world = World(anvil, client, deployment, chain_settings, database, db, runtime)
    capture = build_capture(runtime)
    start = int(client.w3.eth.get_block("latest")["timestamp"]) + 1
    # Anchor what must be anchored first, then capture the pending lots.
    order = sorted(lots.items(), key=lambda item: item[1] == "pending")
    # Each organisation's events anchored by its own node (the inspector's by its host's, the
    # manufacturer's): node.protocol.verification counts no other organisation's anchor. Every
    # lot's events of one node are captured, then anchored together: each lot sees the same
    # order as alone (a node's events are anchored before the next node's are captured), in a
    # few full batches instead of a transaction per lot and node.
    by_node: dict[str, tuple[LocalAccount, list[Signed]]] = {}
    pending: list[Signed] = []
    for index, (name, kind) in enumerate(order):
        story = lot_story(start + 100 * index, lot_size)
        world.lots[name] = story
        if kind == "pending":
            pending.append(journey(story))
            continue
        for anchorer, group in by_anchoring_node(journey(story)):
            by_node.setdefault(anchorer.address, (anchorer, []))[1].append(group)
    for anchorer, groups in by_node.values():
        for group in groups:
            capture.capture(orjson.dumps(capture_document(group, runtime.domain)))
        build_anchorer(runtime, anchorer).drain()
    for events in pending:
        capture.capture(orjson.dumps(capture_document(events, runtime.domain)))
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


def api_settings(world: World, folder: Path, port: int = 8700, **overrides: Any) -> ApiSettings:
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
        self.port = free_port()
        self.settings = api_settings(world, folder, self.port, **overrides)
        self.app = create_app(self.settings, world.chain_settings, world.database)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ApiServer:
        self.thread = threading.Thread(target=self.server.run, name="api-server", daemon=True)
        self.thread.start()
        if await_answer(self.url + "/health/live", 30, running=self.thread.is_alive, ready=lambda r: r.status_code == 200) is None:
            raise RuntimeError("the API server's thread ended before it answered")
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def node_audience(client: Any) -> str:
    """The public URL the test client's app answers as: what a signed request must name."""
    return str(client.app.state.services.settings.public_url)
