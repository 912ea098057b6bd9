"""The audit: every stored event, every anchored root, every escrow transition (stub: being written)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from node.audit.evidence import DatabaseEvidence, Evidence
from node.audit.model import AuditReport
from node.chain.client import ChainClient
from node.chain.deploy import Deployment
from node.db import Database

Progress = Callable[[str, int, int], None]


def audit(client: ChainClient, deployment: Deployment, evidence: Evidence, *, progress: Progress | None = None,
          workers: int | None = None) -> AuditReport:
    raise NotImplementedError("audit engine being written")


def audit_database(client: ChainClient, deployment: Deployment, db: Database, **kw: Any) -> AuditReport:
    return audit(client, deployment, DatabaseEvidence(db), **kw)
