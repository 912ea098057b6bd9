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
  `disputeTimeout()` with the share the attested facts give (delivered: none to the buyer;
  overdue: all); DisputeLapsed after the timeout, undelivered and within the order's deadlines;
  DisputeOpened by the buyer or the seller; OrderCancelled by the seller
  before shipping; OrderFunded by the buyer (or for it, in placeOrder).
Any failure: ESCROW_TRANSITION_UNBACKED naming the order and the milestone or transition.

Here: the audit's order of work. The event checks are in node.audit.event_checks, the root
checks in node.audit.roots, the escrow checks in node.audit.escrow.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from eth_account.signers.local import LocalAccount

from node.audit.chain import ChainHistory, replay
from node.audit.checkpoint import AuditCheckpoint, CheckpointRefused, check_covered, make_checkpoint, verify_checkpoint
from node.audit.escrow import check_escrow
from node.audit.event_checks import EventContext, PartResult, RootGroup, check_part, submit_parts
from node.audit.evidence import DatabaseEvidence, Evidence, is_partial
from node.audit.model import AuditReport, Checked, Discrepancy, DiscrepancyKind
from node.audit.roots import check_roots
from node.chain.client import ChainClient
from node.chain.deploy import Deployment
from node.db import Database
from node.member.network.replicator import withheld_batches
from node.protocol.attestation import AttestationDomain
from node.protocol.verification import Anchor

Progress = Callable[[str, int, int], None]
PART_SIZE = 4_000

K = DiscrepancyKind


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
    ctx = EventContext(
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
    groups: dict[bytes, RootGroup] = {}
    events = pending = 0

    expected = sum(b.event_count for b in batches)
    pool: ProcessPoolExecutor | None = None
    escrow: tuple[list[Discrepancy], dict[str, int]] | None = None
    results: Iterator[PartResult]
    if workers > 1 and len(parts) > 1:
        pool, futures = submit_parts(ctx, evidence, parts, workers)
        # The escrow checks wait on RPC mostly: run them here while the workers hash and recover.
        escrow = check_escrow(client, deployment, history, evidence)
        results = (f.result() for f in futures)
    else:
        results = (check_part(ctx, evidence.events(part)) for part in parts)
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

    discrepancies.extend(check_roots(history, batches, groups, ctx.in_flight, partial=is_partial(evidence)))
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


def audit_database(client: ChainClient, deployment: Deployment, db: Database, **kw: Any) -> AuditReport:
    """`audit` with the node's own database as the evidence."""
    return withheld_as_such(audit(client, deployment, DatabaseEvidence(db), **kw), db)


# ---- node/network: batches withheld by their anchoring organisation ----------------------------


def withheld_as_such(report: AuditReport, db: Database) -> AuditReport:
    """A root the node recorded as withheld (no member node served its bundle in time) is reported
    as BATCH_WITHHELD naming the anchoring organisation, instead of as data missing from this node."""
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
