from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, created_at_column

ACCESS_LEVELS = ("none", "viewer", "editor", "manager")


class AccessControl(Base):
    """An object-level access rule (spec/API.md §3.5.4), as in PostHog: for one object of a resource
    (`resource_id`) or every object of it (`resource_id` NULL), for one organization member or, with
    `organization_member_id` NULL, as the default for everyone. There is no API for these rows yet."""

    __tablename__ = "access_control"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    environment_id: Mapped[int] = mapped_column(ForeignKey("environment.id", ondelete="CASCADE"), nullable=False,
                                                index=True)
    resource: Mapped[str] = mapped_column(String(32), nullable=False)
    resource_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    access_level: Mapped[str] = mapped_column(String(16), nullable=False)
    organization_member_id: Mapped[int | None] = mapped_column(
        ForeignKey("organization_membership.id", ondelete="CASCADE"), nullable=True)
    created_at: Mapped[datetime] = created_at_column()
