"""What an audit finds: discrepancies by kind, and the report that carries them.

The report's JSON form (`AuditReport.to_json`) is a stable, versioned schema
(`"schema": "waymark.audit.report/1"`), documented in /work/team/audit-interface.md and in
`to_json` below; `from_json` reads it back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from node.errors import WaymarkError

REPORT_SCHEMA = "waymark.audit.report/1"


class DiscrepancyKind(StrEnum):
    """The kinds of discrepancy an audit reports (issue 7)."""

    EVENT_DATA_MISSING = "event_data_missing"
    """A root is anchored on chain (or a leaf of it) for which the evidence holds no event."""
    HASH_MISMATCH = "hash_mismatch"
    """A stored event body does not hash (CBV 2.0) to its stored id."""
    SIGNATURE_INVALID = "signature_invalid"
    """An event's EIP-712 attestation does not recover to its stored signer."""
    SIGNER_LACKED_ROLE = "signer_lacked_role"
    """The signer did not hold a role the event's bizStep needs at the event time."""
    EVENT_NEVER_ANCHORED = "event_never_anchored"
    """An event is not anchored past its maximum reporting delay (by chain time), or its proof leads
    to no root anchored by its attester's organisation or the one hosting it."""
    ROOT_NOT_ON_CHAIN = "root_not_on_chain"
    """A root the evidence refers to (a stored batch) was never anchored on chain."""
    ESCROW_TRANSITION_UNBACKED = "escrow_transition_unbacked"
    """An escrow transition on chain lacks the attestations or the sender its rule needs."""
    LATE = "late"
    """An event verified, but anchored later than the maximum reporting delay after its event time
    (node.protocol.verification's `late` mark): accepted, never plainly genuine."""
    SIGNER_REVOKED = "signer_revoked"
    """An event verified, but its attester had lost the role it signed with (or its organisation was
    not active) when the batch was anchored (the `signer_revoked` mark)."""
    BATCH_WITHHELD = "batch_withheld"
    """(node/network) An anchored root whose bundle no member node served within the node's withheld
    timeout (node.member.network.replicator.withheld_batches); names the anchoring organisation."""


class ReportFormatError(WaymarkError):
    code = "audit_report_format"

    def __init__(self, problem: str) -> None:
        super().__init__(f"not a {REPORT_SCHEMA} report: {problem}")


@dataclass(frozen=True)
class Discrepancy:
    """One finding. `subject` names the thing at fault (an event id `ni:///sha-256;...`, a root
    `0x...`, or `order 0x...#<milestone>`); `objects` holds the objects involved as strings
    (keys among: event, digest, root, leaf_index, signer, recovered, role, event_time, batch,
    tx, block, order, milestone, transition, sender, ...)."""

    kind: DiscrepancyKind
    subject: str
    detail: str
    objects: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "subject": self.subject, "detail": self.detail, "objects": dict(self.objects)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Discrepancy:
        return cls(DiscrepancyKind(data["kind"]), str(data["subject"]), str(data["detail"]),
                   {str(k): str(v) for k, v in data.get("objects", {}).items()})


@dataclass(frozen=True)
class Checked:
    """How much the audit looked at."""

    events: int = 0
    """Stored events verified (hash, signature, role, anchoring)."""
    pending_events: int = 0
    """Stored events not yet in an anchored batch and inside their maximum reporting delay (not faults)."""
    batches: int = 0
    """Stored batches (roots) checked against the chain."""
    anchored_roots: int = 0
    """BatchAnchored logs of the ProvenanceRegistry in the audited range."""
    registry_changes: int = 0
    """ConsortiumRegistry logs replayed (organisations, accounts, roles)."""
    escrow_orders: int = 0
    """Orders created in the audited range."""
    escrow_transitions: int = 0
    """Escrow transitions checked (milestones, releases, refunds, disputes, rulings, cancels, funding)."""
    escrow_signatures: int = 0
    """Stored escrow attestations (relay_signatures) examined."""

    def to_json(self) -> dict[str, int]:
        return {
            "events": self.events, "pendingEvents": self.pending_events, "batches": self.batches,
            "anchoredRoots": self.anchored_roots, "registryChanges": self.registry_changes,
            "escrowOrders": self.escrow_orders, "escrowTransitions": self.escrow_transitions,
            "escrowSignatures": self.escrow_signatures,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Checked:
        return cls(
            events=int(data["events"]), pending_events=int(data.get("pendingEvents", 0)),
            batches=int(data["batches"]), anchored_roots=int(data["anchoredRoots"]),
            registry_changes=int(data["registryChanges"]), escrow_orders=int(data["escrowOrders"]),
            escrow_transitions=int(data["escrowTransitions"]), escrow_signatures=int(data.get("escrowSignatures", 0)),
        )


@dataclass(frozen=True)
class AuditReport:
    chain_id: int
    contracts: Mapping[str, str]
    """Contract name -> address, from the deployment record."""
    from_block: int
    """The deployment block (first block replayed)."""
    to_block: int
    """The chain head when the audit read the chain (last block replayed)."""
    evidence: str
    """What the off-chain evidence was (e.g. `database sqlite:///...`, `bundle ./x.zip`)."""
    checked: Checked
    discrepancies: Sequence[Discrepancy]
    elapsed_s: float
    started_at: str = ""
    """ISO 8601 UTC time the audit began."""

    @property
    def ok(self) -> bool:
        return not self.discrepancies

    def by_kind(self) -> dict[str, int]:
        """Count of discrepancies per kind, every kind present (zero when none)."""
        counts = {kind.value: 0 for kind in DiscrepancyKind}
        for d in self.discrepancies:
            counts[d.kind.value] += 1
        return counts

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data:

        {"schema": "waymark.audit.report/1", "ok": bool, "chainId": int,
         "contracts": {name: address}, "blocks": {"from": int, "to": int}, "evidence": str,
         "startedAt": str, "elapsedSeconds": float,
         "checked": {"events", "pendingEvents", "batches", "anchoredRoots", "registryChanges",
                     "escrowOrders", "escrowTransitions", "escrowSignatures"},
         "byKind": {kind: count, ... every kind},
         "discrepancies": [{"kind", "subject", "detail", "objects": {str: str}}, ...]}
        """
        return {
            "schema": REPORT_SCHEMA,
            "ok": self.ok,
            "chainId": self.chain_id,
            "contracts": dict(self.contracts),
            "blocks": {"from": self.from_block, "to": self.to_block},
            "evidence": self.evidence,
            "startedAt": self.started_at,
            "elapsedSeconds": self.elapsed_s,
            "checked": self.checked.to_json(),
            "byKind": self.by_kind(),
            "discrepancies": [d.to_json() for d in self.discrepancies],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AuditReport:
        if data.get("schema") != REPORT_SCHEMA:
            raise ReportFormatError(f"schema is {data.get('schema')!r}")
        try:
            return cls(
                chain_id=int(data["chainId"]),
                contracts={str(k): str(v) for k, v in data["contracts"].items()},
                from_block=int(data["blocks"]["from"]),
                to_block=int(data["blocks"]["to"]),
                evidence=str(data["evidence"]),
                checked=Checked.from_json(data["checked"]),
                discrepancies=[Discrepancy.from_json(d) for d in data["discrepancies"]],
                elapsed_s=float(data["elapsedSeconds"]),
                started_at=str(data.get("startedAt", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ReportFormatError(f"{type(exc).__name__}: {exc}") from None
