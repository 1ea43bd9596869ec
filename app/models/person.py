"""Authoritative person and group state (INGESTION.md §9). The ClickHouse `person`,
`person_distinct_id2`, `person_distinct_id_overrides` and `groups` tables are replicas of these
rows, written by the same ingestion batch."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Integer, SmallInteger, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, created_at_column


class Person(Base):
    __tablename__ = "person"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    environment_id: Mapped[int] = mapped_column(
        ForeignKey("environment.id", ondelete="CASCADE"), nullable=False, index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    properties: Mapped[dict] = mapped_column(JSONB, nullable=False, default=dict)
    is_identified: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class PersonDistinctId(Base):
    __tablename__ = "person_distinct_id"

    environment_id: Mapped[int] = mapped_column(
        ForeignKey("environment.id", ondelete="CASCADE"), primary_key=True
    )
    distinct_id: Mapped[str] = mapped_column(String(400), primary_key=True)
    # No FK to person: a merge re-points ids and deletes the other person in one batch, and
    # the ids are written before the tombstoned row goes.
    person_id: Mapped[uuid.UUID] = mapped_column(nullable=False, index=True)
    version: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class PersonlessDistinctId(Base):
    """Distinct ids that were used by personless events, so a later identify emits an override."""

    __tablename__ = "personless_distinct_id"

    environment_id: Mapped[int] = mapped_column(
        ForeignKey("environment.id", ondelete="CASCADE"), primary_key=True
    )
    distinct_id: Mapped[str] = mapped_column(String(400), primary_key=True)
    created_at: Mapped[datetime] = created_at_column()


class GroupTypeMapping(Base):
    __tablename__ = "group_type_mapping"
    __table_args__ = (UniqueConstraint("environment_id", "group_type"),)

    environment_id: Mapped[int] = mapped_column(
        ForeignKey("environment.id", ondelete="CASCADE"), primary_key=True
    )
    group_type_index: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    group_type: Mapped[str] = mapped_column(String(400), nullable=False)


class Group(Base):
    __tablename__ = "group"

    environment_id: Mapped[int] = mapped_column(
        ForeignKey("environment.id", ondelete="CASCADE"), primary_key=True
    )
    group_type_index: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    group_key: Mapped[str] = mapped_column(String(400), primary_key=True)
    group_properties: Mapped[dict] = mapped_column(JSONB, nullable=False, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
