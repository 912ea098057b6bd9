"""scans, ownership claims, claim codes, scan alerts (models in node/db/scans.py; owned by the buyer-scan API)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 19:39:27.937545
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('claim_codes',
    sa.Column('unit_key', sa.String(length=512), nullable=False),
    sa.Column('code_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('org_id', sa.BigInteger(), nullable=False),
    sa.Column('registered_by', sa.String(length=42), nullable=False),
    sa.Column('registered_at_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('unit_key', name=op.f('pk_claim_codes'))
    )
    op.create_table('ownership_claims',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('unit_key', sa.String(length=512), nullable=False),
    sa.Column('method', sa.String(length=8), nullable=False),
    sa.Column('order_id', sa.String(length=66), nullable=True),
    sa.Column('owner', sa.String(length=42), nullable=True),
    sa.Column('device_hash', sa.LargeBinary(length=16), nullable=True),
    sa.Column('claimed_at_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ownership_claims')),
    sa.UniqueConstraint('unit_key', name=op.f('uq_ownership_claims_unit_key'))
    )
    op.create_table('scan_alerts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('org_id', sa.BigInteger(), nullable=True),
    sa.Column('gtin', sa.String(length=14), nullable=True),
    sa.Column('unit_key', sa.String(length=512), nullable=False),
    sa.Column('rule', sa.String(length=32), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('day', sa.Integer(), nullable=False),
    sa.Column('created_at_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scan_alerts')),
    sa.UniqueConstraint('unit_key', 'rule', 'day', name=op.f('uq_scan_alerts_unit_key_rule_day'))
    )
    with op.batch_alter_table('scan_alerts', schema=None) as batch_op:
        batch_op.create_index('ix_scan_alerts_org_id_id', ['org_id', 'id'], unique=False)

    op.create_table('scans',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('unit_key', sa.String(length=512), nullable=False),
    sa.Column('gtin', sa.String(length=14), nullable=True),
    sa.Column('known', sa.Boolean(), nullable=False),
    sa.Column('region', sa.String(length=2), nullable=True),
    sa.Column('region_source', sa.String(length=8), nullable=False),
    sa.Column('device_hash', sa.LargeBinary(length=16), nullable=False),
    sa.Column('at_ms', sa.BigInteger(), nullable=False),
    sa.Column('flags', sa.String(length=160), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scans'))
    )
    with op.batch_alter_table('scans', schema=None) as batch_op:
        batch_op.create_index('ix_scans_unit_key_at_ms', ['unit_key', 'at_ms'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('scans', schema=None) as batch_op:
        batch_op.drop_index('ix_scans_unit_key_at_ms')

    op.drop_table('scans')
    with op.batch_alter_table('scan_alerts', schema=None) as batch_op:
        batch_op.drop_index('ix_scan_alerts_org_id_id')

    op.drop_table('scan_alerts')
    op.drop_table('ownership_claims')
    op.drop_table('claim_codes')
