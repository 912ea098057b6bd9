"""product and location master data: product_master, location_master (models in node/db/models.py)

Revision ID: 0007_product_master
Revises: 0006_scale
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0007_product_master'
down_revision: str | None = '0006_scale'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('product_master',
    sa.Column('gtin', sa.String(length=14), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.Column('content_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('stored_at_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('gtin', name=op.f('pk_product_master'))
    )
    op.create_table('location_master',
    sa.Column('location', sa.String(length=512), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('org_id', sa.BigInteger(), nullable=False),
    sa.Column('stored_at_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('location', name=op.f('pk_location_master'))
    )


def downgrade() -> None:
    op.drop_table('location_master')
    op.drop_table('product_master')
