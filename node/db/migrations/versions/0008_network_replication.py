"""member-node network: network_batches, network_failures, network_holders, network_peer_cursors
(models in node/db/models.py, used by node/network)

Revision ID: 0008_network_replication
Revises: 0007_product_master
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0008_network_replication'
down_revision: str | None = '0007_product_master'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('network_batches',
    sa.Column('root', sa.LargeBinary(length=32), nullable=False),
    sa.Column('org_id', sa.BigInteger(), nullable=False),
    sa.Column('chain_id', sa.BigInteger(), nullable=False),
    sa.Column('event_count', sa.Integer(), nullable=False),
    sa.Column('uri', sa.Text(), nullable=False),
    sa.Column('block_number', sa.BigInteger(), nullable=False),
    sa.Column('block_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('block_time', sa.BigInteger(), nullable=False),
    sa.Column('tx_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('first_seen_ms', sa.BigInteger(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_ms', sa.BigInteger(), nullable=False),
    sa.Column('withheld_since_ms', sa.BigInteger(), nullable=True),
    sa.Column('imported_at_ms', sa.BigInteger(), nullable=True),
    sa.Column('source', sa.Text(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('root', 'org_id', name=op.f('pk_network_batches'))
    )
    op.create_index('ix_network_batches_state_next', 'network_batches', ['state', 'next_attempt_ms'], unique=False)
    op.create_table('network_failures',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('root', sa.LargeBinary(length=32), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('event_id', sa.String(length=96), nullable=True),
    sa.Column('check', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('at_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_network_failures'))
    )
    op.create_index('ix_network_failures_root', 'network_failures', ['root'], unique=False)
    op.create_table('network_holders',
    sa.Column('root', sa.LargeBinary(length=32), nullable=False),
    sa.Column('org_id', sa.BigInteger(), nullable=False),
    sa.Column('seen_at_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('root', 'org_id', name=op.f('pk_network_holders'))
    )
    op.create_table('network_peer_cursors',
    sa.Column('org_id', sa.BigInteger(), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('after', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('org_id', name=op.f('pk_network_peer_cursors'))
    )


def downgrade() -> None:
    op.drop_table('network_peer_cursors')
    op.drop_table('network_holders')
    op.drop_index('ix_network_failures_root', table_name='network_failures')
    op.drop_table('network_failures')
    op.drop_index('ix_network_batches_state_next', table_name='network_batches')
    op.drop_table('network_batches')
