"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-26 11:56:53.468531
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # pg_trgm backs the similarity search of insights and definitions.
    op.execute('CREATE EXTENSION IF NOT EXISTS pg_trgm')
    op.create_table('organization',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uuid', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('is_ai_data_processing_approved', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_organization')),
    sa.UniqueConstraint('uuid', name=op.f('uq_organization_uuid'))
    )
    op.create_table('environment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uuid', sa.Uuid(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('api_token', sa.String(length=200), nullable=False),
    sa.Column('timezone', sa.String(length=240), nullable=False),
    sa.Column('week_start_day', sa.SmallInteger(), nullable=True),
    sa.Column('test_account_filters', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_environment_organization_id_organization'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_environment')),
    sa.UniqueConstraint('api_token', name=op.f('uq_environment_api_token')),
    sa.UniqueConstraint('uuid', name=op.f('uq_environment_uuid'))
    )
    op.create_index(op.f('ix_environment_organization_id'), 'environment', ['organization_id'], unique=False)
    op.create_table('user',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uuid', sa.Uuid(), nullable=False),
    sa.Column('distinct_id', sa.String(length=200), nullable=False),
    sa.Column('first_name', sa.String(length=150), nullable=False),
    sa.Column('last_name', sa.String(length=150), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('is_email_verified', sa.Boolean(), nullable=True),
    sa.Column('hedgehog_config', sa.JSON(), nullable=True),
    sa.Column('role_at_organization', sa.String(length=64), nullable=True),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('current_organization_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['current_organization_id'], ['organization.id'], name=op.f('fk_user_current_organization_id_organization'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user')),
    sa.UniqueConstraint('distinct_id', name=op.f('uq_user_distinct_id')),
    sa.UniqueConstraint('email', name=op.f('uq_user_email')),
    sa.UniqueConstraint('uuid', name=op.f('uq_user_uuid'))
    )
    op.create_table('organization_membership',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('level', sa.SmallInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organization.id'], name=op.f('fk_organization_membership_organization_id_organization'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_organization_membership_user_id_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_organization_membership')),
    sa.UniqueConstraint('organization_id', 'user_id', name=op.f('uq_organization_membership_organization_id'))
    )
    op.create_index(op.f('ix_organization_membership_user_id'), 'organization_membership', ['user_id'], unique=False)
    op.create_table('personal_api_key',
    sa.Column('id', sa.String(length=50), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('label', sa.String(length=40), nullable=False),
    sa.Column('lookup_prefix', sa.String(length=16), nullable=False),
    sa.Column('salt', sa.String(length=64), nullable=False),
    sa.Column('secure_value', sa.String(length=128), nullable=False),
    sa.Column('mask_value', sa.String(length=11), nullable=False),
    sa.Column('scopes', sa.JSON(), nullable=True),
    sa.Column('scoped_teams', sa.JSON(), nullable=True),
    sa.Column('scoped_organizations', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_personal_api_key_user_id_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_personal_api_key'))
    )
    op.create_index(op.f('ix_personal_api_key_lookup_prefix'), 'personal_api_key', ['lookup_prefix'], unique=False)
    op.create_index(op.f('ix_personal_api_key_user_id'), 'personal_api_key', ['user_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_personal_api_key_user_id'), table_name='personal_api_key')
    op.drop_index(op.f('ix_personal_api_key_lookup_prefix'), table_name='personal_api_key')
    op.drop_table('personal_api_key')
    op.drop_index(op.f('ix_organization_membership_user_id'), table_name='organization_membership')
    op.drop_table('organization_membership')
    op.drop_table('user')
    op.drop_index(op.f('ix_environment_organization_id'), table_name='environment')
    op.drop_table('environment')
    op.drop_table('organization')
