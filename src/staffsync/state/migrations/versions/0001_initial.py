"""Create users, runs, plans, changes, failures and state_meta.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from staffsync.state.schema import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("staffbase_id", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column(
            "hr_active", sa.Boolean(create_constraint=True, name="hr_active_bool"), nullable=False
        ),
        sa.Column("fields", sa.JSON, nullable=False),
        sa.Column("manager_key", sa.Text, nullable=True),
        sa.Column("groups", sa.JSON, nullable=True),
        sa.Column("email_key", sa.Text, nullable=True),
        sa.Column("match_value", sa.Text, nullable=True),
        sa.Column("record_hash", sa.LargeBinary(16), nullable=True),
        sa.Column("left_at", UTCDateTime, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'activated', 'deactivated')", name="ck_users_status_known"
        ),
        sa.UniqueConstraint("staffbase_id", name="uq_users_staffbase_id"),
    )
    op.create_index("ix_users_email_key", "users", ["email_key"])
    op.create_index("ix_users_match_value", "users", ["match_value"])

    op.create_table(
        "runs",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("mode", sa.Text, nullable=False),
        sa.Column(
            "dry_run", sa.Boolean(create_constraint=True, name="dry_run_bool"), nullable=False
        ),
        sa.Column("trigger", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime, nullable=True),
        sa.Column("plan_id", sa.Text, nullable=True),
        sa.Column("counts", sa.JSON, nullable=True),
        sa.Column("report", sa.JSON, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_runs_started_at", "runs", ["started_at"])

    op.create_table(
        "plans",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("run_id", sa.Text, nullable=False),
        sa.Column("mode", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("source_fingerprint", sa.Text, nullable=False),
        sa.Column("state_version", sa.BigInteger, nullable=False),
        sa.Column("only_keys", sa.JSON, nullable=True),
        sa.Column("counts", sa.JSON, nullable=False),
        sa.Column("report", sa.JSON, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime, nullable=True),
    )

    op.create_table(
        "changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("plan_id", sa.Text, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("phase", sa.Integer, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("staffbase_id", sa.Text, nullable=True),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("outcome", sa.Text, nullable=True),
        sa.Column("updated_at", UTCDateTime, nullable=True),
    )
    op.create_index("ix_changes_plan_id_seq", "changes", ["plan_id", "seq"])
    op.create_index("ix_changes_state", "changes", ["state"])

    op.create_table(
        "failures",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("first_failed_at", UTCDateTime, nullable=False),
        sa.Column("last_failed_at", UTCDateTime, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime, nullable=False),
        sa.Column("last_error", sa.Text, nullable=False),
    )

    op.create_table(
        "state_meta",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in ("state_meta", "failures", "changes", "plans", "runs", "users"):
        op.drop_table(table)
