"""persons, distinct ids, personless ids, groups and group types (authoritative person state)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 12:12:09.952860
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('group',
    sa.Column('environment_id', sa.Integer(), nullable=False),
    sa.Column('group_type_index', sa.SmallInteger(), nullable=False),
    sa.Column('group_key', sa.String(length=400), nullable=False),
    sa.Column('group_properties', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['environment_id'], ['environment.id'], name=op.f('fk_group_environment_id_environment'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('environment_id', 'group_type_index', 'group_key', name=op.f('pk_group'))
    )
    op.create_table('group_type_mapping',
    sa.Column('environment_id', sa.Integer(), nullable=False),
    sa.Column('group_type_index', sa.SmallInteger(), nullable=False),
    sa.Column('group_type', sa.String(length=400), nullable=False),
    sa.ForeignKeyConstraint(['environment_id'], ['environment.id'], name=op.f('fk_group_type_mapping_environment_id_environment'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('environment_id', 'group_type_index', name=op.f('pk_group_type_mapping')),
    sa.UniqueConstraint('environment_id', 'group_type', name=op.f('uq_group_type_mapping_environment_id'))
    )
    op.create_table('person',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('environment_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('properties', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('is_identified', sa.Boolean(), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['environment_id'], ['environment.id'], name=op.f('fk_person_environment_id_environment'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_person'))
    )
    op.create_index(op.f('ix_person_environment_id'), 'person', ['environment_id'], unique=False)
    op.create_table('person_distinct_id',
    sa.Column('environment_id', sa.Integer(), nullable=False),
    sa.Column('distinct_id', sa.String(length=400), nullable=False),
    sa.Column('person_id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['environment_id'], ['environment.id'], name=op.f('fk_person_distinct_id_environment_id_environment'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('environment_id', 'distinct_id', name=op.f('pk_person_distinct_id'))
    )
    op.create_index(op.f('ix_person_distinct_id_person_id'), 'person_distinct_id', ['person_id'], unique=False)
    op.create_table('personless_distinct_id',
    sa.Column('environment_id', sa.Integer(), nullable=False),
    sa.Column('distinct_id', sa.String(length=400), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['environment_id'], ['environment.id'], name=op.f('fk_personless_distinct_id_environment_id_environment'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('environment_id', 'distinct_id', name=op.f('pk_personless_distinct_id'))
    )


def downgrade() -> None:
    op.drop_table('personless_distinct_id')
    op.drop_index(op.f('ix_person_distinct_id_person_id'), table_name='person_distinct_id')
    op.drop_table('person_distinct_id')
    op.drop_index(op.f('ix_person_environment_id'), table_name='person')
    op.drop_table('person')
    op.drop_table('group_type_mapping')
    op.drop_table('group')
