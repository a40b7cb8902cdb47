"""Temporary tables that hold one run's export while it is compared with the state.

A run streams every source record into a temporary ``staging`` table (line, key, a hash
of the raw values and the raw values themselves) instead of into memory, so that memory
stays flat however large the export is. The database then finds duplicates, new,
changed and missing people with indexed joins. Only the records that changed are decoded
and mapped again, into ``desired``; the changes end up in ``plan``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from staffsync.sources.base import MISSING, Missing, RawValue

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "StagingTables",
    "decode_values",
    "encode_values",
    "hash_parameters",
    "in_values",
    "insert_rows",
    "record_hash",
    "record_hasher",
    "values_per_query",
]

FIELD_SEPARATOR = "\x1f"
JSON_MARKER = "\x1e"
TEMP_CACHE_KIB = 64 * 1024
SQLITE_MAX_VARIABLES = 999


def encode_values(values: Sequence[RawValue]) -> str:
    """Encode a record's raw values as one string that :func:`decode_values` reverses.

    Plain text values, by far the common case, are joined with a control character; any
    other value (null, missing, a list, or text containing that character) falls back to
    JSON, with a missing value written as an empty object.
    """
    # Called once per record of the export: join first and check the result, which is
    # several times faster than checking each value before joining.
    try:
        joined = FIELD_SEPARATOR.join(values)  # type: ignore[arg-type]
    except TypeError:
        joined = None
    if (
        joined is not None
        and joined.count(FIELD_SEPARATOR) == len(values) - 1
        and JSON_MARKER not in joined
    ):
        return joined
    encoded: list[object] = [{} if isinstance(v, Missing) else v for v in values]
    return JSON_MARKER + json.dumps(encoded, ensure_ascii=False, separators=(",", ":"))


def decode_values(payload: str) -> tuple[RawValue, ...]:
    """Reverse :func:`encode_values`."""
    if not payload.startswith(JSON_MARKER):
        return tuple(payload.split(FIELD_SEPARATOR))
    decoded: list[Any] = json.loads(payload[1:])
    return tuple(MISSING if v == {} else v for v in decoded)


def hash_parameters(salt: bytes) -> dict[str, Any]:
    """Return the BLAKE2b parameters of the record hash for the 32-byte ``salt``.

    The salt fills BLAKE2b's salt and personalization parameters, which cost nothing
    per record, where a key would cost one more compression: a third of the time for a
    record of a hundred bytes.
    """
    return {"digest_size": 16, "salt": salt[:16], "person": salt[16:32]}


def record_hash(payload: str, salt: bytes) -> bytes:
    """Hash a record's encoded values; ``salt`` ties the hash to the mapping settings."""
    return hashlib.blake2b(payload.encode("utf-8"), **hash_parameters(salt)).digest()


def record_hasher(salt: bytes) -> Callable[[str], bytes]:
    """Return a function that computes :func:`record_hash` with ``salt``, faster.

    Copying a hasher set up once skips parsing the parameters for every record.
    """
    copy = hashlib.blake2b(**hash_parameters(salt)).copy

    def hash_payload(payload: str) -> bytes:
        hasher = copy()
        hasher.update(payload.encode("utf-8"))
        return hasher.digest()

    return hash_payload


class StagingTables:
    """The temporary tables of one planning connection."""

    def __init__(self) -> None:
        self.metadata = sa.MetaData()
        self.staging = sa.Table(
            "staging",
            self.metadata,
            sa.Column("line", sa.Integer, nullable=False),
            sa.Column("key", sa.Text, nullable=True),
            sa.Column("record_hash", sa.LargeBinary(16), nullable=False),
            sa.Column("payload", sa.Text, nullable=False),
            sa.Column("match_value", sa.Text, nullable=True),
            sa.Column("rejected", sa.Boolean, nullable=False, server_default=sa.false()),
            prefixes=["TEMPORARY"],
        )
        self.desired = sa.Table(
            "desired",
            self.metadata,
            sa.Column("key", sa.Text, primary_key=True),
            sa.Column("line", sa.Integer, nullable=False),
            sa.Column("active", sa.Boolean, nullable=False),
            sa.Column("email_key", sa.Text, nullable=True),
            sa.Column("manager_ref", sa.Text, nullable=True),
            sa.Column("manager_key", sa.Text, nullable=True),
            sa.Column("data", sa.JSON, nullable=False),
            sa.Column("rejected", sa.Boolean, nullable=False, server_default=sa.false()),
            prefixes=["TEMPORARY"],
        )
        self.changed = sa.Table(
            "changed",
            self.metadata,
            sa.Column("line", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("key", sa.Text, nullable=False),
            sa.Column("record_hash", sa.LargeBinary(16), nullable=False),
            sa.Column("payload", sa.Text, nullable=False),
            sa.Column("match_value", sa.Text, nullable=True),
            prefixes=["TEMPORARY"],
        )
        self.creating = sa.Table(
            "creating",
            self.metadata,
            sa.Column("key", sa.Text, primary_key=True),
            sa.Column("manager_key", sa.Text, nullable=True, index=True),
            prefixes=["TEMPORARY"],
        )
        self.waves = sa.Table(
            "waves",
            self.metadata,
            sa.Column("key", sa.Text, primary_key=True),
            sa.Column("wave", sa.Integer, nullable=False),
            prefixes=["TEMPORARY"],
        )
        self.settled = sa.Table(
            "settled",
            self.metadata,
            sa.Column("key", sa.Text, primary_key=True),
            sa.Column("record_hash", sa.LargeBinary(16), nullable=False),
            prefixes=["TEMPORARY"],
        )
        self.absent = sa.Table(
            "absent",
            self.metadata,
            sa.Column("key", sa.Text, primary_key=True),
            prefixes=["TEMPORARY"],
        )
        self.plan = sa.Table(
            "plan",
            self.metadata,
            sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("phase", sa.Integer, nullable=False),
            sa.Column("action", sa.Text, nullable=False),
            sa.Column("key", sa.Text, nullable=False),
            sa.Column("staffbase_id", sa.Text, nullable=True),
            sa.Column("data", sa.JSON, nullable=False),
            prefixes=["TEMPORARY"],
        )

    def create(self, connection: sa.Connection) -> None:
        """Create the tables on ``connection``, dropping leftovers of an earlier plan."""
        if connection.dialect.name == "sqlite":
            # SQLite caches only 2 MiB of temporary tables by default, so a large export
            # would otherwise move pages to and from the temporary file at every step.
            connection.exec_driver_sql(f"PRAGMA temp.cache_size = -{TEMP_CACHE_KIB}")
        self.metadata.drop_all(connection, checkfirst=True)
        self.metadata.create_all(connection)

    def index_staging(self, connection: sa.Connection, *, by_match_value: bool) -> bool:
        """Index the loaded staging table for the joins that follow.

        Returns:
            True when every key is on one row, which the key index proved by being
            unique; False when some key repeats and the rows need checking.
        """
        # The indexes serve equality lookups only. On PostgreSQL, text_pattern_ops orders
        # them byte by byte instead of by the database's collation, and equality works the
        # same. An index of a million keys then builds two to three times faster.
        ops = " text_pattern_ops" if connection.dialect.name == "postgresql" else ""
        try:
            with connection.begin_nested():
                connection.execute(
                    sa.text(f"CREATE UNIQUE INDEX staging_key ON staging (key{ops})")
                )
            unique = True
        except sa.exc.IntegrityError:
            connection.execute(sa.text(f"CREATE INDEX staging_key ON staging (key{ops})"))
            unique = False
        if by_match_value:
            connection.execute(sa.text(f"CREATE INDEX staging_match ON staging (match_value{ops})"))
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("ANALYZE staging"))
        return unique

    def index_desired(self, connection: sa.Connection) -> None:
        """Index the mapped records for reading them in export order."""
        connection.execute(sa.text("CREATE INDEX desired_line ON desired (line)"))
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("ANALYZE desired"))

    def drop(self, connection: sa.Connection) -> None:
        """Drop the tables; used once the plan has been applied or shown."""
        self.metadata.drop_all(connection, checkfirst=True)


def in_values(
    connection: sa.Connection, column: sa.ColumnElement[Any], values: Sequence[Any]
) -> sa.ColumnElement[bool]:
    """Return the condition ``column IN values`` for a batch of values.

    PostgreSQL gets one array parameter (``= ANY(...)``): the statement's text is then
    the same for every batch, so the driver converts it once, instead of once per batch
    for a list of separate parameters.
    """
    if connection.dialect.name == "postgresql":
        array = sa.bindparam(None, list(values), type_=sa.ARRAY(column.type))
        return column == sa.any_(array)
    return column.in_(values)


def values_per_query(connection: sa.Connection) -> int:
    """How many values :func:`in_values` should get at a time on ``connection``."""
    return 5000 if connection.dialect.name == "postgresql" else 500


def insert_rows(
    connection: sa.Connection,
    table: sa.Table,
    columns: Sequence[str],
    rows: Iterable[tuple[Any, ...]],
) -> None:
    """Insert many rows fast: COPY on PostgreSQL, one prepared executemany on SQLite."""
    rows = list(rows)
    if not rows:
        return

    if connection.dialect.name == "postgresql":
        raw = connection.connection.driver_connection
        assert raw is not None
        column_list = ", ".join(columns)
        with (
            raw.cursor() as cursor,
            cursor.copy(f"COPY {table.name} ({column_list}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        return

    # Several rows per INSERT: binding is the same work, but each statement executed
    # costs as much as binding a row. SQLite before 3.32 allows 999 variables.
    per_statement = max(1, SQLITE_MAX_VARIABLES // len(columns))
    column_list = ", ".join(columns)
    one_row = "(" + ", ".join("?" for _ in columns) + ")"
    whole = len(rows) - len(rows) % per_statement
    if whole:
        connection.exec_driver_sql(
            f"INSERT INTO {table.name} ({column_list}) VALUES "  # noqa: S608
            + ", ".join([one_row] * per_statement),
            [
                tuple(itertools.chain.from_iterable(rows[start : start + per_statement]))
                for start in range(0, whole, per_statement)
            ],
        )
    if whole < len(rows):
        connection.exec_driver_sql(
            f"INSERT INTO {table.name} ({column_list}) VALUES {one_row}",  # noqa: S608
            rows[whole:],
        )
