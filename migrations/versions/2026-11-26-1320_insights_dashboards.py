"""insights, dashboards, tiles, insight views, activity log

Revision ID: 0005
Revises: 0002
Create Date: 2026-11-26 13:20:00

Hand-written: sibling revisions 0003/0004 also branch from 0002 (upgrades use `heads`).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0002"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "insight",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("environment_id", sa.Integer(), nullable=False),
        sa.Column("short_id", sa.String(12), nullable=False),
        sa.Column("name", sa.String(400), nullable=True),
        sa.Column("derived_name", sa.String(400), nullable=True),
        sa.Column("description", sa.String(400), nullable=True),
        sa.Column("filters", sa.JSON(), nullable=False),
        sa.Column("query", sa.JSON(), nullable=True),
        sa.Column("order", sa.Integer(), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("saved", sa.Boolean(), nullable=False),
        sa.Column("favorited", sa.Boolean(), nullable=False),
        sa.Column("tags", postgresql.ARRAY(sa.String(255)), nullable=False),
        sa.Column("is_sample", sa.Boolean(), nullable=False),
        _ts("legacy_last_refresh", True),
        _ts("created_at"),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        _ts("updated_at"),
        _ts("last_modified_at"),
        sa.Column("last_modified_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["environment_id"], ["environment.id"], name=op.f("fk_insight_environment_id_environment"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["created_by_id"], ["user.id"], name=op.f("fk_insight_created_by_id_user"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["last_modified_by_id"], ["user.id"], name=op.f("fk_insight_last_modified_by_id_user"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_insight")),
        sa.UniqueConstraint("environment_id", "short_id", name=op.f("uq_insight_environment_id")),
    )
    op.create_index("ix_insight_environment_id_deleted", "insight", ["environment_id", "deleted"])
    # Trigram indexes back the fuzzy search of §3.5.3 (pg_trgm is created by revision 0001).
    op.execute("CREATE INDEX ix_insight_name_trgm ON insight USING gin (name gin_trgm_ops)")
    op.execute("CREATE INDEX ix_insight_derived_name_trgm ON insight USING gin (derived_name gin_trgm_ops)")
    op.create_table(
        "insight_viewed",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("environment_id", sa.Integer(), nullable=False),
        sa.Column("insight_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        _ts("last_viewed_at"),
        sa.ForeignKeyConstraint(["environment_id"], ["environment.id"], name=op.f("fk_insight_viewed_environment_id_environment"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["insight_id"], ["insight.id"], name=op.f("fk_insight_viewed_insight_id_insight"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], name=op.f("fk_insight_viewed_user_id_user"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_insight_viewed")),
        sa.UniqueConstraint("insight_id", "user_id", name=op.f("uq_insight_viewed_insight_id")),
    )
    op.create_table(
        "dashboard",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("environment_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(400), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("filters", sa.JSON(), nullable=False),
        sa.Column("variables", sa.JSON(), nullable=False),
        sa.Column("pinned", sa.Boolean(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("creation_mode", sa.String(16), nullable=False),
        sa.Column("restriction_level", sa.SmallInteger(), nullable=False),
        _ts("created_at"),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["environment_id"], ["environment.id"], name=op.f("fk_dashboard_environment_id_environment"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["created_by_id"], ["user.id"], name=op.f("fk_dashboard_created_by_id_user"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dashboard")),
    )
    op.create_index(op.f("ix_dashboard_environment_id"), "dashboard", ["environment_id"])
    op.create_table(
        "dashboard_tile",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dashboard_id", sa.Integer(), nullable=False),
        sa.Column("insight_id", sa.Integer(), nullable=False),
        sa.Column("color", sa.String(400), nullable=True),
        sa.Column("layouts", sa.JSON(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=True),
        sa.Column("filters_overrides", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["dashboard_id"], ["dashboard.id"], name=op.f("fk_dashboard_tile_dashboard_id_dashboard"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["insight_id"], ["insight.id"], name=op.f("fk_dashboard_tile_insight_id_insight"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dashboard_tile")),
    )
    op.create_index(op.f("ix_dashboard_tile_dashboard_id"), "dashboard_tile", ["dashboard_id"])
    op.create_index(op.f("ix_dashboard_tile_insight_id"), "dashboard_tile", ["insight_id"])
    op.create_table(
        "activity_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("environment_id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("item_id", sa.String(72), nullable=False),
        sa.Column("activity", sa.String(79), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("is_system", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        _ts("created_at"),
        sa.ForeignKeyConstraint(["environment_id"], ["environment.id"], name=op.f("fk_activity_log_environment_id_environment"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], name=op.f("fk_activity_log_user_id_user"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activity_log")),
    )
    op.create_index("ix_activity_log_environment_id_scope_item_id", "activity_log", ["environment_id", "scope", "item_id"])


def downgrade() -> None:
    op.drop_table("activity_log")
    op.drop_table("dashboard_tile")
    op.drop_table("dashboard")
    op.drop_table("insight_viewed")
    op.drop_table("insight")
