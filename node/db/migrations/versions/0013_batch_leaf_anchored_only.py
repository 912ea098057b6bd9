"""events: only anchored events in ix_events_batch_leaf

Revision ID: 0013_batch_leaf_anchored_only
Revises: 0012_network_holders_seen_at
Create Date: 2026-12-06

The anchorer reads its queue with `batch_id IS NULL ORDER BY id LIMIT n`. On SQLite the planner
answered that equality on the leading column of (batch_id, leaf_index), read every pending
event, and sorted them all in a temporary tree to take the first n (the partial index of pending
events, which holds them in id order, went unused); the count of the next batch's events did
the same on every round. With the index limited to anchored events (batch_id IS NOT NULL), the
queue has one index and ingest writes no entry for a pending event. Lookups by batch
(`batch_id = ?`, ranges, joins) imply `batch_id IS NOT NULL`, so both SQLite and PostgreSQL
still use the index for them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0013_batch_leaf_anchored_only'
down_revision: str | None = '0012_network_holders_seen_at'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ANCHORED = sa.text("batch_id IS NOT NULL")


def upgrade() -> None:
    op.drop_index('ix_events_batch_leaf', table_name='events')
    op.create_index('ix_events_batch_leaf', 'events', ['batch_id', 'leaf_index'], unique=False,
                    sqlite_where=_ANCHORED, postgresql_where=_ANCHORED)


def downgrade() -> None:
    op.drop_index('ix_events_batch_leaf', table_name='events')
    op.create_index('ix_events_batch_leaf', 'events', ['batch_id', 'leaf_index'], unique=False)
