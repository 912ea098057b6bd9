"""unit_states (decommissioning, clone suspicion) and the evidence of scan alerts (models in node/db/scans.py)

Revision ID: 0010_clones_unit_state
Revises: 0009_confidential_sealed
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0010_clones_unit_state'
down_revision: str | None = '0009_confidential_sealed'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('unit_states',
    sa.Column('unit_key', sa.String(length=512), nullable=False),
    sa.Column('decommissioned_at_ms', sa.BigInteger(), nullable=True),
    sa.Column('decommissioned_by', sa.String(length=42), nullable=True),
    sa.Column('decommission_reason', sa.String(length=16), nullable=True),
    sa.Column('signals', sa.Text(), nullable=True),
    sa.Column('suspected_until_ms', sa.BigInteger(), nullable=True),
    sa.Column('updated_at_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('unit_key', name=op.f('pk_unit_states'))
    )
    op.add_column('scan_alerts', sa.Column('evidence', sa.Text(), nullable=True))
    op.add_column('scan_alerts', sa.Column('suspected_until_ms', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('scan_alerts') as batch:
        batch.drop_column('suspected_until_ms')
        batch.drop_column('evidence')
    op.drop_table('unit_states')
