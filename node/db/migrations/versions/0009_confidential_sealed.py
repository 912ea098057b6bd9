"""sealed documents: keys wrapped per organisation, replication feed, erasure notices (models in node/db/documents.py)

Revision ID: 0009_confidential_sealed
Revises: 0008_network_replication
Create Date: 2026-12-05

`document_keys` (keys in the clear) stays until `DocumentStore.seal_legacy_keys` has wrapped
every key it holds for its readers and deleted the row: dropping it here would lose documents.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0009_confidential_sealed'
down_revision: str | None = '0008_network_replication'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reader_roles', sa.Text(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('erasure_notice', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('upload_proof', sa.Text(), nullable=True))
    op.create_table('document_key_wraps',
    sa.Column('digest', sa.LargeBinary(length=32), nullable=False),
    sa.Column('org_id', sa.BigInteger(), nullable=False),
    sa.Column('wrapped', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['digest'], ['documents.digest'], name=op.f('fk_document_key_wraps_digest_documents')),
    sa.PrimaryKeyConstraint('digest', 'org_id', name=op.f('pk_document_key_wraps'))
    )
    op.create_table('document_feed',
    sa.Column('seq', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('digest', sa.LargeBinary(length=32), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_document_feed'))
    )
    with op.batch_alter_table('document_feed', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_document_feed_digest'), ['digest'], unique=False)
    op.create_table('document_peer_cursors',
    sa.Column('peer_url', sa.String(length=256), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('peer_url', name=op.f('pk_document_peer_cursors'))
    )


def downgrade() -> None:
    op.drop_table('document_peer_cursors')
    with op.batch_alter_table('document_feed', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_document_feed_digest'))
    op.drop_table('document_feed')
    op.drop_table('document_key_wraps')
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.drop_column('upload_proof')
        batch_op.drop_column('erasure_notice')
        batch_op.drop_column('reader_roles')
