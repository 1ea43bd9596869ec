"""Elements created through the Elements API (spec/API.md §2.2–2.7).

Autocapture data never lands here: events keep their elements as chain strings in ClickHouse
(app/elements_chain.py). These rows exist only because the CRUD routes do ([Deviation] Q2:
scoped to the environment that created them)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, created_at_column

# Max lengths of §2.2, shared with the API schema.
TEXT_MAX = 10_000
TAG_NAME_MAX = 1_000
HREF_MAX = 10_000
ATTR_ID_MAX = 10_000
CLASS_MAX = 200


class Element(Base):
    __tablename__ = "element"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    environment_id: Mapped[int] = mapped_column(
        ForeignKey("environment.id", ondelete="CASCADE"), nullable=False, index=True
    )
    text: Mapped[str | None] = mapped_column(String(TEXT_MAX), nullable=True)
    tag_name: Mapped[str | None] = mapped_column(String(TAG_NAME_MAX), nullable=True)
    attr_class: Mapped[list[str] | None] = mapped_column(ARRAY(String(CLASS_MAX)), nullable=True)
    href: Mapped[str | None] = mapped_column(String(HREF_MAX), nullable=True)
    attr_id: Mapped[str | None] = mapped_column(String(ATTR_ID_MAX), nullable=True)
    nth_child: Mapped[int | None] = mapped_column(Integer, nullable=True)
    nth_of_type: Mapped[int | None] = mapped_column(Integer, nullable=True)
    attributes: Mapped[dict] = mapped_column(JSONB, nullable=False, default=dict)
    order: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = created_at_column()
