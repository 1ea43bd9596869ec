from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, created_at_column


class PersonalAPIKey(Base):
    """A user's personal API key. The key itself is never stored: only a salted SHA-256 of it,
    an indexed lookup prefix (the first characters, which narrow the candidates) and a masked
    display value."""

    __tablename__ = "personal_api_key"

    id: Mapped[str] = mapped_column(String(50), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), nullable=False, index=True)
    label: Mapped[str] = mapped_column(String(40), nullable=False)
    lookup_prefix: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    salt: Mapped[str] = mapped_column(String(64), nullable=False)
    secure_value: Mapped[str] = mapped_column(String(128), nullable=False)
    mask_value: Mapped[str] = mapped_column(String(11), nullable=False)
    # None or [] = legacy key with every permission; otherwise "<obj>:<read|write>" or "*".
    scopes: Mapped[list | None] = mapped_column(JSON, nullable=True)
    scoped_teams: Mapped[list | None] = mapped_column(JSON, nullable=True)
    scoped_organizations: Mapped[list | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = created_at_column()
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
