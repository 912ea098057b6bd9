"""One node anchors its organisation's events; another fetches the batch bundle at the URI the
anchor names, verifies it with the one verification core and imports it, exactly once. Bundles
with one altered event are refused, naming the event and the check, and nothing of them is stored."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from node.member.app import create_app
from node.chain.client import ChainClient
from node.chain.deploy import Deployment
from node.db import Batch, Database, Event
from node.db.models import NetworkBatch
from waymark.devnet.anvil import AnvilProcess
from node.member.indexer import Indexer
from node.member.network.bundle import MEDIA_TYPE, read_bundle
from node.member.network.directory import publish_node_record
from node.member.network.replicator import Replicator
from node.member.network.verify import Refusal, verify_bundle
from node.protocol import epcis
from node.member.runtime import NodeRuntime, build_anchorer, build_capture, build_indexer, build_replicator, build_role_mirror
from node.protocol.verification import Anchor
from tests.network.conftest import node_runtime
from tests.network.serve import serving
from node.protocol.gs1 import UnitId
from tests.node.story import MANUFACTURER, capture_document, iso

GTIN = "09521234543213"


def manufacturer_events(start: int, n: int) -> list[tuple[dict[str, object], object]]:
    return [
        (epcis.object_event(epcs=[UnitId(GTIN, f"S{start}R{i:05d}", "L1")], action="ADD", event_time=iso(start + 1),
                            biz_step="commissioning", disposition="active"), MANUFACTURER)
        for i in range(n)
    ]


@dataclass
class Pair:
    origin: NodeRuntime
    follower: NodeRuntime
    url: str

    def index_follower(self) -> Indexer:
        indexer = build_indexer(self.follower)
        indexer.step()
        return indexer

    def replicator(self) -> Replicator:
        return build_replicator(self.follower)


@pytest.fixture
def pair(origin_db: Database, follower_db: Database, chain: ChainClient, deployment: Deployment, anvil: AnvilProcess) -> Iterator[Pair]:
    origin = node_runtime(origin_db, chain, deployment, anvil)
    with serving(create_app(origin, run_indexer=True)) as url:
        origin.node.public_url = url
        origin.organisation = 1
        # As `waymark node run` does at start: the origin lists its URL in the registry's directory,
        # the only place the follower's replicator fetches from.
        publish_node_record(chain, deployment.address("ConsortiumRegistry"), 1, url, MANUFACTURER)
        yield Pair(origin, node_runtime(follower_db, chain, deployment, anvil), url)


def _anchor(pair: Pair, start: int, n: int) -> bytes:
    build_capture(pair.origin).capture(orjson.dumps(capture_document(manufacturer_events(start, n), pair.origin.domain)))  # type: ignore[arg-type]
    build_anchorer(pair.origin, MANUFACTURER).drain()
    with pair.origin.db.session() as s:
        return bytes(s.scalars(select(Batch.root).order_by(Batch.id.desc())).first() or b"")


def raw_bundle(url: str) -> bytes:
    """The bundle as served: gzip bytes (httpx would decompress the body of a Content-Encoding: gzip answer)."""
    with httpx.stream("GET", url) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith(MEDIA_TYPE)
        return b"".join(response.iter_raw())


def _chain_now(pair: Pair) -> int:
    return int(pair.origin.client.w3.eth.get_block("latest")["timestamp"])


def test_a_batch_anchored_by_one_node_is_imported_by_another_with_its_proofs(pair: Pair) -> None:
    root = _anchor(pair, _chain_now(pair), 30)
    served = raw_bundle(f"{pair.url}/batches/0x{root.hex()}/bundle")
    pair.index_follower()
    replicator = pair.replicator()
    try:
        replicator.step()
        replicator.step()  # again: nothing twice
    finally:
        replicator.close()
    with pair.origin.db.session() as s:
        theirs = {bytes(d): (int(i or 0), bytes(p or b"")) for d, i, p in s.execute(select(Event.digest, Event.leaf_index, Event.proof))}
    with pair.follower.db.session() as s:
        ours = {bytes(d): (int(i or 0), bytes(p or b"")) for d, i, p in s.execute(select(Event.digest, Event.leaf_index, Event.proof))}
        state = s.scalar(select(NetworkBatch.state).where(NetworkBatch.root == root))
        batches = s.scalar(select(func.count()).select_from(Batch))
    assert ours == theirs and len(ours) == 30
    assert state == "held" and batches == 1
    # the imported batch is served again by the follower, byte for byte the same events
    with serving(create_app(pair.follower, run_indexer=False)) as url:
        again = raw_bundle(f"{url}/batches/0x{root.hex()}/bundle")
        feed = httpx.get(f"{url}/batches/held", params={"after": 0}).json()
    assert read_bundle(again) == read_bundle(served)
    assert feed["batches"] == [{"seq": feed["next"], "root": "0x" + root.hex()}]


def _altered(raw: bytes, change: str) -> bytes:
    lines = gzip.decompress(raw).split(b"\n")[:-1]
    leaf = orjson.loads(lines[2])
    if change == "body":
        leaf["event"]["bizStep"] = "shipping"
        lines[2] = orjson.dumps(leaf)
    elif change == "signature":
        signature = bytearray.fromhex(leaf["signature"][2:])
        signature[5] ^= 1
        leaf["signature"] = "0x" + signature.hex()
        lines[2] = orjson.dumps(leaf)
    else:  # a leaf dropped
        del lines[2]
    return gzip.compress(b"\n".join(lines) + b"\n")


@pytest.mark.parametrize(("change", "check", "names_event"), [
    ("body", "event_hash", True), ("signature", "signature", True), ("dropped", "event_count", False),
])
def test_an_altered_bundle_is_refused_naming_the_event_and_the_check(pair: Pair, change: str, check: str, names_event: bool) -> None:
    root = _anchor(pair, _chain_now(pair), 5)
    raw = raw_bundle(f"{pair.url}/batches/0x{root.hex()}/bundle")
    anchor = Anchor(root, 1, 0, _chain_now(pair), 5)
    roles = build_role_mirror(pair.follower)
    assert not isinstance(verify_bundle(raw, anchor, pair.follower.domain, roles, _chain_now(pair)), Refusal)
    refused = verify_bundle(_altered(raw, change), anchor, pair.follower.domain, roles, _chain_now(pair))
    assert isinstance(refused, Refusal) and refused.check == check, refused
    event_id = orjson.loads(gzip.decompress(raw).split(b"\n")[2])["eventId"]
    assert (refused.event_id == event_id) if names_event else refused.event_id is None
