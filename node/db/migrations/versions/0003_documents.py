"""encrypted document store: documents (metadata) and document_keys (models in node/db/documents.py)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('documents',
    sa.Column('digest', sa.LargeBinary(length=32), nullable=False),
    sa.Column('document_type', sa.String(length=64), nullable=False),
    sa.Column('media_type', sa.String(length=127), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('owner_org', sa.BigInteger(), nullable=False),
    sa.Column('uploaded_by', sa.String(length=42), nullable=False),
    sa.Column('readers', sa.Text(), nullable=False),
    sa.Column('created_at_ms', sa.BigInteger(), nullable=False),
    sa.Column('erased_at_ms', sa.BigInteger(), nullable=True),
    sa.Column('erased_by', sa.String(length=42), nullable=True),
    sa.Column('erasure_reason', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('digest', name=op.f('pk_documents'))
    )
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_documents_owner_org'), ['owner_org'], unique=False)

    op.create_table('document_keys',
    sa.Column('digest', sa.LargeBinary(length=32), nullable=False),
    sa.Column('key', sa.LargeBinary(length=32), nullable=False),
    sa.ForeignKeyConstraint(['digest'], ['documents.digest'], name=op.f('fk_document_keys_digest_documents')),
    sa.PrimaryKeyConstraint('digest', name=op.f('pk_document_keys'))
    )


def downgrade() -> None:
    op.drop_table('document_keys')
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_documents_owner_org'))
    op.drop_table('documents')
