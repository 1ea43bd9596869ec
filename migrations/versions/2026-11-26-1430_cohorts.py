"""cohort metadata (names, static flag, current version) for cohort filters and breakdowns

Revision ID: 0007_cohort
Revises: 0006
Create Date: 2026-11-26 14:30:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_cohort"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cohort",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("environment_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(400), nullable=True),
        sa.Column("is_static", sa.Boolean(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["environment_id"], ["environment.id"],
                                name=op.f("fk_cohort_environment_id_environment"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cohort")),
    )
    op.create_index(op.f("ix_cohort_environment_id"), "cohort", ["environment_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_cohort_environment_id"), table_name="cohort")
    op.drop_table("cohort")
