"""Saved insights and the record of who viewed them (spec/API.md §3)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, created_at_column, utcnow


class Insight(Base):
    __tablename__ = "insight"
    __table_args__ = (
        UniqueConstraint("environment_id", "short_id"),
        Index("ix_insight_environment_id_deleted", "environment_id", "deleted"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"), nullable=False)
    short_id: Mapped[str] = mapped_column(String(12), nullable=False)
    name: Mapped[str | None] = mapped_column(String(400), nullable=True)
    derived_name: Mapped[str | None] = mapped_column(String(400), nullable=True)
    description: Mapped[str | None] = mapped_column(String(400), nullable=True)
    filters: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)
    # Stored exactly as the client sent it (STYLE.md: never drop keys of stored queries).
    query: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    order: Mapped[int | None] = mapped_column(Integer, nullable=True)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    saved: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    favorited: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(255)), default=list, nullable=False)
    is_sample: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    # Legacy column of the basic representation; never written by this API.
    legacy_last_refresh: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = created_at_column()
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)
    last_modified_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)
    last_modified_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="SET NULL"), nullable=True
    )


class InsightViewed(Base):
    """One row per (insight, user): the user's latest view. Creation counts as a view."""

    __tablename__ = "insight_viewed"
    __table_args__ = (UniqueConstraint("insight_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"), nullable=False)
    insight_id: Mapped[int] = mapped_column(ForeignKey("insight.id", ondelete="CASCADE"), nullable=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), nullable=False)
    last_viewed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
