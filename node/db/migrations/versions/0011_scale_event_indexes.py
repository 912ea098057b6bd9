"""scale: a batch's events by (batch_id, leaf_index); only error declarations in the corrects index; events vacuumed at 2% dead

Revision ID: 0011_scale_event_indexes
Revises: 0010_clones_unit_state
Create Date: 2026-12-05

Measured on PostgreSQL with the scale benchmark's data (scripts/bench/scale.py): the full
`ix_events_corrects` held one NULL entry per event (every event is written twice, stored and
then anchored, so two index insertions per event for an index that answers only the rare
lookups of error declarations); the partial index holds the declarations alone. A bundle reads
its batch in chunks of 2,000 leaves ordered by leaf_index: by `ix_events_batch_id` each chunk
fetched and sorted the whole batch, by (batch_id, leaf_index) it reads its own range.

Every event row is written twice (stored pending, then anchored), so `events` holds one dead
row version per anchored event until a vacuum; the anchorer's read of its queue (the partial
index of pending events) visits every dead one. At PostgreSQL's default (a vacuum once 20% of
the table is dead) that read grew with the table: 1.3-2.4 s at 380,000 events with nothing
vacuumed. On PostgreSQL, `events` is vacuumed once 2% of it (plus 10,000 rows) is dead.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0011_scale_event_indexes'
down_revision: str | None = '0010_clones_unit_state'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DECLARATIONS = sa.text("corrects IS NOT NULL")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE events SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 10000)")
    op.drop_index('ix_events_batch_id', table_name='events')
    op.create_index('ix_events_batch_leaf', 'events', ['batch_id', 'leaf_index'], unique=False)
    op.drop_index('ix_events_corrects', table_name='events')
    op.create_index('ix_events_corrects', 'events', ['corrects'], unique=False,
                    sqlite_where=_DECLARATIONS, postgresql_where=_DECLARATIONS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE events RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold)")
    op.drop_index('ix_events_corrects', table_name='events')
    op.create_index('ix_events_corrects', 'events', ['corrects'], unique=False)
    op.drop_index('ix_events_batch_leaf', table_name='events')
    op.create_index('ix_events_batch_id', 'events', ['batch_id'], unique=False)
