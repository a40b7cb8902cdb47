"""Tables of the state database, shared by the store and the Alembic migrations.

The state database remembers what staffsync last applied to Staffbase, so that a run
compares HR records with it and sends only the differences. It also keeps every plan and
its journal (each change is recorded before it is sent and its outcome after), the runs
with their reports, and the records that keep failing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect

__all__ = [
    "USER_STATUSES",
    "UTCDateTime",
    "changes",
    "failures",
    "metadata",
    "plans",
    "runs",
    "settled_records",
    "state_meta",
    "users",
]

# Constraint names are fixed from the start so that SQLite batch migrations can find them.
# The DDL itself lives in the migrations; these tables describe the columns for queries.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

USER_STATUSES = ("pending", "activated", "deactivated")

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and read back as an aware UTC datetime.

    SQLite keeps no time zone, so every value is converted to UTC on the way in.
    """

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            msg = f"timestamp {value!r} has no time zone; pass an aware UTC datetime"
            raise ValueError(msg)
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        parsed: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


users = sa.Table(
    "users",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),  # HR employee key = Staffbase externalID
    sa.Column("staffbase_id", sa.Text, nullable=False, unique=True),
    sa.Column("status", sa.Text, nullable=False),  # Staffbase status as last seen
    # Whether HR listed the person as active when a record was last applied.
    sa.Column("hr_active", sa.Boolean, nullable=False),
    sa.Column("fields", sa.JSON, nullable=False),  # flat Staffbase fields as applied
    sa.Column("manager_key", sa.Text, nullable=True),  # the manager's HR key as applied
    sa.Column("groups", sa.JSON, nullable=True),  # group names as applied
    sa.Column("email_key", sa.Text, nullable=True, index=True),
    sa.Column("match_value", sa.Text, nullable=True, index=True),
    sa.Column("record_hash", sa.LargeBinary(16), nullable=True),
    sa.Column("left_at", UTCDateTime, nullable=True),  # when HR stopped listing as active
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index(
        "ix_users_active_record",
        "key",
        "record_hash",
        sqlite_where=sa.text("hr_active"),
        postgresql_where=sa.text("hr_active"),
    ),
    sa.Index(
        "ix_users_inactive_record",
        "key",
        "record_hash",
        sqlite_where=sa.text("NOT hr_active"),
        postgresql_where=sa.text("NOT hr_active"),
    ),
)

# Records that needed nothing: HR lists the person as inactive and Staffbase has no user
# for them. The planner skips such a record while its hash stays the same, so the table
# is only a cache. A key that has a row in ``users`` is compared with that row instead.
settled_records = sa.Table(
    "settled_records",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("record_hash", sa.LargeBinary(16), nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("mode", sa.Text, nullable=False),
    sa.Column("dry_run", sa.Boolean, nullable=False),
    sa.Column("trigger", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),  # running, succeeded, partial, …
    sa.Column("started_at", UTCDateTime, nullable=False, index=True),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.Column("plan_id", sa.Text, nullable=True),
    sa.Column("counts", sa.JSON, nullable=True),
    sa.Column("report", sa.JSON, nullable=True),  # the run report, long lists cut
    sa.Column("error", sa.Text, nullable=True),
)

plans = sa.Table(
    "plans",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("mode", sa.Text, nullable=False),
    # held, applying, applied, superseded or interrupted
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("source_fingerprint", sa.Text, nullable=False),
    sa.Column("state_version", sa.BigInteger, nullable=False),
    sa.Column("only_keys", sa.JSON, nullable=True),
    sa.Column("counts", sa.JSON, nullable=False),
    sa.Column("report", sa.JSON, nullable=True),  # rejects and warnings found when planning
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime, nullable=True),
)

changes = sa.Table(
    "changes",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("plan_id", sa.Text, nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),  # order of execution within the plan
    sa.Column("phase", sa.Integer, nullable=False),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("staffbase_id", sa.Text, nullable=True),
    sa.Column("data", sa.JSON, nullable=False),  # what to send and the before/after values
    sa.Column("state", sa.Text, nullable=False),  # planned, sent, done, failed, skipped
    sa.Column("outcome", sa.Text, nullable=True),  # the action actually taken, or the error
    sa.Column("updated_at", UTCDateTime, nullable=True),
    sa.Index("ix_changes_plan_id_seq", "plan_id", "seq"),
    sa.Index("ix_changes_state", "state"),
)

failures = sa.Table(
    "failures",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("first_failed_at", UTCDateTime, nullable=False),
    sa.Column("last_failed_at", UTCDateTime, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("last_error", sa.Text, nullable=False),
)

state_meta = sa.Table(
    "state_meta",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
