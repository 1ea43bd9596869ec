"""object-level access control rules (spec/API.md §3.5.4)

Revision ID: 0008_access_controls
Revises: 0007_cohort
Create Date: 2026-11-26 15:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_access_controls"
down_revision = "0007_cohort"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_control",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("environment_id", sa.Integer(), nullable=False),
        sa.Column("resource", sa.String(32), nullable=False),
        sa.Column("resource_id", sa.String(36), nullable=True),
        sa.Column("access_level", sa.String(16), nullable=False),
        sa.Column("organization_member_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["environment_id"], ["environment.id"],
                                name=op.f("fk_access_control_environment_id_environment"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["organization_member_id"], ["organization_membership.id"],
                                name=op.f("fk_access_control_organization_member_id_organization_membership"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_control")),
    )
    op.create_index(op.f("ix_access_control_environment_id"), "access_control", ["environment_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_access_control_environment_id"), table_name="access_control")
    op.drop_table("access_control")
