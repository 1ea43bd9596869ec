from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, created_at_column, utcnow


class Environment(Base):
    """PostHog's team: the unit every event, insight and element belongs to."""

    __tablename__ = "environment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[uuid.UUID] = mapped_column(default=uuid.uuid4, unique=True, nullable=False)
    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organization.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    api_token: Mapped[str] = mapped_column(String(200), unique=True, nullable=False)
    timezone: Mapped[str] = mapped_column(String(240), default="UTC", nullable=False)
    week_start_day: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    test_account_filters: Mapped[list] = mapped_column(JSON, default=list, nullable=False)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
