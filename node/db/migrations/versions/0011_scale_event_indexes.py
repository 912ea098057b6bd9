"""scale: a batch's events by (batch_id, leaf_index); only error declarations in the corrects index

Revision ID: 0011_scale_event_indexes
Revises: 0010_clones_unit_state
Create Date: 2026-12-05

Measured on PostgreSQL with the scale benchmark's data (scripts/bench/scale.py): the full
`ix_events_corrects` held one NULL entry per event (every event is written twice, stored and
then anchored, so two index insertions per event for an index that answers only the rare
lookups of error declarations); the partial index holds the declarations alone. A bundle reads
its batch in chunks of 2,000 leaves ordered by leaf_index: by `ix_events_batch_id` each chunk
fetched and sorted the whole batch, by (batch_id, leaf_index) it reads its own range.
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
    op.drop_index('ix_events_batch_id', table_name='events')
    op.create_index('ix_events_batch_leaf', 'events', ['batch_id', 'leaf_index'], unique=False)
    op.drop_index('ix_events_corrects', table_name='events')
    op.create_index('ix_events_corrects', 'events', ['corrects'], unique=False,
                    sqlite_where=_DECLARATIONS, postgresql_where=_DECLARATIONS)


def downgrade() -> None:
    op.drop_index('ix_events_corrects', table_name='events')
    op.create_index('ix_events_corrects', 'events', ['corrects'], unique=False)
    op.drop_index('ix_events_batch_leaf', table_name='events')
    op.create_index('ix_events_batch_id', 'events', ['batch_id'], unique=False)
