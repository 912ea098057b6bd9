"""scale (read path): escrow orders by shipment key, follower checkpoints, verification records, watermark and log indexes

Revision ID: 0006_scale
Revises: 0005_epcis
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0006_scale'
down_revision: str | None = '0005_epcis'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('escrow_orders',
    sa.Column('chain_id', sa.BigInteger(), nullable=False),
    sa.Column('order_id', sa.String(length=66), nullable=False),
    sa.Column('shipment_ref', sa.LargeBinary(length=32), nullable=False),
    sa.Column('buyer', sa.String(length=42), nullable=False),
    sa.Column('seller', sa.String(length=42), nullable=False),
    sa.Column('milestones', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('created_block', sa.BigInteger(), nullable=False),
    sa.Column('created_time', sa.BigInteger(), nullable=False),
    sa.Column('last_block', sa.BigInteger(), nullable=False),
    sa.Column('last_log_index', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('chain_id', 'order_id', name=op.f('pk_escrow_orders'))
    )
    op.create_index('ix_escrow_orders_chain_ref', 'escrow_orders', ['chain_id', 'shipment_ref'], unique=False)
    op.create_table('index_checkpoints',
    sa.Column('chain_id', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('log_id', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('chain_id', 'name', name=op.f('pk_index_checkpoints'))
    )
    op.add_column('events', sa.Column('signer_org', sa.BigInteger(), nullable=True))
    op.add_column('events', sa.Column('verified_at_ms', sa.BigInteger(), nullable=True))
    op.create_index('ix_batches_anchored_at_ms', 'batches', ['anchored_at_ms'], unique=False)
    op.create_index('ix_batches_block_number', 'batches', ['block_number'], unique=False)
    op.create_index('ix_chain_logs_chain_contract_id', 'chain_logs', ['chain_id', 'contract', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_chain_logs_chain_contract_id', table_name='chain_logs')
    op.drop_index('ix_batches_block_number', table_name='batches')
    op.drop_index('ix_batches_anchored_at_ms', table_name='batches')
    op.drop_table('index_checkpoints')
    op.drop_index('ix_escrow_orders_chain_ref', table_name='escrow_orders')
    op.drop_table('escrow_orders')
    op.drop_column('events', 'verified_at_ms')
    op.drop_column('events', 'signer_org')
