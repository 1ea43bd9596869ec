"""merge the persons, elements and insights branches

Revision ID: 0006
Revises: 0003, 0004, 0005
Create Date: 2026-11-26 14:00:00
"""
from __future__ import annotations

revision = "0006"
down_revision = ("0003", "0004", "0005")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
