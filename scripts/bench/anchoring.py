#!/usr/bin/env python3
"""Benchmark: attested events end to end through a real node, and gas per event.

What is measured (one run, one machine):

1. Set-up, not timed: an Anvil of its own, the Waymark contracts deployed, a node started
   as `waymark node run` (HTTP server with capture-checking processes + one process with the anchorer and the
   indexer) on a fresh database, and N events (ObjectEvents about serialised units, bizSteps
   commissioning / inspecting / packing / sampling) signed beforehand by the members whose
   records this node takes (the manufacturer and the inspector it hosts: a node refuses other
   organisations' events), packed into capture documents of D events.
2. Timed: C concurrent clients POST the documents to /capture. The node validates each
   event, recomputes its CBV 2.0 hash, recovers the EIP-712 signer, checks its role at the
   event time, stores it, and answers; its anchorer batches pending events, builds the
   Merkle tree, sends `anchorBatch`, and stores every event's proof with the root,
   transaction and block. The clock stops when the last event is anchored with its proof.
   Reported: events/s end to end, and the ingest rate alone (until the last POST answered).
3. Gas per event: the anchors' gasUsed summed over all events. Baseline, same run, same
   chain: one `anchorBatch` transaction per event (a one-leaf tree each), on a smaller
   sample (--baseline events) since it is one transaction per event.
4. A sample of proof bundles is fetched from GET /events/{id}/proof and checked with
   `node.member.proofs.verify_bundle` against the chain.

Interval mining (--block-time 2): the chain mines a block every 2 seconds, as a Besu/QBFT
network does, instead of one block per transaction (it is deployed first, then switched). The
node's anchorer keeps up to --max-in-flight anchor transactions in the pool at once. The
same-run baseline is then the same node anchoring one transaction at a time (max-in-flight 1,
as before pipelining: at most one batch per block) on --baseline-events further events, timed
the same way; and the gas baseline (one anchorBatch per event) on --baseline events. Then
anchoring alone (--anchor-only-events, ingested by the node with its anchorer off, then
anchored by the node's Anchorer in this process, timed from start to the last proof stored):
pipelined, and one transaction at a time, each on the same number of fresh events.

The last line printed is one JSON object with the figures.

    .venv/bin/python scripts/bench/anchoring.py                       # 100,000 events, SQLite
    .venv/bin/python scripts/bench/anchoring.py --block-time 2 --events 100000   # interval mining
    .venv/bin/python scripts/bench/anchoring.py --events 20000 --db postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import orjson  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from node.member.anchorer import Anchorer  # noqa: E402
from node.chain.build import build  # noqa: E402
from node.chain.client import ChainClient  # noqa: E402
from node.chain.deploy import deploy, waymark_steps  # noqa: E402
from node.db import Batch, Database, Event  # noqa: E402
from waymark.devnet.anvil import AnvilControl, AnvilProcess  # noqa: E402
from waymark.ports import free_port  # noqa: E402
from waymark.devnet.consortium import demo_consortium, devnet_account  # noqa: E402
from waymark.demo.processes import process_stats  # noqa: E402
from node.member.proofs import verify_bundle  # noqa: E402
from node.protocol import epcis  # noqa: E402
from node.protocol.attestation import AttestationDomain, sign_attestation  # noqa: E402
from node.protocol.gs1 import UnitId  # noqa: E402
from node.protocol.merkle import leaf_hash  # noqa: E402

GTIN = "09521234543213"
# (member account index, bizStep): the manufacturer (organisation 1) and the inspector it hosts,
# the organisations the benchmark's node serves
ATTESTERS = ((1, "commissioning"), (2, "inspecting"), (1, "packing"), (2, "sampling"))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _sign_documents(args: tuple[int, int, int, int, int, str]) -> list[bytes]:
    """Worker: documents [first, last) of `size` events each, signed (runs in a pool)."""
    first, last, size, start, chain_id, registry = args
    domain = AttestationDomain(chain_id, registry)
    keys = {i: devnet_account(i) for i, _ in ATTESTERS}
    documents = []
    for d in range(first, last):
        events = []
        for i in range(size):
            n = d * size + i
            account_index, step = ATTESTERS[n % len(ATTESTERS)]
            event = epcis.object_event(
                epcs=[UnitId(GTIN, f"B{start}N{n:07d}", "LOT1")],
                action="OBSERVE",
                event_time=iso(start + 1 + (n % 600) * 0.001 + n // 1000),
                biz_step=step,
                read_point="urn:epc:id:sgln:9521234.54321.0",
            )
            account = keys[account_index]
            signed = sign_attestation(account.key, domain, event)
            body = {k: v for k, v in event.items() if k != "@context"}
            body["wm:attestation"] = {"signer": account.address, "signature": signed.signature_hex}
            events.append(body)
        document = epcis.epcis_document([])
        document["epcisBody"]["eventList"] = events
        documents.append(orjson.dumps(document))
    return documents


def sign_all(total: int, size: int, start: int, chain_id: int, registry: str, processes: int) -> list[bytes]:
    count = (total + size - 1) // size
    step = max(1, count // (processes * 4))
    jobs = [(i, min(i + step, count), size, start, chain_id, registry) for i in range(0, count, step)]
    with get_context("fork").Pool(processes) as pool:
        parts = pool.map(_sign_documents, jobs)
    return [d for part in parts for d in part]


def wait_for(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def progress(db: Database) -> tuple[int, int, int]:
    """(events stored, events still pending, batches not yet anchored)."""
    with db.session() as s:
        stored = int(s.scalar(select(func.count()).select_from(Event)) or 0)
        pending = int(s.scalar(select(func.count()).select_from(Event).where(Event.batch_id.is_(None))) or 0)
        open_batches = int(s.scalar(select(func.count()).select_from(Batch).where(Batch.status == "prepared")) or 0)
    return stored, pending, open_batches


def cpu_seconds(session_leader: int) -> dict[str, float]:
    """CPU seconds used so far by each process of a session (and by PostgreSQL's server
    processes, which serve the node), by command line (Linux /proc)."""
    found: dict[str, float] = {}
    postgres = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid, fields in process_stats():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        program = cmdline.split(" ", 1)[0]
        if program.startswith("postgres") or program.endswith("/postgres"):
            postgres += (int(fields[11]) + int(fields[12])) / tick
            continue
        if int(fields[3]) != session_leader:  # field 6 of stat: session id
            continue
        name = "anvil" if "anvil" in cmdline else cmdline.split(" -c ")[-1][:60] if "multiprocessing" in cmdline else cmdline[-60:]
        found[f"{pid} {name}"] = (int(fields[11]) + int(fields[12])) / tick
    if postgres and session_leader:
        found["postgresql server (all its processes)"] = postgres
    return found


def baseline(client: ChainClient, registry_address: str, samples: int) -> dict[str, float]:
    """One anchorBatch transaction per event: gas and rate, on `samples` events."""
    registry = client.contract("ProvenanceRegistry", registry_address)
    sender = devnet_account(1)
    gas = 0
    started = time.perf_counter()
    for i in range(samples):
        leaf = leaf_hash(random.randbytes(32), sender.address)
        receipt = client.transact(registry.functions.anchorBatch(leaf, 1, f"http://127.0.0.1/events/{i}"), sender=sender)
        gas += int(receipt["gasUsed"])
    elapsed = time.perf_counter() - started
    return {"events": samples, "gas_per_event": gas / samples, "events_per_s": samples / elapsed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--document-size", type=int, default=1_000, help="events per capture document")
    parser.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients")
    parser.add_argument("--check-processes", type=int, default=2, help="capture-checking processes of the node")
    parser.add_argument("--batch-size", type=int, default=4_000, help="events per anchored batch")
    parser.add_argument("--max-batch-delay", type=float, default=0.5)
    parser.add_argument("--baseline", type=int, default=None,
                        help="events anchored one transaction each (default 500; 10 with --block-time, a block each)")
    parser.add_argument("--verify", type=int, default=50, help="proof bundles checked with verify_bundle")
    parser.add_argument("--db", default=None, help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--block-time", type=int, default=None, help="seconds between blocks (interval mining); default: a block per transaction")
    parser.add_argument("--max-in-flight", type=int, default=8, help="anchor transactions the node keeps in flight")
    parser.add_argument("--baseline-events", type=int, default=20_000,
                        help="with --block-time: events anchored by the same node one transaction at a time (baseline)")
    parser.add_argument("--anchor-only-events", type=int, default=40_000,
                        help="with --block-time: events anchored alone, pipelined and one at a time (0: skip)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    options = parser.parse_args()
    if options.baseline is None:
        options.baseline = 500 if options.block_time is None else 10

    work = Path(tempfile.mkdtemp(prefix="waymark-bench-"))
    db_url = options.db or f"sqlite:///{work / 'node.sqlite3'}"
    build()
    anvil = AnvilProcess(port=free_port(), log_file=work / "anvil.log").start()
    node: subprocess.Popen[bytes] | None = None
    schema: str | None = None
    try:
        client = ChainClient(anvil.rpc_url, expected_chain_id=anvil.chain_id)
        deployment, _ = deploy(client, devnet_account(0), waymark_steps(demo_consortium()), work / "deployments" / f"{anvil.chain_id}.json")
        registry = deployment.address("ProvenanceRegistry")
        if options.block_time is not None:
            AnvilControl(anvil.rpc_url).set_interval_mining(options.block_time)
            log(f"chain: a block every {options.block_time}s from now on")
        start = int(client.w3.eth.get_block("latest")["timestamp"])

        schema = None
        if not db_url.startswith("sqlite"):
            # PostgreSQL: a schema of this run's own, dropped at the end; the node finds it
            # through the connection's search path.
            schema = f"waymark_bench_{os.getpid()}"
            Database(db_url, schema=schema).dispose()
            db_url += ("&" if "?" in db_url else "?") + f"options=-csearch_path%3D{schema}"
        db = Database(db_url)
        db.migrate()

        log(f"signing {options.events} events in documents of {options.document_size} ...")
        t = time.perf_counter()
        documents = sign_all(options.events, options.document_size, start, anvil.chain_id, registry, os.cpu_count() or 2)
        events_total = len(documents) * options.document_size
        log(f"signed in {time.perf_counter() - t:.1f}s ({sum(len(d) for d in documents) / 1e6:.0f} MB of capture documents)")

        port = free_port()
        env = {
            **os.environ,
            "WAYMARK_CHAIN_RPC_URL": anvil.rpc_url,
            "WAYMARK_CHAIN_CHAIN_ID": str(anvil.chain_id),
            "WAYMARK_CHAIN_DEPLOYMENTS_DIR": str(work / "deployments"),
            "WAYMARK_DB_URL": db_url,
            "WAYMARK_NODE_PORT": str(port),
            "WAYMARK_NODE_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "WAYMARK_NODE_BATCH_SIZE": str(options.batch_size),
            "WAYMARK_NODE_MAX_BATCH_DELAY": str(options.max_batch_delay),
            "WAYMARK_NODE_ANCHOR_DEVNET_ACCOUNT": "1",
            "WAYMARK_NODE_MAX_FUTURE_SKEW": str(10**6),
            "WAYMARK_NODE_MAX_IN_FLIGHT": str(options.max_in_flight),
        }

        def start_node(environment: dict[str, str], *extra: str) -> subprocess.Popen[bytes]:
            node_log = open(work / "node.log", "ab")
            started_node = subprocess.Popen(
                [sys.executable, "-m", "waymark", "node", "run", "--check-processes", str(options.check_processes), *extra],
                env=environment, stdout=node_log, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT,
            )
            wait_for(f"{base}/health")
            return started_node

        base = f"http://127.0.0.1:{port}"
        node = start_node(env)
        log(f"node up at {base} ({options.check_processes} check processes, anchorer + indexer in a process of their own); ingesting ...")

        errors: list[str] = []
        queue = list(documents)
        lock = threading.Lock()

        def client_loop() -> None:
            with httpx.Client(timeout=300) as http:
                while True:
                    with lock:
                        if not queue:
                            return
                        body = queue.pop()
                    response = http.post(f"{base}/capture", content=body, headers={"content-type": "application/json"})
                    if response.status_code not in (200, 201):
                        errors.append(f"{response.status_code} {response.text[:300]}")

        def all_cpu() -> dict[str, float]:
            usage = cpu_seconds(node.pid) if node else {}
            usage.update({f"{k} (anvil)": v for k, v in cpu_seconds(anvil.process.pid if anvil.process else 0).items()
                          if "postgresql" not in k})
            usage["bench process (clients)"] = time.process_time()
            return usage

        cpu_before = all_cpu()
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        with ThreadPoolExecutor(options.clients) as pool:
            for future in [pool.submit(client_loop) for _ in range(options.clients)]:
                future.result()
        ingested = time.perf_counter() - started
        if errors:
            log(f"{len(errors)} capture requests failed, first: {errors[0]}")
        while True:
            stored, pending, open_batches = progress(db)
            if pending == 0 and open_batches == 0:
                break
            if node.poll() is not None:
                raise RuntimeError("the node exited; see " + str(work / "node.log"))
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        log(f"ingested {stored} events in {ingested:.1f}s; all anchored after {elapsed:.1f}s")
        usage = {k: v - cpu_before.get(k, 0.0) for k, v in all_cpu().items()}
        node_cpu = sum(v for k, v in usage.items() if "bench process" not in k)
        load_after = os.getloadavg()[0]
        log(f"CPU seconds used during the timed phase ({elapsed:.1f}s on {os.cpu_count()} cores):")
        for name, seconds in sorted(usage.items(), key=lambda x: -x[1]):
            if seconds >= 0.05:
                log(f"  {seconds:7.2f}s  {name}")

        with db.session() as s:
            batches = s.execute(select(Batch.event_count, Batch.gas_used)).all()
        gas = sum(int(g or 0) for _, g in batches)
        anchored_events = sum(int(c) for c, _ in batches)

        # A sample of proof bundles, fetched over HTTP and checked against the chain.
        with db.session() as s:
            digests = [bytes(d) for d in s.scalars(select(Event.digest).order_by(func.random()).limit(options.verify))]
        verified = 0
        with httpx.Client(timeout=30) as http:
            for digest in digests:
                bundle = http.get(f"{base}/events/{digest.hex()}/proof").json()
                verified += verify_bundle(bundle, anvil.rpc_url, registry_address=registry).ok

        node.send_signal(signal.SIGTERM)
        node.wait(30)
        node = None
        sequential: dict[str, Any] = {}
        if options.block_time is not None:
            more = sign_all(options.baseline_events, options.document_size, start + 100_000, anvil.chain_id, registry,
                            os.cpu_count() or 2)
            node = start_node({**env, "WAYMARK_NODE_MAX_IN_FLIGHT": "1"})
            log(f"baseline: {len(more) * options.document_size} more events, the same node anchoring one transaction at a time ...")
            before, _, _ = progress(db)
            queue.extend(more)
            t0 = time.perf_counter()
            with ThreadPoolExecutor(options.clients) as pool:
                for future in [pool.submit(client_loop) for _ in range(options.clients)]:
                    future.result()
            while True:
                now_stored, pending, open_batches = progress(db)
                if pending == 0 and open_batches == 0:
                    break
                if node.poll() is not None:
                    raise RuntimeError("the node exited; see " + str(work / "node.log"))
                time.sleep(0.05)
            took = time.perf_counter() - t0
            sequential = {"events": now_stored - before, "seconds": round(took, 2),
                          "events_per_s": round((now_stored - before) / took)}
            node.send_signal(signal.SIGTERM)
            node.wait(30)
            node = None
        anchor_only: dict[str, dict[str, float]] = {}
        if options.block_time is not None and options.anchor_only_events:
            for round_, in_flight in enumerate((options.max_in_flight, 1)):
                fresh = sign_all(options.anchor_only_events, options.document_size, start + 200_000 + round_ * 100_000,
                                 anvil.chain_id, registry, os.cpu_count() or 2)
                node = start_node(env, "--no-anchorer")
                queue.extend(fresh)
                with ThreadPoolExecutor(options.clients) as pool:
                    for future in [pool.submit(client_loop) for _ in range(options.clients)]:
                        future.result()
                node.send_signal(signal.SIGTERM)
                node.wait(30)
                node = None
                _, waiting, _ = progress(db)
                log(f"anchoring alone: {waiting} pending events, {in_flight} anchor transaction(s) in flight ...")
                anchorer = Anchorer(db, client, registry, devnet_account(1), batch_size=options.batch_size,
                                    max_in_flight=in_flight, uri_prefix=f"{base}/batches/")
                t0 = time.perf_counter()
                anchorer.drain(timeout=3600)
                took = time.perf_counter() - t0
                anchor_only[str(in_flight)] = {"events": waiting, "seconds": round(took, 2), "events_per_s": round(waiting / took)}
        log(f"baseline: {options.baseline} events, one anchorBatch transaction each ...")
        one_each = baseline(client, registry, options.baseline)

        result = {
            "events": events_total,
            "events_stored": stored,
            "events_anchored": anchored_events,
            "capture_errors": len(errors),
            "document_size": options.document_size,
            "clients": options.clients,
            "check_processes": options.check_processes,
            "batch_size": options.batch_size,
            "batches": len(batches),
            "database": db.url.get_backend_name(),
            "cpus": os.cpu_count(),
            "ingest_seconds": round(ingested, 2),
            "end_to_end_seconds": round(elapsed, 2),
            "ingest_events_per_s": round(stored / ingested),
            "end_to_end_events_per_s": round(anchored_events / elapsed),
            "node_cpu_seconds": round(node_cpu, 1),
            "events_per_node_cpu_second": round(anchored_events / max(node_cpu, 1e-9)),
            "load_average_before_after": [round(load_before, 2), round(load_after, 2)],
            "gas_per_event": round(gas / max(anchored_events, 1), 1),
            "baseline_events": one_each["events"],
            "baseline_gas_per_event": round(one_each["gas_per_event"]),
            "baseline_events_per_s": round(one_each["events_per_s"], 1),
            "gas_reduction_factor": round(one_each["gas_per_event"] / max(gas / max(anchored_events, 1), 1e-9)),
            "proofs_verified": f"{verified}/{len(digests)}",
            "block_time_s": options.block_time,
            "max_in_flight": options.max_in_flight,
        }
        if anchor_only:
            piped, single = anchor_only[str(options.max_in_flight)], anchor_only["1"]
            result.update({
                "anchoring_alone_events": piped["events"],
                "anchoring_alone_events_per_s": piped["events_per_s"],
                "anchoring_alone_one_at_a_time_events_per_s": single["events_per_s"],
                "anchoring_alone_speedup": round(piped["events_per_s"] / max(single["events_per_s"], 1), 1),
            })
        if sequential:
            result.update({
                "sequential_baseline_events": sequential["events"],
                "sequential_baseline_events_per_s": sequential["events_per_s"],
                "pipelining_speedup": round(result["end_to_end_events_per_s"] / max(sequential["events_per_s"], 1), 1),
            })
        print(f"end to end: {result['end_to_end_events_per_s']} events/s over {anchored_events} events "
              f"({result['ingest_events_per_s']} events/s ingest alone)")
        print(f"gas: {result['gas_per_event']} per event in {len(batches)} batches; "
              f"baseline one transaction per event: {result['baseline_gas_per_event']} per event "
              f"({one_each['events']} events, {result['baseline_events_per_s']} events/s)")
        print(f"proof bundles verified against the chain: {result['proofs_verified']}")
        if sequential:
            print(f"interval mining, a block every {options.block_time}s: {result['end_to_end_events_per_s']} events/s with "
                  f"{options.max_in_flight} anchors in flight; baseline, same run, one anchor at a time: "
                  f"{sequential['events_per_s']} events/s over {sequential['events']} events")
        if anchor_only:
            print(f"anchoring alone, a block every {options.block_time}s: {result['anchoring_alone_events_per_s']} events/s with "
                  f"{options.max_in_flight} in flight, {result['anchoring_alone_one_at_a_time_events_per_s']} events/s one at a time "
                  f"({result['anchoring_alone_events']} events each)")
        print(f"CPU: node, chain and database used {node_cpu:.1f} CPU-seconds, "
              f"{result['events_per_node_cpu_second']} events per CPU-second; load average "
              f"{load_before:.2f} before, {load_after:.2f} after (other work on this machine slows the run)")
        print(json.dumps(result))
        return 0 if not errors and verified == len(digests) and anchored_events == events_total else 1
    finally:
        if node is not None and node.poll() is None:
            os.killpg(node.pid, signal.SIGTERM)
            node.wait(30)
        anvil.stop()
        if schema is not None and not options.keep:
            Database(options.db, schema=schema).drop_schema()
        if not options.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"work directory kept: {work}")


if __name__ == "__main__":
    sys.exit(main())
