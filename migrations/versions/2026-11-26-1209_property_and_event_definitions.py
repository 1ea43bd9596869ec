"""property and event definitions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 12:09:26.259563
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('event_definition',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('environment_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=400), nullable=False),
    sa.Column('volume_30_day', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['environment_id'], ['environment.id'], name=op.f('fk_event_definition_environment_id_environment'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event_definition')),
    sa.UniqueConstraint('environment_id', 'name', name=op.f('uq_event_definition_environment_id'))
    )
    op.create_table('property_definition',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('environment_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=400), nullable=False),
    sa.Column('type', sa.SmallInteger(), nullable=False),
    sa.Column('group_type_index', sa.SmallInteger(), nullable=False),
    sa.Column('property_type', sa.String(length=50), nullable=True),
    sa.Column('is_numerical', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['environment_id'], ['environment.id'], name=op.f('fk_property_definition_environment_id_environment'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_property_definition')),
    sa.UniqueConstraint('environment_id', 'type', 'group_type_index', 'name', name=op.f('uq_property_definition_environment_id'))
    )


def downgrade() -> None:
    op.drop_table('property_definition')
    op.drop_table('event_definition')
