#!/usr/bin/env python3
"""Benchmark: replication between member nodes (node/network).

One run, one machine, one Anvil mining a block every --block-time seconds (as a QBFT network):

1. Set-up, not timed: the contracts and the demo consortium deployed; three member nodes started
   as separate processes (`waymark node run`: manufacturer, carrier, customs), each with its own
   SQLite database, anchoring from its organisation's ANCHORER account and publishing its URL in
   the registry's node directory; N events signed beforehand, a third by each organisation.
2. Offered load: each organisation's "oracle" (a thread here) posts its own events to its own
   node at --rate/3 events/s (documents of --document-size events), so the network takes --rate
   events/s in all. Every node anchors its own batches; every node replicates the others'.
   Measured per batch: the lag from its anchoring (the anchoring node's receipt) to the moment
   the last other node imported it (every node holds it): p50, p99, max.
3. Import rate: a fresh follower node (no anchorer, empty database) started once everything is
   anchored imports all N events: indexing the chain's BatchAnchored logs, fetching every bundle
   from the nodes, verifying every event (hash, signature, role at the event time, anchoring
   organisation, rebuilt root: node.protocol.verification) and storing it with its proof. Reported: events
   per second from its first import to its last, and from its start to its last import.
4. Baseline, same run: the events fetched one by one over GET /events/{id} and each verified with
   the same core (hash, signature, role), on a --baseline sample.

Targets (issue 12): a follower imports >= 10,000 events/s; at 1,000 events/s offered, p99 of the
lag <= 5 s. The last line printed is one JSON object. The nodes and Anvil die with this process,
however it ends (SIGKILL included: PR_SET_PDEATHSIG).

    .venv/bin/python scripts/bench/replication.py                   # 100,000 events
    .venv/bin/python scripts/bench/replication.py --events 30000    # a shorter run
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import orjson  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from node.chain.build import build  # noqa: E402
from node.chain.client import ChainClient  # noqa: E402
from node.chain.deploy import deploy, waymark_steps  # noqa: E402
from node.db import Batch, Database, Event  # noqa: E402
from node.db.models import NetworkBatch  # noqa: E402
from node.lifetime import die_with_parent  # noqa: E402
from waymark.devnet.anvil import AnvilControl, AnvilProcess, answers  # noqa: E402
from waymark.ports import free_port  # noqa: E402
from waymark.devnet.consortium import DEPLOYER_INDEX, demo_consortium, demo_member, devnet_account  # noqa: E402
from node.member.ingest.roles import RoleMirror  # noqa: E402
from node.protocol import epcis  # noqa: E402
from node.protocol import vocabulary  # noqa: E402
from node.protocol.attestation import AttestationDomain, sign_attestation  # noqa: E402
from node.protocol.crypto import parse_signature  # noqa: E402
from node.protocol.event_hash import digest_from_hash  # noqa: E402
from node.protocol.gs1 import ContainerId, UnitId, make_sscc  # noqa: E402
from node.protocol.verification import verify_attestation  # noqa: E402

GTIN = "09521234543213"
MEMBERS = ("manufacturer", "carrier", "customs")
# each member's own kind of event, signed by its organisation's account
STEPS = {"manufacturer": "commissioning", "carrier": "shipping", "customs": vocabulary.customs_step("cleared")}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def die_with_kill() -> None:
    """In a child, before exec: the kernel SIGKILLs it when this benchmark process ends."""
    die_with_parent(signal.SIGKILL)


def iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _sign(args: tuple[str, int, int, int, int, int, str]) -> list[bytes]:
    """Worker: documents [first, last) of `size` events of one member, signed."""
    member, first, last, size, start, chain_id, registry = args
    domain = AttestationDomain(chain_id, registry)
    account = devnet_account(demo_member(member).account_index)
    documents = []
    for d in range(first, last):
        events = []
        for i in range(size):
            n = d * size + i
            if member == "manufacturer":
                epc: Any = UnitId(GTIN, f"R{start}N{n:07d}", "LOT1")
            else:
                epc = ContainerId(make_sscc("9521234", n + (0 if member == "carrier" else 5 * 10**8)))
            event = epcis.object_event(epcs=[epc], action="OBSERVE", event_time=iso(start + 1 + n * 0.001),
                                       biz_step=STEPS[member], read_point="urn:epc:id:sgln:9521234.54321.0")
            signed = sign_attestation(account.key, domain, event)
            body = {k: v for k, v in event.items() if k != "@context"}
            body["wm:attestation"] = {"signer": account.address, "signature": signed.signature_hex}
            events.append(body)
        document = epcis.epcis_document([])
        document["epcisBody"]["eventList"] = events
        documents.append(orjson.dumps(document))
    return documents


def sign_all(per_member: int, size: int, start: int, chain_id: int, registry: str) -> dict[str, list[bytes]]:
    count = per_member // size
    jobs = [(m, i, min(i + 50, count), size, start, chain_id, registry) for m in MEMBERS for i in range(0, count, 50)]
    with get_context("fork").Pool(os.cpu_count() or 2) as pool:
        parts = pool.map(_sign, jobs)
    out: dict[str, list[bytes]] = {m: [] for m in MEMBERS}
    for job, part in zip(jobs, parts):
        out[job[0]].extend(part)
    return out


class Node:
    def __init__(self, name: str, work: Path, anvil: AnvilProcess, *, anchor: bool, **settings: Any) -> None:
        self.name = name
        self.port = free_port()
        self.db_url = f"sqlite:///{work / f'{name}.sqlite3'}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("WAYMARK_")}
        env.update({
            "WAYMARK_CHAIN_RPC_URL": anvil.rpc_url, "WAYMARK_CHAIN_CHAIN_ID": str(anvil.chain_id),
            "WAYMARK_CHAIN_DEPLOYMENTS_DIR": str(work / "deployments"), "WAYMARK_DB_URL": self.db_url,
            "WAYMARK_NODE_PORT": str(self.port), "WAYMARK_NODE_PUBLIC_URL": self.url,
            "WAYMARK_NODE_MAX_FUTURE_SKEW": str(10**9), "WAYMARK_NODE_INDEXER_POLL": "0.1",
            "WAYMARK_NODE_REPLICATION_POLL": "0.05", "WAYMARK_NODE_HOLDERS_POLL": "0.5",
        })
        if anchor:
            env["WAYMARK_NODE_ANCHOR_DEVNET_ACCOUNT"] = str(demo_member(name).anchor_account_index)
        env.update({f"WAYMARK_NODE_{k.upper()}": str(v) for k, v in settings.items()})
        self.log = open(work / f"{name}.log", "ab")
        self.started = time.time()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "waymark", "node", "run", *([] if anchor else ["--no-anchorer"])],
            env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_kill,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"node {self.name} exited ({self.process.returncode}); see its log")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"node {self.name} did not answer within {timeout}s")

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def offer(node: Node, documents: list[bytes], rate: float, errors: list[str]) -> None:
    """Post `documents` to `node` at `rate` events/s (each document at its scheduled time)."""
    size = orjson.loads(documents[0])["epcisBody"]["eventList"].__len__() if documents else 0
    started = time.monotonic()
    with httpx.Client(timeout=120) as client:
        for i, document in enumerate(documents):
            due = started + i * size / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            response = client.post(node.url + "/capture", content=document, headers={"Content-Type": "application/json"})
            if response.status_code not in (200, 201):
                errors.append(f"{node.name}: {response.status_code} {response.text[:200]}")


def percentile(values: list[int], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def anchored_batches(db: Database) -> dict[bytes, tuple[int, int]]:
    """root -> (anchored at ms, event count) of the batches a node anchored itself."""
    with db.session() as s:
        rows = s.execute(select(Batch.root, Batch.anchored_at_ms, Batch.event_count)
                         .where(Batch.status != "prepared", Batch.root.not_in(select(NetworkBatch.root)))).all()
    return {bytes(r): (int(a or 0), int(c)) for r, a, c in rows}


def imported(db: Database) -> dict[bytes, int]:
    with db.session() as s:
        rows = s.execute(select(NetworkBatch.root, NetworkBatch.imported_at_ms).where(NetworkBatch.state == "held")).all()
    return {bytes(r): int(t or 0) for r, t in rows}


def wait_until(what: str, probe: Any, timeout: float, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(interval)
    raise RuntimeError(f"{what}: not within {timeout:.0f}s")


def baseline(nodes: dict[str, Node], dbs: dict[str, Database], client: ChainClient, deployment: Any, samples: int) -> dict[str, float]:
    """GET /events/{id} one by one from the anchoring node, each checked with the core (hash, signature, role)."""
    roles = RoleMirror(client.w3, deployment.address("ConsortiumRegistry"), start_block=deployment.start_block)
    domain = AttestationDomain(client.chain_id, deployment.address("ProvenanceRegistry"))
    ids: list[tuple[Node, str]] = []
    for name in MEMBERS:
        with dbs[name].session() as s:
            digests = s.scalars(select(Event.digest).where(Event.signer_org.is_not(None)).limit(samples // len(MEMBERS))).all()
        ids += [(nodes[name], "ni:///sha-256;" + bytes(d).hex() + "?ver=CBV2.0") for d in digests]
    ok = 0
    started = time.perf_counter()
    with httpx.Client(timeout=30) as http:
        for node, event_id in ids:
            item = http.get(f"{node.url}/events/{quote(event_id, safe='')}").json()
            _outcomes, attested = verify_attestation(domain, item["event"], digest_from_hash(event_id), item["signer"],
                                                     parse_signature(item["signature"]), roles)
            ok += attested is not None
    elapsed = time.perf_counter() - started
    return {"events": len(ids), "verified": ok, "events_per_s": len(ids) / elapsed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000, help="events in all (a third per organisation)")
    parser.add_argument("--rate", type=float, default=1_000.0, help="offered load, events/s over the three nodes")
    parser.add_argument("--document-size", type=int, default=100, help="events per capture document")
    parser.add_argument("--batch-size", type=int, default=2_000)
    parser.add_argument("--max-batch-delay", type=float, default=0.5)
    parser.add_argument("--block-time", type=float, default=1.0, help="seconds between blocks (interval mining)")
    parser.add_argument("--replication-processes", type=int, default=2, help="verification worker processes per node")
    parser.add_argument("--replication-concurrency", type=int, default=4)
    parser.add_argument("--baseline", type=int, default=1_500, help="events fetched and verified one by one")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    options = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    build()
    work = Path(tempfile.mkdtemp(prefix="waymark-replication-"))
    anvil = AnvilProcess(port=free_port())
    anvil.process = subprocess.Popen(anvil.command(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=die_with_kill)
    nodes: dict[str, Node] = {}
    try:
        wait_until("anvil answers", lambda: answers(anvil.rpc_url), 30, 0.05)
        client = ChainClient(anvil.rpc_url, expected_chain_id=anvil.chain_id)
        deployment, _ = deploy(client, devnet_account(DEPLOYER_INDEX), waymark_steps(demo_consortium()),
                               work / "deployments" / f"{anvil.chain_id}.json")
        AnvilControl(anvil.rpc_url).set_interval_mining(int(options.block_time) if options.block_time >= 1 else 1)
        per_member = options.events // len(MEMBERS) // options.document_size * options.document_size
        total = per_member * len(MEMBERS)
        start = int(client.w3.eth.get_block("latest")["timestamp"])
        log(f"signing {total} events ...")
        documents = sign_all(per_member, options.document_size, start, client.chain_id, deployment.address("ProvenanceRegistry"))
        settings = {"batch_size": options.batch_size, "max_batch_delay": options.max_batch_delay,
                    "replication_processes": options.replication_processes,
                    "replication_concurrency": options.replication_concurrency}
        for name in MEMBERS:
            nodes[name] = Node(name, work, anvil, anchor=True, **settings)
        for node in nodes.values():
            node.wait_ready()
        dbs = {name: Database(node.db_url) for name, node in nodes.items()}

        # ---- offered load: every node anchors its own, replicates the others' ----
        log(f"offering {options.rate:g} events/s for {total / options.rate:.0f}s ...")
        errors: list[str] = []
        offered_at = time.monotonic()
        senders = [threading.Thread(target=offer, args=(nodes[m], documents[m], options.rate / len(MEMBERS), errors)) for m in MEMBERS]
        for thread in senders:
            thread.start()
        for thread in senders:
            thread.join()
        offered_s = time.monotonic() - offered_at
        if errors:
            raise RuntimeError(f"capture refused: {errors[:3]}")
        log(f"offered in {offered_s:.1f}s; waiting until every node holds every batch ...")
        wait_until("every event anchored", lambda: sum(c for m in MEMBERS for _r, (_a, c) in anchored_batches(dbs[m]).items()) == total, 600)
        own = {m: anchored_batches(dbs[m]) for m in MEMBERS}
        wait_until("every node holds every batch",
                   lambda: all(len(imported(dbs[m])) == sum(len(own[o]) for o in MEMBERS if o != m) for m in MEMBERS), 600)
        held = {m: imported(dbs[m]) for m in MEMBERS}
        lags = []
        for origin in MEMBERS:
            for root, (anchored_ms, _count) in own[origin].items():
                lags.append(max(held[m][root] for m in MEMBERS if m != origin) - anchored_ms)
        lag = {"p50_s": percentile(lags, 50) / 1000, "p99_s": percentile(lags, 99) / 1000, "max_s": max(lags) / 1000}
        log(f"lag anchoring -> every node holds it: p50 {lag['p50_s']:.2f}s, p99 {lag['p99_s']:.2f}s over {len(lags)} batches")

        # ---- import rate: a fresh follower takes in everything ----
        log("a fresh follower imports everything ...")
        follower = nodes["follower"] = Node("follower", work, anvil, anchor=False, **settings)
        follower.wait_ready()
        follower_db = Database(follower.db_url)
        batches = sum(len(own[m]) for m in MEMBERS)
        wait_until("the follower holds every batch", lambda: len(imported(follower_db)) == batches, 1200, 0.2)
        times = sorted(imported(follower_db).values())
        with follower_db.session() as s:
            first_seen = int(s.scalar(select(func.min(NetworkBatch.first_seen_ms))) or 0)
            follower_events = int(s.scalar(select(func.count()).select_from(Event)) or 0)
        # the first batch's import began at most when it was first seen: from there to the last import
        import_s = (times[-1] - first_seen) / 1000
        from_start_s = times[-1] / 1000 - follower.started
        rate = follower_events / max(import_s, 1e-9)
        log(f"follower: {follower_events} events imported in {import_s:.1f}s ({rate:.0f} events/s, verification included); "
            f"{from_start_s:.1f}s from its start")

        # ---- baseline: one by one over GET /events/{id} ----
        base = baseline(nodes, dbs, client, deployment, options.baseline)
        log(f"baseline: {base['events_per_s']:.0f} events/s fetched and verified one by one ({base['verified']}/{base['events']} verified)")
        result = {
            "benchmark": "replication", "events": total, "nodes": len(MEMBERS), "offered_events_per_s": options.rate,
            "offered_seconds": round(offered_s, 1), "block_time_s": options.block_time, "batch_size": options.batch_size,
            "batches": batches, "lag_p50_s": round(lag["p50_s"], 3), "lag_p99_s": round(lag["p99_s"], 3),
            "lag_max_s": round(lag["max_s"], 3), "follower_events": follower_events,
            "follower_import_events_per_s": round(rate), "follower_seconds_from_start": round(from_start_s, 1),
            "baseline_events": base["events"], "baseline_events_per_s": round(base["events_per_s"]),
            "speedup_over_baseline": round(rate / max(base["events_per_s"], 1e-9), 1),
            "targets_met": {"import_10000_per_s": rate >= 10_000, "lag_p99_5s": lag["p99_s"] <= 5},
            "cpus": os.cpu_count(), "load_average": round(os.getloadavg()[0], 2),
        }
        print(json.dumps(result))
        return 0
    finally:
        for node in nodes.values():
            node.stop()
        anvil.stop()
        if not options.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"work directory kept: {work}")


if __name__ == "__main__":
    sys.exit(main())
