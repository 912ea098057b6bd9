"""The audit: every stored event, every anchored root, every escrow transition.

Events (in worker processes, a part of whole batches at a time), by node.protocol.verification, the one
rule of "verified" (its checks in its order, stopping at the first that fails, so one fault gives
one discrepancy):

1. the body, as stored, recomputes (CBV 2.0) to the stored digest       else HASH_MISMATCH
2. the EIP-712 attestation (subject and time taken from the body)
   recovers to the stored signer                                         else SIGNATURE_INVALID
3. the signer held, at the event time, one of the roles the body's
   bizStep needs (registry history replayed from the chain's logs)       else SIGNER_LACKED_ROLE
4. the event has a leaf index and a proof (an empty one when it is its batch's only leaf), and
   leaf(stored digest, signer) with the proof leads to a root anchored on chain by the attester's
   organisation at the event time or by the organisation hosting it    else EVENT_NEVER_ANCHORED
   An event not anchored yet (no batch, a `prepared` batch not on chain, or a batch stored after
   the audit read the batches) is pending while the chain's time is inside its maximum reporting
   delay, EVENT_NEVER_ANCHORED past it. Events of a stored batch whose root is not on chain are
   covered by that root's one ROOT_NOT_ON_CHAIN.
5. marks of a verified event, each its own kind: anchored past the reporting delay (LATE); the
   signer no longer held the role at the anchor time (SIGNER_REVOKED).

Roots (in the parent, from what the workers return). Every event is put under the anchored
root its proof reaches, or else under its stored batch's root. For each root:
- a stored batch root that is not anchored: ROOT_NOT_ON_CHAIN (one per root);
- an anchored root with fewer stored events than its anchored count: one EVENT_DATA_MISSING
  naming the root, both counts and the missing leaf indices; an anchored root no stored event
  belongs to: one EVENT_DATA_MISSING;
- the leaves (stored digest, stored signer) of its events rebuild the tree (OZ StandardMerkleTree)
  and must give the anchored root. The rebuild uses the *stored* digests, not recomputed ones,
  so a tampered body is a HASH_MISMATCH only; and a root that fails to rebuild only because an
  event under it already failed a check is not reported again.

Escrow (in the parent, while the workers run). Each transition on chain is checked against the
rule the contract enforces, from the auditor's own evidence:
- MilestoneReached (and a CustomsReturned refund): the quorum of the order's terms, from
  distinct organisations, of valid EIP-712 signatures over (order, milestone, duty, payee,
  deadline) [CustomsReturn: (order, milestone, deadline)] by accounts holding the milestone's
  role (CARRIER for Shipped and Delivered, CUSTOMS for CustomsCleared) at the block time and
  not in the seller's organisation; taken from the stored attestations (relay_signatures) when
  the store has any record for the order, else from the transaction's calldata;
- OrderReleased: by the buyer (its transaction, or a relayed DeliveryConfirmation the buyer
  signed), or without the buyer once the review and dispute windows after delivery passed;
- OrderRefunded: ShipByPassed / DeliverByPassed only after the deadline; CustomsReturned as above;
- DisputeResolved: by an account holding ARBITRATOR at the block, or by the timeout rule after
  `disputeTimeout()`; DisputeOpened by the buyer or the seller; OrderCancelled by the seller
  before shipping; OrderFunded by the buyer (or for it, in placeOrder).
Any failure: ESCROW_TRANSITION_UNBACKED naming the order and the milestone or transition.
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from multiprocessing import get_context
from typing import Any

import orjson
from eth_account.signers.local import LocalAccount

from node.audit.chain import ChainHistory, replay
from node.audit.checkpoint import AuditCheckpoint, CheckpointRefused, check_covered, make_checkpoint, verify_checkpoint
from node.audit.escrow import check_escrow
from node.audit.evidence import DatabaseEvidence, Evidence, EventPart, StoredEvent, is_partial
from node.audit.model import AuditReport, Checked, Discrepancy, DiscrepancyKind
from node.chain.client import ChainClient
from node.chain.deploy import Deployment
from node.db import Database
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

Progress = Callable[[str, int, int], None]
PART_SIZE = 4_000

K = DiscrepancyKind


@dataclass(frozen=True)
class _Context:
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
class _Group:
    """The events that belong to one root (see the module docstring)."""

    leaves: list[bytes] = field(default_factory=list)
    leaf_indices: list[int] = field(default_factory=list)
    failed: bool = False
    rebuilt: bytes | None = None
    """The root the worker rebuilt from exactly these leaves, if it did."""

    def merge(self, other: _Group) -> None:
        self.leaves.extend(other.leaves)
        self.leaf_indices.extend(other.leaf_indices)
        self.failed |= other.failed
        self.rebuilt = None


@dataclass
class _PartResult:
    events: int = 0
    pending: int = 0
    discrepancies: list[Discrepancy] = field(default_factory=list)
    groups: dict[bytes, _Group] = field(default_factory=dict)


# ---- per event (runs in the workers) -----------------------------------------------------


def _check_part(ctx: _Context, rows: Sequence[StoredEvent]) -> _PartResult:
    result = _PartResult()
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
            group = result.groups[key] = _Group(rebuilt=rebuilt.get(key))
        group.leaves.append(leaf)
        group.leaf_indices.append(-1 if leaf_index is None else leaf_index)
        if problem is not None and problem[0] is not K.EVENT_NEVER_ANCHORED:
            group.failed = True
    for key, group in result.groups.items():
        if len(group.leaves) != len(by_root.get(key, ())):
            group.rebuilt = None  # the group is not exactly that stored batch: rebuild it after merging
    return result


def _attestation(ctx: _Context, row: StoredEvent, loads: Callable[[str], Any]) -> tuple[Problem | None, Attested | None]:
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


def _mark_detail(ctx: _Context, mark: Mark, attested: Attested | None, root: bytes) -> str:
    assert attested is not None
    anchor = counted_anchor(ctx.registry, ctx.anchor_of, root, attested.org_id, attested.event_time, ctx.now)
    assert anchor is not None
    if mark is Mark.LATE:
        return (f"anchored at {anchor.timestamp}, {anchor.timestamp - attested.event_time}s after its event time: more than "
                f"the maximum reporting delay of {ctx.registry.max_reporting_delay_at(anchor.timestamp)}s then")
    return (f"{attested.signer} no longer held {attested.role} when the batch was anchored (at {anchor.timestamp}), "
            f"though it did at the event time {attested.event_time}")


# ---- workers -----------------------------------------------------------------------------

_worker_ctx: _Context | None = None
_worker_evidence: Evidence | None = None


def _worker_init(ctx: bytes, evidence: bytes | None) -> None:
    global _worker_ctx, _worker_evidence
    _worker_ctx = pickle.loads(ctx)
    _worker_evidence = pickle.loads(evidence) if evidence is not None else None


def _worker_part(part: EventPart) -> _PartResult:
    assert _worker_ctx is not None and _worker_evidence is not None
    return _check_part(_worker_ctx, _worker_evidence.events(part))


def _worker_rows(rows: Sequence[StoredEvent]) -> _PartResult:
    assert _worker_ctx is not None
    return _check_part(_worker_ctx, rows)


def _submit(ctx: _Context, evidence: Evidence, parts: Sequence[EventPart], workers: int
            ) -> tuple[ProcessPoolExecutor, list[Future[_PartResult]]]:
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


# ---- the audit ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint as loaded, and the auditor whose signature it must carry."""

    checkpoint: AuditCheckpoint
    signature: bytes
    auditor: str


def audit(client: ChainClient, deployment: Deployment, evidence: Evidence, *, progress: Progress | None = None,
          workers: int | None = None, part_size: int = PART_SIZE, since: SignedCheckpoint | None = None) -> AuditReport:
    """Audit the chain of `client` (deployment from `deployment`) against `evidence`.

    `part_size`: events per unit of work handed to a worker.
    `since`: a signed checkpoint of an earlier clean audit (node.audit.checkpoint), verified
    before use; events under the roots it covers are not verified again.
    """
    return _audit(client, deployment, evidence, progress=progress, workers=workers, part_size=part_size, since=since)[0]


def audit_and_checkpoint(client: ChainClient, deployment: Deployment, evidence: Evidence, auditor: LocalAccount, *,
                         since: SignedCheckpoint | None = None, **kw: Any
                         ) -> tuple[AuditReport, tuple[AuditCheckpoint, bytes] | None]:
    """`audit`, then, if it found nothing, a checkpoint of it signed by `auditor` (None otherwise)."""
    report, history = _audit(client, deployment, evidence, since=since, **kw)
    if report.discrepancies or is_partial(evidence):
        return report, None
    prior = since.checkpoint.events if since is not None else 0
    counted = replace(report, checked=replace(report.checked, events=report.checked.events + prior))
    return report, make_checkpoint(client, history, counted, deployment.address("ProvenanceRegistry"), auditor)


def _audit(client: ChainClient, deployment: Deployment, evidence: Evidence, *, progress: Progress | None = None,
           workers: int | None = None, part_size: int = PART_SIZE,
           since: SignedCheckpoint | None = None) -> tuple[AuditReport, ChainHistory]:
    started = time.perf_counter()
    started_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    workers = workers if workers is not None else (os.cpu_count() or 1)
    if since is not None:
        if is_partial(evidence) or not hasattr(evidence, "event_parts_since"):
            raise CheckpointRefused("an incremental audit needs complete evidence (the node's database)")
        verify_checkpoint(client, since.checkpoint, since.signature, auditor=since.auditor,
                          registry=deployment.address("ProvenanceRegistry"))
    # The stored batches are read before the chain: a batch anchored while the audit reads is then
    # either on the chain replayed or, unknown to that list, in flight; never "not on chain".
    stored = evidence.batches()
    history = full_history = replay(client, deployment, progress=progress)
    covered = check_covered(history, since.checkpoint) if since is not None else frozenset()
    described = evidence.describe()
    if since is not None:
        described += (f"; incremental since the checkpoint of block {since.checkpoint.to_block} "
                      f"({since.checkpoint.anchored_roots} roots, {since.checkpoint.events} events verified then, "
                      f"signed by {since.checkpoint.auditor})")
        history = replace(history, anchors={r: a for r, a in history.anchors.items() if r not in covered})

    batches = [b for b in stored if b.root not in covered]
    anchored = frozenset(history.anchors)
    ctx = _Context(
        domain=AttestationDomain(history.chain_id, deployment.address("ProvenanceRegistry")),
        registry=history.roles,
        anchors={(a.root, a.org_id): Anchor(a.root, a.org_id, a.block, a.block_time, a.event_count)
                 for first in full_history.anchors.values() for a in (first, *full_history.later_anchors.get(first.root, ()))},
        anchored=anchored,
        known=frozenset(b.root for b in stored),
        in_flight=frozenset(b.root for b in batches if b.status == "prepared" and b.root not in anchored),
        now=history.head_time,
    )
    parts = evidence.event_parts_since(part_size, covered) if covered else evidence.event_parts(part_size)  # type: ignore[attr-defined]
    discrepancies: list[Discrepancy] = []
    groups: dict[bytes, _Group] = {}
    events = pending = 0

    expected = sum(b.event_count for b in batches)
    pool: ProcessPoolExecutor | None = None
    escrow: tuple[list[Discrepancy], dict[str, int]] | None = None
    results: Iterator[_PartResult]
    if workers > 1 and len(parts) > 1:
        pool, futures = _submit(ctx, evidence, parts, workers)
        # The escrow checks wait on RPC mostly: run them here while the workers hash and recover.
        escrow = check_escrow(client, deployment, history, evidence)
        results = (f.result() for f in futures)
    else:
        results = (_check_part(ctx, evidence.events(part)) for part in parts)
    try:
        for result in results:
            events += result.events
            pending += result.pending
            discrepancies.extend(result.discrepancies)
            for root, group in result.groups.items():
                if root in groups:
                    groups[root].merge(group)
                else:
                    groups[root] = group
            if progress is not None:
                progress("events", events + pending, max(expected, events + pending))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    if escrow is None:
        escrow = check_escrow(client, deployment, history, evidence)
    escrow_found, escrow_counts = escrow

    discrepancies.extend(_check_roots(history, batches, groups, ctx.in_flight, partial=is_partial(evidence)))
    discrepancies.extend(escrow_found)
    order = {kind: i for i, kind in enumerate(DiscrepancyKind)}
    discrepancies.sort(key=lambda d: (order[d.kind], d.subject))
    return AuditReport(
        chain_id=history.chain_id,
        contracts={name: c.address for name, c in deployment.contracts.items()},
        from_block=history.from_block if since is None else since.checkpoint.to_block + 1,
        to_block=history.to_block,
        evidence=described,
        checked=Checked(
            events=events, pending_events=pending, batches=len(batches), anchored_roots=len(history.anchors),
            registry_changes=history.registry_changes, escrow_orders=escrow_counts.get("orders", 0),
            escrow_transitions=escrow_counts.get("transitions", 0),
            escrow_signatures=escrow_counts.get("signatures", 0),
        ),
        discrepancies=discrepancies,
        elapsed_s=time.perf_counter() - started,
        started_at=started_at,
    ), full_history


def _check_roots(history: ChainHistory, batches: Iterable[Any], groups: Mapping[bytes, _Group],
                 in_flight: frozenset[bytes], *, partial: bool) -> list[Discrepancy]:
    found: list[Discrepancy] = []
    for batch in batches:
        if batch.root in history.anchors or batch.root in in_flight:
            continue
        root = "0x" + batch.root.hex()
        objects = {"root": root, "event_count": str(batch.event_count), "status": batch.status}
        if batch.tx_hash is not None:
            objects["tx"] = "0x" + batch.tx_hash.hex()
        if batch.block_number is not None:
            objects["block"] = str(batch.block_number)
        found.append(Discrepancy(K.ROOT_NOT_ON_CHAIN, root,
                                 f"the stored batch of {batch.event_count} events names root {root}, which was never "
                                 f"anchored on chain {history.chain_id}", objects))
    if partial:
        return found  # some leaves of some roots: each event's proof was checked, no tree can be rebuilt
    for root, first in history.anchors.items():
        name = "0x" + root.hex()
        # Of several organisations' anchors of one root, the one that matches the evidence counts:
        # anchoring someone else's root first (with any count) must not make their data look missing.
        group = groups.get(root)
        present_count = len(group.leaves) if group is not None else 0
        candidates = [first, *history.later_anchors.get(root, ())]
        anchor = next((a for a in candidates if a.event_count == present_count), first)
        objects = {"root": name, "leaf_count": str(anchor.event_count), "tx": "0x" + anchor.tx_hash.hex(),
                   "block": str(anchor.block), "submitter": anchor.submitter, "org": str(anchor.org_id)}
        group = groups.get(root)
        if group is None:
            found.append(Discrepancy(K.EVENT_DATA_MISSING, name,
                                     f"anchored with {anchor.event_count} events in block {anchor.block}, and the "
                                     "evidence holds none of them", {**objects, "stored": "0"}))
            continue
        present = len(group.leaves)
        if present < anchor.event_count:
            missing = sorted(set(range(anchor.event_count)) - set(group.leaf_indices))
            shown = ",".join(str(i) for i in missing[:100]) + (",..." if len(missing) > 100 else "")
            found.append(Discrepancy(K.EVENT_DATA_MISSING, name,
                                     f"anchored with {anchor.event_count} events; the evidence holds {present}"
                                     + (f" (missing leaf indices {shown})" if missing else ""),
                                     {**objects, "stored": str(present), "missing_leaves": shown}))
            continue
        if group.failed or not all(group.leaves):
            continue  # a leaf is wrong because an event under it already failed; reported there
        rebuilt = group.rebuilt or build_tree_from_hashes(group.leaves).root
        if rebuilt != root or present != anchor.event_count:
            found.append(Discrepancy(K.HASH_MISMATCH, name,
                                     f"the {present} stored leaves rebuild root 0x{rebuilt.hex()}, not the anchored "
                                     f"root ({anchor.event_count} events)",
                                     {**objects, "stored": str(present), "rebuilt": "0x" + rebuilt.hex()}))
    return found


def audit_database(client: ChainClient, deployment: Deployment, db: Database, **kw: Any) -> AuditReport:
    """`audit` with the node's own database as the evidence."""
    return withheld_as_such(audit(client, deployment, DatabaseEvidence(db), **kw), db)


# ---- node/network: batches withheld by their anchoring organisation ----------------------------


def withheld_as_such(report: AuditReport, db: Database) -> AuditReport:
    """A root the node recorded as withheld (no member node served its bundle in time) is reported
    as BATCH_WITHHELD naming the anchoring organisation, instead of as data missing from this node."""
    from node.member.network.replicator import withheld_batches

    withheld = {"0x" + w.root.hex(): w for w in withheld_batches(db, report.chain_id)}
    if not withheld:
        return report
    found = []
    for d in report.discrepancies:
        w = withheld.get(d.subject)
        if d.kind is K.EVENT_DATA_MISSING and w is not None:
            d = Discrepancy(K.BATCH_WITHHELD, d.subject,
                            f"organisation {w.org_id} anchored {w.event_count} events under {d.subject} in block "
                            f"{w.block_number}; no member node has served its bundle", {**d.objects, "org": str(w.org_id)})
        found.append(d)
    order = {kind: i for i, kind in enumerate(DiscrepancyKind)}
    found.sort(key=lambda d: (order[d.kind], d.subject))
    return replace(report, discrepancies=found)
