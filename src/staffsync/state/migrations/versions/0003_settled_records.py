"""Let the planner skip unchanged records of people who have left.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The record hashes of deactivated users, read at the start of each run like the
    # active users' hashes through ix_users_active_record.
    op.create_index(
        "ix_users_inactive_record",
        "users",
        ["key", "record_hash"],
        sqlite_where=sa.text("NOT hr_active"),
        postgresql_where=sa.text("NOT hr_active"),
    )
    op.create_table(
        "settled_records",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("record_hash", sa.LargeBinary(16), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("settled_records")
    op.drop_index("ix_users_inactive_record", table_name="users")
