"""Dashboards and their tiles (the part of PostHog's dashboards the insights API depends on)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, created_at_column


class Dashboard(Base):
    __tablename__ = "dashboard"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    environment_id: Mapped[int] = mapped_column(
        ForeignKey("environment.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str | None] = mapped_column(String(400), nullable=True)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    filters: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)
    variables: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)
    pinned: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    # "default" or "unlisted" (the latter does not make its insights count as saved, §3.5.1).
    creation_mode: Mapped[str] = mapped_column(String(16), default="default", nullable=False)
    restriction_level: Mapped[int] = mapped_column(SmallInteger, default=21, nullable=False)
    created_at: Mapped[datetime] = created_at_column()
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"), nullable=True)


class DashboardTile(Base):
    __tablename__ = "dashboard_tile"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dashboard_id: Mapped[int] = mapped_column(
        ForeignKey("dashboard.id", ondelete="CASCADE"), nullable=False, index=True
    )
    insight_id: Mapped[int] = mapped_column(ForeignKey("insight.id", ondelete="CASCADE"), nullable=False, index=True)
    color: Mapped[str | None] = mapped_column(String(400), nullable=True)
    layouts: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)
    # null until the tile's state changes once (PostHog's nullable flag, shown in dashboard_tiles).
    deleted: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    # A tile's own filters replace the dashboard's filters entirely (§3.7).
    filters_overrides: Mapped[dict | None] = mapped_column(JSON, nullable=True)
