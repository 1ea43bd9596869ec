from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, created_at_column


class Cohort(Base):
    """A cohort's metadata. Its members live in ClickHouse (`cohortpeople` for dynamic cohorts, at
    the cohort's current `version`; `person_static_cohort` for static ones). The query engine reads
    the name (breakdown labels), `is_static` and `version`."""

    __tablename__ = "cohort"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"), nullable=False,
                                                index=True)
    name: Mapped[str | None] = mapped_column(String(400), nullable=True)
    is_static: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    deleted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # The calculation whose rows of `cohortpeople` are current; None before the first one.
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = created_at_column()
