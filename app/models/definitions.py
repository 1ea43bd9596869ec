from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Integer, SmallInteger, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, created_at_column, utcnow

# PropertyDefinition.type values, as PostHog numbers them.
EVENT_PROPERTY = 1
PERSON_PROPERTY = 2
GROUP_PROPERTY = 3
SESSION_PROPERTY = 4

# PropertyDefinition.property_type values.
PROPERTY_TYPES = ("String", "Numeric", "Boolean", "DateTime", "Duration")


class PropertyDefinition(Base):
    """A property seen in an environment and its inferred (or user-set) type; the query engine
    reads `property_type` to compare values as numbers, booleans or dates."""

    __tablename__ = "property_definition"
    __table_args__ = (UniqueConstraint("environment_id", "type", "group_type_index", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(400), nullable=False)
    type: Mapped[int] = mapped_column(SmallInteger, nullable=False, default=EVENT_PROPERTY)
    # -1 for properties that are not group properties (keeps the unique constraint simple).
    group_type_index: Mapped[int] = mapped_column(SmallInteger, nullable=False, default=-1)
    property_type: Mapped[str | None] = mapped_column(String(50), nullable=True)
    is_numerical: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class EventDefinition(Base):
    __tablename__ = "event_definition"
    __table_args__ = (UniqueConstraint("environment_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(400), nullable=False)
    volume_30_day: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = created_at_column()
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
