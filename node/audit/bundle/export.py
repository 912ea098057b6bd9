"""Writing an evidence bundle: the proof bundles of the selected events, their roots as the
chain reports them, an order's escrow record, and the manifest, into one deterministic zip."""

from __future__ import annotations

import time
import zipfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import and_, select
from web3 import Web3

from node.audit.bundle.events import select_events
from node.audit.bundle.format import BUNDLE_FORMAT, BUNDLE_FORMAT_VERSION, MANIFEST, BundleError, sha256_hex
from node.protocol.timestamps import iso_ms
from node.audit.bundle.selection import OrderSel, Selector
from node.chain.client import ChainClient
from node.chain.deploy import Deployment
from node.db import Batch, Database, Event
from node.db.relayer import RelaySignature, RelaySubmission
from node.escrow import EscrowClient, order_key
from node.member.proofs import PROVENANCE_ABI, proof_bundle
from node.protocol.event_hash import hash_from_digest

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed entry times: the same evidence gives the same bytes


class NothingToExport(BundleError):
    code = "nothing_to_export"

    def __init__(self, selector: "Selector") -> None:
        super().__init__(f"the database holds no anchored event for {selector.describe()}")


def _dump(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def _event_records(db: Database, digests: set[bytes], chain_id: int, registry: str) -> tuple[list[dict[str, Any]], list[Batch], list[str]]:
    """(proof bundles of the anchored events, oldest first; their batches; ids of pending events)."""
    records: list[dict[str, Any]] = []
    batches: dict[int, Batch] = {}
    pending: list[str] = []
    wanted = sorted(digests)
    with db.session() as s:
        for start in range(0, len(wanted), 500):
            rows = s.execute(
                select(Event, Batch)
                .outerjoin(Batch, and_(Batch.id == Event.batch_id, Batch.status.in_(("anchored", "confirmed"))))
                .where(Event.digest.in_(wanted[start : start + 500]))
            ).all()
            for event, batch in rows:
                if batch is None or event.proof is None:
                    pending.append(hash_from_digest(bytes(event.digest)))
                    continue
                batches[batch.id] = batch
                record = proof_bundle(event, batch, chain_id=chain_id, registry_address=registry)
                record["eventTimeMs"] = event.event_time_ms
                records.append(record)
    records.sort(key=lambda r: (r["eventTimeMs"], r["eventId"]))
    return records, sorted(batches.values(), key=lambda b: b.id), sorted(pending)


def _roots(client: ChainClient, registry: str, batches: list[Batch]) -> list[dict[str, Any]]:
    """Each root with its anchor: the node's record of the transaction, and what the chain says."""
    provenance = client.w3.eth.contract(address=Web3.to_checksum_address(registry), abi=PROVENANCE_ABI)
    roots = []
    for batch in batches:
        org_id, block_number, timestamp, count = provenance.functions.anchorOf(bytes(batch.root)).call()
        roots.append({
            "root": "0x" + bytes(batch.root).hex(),
            "eventCount": batch.event_count,
            "txHash": "0x" + bytes(batch.tx_hash or b"").hex(),
            "blockNumber": batch.block_number,
            "blockHash": "0x" + bytes(batch.block_hash or b"").hex(),
            # As the chain reported at export (None: the chain did not know the root then).
            "blockTime": int(timestamp) if org_id else None,
            "orgId": int(org_id) if org_id else None,
            "anchoredCount": int(count) if org_id else None,
            "anchoredBlock": int(block_number) if org_id else None,
        })
    return roots


def _escrow(db: Database, client: ChainClient, deployment: Deployment, order_id: int) -> tuple[dict[str, Any], bytes]:
    """The order's terms, relayed attestations and submissions; and its shipmentRef."""
    escrow = EscrowClient.from_deployment(client, deployment)
    terms = escrow.terms(order_id)
    key = order_key(order_id)
    with db.session() as s:
        signatures = s.scalars(
            select(RelaySignature)
            .where(RelaySignature.chain_id == client.chain_id, RelaySignature.escrow == escrow.address, RelaySignature.order_id == key)
            .order_by(RelaySignature.kind, RelaySignature.milestone, RelaySignature.id)
        ).all()
        submissions = s.scalars(
            select(RelaySubmission)
            .where(RelaySubmission.chain_id == client.chain_id, RelaySubmission.escrow == escrow.address, RelaySubmission.order_id == key)
            .order_by(RelaySubmission.kind, RelaySubmission.milestone)
        ).all()
    record = {
        "escrow": escrow.address,
        "orders": [{
            "orderId": key,
            "terms": terms.to_json(),
            "attestations": [
                {"kind": r.kind, "milestone": r.milestone, "signer": r.signer, "orgId": r.org_id, "duty": r.duty,
                 "dutyPayee": r.duty_payee, "deadline": r.deadline, "signature": "0x" + bytes(r.signature).hex(),
                 "receivedAtMs": r.received_at_ms}
                for r in signatures
            ],
            "submissions": [
                {"kind": r.kind, "milestone": r.milestone, "status": r.status,
                 "txHash": "0x" + bytes(r.tx_hash).hex() if r.tx_hash else None, "detail": r.detail}
                for r in submissions
            ],
        }],
    }
    return record, terms.shipment_ref


def export_bundle(db: Database, client: ChainClient, deployment: Deployment, selector: Selector, out_path: Path) -> dict[str, Any]:
    """Write the evidence bundle of `selector` to `out_path` (a zip); returns its manifest.
    Raises NothingToExport when there is neither an anchored event nor an escrow record."""
    chain_id = client.chain_id
    registry = deployment.address("ProvenanceRegistry")
    escrow: dict[str, Any] = {"escrow": None, "orders": []}
    shipment_ref = None
    if isinstance(selector, OrderSel):
        escrow, shipment_ref = _escrow(db, client, deployment, selector.order_id)
    events, batches, pending = _event_records(db, select_events(db, selector, shipment_ref), chain_id, registry)
    if not events and not escrow["orders"]:
        raise NothingToExport(selector)
    files = {
        "chain.json": _dump({
            "chainId": chain_id,
            "startBlock": deployment.start_block,
            "deployer": deployment.deployer,
            "contracts": {name: asdict(c) for name, c in sorted(deployment.contracts.items())},
        }),
        "events.json": _dump(events),
        "roots.json": _dump(_roots(client, registry, batches)),
        "escrow.json": _dump(escrow),
    }
    manifest = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_FORMAT_VERSION,
        "selection": selector.to_json(),
        "createdAt": iso_ms(int(time.time() * 1000)),
        "chainId": chain_id,
        "counts": {"events": len(events), "roots": len(batches), "orders": len(escrow["orders"])},
        "pendingEvents": pending,  # held by the node, not anchored yet: no evidence to give
        "files": {name: {"sha256": sha256_hex(data), "bytes": len(data)} for name, data in files.items()},
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in [(MANIFEST, _dump(manifest)), *files.items()]:
            archive.writestr(zipfile.ZipInfo(name, _ZIP_TIME), data, compress_type=zipfile.ZIP_DEFLATED)
    tmp.replace(out_path)
    return manifest
