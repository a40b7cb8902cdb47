"""Index the record hashes of active users, for the planner's comparison.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A covering index: the planner reads key and record_hash of every active user at the
    # start of each run, and scanning this index is several times faster than the table.
    op.create_index(
        "ix_users_active_record",
        "users",
        ["key", "record_hash"],
        sqlite_where=sa.text("hr_active"),
        postgresql_where=sa.text("hr_active"),
    )


def downgrade() -> None:
    op.drop_index("ix_users_active_record", table_name="users")
