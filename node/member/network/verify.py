"""Verifying a fetched batch bundle against its on-chain anchor, before anything of it is imported.

The rule is node.protocol.verification's (`verify_batch`: the leaves are the anchored count; every event
passes the hash, signature and role checks and belongs to the anchoring organisation or one it
hosted at the anchor time; the leaves rebuild the anchored root). This module only reads the
bundle and turns the outcome into either the rows to import or a `Refusal` naming the failed
check and, where there is one, the event. Its own checks concern the bundle's shape:

| check          | what failed |
|----------------|-------------|
| bundle         | the bundle cannot be read (not gzip, not NDJSON, header or a leaf line malformed) |
| header         | the header names another chain, registry or root than the anchor |
| leaf_order     | the leaves are not numbered 0..n-1 in order |

and the core's: event_count, event_hash, signature, role, anchor (not the anchoring
organisation's, nor hosted by it), root (the leaves do not rebuild the anchored root).

`verify_bundle` is a pure function of its arguments (the registry history included), so the
replicator can run it in a worker process.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from node.member.ingest.capture import CheckedEvent
from node.protocol.timestamps import unix_ms
from node.protocol.canonical_ids import event_epcs
from node.member.network.bundle import BundleHeader, MalformedBundle, parse_leaf, read_bundle
from node.protocol.attestation import AttestationDomain, event_subject
from node.protocol.crypto import SignatureError, parse_signature, to_checksum_address
from node.protocol.event_hash import EventHashError, digest_from_hash, event_digest, hash_from_digest
from node.protocol.merkle import MerkleTree, build_tree
from node.protocol.verification import Anchor, Leaf, Registry, verify_batch


@dataclass(frozen=True)
class Refusal:
    check: str
    reason: str
    event_id: str | None = None

    def __str__(self) -> str:
        where = f"event {self.event_id}: " if self.event_id else ""
        return f"{where}{self.check}: {self.reason}"


@dataclass(frozen=True)
class VerifiedBatch:
    events: list[CheckedEvent]  # in leaf order, with role and organisation
    tree: MerkleTree


def verify_bundle(raw: bytes, anchor: Anchor, domain: AttestationDomain, registry: Registry, now: int) -> VerifiedBatch | Refusal:
    """Check a fetched (gzip) bundle against `anchor`; a VerifiedBatch only if all of it holds.
    `now`: the chain's time (node.protocol.verification.verify_batch)."""
    try:
        header, lines = read_bundle(raw)
    except MalformedBundle as exc:
        return Refusal("bundle", str(exc))
    problem = _header_problem(header, anchor, domain)
    if problem is not None:
        return Refusal("header", problem)
    leaves: list[Leaf] = []
    numbers: list[int] = []
    for number, line in enumerate(lines, start=2):
        try:
            leaf = parse_leaf(number, line)
            event_id, signature = digest_from_hash(leaf.event_id), parse_signature(leaf.signature)
        except MalformedBundle as exc:
            return Refusal("bundle", str(exc))
        except (EventHashError, SignatureError) as exc:
            return Refusal("bundle", f"line {number}: {exc}")
        numbers.append(leaf.index)
        leaves.append(Leaf(leaf.event, event_id, leaf.attester, signature))
    result = verify_batch(domain, leaves, anchor, registry, now=now)
    if not result.ok:
        failed = hash_from_digest(result.failed_event) if result.failed_event else None
        return Refusal(str(result.failed_check), result.detail, failed)
    for position, (number, leaf_) in enumerate(zip(numbers, leaves)):
        if number != position:
            return Refusal("leaf_order", f"line {position + 2} carries leaf {number}", hash_from_digest(leaf_.event_id))
    events = []
    for item, attested in zip(leaves, result.attested):
        event = item.event
        try:
            events.append(CheckedEvent(
                digest=attested.digest,
                event_type=str(event["type"]),
                action=event.get("action"),
                biz_step=event.get("bizStep"),
                event_time=attested.event_time,
                event_time_ms=unix_ms(event["eventTime"]),
                subject=event_subject(event),
                signer=attested.signer,
                signature=item.signature,
                role=attested.role,
                body=orjson.dumps(event).decode(),
                epcs=event_epcs(event),
                corrects=event_digest(event) if "errorDeclaration" in event else None,
                org=attested.org_id,
            ))
        except (EventHashError, KeyError, TypeError, ValueError) as exc:  # verified, yet not storable: refuse, never half-import
            return Refusal("bundle", f"the event cannot be stored: {exc}", hash_from_digest(attested.digest))
    return VerifiedBatch(events, build_tree([(e.digest, e.signer) for e in events]))


def _header_problem(header: BundleHeader, anchor: Anchor, domain: AttestationDomain) -> str | None:
    if header.chain_id != domain.chain_id:
        return f"chain {header.chain_id}, not {domain.chain_id}"
    if to_checksum_address(header.registry) != to_checksum_address(domain.verifying_contract):
        return f"registry {header.registry}, not {domain.verifying_contract}"
    if header.root != anchor.root:
        return f"root 0x{header.root.hex()}, not the anchored 0x{anchor.root.hex()}"
    return None
