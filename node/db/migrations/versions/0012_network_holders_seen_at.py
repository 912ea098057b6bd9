"""network: network_holders indexed by seen_at_ms

Revision ID: 0012_network_holders_seen_at
Revises: 0011_scale_event_indexes
Create Date: 2026-12-06

A passport shows how many member nodes hold each of its events, from `network_holders`. The
passport cache keeps a passport while the node's tables do not change (a watermark of index
probes); the newest sighting of a holder is one of them, so that a passport built before this
node learned that a peer holds a batch is rebuilt at its next expiry, not after its maximum age.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op


revision: str = '0012_network_holders_seen_at'
down_revision: str | None = '0011_scale_event_indexes'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_network_holders_seen_at_ms', 'network_holders', ['seen_at_ms'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_network_holders_seen_at_ms', table_name='network_holders')
