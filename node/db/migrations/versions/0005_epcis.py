"""EPCIS 2.0 REST interface: error declarations linked to the event they correct
(events.corrects), capture jobs, named queries and their subscriptions

Revision ID: 0005_epcis
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0005_epcis'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('events', sa.Column('corrects', sa.LargeBinary(length=32), nullable=True))
    op.create_index(op.f('ix_events_corrects'), 'events', ['corrects'], unique=False)
    op.create_table('epcis_capture_jobs',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('created_at_ms', sa.BigInteger(), nullable=False),
    sa.Column('finished_at_ms', sa.BigInteger(), nullable=True),
    sa.Column('running', sa.Boolean(), nullable=False),
    sa.Column('success', sa.Boolean(), nullable=False),
    sa.Column('error_behaviour', sa.String(length=16), nullable=False),
    sa.Column('errors', sa.Text(), nullable=False),
    sa.Column('event_ids', sa.Text(), nullable=False),
    sa.Column('account', sa.String(length=42), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_epcis_capture_jobs'))
    )
    op.create_index(op.f('ix_epcis_capture_jobs_created_at_ms'), 'epcis_capture_jobs', ['created_at_ms'], unique=False)
    op.create_table('epcis_queries',
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('query', sa.Text(), nullable=False),
    sa.Column('created_at_ms', sa.BigInteger(), nullable=False),
    sa.Column('account', sa.String(length=42), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_epcis_queries'))
    )
    op.create_table('epcis_subscriptions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('query_name', sa.String(length=128), nullable=False),
    sa.Column('dest', sa.Text(), nullable=False),
    sa.Column('signature_token', sa.Text(), nullable=True),
    sa.Column('report_if_empty', sa.Boolean(), nullable=False),
    sa.Column('delivered_up_to', sa.BigInteger(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_ms', sa.BigInteger(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at_ms', sa.BigInteger(), nullable=False),
    sa.Column('account', sa.String(length=42), nullable=True),
    sa.ForeignKeyConstraint(['query_name'], ['epcis_queries.name'], name=op.f('fk_epcis_subscriptions_query_name_epcis_queries'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_epcis_subscriptions'))
    )
    op.create_index(op.f('ix_epcis_subscriptions_query_name'), 'epcis_subscriptions', ['query_name'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_epcis_subscriptions_query_name'), table_name='epcis_subscriptions')
    op.drop_table('epcis_subscriptions')
    op.drop_table('epcis_queries')
    op.drop_index(op.f('ix_epcis_capture_jobs_created_at_ms'), table_name='epcis_capture_jobs')
    op.drop_table('epcis_capture_jobs')
    op.drop_index(op.f('ix_events_corrects'), table_name='events')
    with op.batch_alter_table('events') as batch:
        batch.drop_column('corrects')
