"""Independent verification of a Waymark network: the auditor's engine.

`audit(client, deployment, evidence)` replays the chain from the deployment block (registry,
batch anchors, escrow), reads the off-chain evidence (the node's database, or a bundle through
the same `Evidence` protocol) and returns an `AuditReport` listing every discrepancy by kind.
Importable without the API. Interface notes: /work/team/audit-interface.md.
"""

from node.audit.evidence import DatabaseEvidence, Evidence, StoredBatch, StoredEscrowAttestation, StoredEvent
from node.audit.model import AuditReport, Checked, Discrepancy, DiscrepancyKind
from node.audit.checkpoint import AuditCheckpoint, CheckpointRefused, load_checkpoint, save_checkpoint
from node.audit.verify import SignedCheckpoint, audit, audit_and_checkpoint, audit_database

__all__ = [
    "AuditReport", "Checked", "DatabaseEvidence", "Discrepancy", "DiscrepancyKind", "Evidence", "StoredBatch",
    "StoredEscrowAttestation", "StoredEvent", "audit", "audit_database",
    "AuditCheckpoint", "CheckpointRefused", "SignedCheckpoint", "audit_and_checkpoint", "load_checkpoint", "save_checkpoint",
]
