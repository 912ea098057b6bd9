"""Crash test: the anchorer runs as its own process and is killed (SIGKILL) at random instants
while thousands of events arrive; after the last restart every event is anchored exactly once.

About 2,400 events in batches of 25 (about 100 anchor transactions) and 8 kills per backend,
most of them while the anchorer is busy (about 15 s per backend on an idle 2-core machine).
It runs twice: on a chain that mines each transaction at once, and on one that mines a block
every second (as a Besu/QBFT network), where the pipelined anchorer has several anchor
transactions in the node's pool when it is killed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from eth_account.signers.local import LocalAccount
from sqlalchemy import func, select

from node.chain.client import ChainClient
from node.chain.deploy import deploy, waymark_steps
from node.db import Batch, Database, Event
from waymark.devnet.anvil import AnvilControl, AnvilProcess
from waymark.ports import free_port
from waymark.devnet.consortium import demo_consortium
from node.member.ingest.capture import CaptureService
from node.protocol import epcis
from node.protocol.gs1 import UnitId
from node.protocol.merkle import leaf_hash, verify_proof
from node.member.runtime import NodeRuntime, build_capture
from node.member.settings import NodeSettings
from node.settings import ChainSettings
from tests.node.story import CARRIER, GTIN, MANUFACTURER, capture_document, iso

EVENTS = 2_400
CHUNK = 300
KILLS = 8


def _anchorer_env(runtime: NodeRuntime, tmp_path: Path) -> dict[str, str]:
    url = runtime.db.url.render_as_string(hide_password=False)
    if runtime.db.schema is not None:
        url += f"?options=-csearch_path%3D{runtime.db.schema}"
    return {
        **os.environ,
        "WAYMARK_CHAIN_RPC_URL": runtime.chain.rpc_url,
        "WAYMARK_CHAIN_CHAIN_ID": str(runtime.client.chain_id),
        "WAYMARK_CHAIN_DEPLOYMENTS_DIR": str(tmp_path / "deployments"),
        "WAYMARK_DB_URL": url,
        "WAYMARK_NODE_BATCH_SIZE": "25",
        "WAYMARK_NODE_MAX_BATCH_DELAY": "0.05",
        "WAYMARK_NODE_ANCHOR_INTERVAL": "0",
        "WAYMARK_NODE_ANCHORER_POLL": "0.02",
        "WAYMARK_NODE_ANCHOR_DEVNET_ACCOUNT": "1",
        "WAYMARK_LOG_LEVEL": "WARNING",
    }


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "node.member.run_anchorer"], env=env, stdout=out, stderr=subprocess.STDOUT)


def _batch_count(runtime: NodeRuntime) -> int:
    with runtime.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Batch)) or 0)


def _documents(runtime: NodeRuntime, start: int) -> list[bytes]:
    documents = []
    for c in range(EVENTS // CHUNK):
        events = []
        for i in range(CHUNK):
            n = c * CHUNK + i
            unit = UnitId(GTIN, f"C{start}N{n:05d}", "LOT1")
            signer, step = (MANUFACTURER, "commissioning") if n % 2 == 0 else (CARRIER, "shipping")
            events.append((epcis.object_event(epcs=[unit], action="OBSERVE", event_time=iso(start + 1 + n % 50), biz_step=step), signer))
        documents.append(orjson.dumps(capture_document(events, runtime.domain)))
    return documents


BLOCK_TIME = 1


@pytest.fixture
def interval_runtime(db: Database, accounts: list[LocalAccount], tmp_path: Path) -> Iterator[NodeRuntime]:
    """A node on a chain of its own that mines a block every BLOCK_TIME seconds (deployed first,
    a block per transaction, then switched to interval mining)."""
    anvil = AnvilProcess(port=free_port()).start()
    try:
        client = ChainClient(anvil.rpc_url, expected_chain_id=anvil.chain_id)
        deployment, _ = deploy(client, accounts[0], waymark_steps(demo_consortium()),
                               tmp_path / "deployments" / f"{client.chain_id}.json")
        AnvilControl(anvil.rpc_url).set_interval_mining(BLOCK_TIME)
        settings = NodeSettings(max_future_skew=10**9, batch_size=500)
        yield NodeRuntime(settings, ChainSettings(rpc_url=anvil.rpc_url, chain_id=anvil.chain_id), db, client, deployment)
    finally:
        anvil.stop()


def test_anchorer_killed_at_random_loses_nothing_and_anchors_nothing_twice(
    runtime: NodeRuntime, chain_now: int, tmp_path: Path
) -> None:
    _kill_restart_and_check(runtime, chain_now, tmp_path)


def test_pipelined_anchorer_killed_at_random_under_interval_mining_loses_nothing_and_anchors_nothing_twice(
    interval_runtime: NodeRuntime, tmp_path: Path
) -> None:
    now = int(interval_runtime.client.w3.eth.get_block("latest")["timestamp"])
    _kill_restart_and_check(interval_runtime, now, tmp_path)


def _kill_restart_and_check(runtime: NodeRuntime, chain_now: int, tmp_path: Path) -> str:
    rng = random.Random(int(os.environ.get("WAYMARK_CRASH_SEED", "20250701")))
    capture: CaptureService = build_capture(runtime)
    documents = _documents(runtime, chain_now)
    env, log = _anchorer_env(runtime, tmp_path), tmp_path / "anchorer.log"

    for kill in range(KILLS):
        capture.capture(documents[kill % len(documents)])
        before = _batch_count(runtime)
        process = _start(env, log)
        if kill % 4 == 3:
            time.sleep(rng.uniform(0.05, 1.5))  # any instant, start-up and recovery included
        else:
            deadline = time.monotonic() + 15  # once it is busy anchoring, at a random instant
            while _batch_count(runtime) == before and time.monotonic() < deadline and process.poll() is None:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.3))
        process.send_signal(signal.SIGKILL)
        process.wait()

    final = _start(env, log)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with runtime.db.session() as s:
                pending = s.scalar(select(func.count()).select_from(Event).where(Event.batch_id.is_(None)))
                unsettled = s.scalar(select(func.count()).select_from(Batch).where(Batch.status == "prepared"))
            if pending == 0 and unsettled == 0:
                break
            assert final.poll() is None, log.read_text()[-2000:]
            time.sleep(0.2)
    finally:
        final.send_signal(signal.SIGTERM)
        final.wait(10)

    registry = runtime.client.contract("ProvenanceRegistry", runtime.registry_address)
    on_chain = [bytes(e["args"]["root"]) for e in registry.events.BatchAnchored().get_logs(from_block=runtime.deployment.start_block)]
    with runtime.db.session() as s:
        batches = {b.id: b for b in s.scalars(select(Batch))}
        events = s.scalars(select(Event)).all()
    assert len(events) == EVENTS  # nothing lost
    assert all(b.status in ("anchored", "confirmed") for b in batches.values()), log.read_text()[-2000:]
    assert len(on_chain) == len(set(on_chain)) == len(batches)  # every batch anchored exactly once
    assert set(on_chain) == {bytes(b.root) for b in batches.values()}
    assert sum(b.event_count for b in batches.values()) == EVENTS  # no event in two batches
    for event in events:
        assert event.batch_id is not None
        proof = bytes(event.proof or b"")
        siblings = [proof[i : i + 32] for i in range(0, len(proof), 32)]
        root = bytes(batches[event.batch_id].root)
        assert verify_proof(root, leaf_hash(bytes(event.digest), event.signer), siblings)
    text = log.read_text()
    print(
        f"crash test: {KILLS} kills, {len(batches)} batches; recoveries that found the batch on chain: "
        f"{text.count('was already anchored')}, that sent it: {text.count('is not on chain; sending')}"
    )
    sample = rng.sample(list(events), 20)
    for event in sample:
        proof = bytes(event.proof or b"")
        siblings = [proof[i : i + 32] for i in range(0, len(proof), 32)]
        assert registry.functions.verifyLeaf(bytes(batches[event.batch_id or 0].root), siblings, bytes(event.digest), event.signer).call()
    return text
