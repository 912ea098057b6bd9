#!/usr/bin/env python3
"""Benchmark: the auditor's events verified per second, against a naive verifier, same run.

Set-up (not timed; cached under var/bench/audit-<N>/ and reused while the Anvil state, the
deployment and the database still agree): an Anvil of its own with its state on disk, the
Waymark contracts deployed, N events (ObjectEvents about serialised units; bizSteps
commissioning / inspecting / shipping / customs cleared) signed by the four attesting demo
members in worker processes, stored through the node's capture store (CaptureService.store,
the rows ingest writes) and anchored in batches of --batch-size by the anchorer of the member
node hosting each signer (the audit refuses an event anchored by any other organisation).

Timed:
1. `node.audit.audit_database` with `--workers` processes (default: every core): the whole
   audit, chain replay and escrow included, over every stored event.
2. The naive baseline, single-threaded, the obvious way, on a sample of --baseline events
   (it is slow; its rate is what is compared): per event an ORM load, the CBV 2.0 event hash,
   eth_account's typed-data recovery, a `hasRoleAt` view call for the role at the event time,
   and the full Merkle proof checked against an `isAnchored` call for its root.

3. The incremental re-audit: the first audit is checkpointed (node.audit.checkpoint, signed by
   an auditor key), --new-percent more events (1% by default) are stored and anchored (not
   timed; kept in the cache with the checkpoint), then the re-audit from the checkpoint, which
   verifies only those, is timed against a full audit of the same data (every event).

Printed: events, seconds and events/s of each, the speed-up, CPU count and load average;
the last line is one JSON object with the figures.

    .venv/bin/python scripts/bench/audit.py                    # 100,000 events (built once, then reused)
    .venv/bin/python scripts/bench/audit.py --events 20000 --rebuild
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
from eth_account import Account  # noqa: E402
from eth_account.messages import encode_typed_data  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from node.member.anchorer import Anchorer  # noqa: E402
from node.audit import DatabaseEvidence, SignedCheckpoint, audit, audit_and_checkpoint, audit_database, load_checkpoint, save_checkpoint  # noqa: E402
from node.chain.build import build  # noqa: E402
from node.chain.client import ChainClient  # noqa: E402
from node.chain.deploy import Deployment, deploy, is_current, load_deployment, waymark_steps  # noqa: E402
from node.db import Batch, Database, Event  # noqa: E402
from waymark.devnet.anvil import AnvilProcess  # noqa: E402
from waymark.ports import free_port  # noqa: E402
from waymark.devnet.consortium import DEMO_MEMBERS, demo_consortium, devnet_account  # noqa: E402
from waymark.demo.layout import MEMBER_NODES  # noqa: E402
from waymark.demo.network import anchor_account  # noqa: E402
from node.member.ingest.capture import CaptureService, CheckedEvent  # noqa: E402
from node.protocol.timestamps import unix_ms  # noqa: E402
from node.protocol.canonical_ids import event_epcs  # noqa: E402
from node.member.ingest.roles import RoleMirror  # noqa: E402
from node.protocol.roles import roles_for_bizstep  # noqa: E402
from node.protocol import epcis  # noqa: E402
from node.protocol import vocabulary  # noqa: E402
from node.protocol.attestation import AttestationDomain, attestation_typed_data, sign_attestation  # noqa: E402
from node.protocol.event_hash import event_digest  # noqa: E402
from node.protocol.gs1 import UnitId  # noqa: E402
from node.protocol.merkle import leaf_hash, verify_proof  # noqa: E402
from node.chain.registry import role_id  # noqa: E402

GTIN = "09521234543213"
ATTESTERS = ((1, "commissioning"), (2, "inspecting"), (3, "shipping"), (4, vocabulary.customs_step("cleared")))
CONTRACTS = ("ConsortiumRegistry", "ProvenanceRegistry")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def iso(unix: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(unix, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# ---- set-up --------------------------------------------------------------------------------


def _sign(args: tuple[int, int, int, int, str, tuple[int, ...]]) -> list[CheckedEvent]:
    """Worker: the events in [first, last) of the given attesters, signed, as the rows ingest would store."""
    first, last, start, chain_id, registry, attesters = args
    domain = AttestationDomain(chain_id, registry)
    keys = {i: devnet_account(i) for i, _ in ATTESTERS}
    out = []
    for n in range(first, last):
        if n % len(ATTESTERS) not in attesters:
            continue
        index, step = ATTESTERS[n % len(ATTESTERS)]
        event = epcis.object_event(
            epcs=[UnitId(GTIN, f"A{start}N{n:07d}", "LOT1")], action="OBSERVE",
            event_time=iso(start + 1 + (n % 600) * 0.001 + n // 1000), biz_step=step,
            read_point="urn:epc:id:sgln:9521234.54321.0",
        )
        account = keys[index]
        signed = sign_attestation(account.key, domain, event)
        roles = roles_for_bizstep(step)
        assert roles is not None
        out.append(CheckedEvent(
            digest=signed.event_digest, event_type=event["type"], action=event.get("action"), biz_step=step,
            event_time=signed.event_time, event_time_ms=unix_ms(event["eventTime"]), subject=signed.subject,
            signer=account.address, signature=signed.signature, role=roles[0],
            body=orjson.dumps(event).decode(), epcs=event_epcs(event),
        ))
    return out


def anchoring_nodes() -> dict[int, tuple[int, ...]]:
    """The anchor account of each member node, with the attesters (indices into ATTESTERS) whose
    events it anchors, its own members' and those it hosts (MEMBER_NODES): an event must be
    anchored by its signer's organisation or by the one hosting it, as the audit checks."""
    key_of = {m.account_index: m.key for m in DEMO_MEMBERS}
    nodes = {}
    for node, members in MEMBER_NODES.items():
        attesters = tuple(i for i, (account_index, _) in enumerate(ATTESTERS) if key_of[account_index] in members)
        if attesters:
            nodes[anchor_account(node)] = attesters
    return nodes


def store_and_anchor(client: ChainClient, deployment: Deployment, db: Database, first: int, last: int, start: int,
                     batch_size: int) -> None:
    """Sign events [first, last), store them as ingest does and anchor them (not timed): node by
    node, each storing its own members' events and anchoring them from its own account."""
    registry = deployment.address("ProvenanceRegistry")
    step = 5_000
    capture = CaptureService(db, AttestationDomain(client.chain_id, registry),
                             RoleMirror(client.w3, deployment.address("ConsortiumRegistry"), start_block=0))
    with get_context("fork").Pool(os.cpu_count() or 2) as pool:
        for account, attesters in anchoring_nodes().items():
            jobs = [(i, min(i + step, last), start, client.chain_id, registry, attesters) for i in range(first, last, step)]
            for rows in pool.imap(_sign, jobs):
                capture.store(rows)
            Anchorer(db, client, registry, devnet_account(account), batch_size=batch_size).drain(timeout=3600)


def build_world(work: Path, events: int, batch_size: int) -> tuple[AnvilProcess, ChainClient, Deployment, Database]:
    """Start (or restart from its state file) the bench's Anvil and database, building them if needed."""
    record = work / "deployments" / "31337.json"
    state = work / "anvil-state.json"
    db_path = work / "node.sqlite3"
    complete = work / "complete.json"
    if complete.exists() and state.exists() and record.exists() and db_path.exists():
        anvil = AnvilProcess(port=free_port(), state_file=state, log_file=work / "anvil.log").start()
        client = ChainClient(anvil.rpc_url, expected_chain_id=anvil.chain_id)
        deployment = load_deployment(record)
        db = Database(f"sqlite:///{db_path}")
        with db.session() as s:
            stored = s.scalar(select(func.count()).select_from(Event).where(Event.proof.is_not(None)))
        recorded = json.loads(complete.read_text())
        if is_current(client, deployment, CONTRACTS) and "start" in recorded and recorded["events"] == events \
                and stored == events + recorded.get("extra", 0):
            log(f"reusing {work} ({stored} anchored events)")
            return anvil, client, deployment, db
        log(f"{work} is stale; rebuilding")
        db.dispose()
        anvil.stop()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    build()
    anvil = AnvilProcess(port=free_port(), state_file=state, log_file=work / "anvil.log").start()
    client = ChainClient(anvil.rpc_url, expected_chain_id=anvil.chain_id)
    deployment, _ = deploy(client, devnet_account(0), waymark_steps(demo_consortium()), record)
    db = Database(f"sqlite:///{db_path}")
    db.migrate()
    start = int(client.w3.eth.get_block("latest")["timestamp"])
    log(f"signing, storing and anchoring {events} events in batches of {batch_size} ...")
    t = time.perf_counter()
    store_and_anchor(client, deployment, db, 0, events, start, batch_size)
    log(f"done in {time.perf_counter() - t:.1f}s")
    complete.write_text(json.dumps({"events": events, "start": start}))
    return anvil, client, deployment, db


# ---- the naive baseline ----------------------------------------------------------------------


def naive(client: ChainClient, deployment: Deployment, db: Database, sample: int) -> tuple[int, float, int]:
    """The obvious single-threaded verifier; returns (events, seconds, failures)."""
    registry = client.contract("ConsortiumRegistry", deployment.address("ConsortiumRegistry"))
    provenance = client.contract("ProvenanceRegistry", deployment.address("ProvenanceRegistry"))
    domain = AttestationDomain(client.chain_id, deployment.address("ProvenanceRegistry"))
    failures = 0
    t = time.perf_counter()
    with Session(db.engine) as session:
        ids = session.scalars(select(Event.id).order_by(Event.id).limit(sample)).all()
        for event_id in ids:
            event = session.get(Event, event_id)
            assert event is not None and event.proof is not None and event.batch_id is not None
            batch = session.get(Batch, event.batch_id)
            assert batch is not None
            body = json.loads(event.body)
            ok = event_digest(body) == event.digest
            typed = attestation_typed_data(domain, event.digest, event.subject, event.event_time)
            recovered = Account.recover_message(encode_typed_data(full_message=typed), signature=event.signature)
            ok = ok and recovered == event.signer
            roles = roles_for_bizstep(body.get("bizStep")) or ()
            ok = ok and any(registry.functions.hasRoleAt(recovered, role_id(r), event.event_time).call() for r in roles)
            proof = [event.proof[i:i + 32] for i in range(0, len(event.proof), 32)]
            ok = ok and verify_proof(batch.root, leaf_hash(event.digest, event.signer), proof)
            ok = ok and bool(provenance.functions.isAnchored(batch.root).call())
            failures += not ok
    return len(ids), time.perf_counter() - t, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=4_000, help="events per anchored batch")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--baseline", type=int, default=2_000, help="events the naive verifier checks")
    parser.add_argument("--rebuild", action="store_true", help="build the database and chain afresh")
    parser.add_argument("--work", type=Path, default=None, help="cache directory (default var/bench/audit-<N>)")
    parser.add_argument("--new-percent", type=float, default=1.0, help="events added after the checkpoint, percent of --events")
    options = parser.parse_args()
    work = options.work or ROOT / "var" / "bench" / f"audit-{options.events}"
    if options.rebuild:
        shutil.rmtree(work, ignore_errors=True)
    anvil, client, deployment, db = build_world(work, options.events, options.batch_size)
    try:
        auditor = devnet_account(19)  # the auditor's own key (a devnet key: this is a benchmark)
        complete = work / "complete.json"
        recorded = json.loads(complete.read_text())
        checkpoint_file = work / "checkpoint.json"
        log(f"auditing with {options.workers} worker processes ...")
        if recorded.get("extra") is None or not checkpoint_file.exists():
            report, made = audit_and_checkpoint(client, deployment, DatabaseEvidence(db), auditor, workers=options.workers)
            if made is None:
                log(f"the audit found {len(report.discrepancies)} discrepancies on an honest history: {report.by_kind()}")
                return 1
            save_checkpoint(checkpoint_file, *made)
            extra = max(1, round(options.events * options.new_percent / 100))
            log(f"checkpoint at block {made[0].to_block}; storing and anchoring {extra} new events ...")
            store_and_anchor(client, deployment, db, options.events, options.events + extra, int(recorded.get("start", 0)),
                             options.batch_size)
            complete.write_text(json.dumps({**recorded, "extra": extra}))
        else:
            report = audit_database(client, deployment, db, workers=options.workers)
            extra = int(recorded["extra"])
        if not report.ok:
            log(f"the audit found {len(report.discrepancies)} discrepancies on an honest history: {report.by_kind()}")
            return 1
        fast_events, fast_s = report.checked.events, report.elapsed_s
        since = SignedCheckpoint(*load_checkpoint(checkpoint_file), auditor.address)
        log(f"incremental re-audit from the checkpoint ({extra} new events) ...")
        incremental = audit(client, deployment, DatabaseEvidence(db), workers=options.workers, since=since)
        log("full audit of the same data ...")
        full = audit_database(client, deployment, db, workers=options.workers)
        if not (incremental.ok and full.ok):
            log(f"discrepancies on an honest history: incremental {incremental.by_kind()}, full {full.by_kind()}")
            return 1
        log(f"naive verifier on {options.baseline} events ...")
        naive_events, naive_s, failures = naive(client, deployment, db, options.baseline)
        if failures:
            log(f"the naive verifier failed {failures} events")
            return 1
    finally:
        db.dispose()
        anvil.stop()
    fast_rate, naive_rate = fast_events / fast_s, naive_events / naive_s
    load = os.getloadavg()
    figures: dict[str, Any] = {
        "events": fast_events, "anchored_roots": report.checked.anchored_roots,
        "audit_seconds": round(fast_s, 2), "audit_events_per_s": round(fast_rate),
        "workers": options.workers,
        "naive_events": naive_events, "naive_seconds": round(naive_s, 2), "naive_events_per_s": round(naive_rate, 1),
        "speedup": round(fast_rate / naive_rate, 1), "target_events_per_s": 20_000,
        "target_met": fast_rate >= 20_000, "cpu_count": os.cpu_count(), "loadavg": [round(x, 2) for x in load],
        "incremental_new_events": incremental.checked.events, "incremental_seconds": round(incremental.elapsed_s, 2),
        "full_same_data_events": full.checked.events, "full_same_data_seconds": round(full.elapsed_s, 2),
        "incremental_speedup": round(full.elapsed_s / max(incremental.elapsed_s, 1e-9), 1),
    }
    print(f"audit : {fast_events} events in {fast_s:.2f} s = {fast_rate:,.0f} events/s ({options.workers} workers, "
          f"whole audit incl. chain replay of {report.checked.anchored_roots} roots)")
    print(f"naive : {naive_events} events in {naive_s:.2f} s = {naive_rate:,.1f} events/s (single thread)")
    print(f"re-audit from a signed checkpoint: {incremental.checked.events} new events in {incremental.elapsed_s:.2f} s; "
          f"full audit of the same {full.checked.events} events in {full.elapsed_s:.2f} s "
          f"({full.elapsed_s / max(incremental.elapsed_s, 1e-9):,.1f}x)")
    print(f"speed-up {fast_rate / naive_rate:,.1f}x; target 20,000 events/s {'met' if fast_rate >= 20_000 else 'NOT met'}; "
          f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
