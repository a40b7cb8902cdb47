"""Staging helpers: the raw-value encoding, the record hash and bulk inserts."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from staffsync.planning.staging import (
    StagingTables,
    decode_values,
    encode_values,
    insert_rows,
    record_hash,
    record_hasher,
)
from staffsync.settings import StateSettings
from staffsync.sources.base import MISSING
from staffsync.state.database import create_state_engine

VALUES = [
    ("E1", "Ada", "Lovelace"),
    ("E2", "", "Müller"),
    ("E3", "a\x1fb", "c"),
    ("E4", "x\x1ey", "z"),
    ("E5", None, MISSING),
    ("E6", ["Berlin", "Hamburg"], "x"),
    (),
    ("",),
]


class TestEncoding:
    @pytest.mark.parametrize("values", VALUES)
    def test_round_trip(self, values: tuple[object, ...]) -> None:
        """Decoding the encoded values returns them unchanged."""
        assert decode_values(encode_values(values)) == values  # type: ignore[arg-type]

    def test_plain_text_joined(self) -> None:
        """Plain text is joined with the field separator, not written as JSON."""
        assert encode_values(("E1", "Ada")) == "E1\x1fAda"


class TestRecordHasher:
    def test_equals_record_hash(self) -> None:
        """The fast hasher returns what record_hash returns, for every payload."""
        salt = bytes(range(32))
        hasher = record_hasher(salt)

        for payload in ("", "E1\x1fAda", "Jürgen", "x" * 500):
            assert hasher(payload) == record_hash(payload, salt)


class TestInsertRows:
    def test_every_row_arrives(self, state_url: str) -> None:
        """Rows fill whole multi-row INSERTs and a shorter last one, in order and intact."""
        engine = create_state_engine(StateSettings(url=state_url))
        tables = StagingTables()
        columns = ("line", "key", "record_hash", "payload", "match_value")
        rows = [
            (line, f"E{line}", line.to_bytes(16, "big"), f"p{line}", None if line % 2 else "m")
            for line in range(1, 452)
        ]

        with engine.connect() as connection:
            tables.create(connection)
            insert_rows(connection, tables.staging, columns, rows)
            stored = connection.execute(
                sa.select(*(tables.staging.c[name] for name in columns)).order_by(
                    tables.staging.c.line
                )
            ).all()
            tables.drop(connection)
        engine.dispose()

        assert [tuple(row) for row in stored] == rows
