"""elements (Elements API CRUD)

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-26 13:10:00

Hand-written: sibling revisions 0003/0005 also branch from 0002 (upgrades use `heads`).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "element",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("environment_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.String(10_000), nullable=True),
        sa.Column("tag_name", sa.String(1_000), nullable=True),
        sa.Column("attr_class", postgresql.ARRAY(sa.String(200)), nullable=True),
        sa.Column("href", sa.String(10_000), nullable=True),
        sa.Column("attr_id", sa.String(10_000), nullable=True),
        sa.Column("nth_child", sa.Integer(), nullable=True),
        sa.Column("nth_of_type", sa.Integer(), nullable=True),
        sa.Column("attributes", postgresql.JSONB(), nullable=False),
        sa.Column("order", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["environment_id"], ["environment.id"],
                                name=op.f("fk_element_environment_id_environment"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_element")),
    )
    op.create_index(op.f("ix_element_environment_id"), "element", ["environment_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_element_environment_id"), table_name="element")
    op.drop_table("element")
