"""Verifying a batch bundle against its on-chain anchor, before anything of it is imported.

A bundle is accepted only whole: every leaf passes every check and the leaves rebuild the
anchored root with the anchored count. The first failure is returned as a `Refusal` naming
the check and, where there is one, the event.

| check          | what failed |
|----------------|-------------|
| bundle         | the bundle cannot be read (not gzip, not NDJSON, header or a leaf line malformed) |
| header         | the header names another chain, registry or root than the anchor |
| event_count    | the number of leaves differs from the anchored count (a leaf dropped or added) |
| leaf_order     | the leaves are not numbered 0..n-1 in order |
| event_hash     | the event's content does not hash to its event id |
| signature      | the signature does not recover to the named attester (for this id, subject and time) |
| role           | the attester held none of the bizStep's roles at the event time |
| anchoring_org  | the attester's organisation is neither the anchoring one nor hosted by it at the anchor time |
| merkle_root    | the leaves do not rebuild the anchored root |

The per-event checks (hash, signature, role) are the ones capture applies; the expensive part
(hash and signature recovery) is a pure function of the leaf line so it runs in worker
processes when the replicator has a pool.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

import orjson

from node.ingest.capture import CheckedEvent, event_epcs, unix_ms
from node.ingest.roles import RoleMirror, roles_for_bizstep
from node.network.bundle import BundleHeader, MalformedBundle, parse_leaf, read_bundle
from node.provenance.attestation import (
    AttestationDomain,
    SignatureError,
    event_subject,
    event_unix_time,
    recover_attester,
    to_checksum_address,
)
from node.provenance.event_hash import EventHashError, digest_from_hash, event_digest, record_digest
from node.provenance.merkle import MerkleError, MerkleTree, build_tree

# Leaf lines per task handed to a worker process.
_TASK = 1000


@dataclass(frozen=True)
class Anchor:
    """A batch as the chain has it (from its BatchAnchored log)."""

    root: bytes
    org_id: int
    event_count: int
    block_time: int


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
    events: list[CheckedEvent]  # in leaf order; `role` and `org` filled in
    tree: MerkleTree


def check_leaf_lines(first_line: int, lines: Sequence[bytes], domain: AttestationDomain) -> list[CheckedEvent] | Refusal:
    """Hash and signature of each leaf line (a pure function, for worker processes)."""
    checked = []
    for offset, line in enumerate(lines):
        try:
            leaf = parse_leaf(first_line + offset, line)
        except MalformedBundle as exc:
            return Refusal("bundle", str(exc))
        event = leaf.event
        try:
            claimed = digest_from_hash(leaf.event_id)
        except (EventHashError, ValueError):
            return Refusal("bundle", f"line {first_line + offset}: {leaf.event_id!r} is not an event id")
        try:
            digest = record_digest(event)
            subject = event_subject(event)
            event_time = event_unix_time(event)
            event_time_ms = unix_ms(event["eventTime"])
        except (EventHashError, KeyError, TypeError, ValueError) as exc:
            return Refusal("event_hash", f"the event cannot be hashed: {exc}", leaf.event_id)
        if digest != claimed:
            return Refusal("event_hash", f"its content hashes to 0x{digest.hex()}, not to its id", leaf.event_id)
        try:
            recovered = recover_attester(domain, digest, subject, event_time, leaf.signature)
        except SignatureError as exc:
            return Refusal("signature", exc.problem, leaf.event_id)
        if recovered.lower() != leaf.attester.lower():
            return Refusal("signature", f"signed by {recovered}, not by the named attester {leaf.attester}", leaf.event_id)
        biz_step = event.get("bizStep")
        checked.append(
            CheckedEvent(
                digest=digest,
                event_type=str(event.get("type")),
                action=event.get("action"),
                biz_step=biz_step,
                event_time=event_time,
                event_time_ms=event_time_ms,
                subject=subject,
                signer=recovered,
                signature=bytes.fromhex(leaf.signature[2:]),
                role="",
                body=orjson.dumps(event).decode(),
                epcs=event_epcs(event),
                roles=roles_for_bizstep(biz_step, event.get("@context")),
                path=f"leaf {leaf.index}",
                corrects=event_digest(event) if "errorDeclaration" in event else None,
            )
        )
        if leaf.index != first_line + offset - 2:
            return Refusal("leaf_order", f"line {first_line + offset} carries leaf {leaf.index}", leaf.event_id)
    return checked


def verify_bundle(
    raw: bytes,
    anchor: Anchor,
    *,
    domain: AttestationDomain,
    roles: RoleMirror,
    host_of_at: Callable[[int, int], int],
    executor: Executor | None = None,
) -> VerifiedBatch | Refusal:
    """Check a fetched (gzip) bundle against `anchor`; a VerifiedBatch only if all of it holds."""
    try:
        header, lines = read_bundle(raw)
    except MalformedBundle as exc:
        return Refusal("bundle", str(exc))
    problem = _header_problem(header, anchor, domain)
    if problem is not None:
        return Refusal("header", problem)
    if len(lines) != anchor.event_count:
        return Refusal("event_count", f"the bundle has {len(lines)} leaves, the anchor counts {anchor.event_count}")
    chunks = [(2 + start, lines[start : start + _TASK]) for start in range(0, len(lines), _TASK)]
    if executor is None or len(chunks) == 1:
        results = [check_leaf_lines(first, chunk, domain) for first, chunk in chunks]
    else:
        futures = [executor.submit(check_leaf_lines, first, chunk, domain) for first, chunk in chunks]
        results = [f.result() for f in futures]
    events: list[CheckedEvent] = []
    for result in results:
        if isinstance(result, Refusal):
            return result
        events.extend(result)
    hosts: dict[int, int] = {}
    for event in events:
        role = roles.any_role_at(event.signer, event.roles, event.event_time)
        if role is None:
            return Refusal(
                "role", f"{event.signer} held none of {', '.join(event.roles)} at {event.event_time} (unix time)", event.event_id
            )
        org = roles.org_at(event.signer, event.event_time)
        if org != anchor.org_id:
            if org not in hosts:
                hosts[org] = host_of_at(org, anchor.block_time) if org else 0
            if hosts[org] != anchor.org_id:
                return Refusal(
                    "anchoring_org",
                    f"{event.signer} belongs to organisation {org}, which organisation {anchor.org_id} "
                    "neither is nor hosted when it anchored the batch",
                    event.event_id,
                )
        event.role = role
        event.org = org
    try:
        tree = build_tree([(e.digest, e.signer) for e in events])
    except MerkleError as exc:
        return Refusal("merkle_root", str(exc))
    if tree.root != anchor.root:
        return Refusal("merkle_root", f"the leaves rebuild 0x{tree.root.hex()}, not the anchored root 0x{anchor.root.hex()}")
    return VerifiedBatch(events, tree)


def _header_problem(header: BundleHeader, anchor: Anchor, domain: AttestationDomain) -> str | None:
    if header.chain_id != domain.chain_id:
        return f"chain {header.chain_id}, not {domain.chain_id}"
    if to_checksum_address(header.registry) != to_checksum_address(domain.verifying_contract):
        return f"registry {header.registry}, not {domain.verifying_contract}"
    if header.root != anchor.root:
        return f"root 0x{header.root.hex()}, not the anchored 0x{anchor.root.hex()}"
    return None
