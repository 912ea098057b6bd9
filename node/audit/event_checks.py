"""The per-event checks of the audit, run in worker processes a part of whole batches at a time
(rules 1-5 of node.audit.verify's docstring), and the grouping of checked events under the
root each belongs to, which node.audit.roots then checks."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any

import orjson

from node.audit.evidence import Evidence, EventPart, StoredEvent
from node.audit.model import Discrepancy, DiscrepancyKind
from node.member.ingest.roles import RoleState
from node.protocol.attestation import AttestationDomain
from node.protocol.event_hash import hash_from_digest
from node.protocol.merkle import build_tree_from_hashes, leaf_hash
from node.protocol.verification import (
    Anchor,
    Attested,
    Check,
    Mark,
    counted_anchor,
    is_overdue,
    marks_of,
    proof_root,
    required_roles,
    verify_attestation,
)

K = DiscrepancyKind


@dataclass(frozen=True)
class EventContext:
    """What every worker needs besides the evidence (small; pickled once per worker)."""

    domain: AttestationDomain
    registry: RoleState
    """The registry's history replayed from the chain: roles, organisations, hosts, reporting delay."""
    anchors: Mapping[tuple[bytes, int], Anchor]
    """(root, anchoring organisation) -> that anchor, every anchor on chain."""
    anchored: frozenset[bytes]
    """The anchored roots this audit verifies (since the checkpoint, if any)."""
    known: frozenset[bytes]
    """The stored roots read before the chain: a root stored after that is in flight."""
    in_flight: frozenset[bytes]
    """Stored roots in status `prepared` that are not on chain: their events are not anchored yet."""
    now: int
    """The chain's time at the audited head: an event not anchored by then is pending inside its
    reporting delay, never anchored past it."""

    def anchor_of(self, root: bytes, org_id: int) -> Anchor | None:
        return self.anchors.get((root, org_id))


Problem = tuple[DiscrepancyKind, str, dict[str, str]]
_KIND_OF_CHECK = {Check.EVENT_HASH: K.HASH_MISMATCH, Check.SIGNATURE: K.SIGNATURE_INVALID, Check.ROLE: K.SIGNER_LACKED_ROLE}
_FOUND_AS = {Check.EVENT_HASH: "recomputed", Check.SIGNATURE: "recovered"}
_MARK_KINDS = {Mark.LATE: K.LATE, Mark.SIGNER_REVOKED: K.SIGNER_REVOKED}


@dataclass
class RootGroup:
    """The events that belong to one root (see the module docstring)."""

    leaves: list[bytes] = field(default_factory=list)
    leaf_indices: list[int] = field(default_factory=list)
    failed: bool = False
    rebuilt: bytes | None = None
    """The root the worker rebuilt from exactly these leaves, if it did."""

    def merge(self, other: RootGroup) -> None:
        self.leaves.extend(other.leaves)
        self.leaf_indices.extend(other.leaf_indices)
        self.failed |= other.failed
        self.rebuilt = None


@dataclass
class PartResult:
    events: int = 0
    pending: int = 0
    discrepancies: list[Discrepancy] = field(default_factory=list)
    groups: dict[bytes, RootGroup] = field(default_factory=dict)


# ---- per event (runs in the workers) -----------------------------------------------------


def check_part(ctx: EventContext, rows: Sequence[StoredEvent]) -> PartResult:
    result = PartResult()
    loads = orjson.loads
    checked: list[tuple[StoredEvent, bytes, Problem | None, Attested | None]] = []
    by_root: dict[bytes, list[int]] = {}
    for row in rows:
        digest, signer, event_time, batch_root = row[0], row[2], row[5], row[7]
        unanchored = batch_root is None or batch_root in ctx.in_flight or batch_root not in ctx.known
        if unanchored and not is_overdue(ctx.registry, event_time, ctx.now):
            result.pending += 1  # not anchored yet, inside its reporting delay
            continue
        result.events += 1
        try:
            address20 = bytes.fromhex(signer[2:]) if signer[:2] in ("0x", "0X") else b""
        except ValueError:
            address20 = b""
        leaf = leaf_hash(digest, address20) if len(address20) == 20 and len(digest) == 32 else b""
        problem, attested = _attestation(ctx, row, loads)
        if problem is None and unanchored:
            delay = ctx.registry.max_reporting_delay_at(ctx.now)
            problem = (K.EVENT_NEVER_ANCHORED, f"not anchored {ctx.now - event_time}s after its event time, past the "
                       f"maximum reporting delay of {delay}s", {"chain_time": str(ctx.now)})
        if batch_root is not None and not unanchored:
            by_root.setdefault(batch_root, []).append(len(checked))
        checked.append((row, leaf, problem, attested))

    # Proofs: where a stored batch's leaves rebuild its anchored root, a stored proof equal to the
    # tree's own proof needs no hashing; any other proof is walked leaf to root (node.protocol.verification).
    reached: dict[int, bytes] = {}
    rebuilt: dict[bytes, bytes] = {}
    for root, positions in by_root.items():
        leaves = [checked[i][1] for i in positions]
        tree = build_tree_from_hashes(leaves) if all(leaves) else None
        if tree is not None:
            rebuilt[root] = tree.root
        for n, i in enumerate(positions):
            row, leaf, problem, attested = checked[i]
            proof = row[9]
            if attested is None or proof is None or row[8] is None or len(proof) % 32:
                continue
            if tree is not None and tree.root == root and root in ctx.anchored and b"".join(tree.proof(n)) == proof:
                reached[i] = root
                continue
            node = proof_root(attested.digest, attested.signer, (proof[j:j + 32] for j in range(0, len(proof), 32)))
            if node in ctx.anchored:
                reached[i] = node
            elif root in ctx.anchored:
                checked[i] = (row, leaf, (K.EVENT_NEVER_ANCHORED,
                              f"its proof leads to 0x{node.hex()}, which is not anchored (its batch root 0x{root.hex()} is)",
                              {"root": "0x" + root.hex(), "proof_root": "0x" + node.hex()}), attested)
            # else: the batch root is not on chain; that root's ROOT_NOT_ON_CHAIN covers the event.

    for i, (row, leaf, problem, attested) in enumerate(checked):
        digest, signer, event_time, batch_root, leaf_index = row[0], row[2], row[5], row[7], row[8]
        marks: frozenset[Mark] = frozenset()
        if problem is None and i not in reached and (batch_root is None or leaf_index is None or row[9] is None):
            problem = (K.EVENT_NEVER_ANCHORED, "the event has no Merkle proof: it was never put in an anchored batch", {})
        if problem is None and attested is not None and i in reached:
            anchor = counted_anchor(ctx.registry, ctx.anchor_of, reached[i], attested.org_id, attested.event_time, ctx.now)
            if anchor is None:
                problem = (K.EVENT_NEVER_ANCHORED,
                           f"root 0x{reached[i].hex()} is anchored, but not by organisation {attested.org_id} (the "
                           "attester's at the event time) nor by an organisation hosting it",
                           {"root": "0x" + reached[i].hex(), "org": str(attested.org_id)})
            else:
                marks = marks_of(ctx.registry, attested.signer, attested.role, attested.event_time, anchor)
        found = [problem] if problem is not None else []
        found += [(_MARK_KINDS[m], _mark_detail(ctx, m, attested, reached[i]), {"mark": m.value})
                  for m in sorted(marks) if attested is not None]
        for kind, detail, extra in found:
            objects = {"event": hash_from_digest(digest), "digest": "0x" + digest.hex(), "signer": signer,
                       "event_time": str(event_time)}
            if batch_root is not None:
                objects["root"] = "0x" + batch_root.hex()
            if leaf_index is not None:
                objects["leaf_index"] = str(leaf_index)
            objects.update(extra)
            result.discrepancies.append(Discrepancy(kind, hash_from_digest(digest), detail, objects))
        key = reached.get(i, batch_root)
        if key is None:
            continue
        group = result.groups.get(key)
        if group is None:
            group = result.groups[key] = RootGroup(rebuilt=rebuilt.get(key))
        group.leaves.append(leaf)
        group.leaf_indices.append(-1 if leaf_index is None else leaf_index)
        if problem is not None and problem[0] is not K.EVENT_NEVER_ANCHORED:
            group.failed = True
    for key, group in result.groups.items():
        if len(group.leaves) != len(by_root.get(key, ())):
            group.rebuilt = None  # the group is not exactly that stored batch: rebuild it after merging
    return result


def _attestation(ctx: EventContext, row: StoredEvent, loads: Callable[[str], Any]) -> tuple[Problem | None, Attested | None]:
    """Checks 1-3 of node.protocol.verification on the stored row, as a discrepancy if one fails."""
    digest, body, signer, signature = row[0], row[1], row[2], row[3]
    try:
        event = loads(body)
    except ValueError as exc:
        return (K.HASH_MISMATCH, f"the stored body cannot be read ({exc})", {}), None
    if not isinstance(event, dict):
        return (K.HASH_MISMATCH, "the stored body is not a JSON object", {}), None
    outcomes, attested = verify_attestation(ctx.domain, event, digest, signer, signature, ctx.registry)
    if attested is not None:
        return None, attested
    failed = outcomes[-1]
    extra = {_FOUND_AS[failed.check]: failed.found} if failed.found and failed.check in _FOUND_AS else {}
    if failed.check is Check.ROLE:
        extra["roles"] = ",".join(required_roles(event))
    return (_KIND_OF_CHECK[failed.check], failed.detail, extra), None


def _mark_detail(ctx: EventContext, mark: Mark, attested: Attested | None, root: bytes) -> str:
    assert attested is not None
    anchor = counted_anchor(ctx.registry, ctx.anchor_of, root, attested.org_id, attested.event_time, ctx.now)
    assert anchor is not None
    if mark is Mark.LATE:
        return (f"anchored at {anchor.timestamp}, {anchor.timestamp - attested.event_time}s after its event time: more than "
                f"the maximum reporting delay of {ctx.registry.max_reporting_delay_at(anchor.timestamp)}s then")
    return (f"{attested.signer} no longer held {attested.role} when the batch was anchored (at {anchor.timestamp}), "
            f"though it did at the event time {attested.event_time}")


# ---- workers -----------------------------------------------------------------------------

_worker_ctx: EventContext | None = None
_worker_evidence: Evidence | None = None


def _worker_init(ctx: bytes, evidence: bytes | None) -> None:
    global _worker_ctx, _worker_evidence
    _worker_ctx = pickle.loads(ctx)
    _worker_evidence = pickle.loads(evidence) if evidence is not None else None


def _worker_part(part: EventPart) -> PartResult:
    assert _worker_ctx is not None and _worker_evidence is not None
    return check_part(_worker_ctx, _worker_evidence.events(part))


def _worker_rows(rows: Sequence[StoredEvent]) -> PartResult:
    assert _worker_ctx is not None
    return check_part(_worker_ctx, rows)


def submit_parts(ctx: EventContext, evidence: Evidence, parts: Sequence[EventPart], workers: int
            ) -> tuple[ProcessPoolExecutor, list[Future[PartResult]]]:
    try:
        shipped: bytes | None = pickle.dumps(evidence)
    except (pickle.PicklingError, TypeError, AttributeError):
        shipped = None  # read in this process, rows shipped to the workers
    # fork: the workers start at once with the code already imported; the evidence is re-opened
    # from its pickle (never a database connection inherited across fork).
    pool = ProcessPoolExecutor(min(workers, len(parts)), mp_context=get_context("fork"), initializer=_worker_init,
                               initargs=(pickle.dumps(ctx), shipped))
    if shipped is not None:
        return pool, [pool.submit(_worker_part, part) for part in parts]
    return pool, [pool.submit(_worker_rows, list(evidence.events(part))) for part in parts]
