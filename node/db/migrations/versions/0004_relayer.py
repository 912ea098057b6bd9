"""escrow relayer: relay_signatures and relay_submissions (models in node/relayer/store.py)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('relay_signatures',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('chain_id', sa.BigInteger(), nullable=False),
    sa.Column('escrow', sa.String(length=42), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('order_id', sa.String(length=66), nullable=False),
    sa.Column('milestone', sa.Integer(), nullable=False),
    sa.Column('duty', sa.String(length=78), nullable=False),
    sa.Column('duty_payee', sa.String(length=42), nullable=False),
    sa.Column('signer', sa.String(length=42), nullable=False),
    sa.Column('org_id', sa.BigInteger(), nullable=False),
    sa.Column('deadline', sa.BigInteger(), nullable=False),
    sa.Column('signature', sa.LargeBinary(), nullable=False),
    sa.Column('received_at_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_relay_signatures')),
    sa.UniqueConstraint('chain_id', 'escrow', 'kind', 'order_id', 'milestone', 'signer',
                        name=op.f('uq_relay_signatures_chain_id_escrow_kind_order_id_milestone_signer'))
    )
    op.create_table('relay_submissions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('chain_id', sa.BigInteger(), nullable=False),
    sa.Column('escrow', sa.String(length=42), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('order_id', sa.String(length=66), nullable=False),
    sa.Column('milestone', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('tx_hash', sa.LargeBinary(length=32), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('sends', sa.Integer(), nullable=False),
    sa.Column('updated_at_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_relay_submissions')),
    sa.UniqueConstraint('chain_id', 'escrow', 'kind', 'order_id', 'milestone',
                        name=op.f('uq_relay_submissions_chain_id_escrow_kind_order_id_milestone'))
    )
    with op.batch_alter_table('relay_submissions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_relay_submissions_status'), ['status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('relay_submissions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_relay_submissions_status'))
    op.drop_table('relay_submissions')
    op.drop_table('relay_signatures')
