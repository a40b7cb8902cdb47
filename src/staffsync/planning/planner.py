"""Compare an HR export with the state database and plan the changes for Staffbase.

The planner streams the export into a staging table, rejects records that cannot be
trusted (row errors, a key on several rows, one e-mail on two keys), maps again only the
records whose raw values changed since the last run, and writes the resulting changes
into a temporary ``plan`` table. Nothing is sent and nothing in the state is changed
here; the safety guards read the plan's counts afterwards.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import structlog

from staffsync.planning.diff import plan_for_desired, plan_for_leaver
from staffsync.planning.managers import ManagerCandidate, resolve_managers
from staffsync.planning.model import Action, Phase, PlannedChange
from staffsync.planning.reading import RecordComparer
from staffsync.planning.staging import (
    StagingTables,
    decode_values,
    in_values,
    insert_rows,
)
from staffsync.sources.base import RawRecord, RecordIssue, SourceError
from staffsync.state import schema

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Iterator, Sequence
    from datetime import datetime

    from staffsync.mapping import DesiredUser, RecordMapper
    from staffsync.planning.remote import RemoteTables
    from staffsync.settings import Settings
    from staffsync.sources.base import Source

__all__ = ["EmptySourceError", "Plan", "PlanOptions", "PlanningStopped", "build_plan"]

log = structlog.get_logger(__name__)

INSERT_BATCH = 5000
MAP_BATCH = 1000
PAGE = 2000
"""Rows read per query when walking a temporary table that can hold the whole roster."""
MAX_LISTED_ISSUES = 10_000
STAGING_COLUMNS = ("line", "key", "record_hash", "payload", "match_value")
DESIRED_COLUMNS = ("key", "line", "active", "email_key", "manager_ref", "data")
_UNUSED_STATE_COLUMNS = frozenset({"created_at", "updated_at", "left_at"})
PLAN_COLUMNS = ("seq", "phase", "action", "key", "staffbase_id", "data")
# The state's record hashes, read at the start of an incremental run, each through a
# covering index. An active person without a stored hash gets b"", which no hash equals.
ACTIVE_HASHES = "SELECT key, COALESCE(record_hash, {empty}) FROM users WHERE hr_active"
INACTIVE_HASHES = (
    "SELECT key, record_hash FROM users WHERE NOT hr_active AND record_hash IS NOT NULL"
)
SETTLED_HASHES = "SELECT key, record_hash FROM settled_records"
INDEX_PAGE = 20_000
"""Rows of the state's hashes fetched at a time while loading them into memory."""
MAX_INDEXED_PEOPLE = 2_000_000
"""Largest state compared in memory: about 150 bytes a person, 300 MB at this size."""
MAX_STATUS_LOOKUPS = 500
"""Pending leavers looked up while planning; beyond it, the engine checks each at send time."""


class PlanningStopped(Exception):
    """A stop was requested (SIGTERM, Ctrl+C) while planning, so nothing was sent."""

    def __init__(self) -> None:
        super().__init__("stopped while planning, before anything was sent")


class EmptySourceError(SourceError):
    """The export contains no records; a run on it would treat everyone as a leaver."""


@dataclass(frozen=True)
class PlanOptions:
    """How to plan: the time of the run and, for ``sync --only``, the keys to touch."""

    now: datetime
    only_keys: frozenset[str] | None = None
    status_of: Callable[[str], str | None] | None = None
    """Looks up a Staffbase user's current status by id (None when unknown).

    The state learns that an invited user signed in only from a resync, so a leaver it
    still calls pending is looked up before the plan decides between deleting (pending)
    and deactivating (signed in). Without it, the engine checks just before sending.
    """
    stop: threading.Event | None = None
    """Set when the run is asked to stop. Planning then ends at the next batch or page."""
    progress: Callable[[str, int, int], None] | None = None
    """Called with (stage, done, total): ``read`` counts the records staged so far (total
    0, unknown), ``map`` the changed records mapped out of ``total``."""


@dataclass
class IssueList:
    """Issues of one kind: the first ones in full, and how many there were in all."""

    items: list[RecordIssue] = field(default_factory=list)
    total: int = 0

    def add(self, issue: RecordIssue) -> None:
        self.total += 1
        if len(self.items) < MAX_LISTED_ISSUES:
            self.items.append(issue)

    def extend(self, issues: list[RecordIssue]) -> None:
        for issue in issues:
            self.add(issue)


@dataclass
class Plan:
    """The changes one run would make, held in temporary tables on ``connection``."""

    connection: sa.Connection
    tables: StagingTables
    counts: Counter[str]
    records: int
    unchanged: int
    rejected: IssueList
    warnings: IssueList
    deferred: list[dict[str, Any]]
    orphans: list[dict[str, Any]]
    source_fingerprint: str
    state_version: int
    active_synced: int
    """Active people staffsync manages; counted only when the plan deactivates someone."""
    leavers_withheld: int
    remote: RemoteTables | None = None
    """For a full resync, the users read from Staffbase that the plan was made against."""
    leavers_withheld_reason: str = ""
    """The reason the ``leavers_withheld`` people were not deactivated, as a clause for messages."""
    protected: frozenset[str] = frozenset()
    """Keys the plan leaves as they are: rejected rows and failing records not yet due."""
    only_keys: frozenset[str] | None = None
    unknown_only_keys: list[str] = field(default_factory=list)
    """Keys given to ``sync --only`` that neither the export nor the state has."""

    @property
    def deactivations(self) -> int:
        """Planned deactivations and deletions of people HR no longer lists as active."""
        return self.counts[Action.DEACTIVATE] + self.counts["delete_leaver"]

    def iter_changes(self, *, include_state_only: bool = False) -> Iterator[PlannedChange]:
        """Yield the planned changes in the order they would be applied."""
        plan = self.tables.plan
        query = sa.select(plan).order_by(plan.c.phase, plan.c.seq)
        if not include_state_only:
            query = query.where(plan.c.action != Action.RECORD)
        # Fetched in chunks (a server-side cursor on PostgreSQL): an initial load plans a
        # change for every person of the roster.
        for row in self.connection.execute(query.execution_options(yield_per=PAGE)).mappings():
            yield PlannedChange(
                seq=row["seq"],
                phase=row["phase"],
                action=row["action"],
                key=row["key"],
                staffbase_id=row["staffbase_id"],
                data=row["data"],
            )

    def close(self) -> None:
        """Drop the temporary tables."""
        self.tables.drop(self.connection)
        if self.remote is not None:
            self.remote.drop(self.connection)


def mapping_salt(settings: Settings, mapper: RecordMapper) -> bytes:
    """Return the hash key that ties record hashes to the mapping in force.

    Any change to ``[mapping]`` or to the fields read changes every record's hash, so the
    next run maps every record again and compares the results field by field.
    """
    description = json.dumps(
        {"mapping": settings.mapping.model_dump(mode="json"), "fields": mapper.source_fields},
        sort_keys=True,
    )
    return hashlib.blake2b(description.encode(), digest_size=32).digest()


def build_plan(
    connection: sa.Connection,
    settings: Settings,
    source: Source,
    mapper: RecordMapper,
    options: PlanOptions,
    *,
    remote: RemoteTables | None = None,
) -> Plan:
    """Plan the changes that bring Staffbase in step with ``source``.

    Args:
        connection: a connection of its own; the plan's temporary tables live on it.
        settings: the whole configuration.
        source: the HR export.
        mapper: validates and maps records.
        options: the time of the run and an optional set of keys to limit it to.
        remote: for a full resync, every Staffbase user as just read; the plan is then
            made against them instead of the state's ``users`` table, which repairs
            drift, adopts existing users and finds orphans.

    Raises:
        SourceError: the export cannot be read, or lacks columns; nothing is planned.
        EmptySourceError: the export has no records and ``allow_empty_source`` is off.
    """
    tables = StagingTables()
    tables.create(connection)
    planner = _Planner(connection, settings, mapper, tables, remote, options)

    planner.ingest(source)
    # An export whose rows were all rejected is not empty: its rejects are reported, and
    # the leavers step withholds leavers.
    nothing_read = planner.records == 0 and planner.rejected.total == 0
    if nothing_read and not settings.safety.allow_empty_source:
        tables.drop(connection)
        msg = (
            "the export holds no records; refusing to treat everyone as a leaver. If the"
            " roster really is empty, set [safety] allow_empty_source = true"
        )
        raise EmptySourceError(msg, location=source.location)

    if not tables.index_staging(connection, by_match_value=planner.by_match_value):
        planner.reject_duplicate_keys()
    planner.map_changed_records()
    planner.reject_duplicate_emails()
    if remote is not None and settings.mapping.adopt_by_email:
        planner.adopt_by_email()
    planner.resolve_managers()
    planner.number_creation_waves()
    planner.plan_present_people()
    planner.plan_leavers()
    planner.plan_expired_deletions()
    planner.find_unknown_only_keys()
    if remote is not None:
        planner.plan_orphans()
    return planner.result()


class _Planner:
    """The steps of :func:`build_plan`, sharing its state."""

    def __init__(
        self,
        connection: sa.Connection,
        settings: Settings,
        mapper: RecordMapper,
        tables: StagingTables,
        remote: RemoteTables | None,
        options: PlanOptions,
    ) -> None:
        self.connection = connection
        self.settings = settings
        self.mapper = mapper
        self.tables = tables
        self.remote = remote
        self.baseline = remote.remote if remote is not None else schema.users
        self.options = options
        self.by_match_value = bool(settings.mapping.manager_match)
        self.salt = mapping_salt(settings, mapper)

        self.records = 0
        self.unchanged_rows = 0
        self.index: dict[str, bytes | int] | None = None
        self.duplicate_rows = 0
        self.unidentified = 0
        self.rejected = IssueList()
        self.warnings = IssueList()
        self.fingerprint = hashlib.blake2b(self.salt, digest_size=16)
        # Keys of rejected and deferred rows. They grow with the problems, not the roster.
        self.protected: set[str] = set()
        self.counts: Counter[str] = Counter()
        self.unchanged = 0
        self.seq = 0
        self.leavers_withheld = 0
        self.leavers_withheld_reason = ""
        self.deferred = self._load_deferred()
        self.plan_rows: list[tuple[Any, ...]] = []
        self.orphans: list[dict[str, Any]] = []
        self.status_lookups = 0
        self.unknown_only_keys: list[str] = []

    # -- reading the export ------------------------------------------------------------

    def ingest(self, source: Source) -> None:
        """Stream the export, staging only the records that are new or changed.

        An incremental run first loads the key and record hash of every active person in
        the state into a dict (about 150 bytes a person). A record whose hash equals the
        stored one is unchanged: it is counted and marked as seen, and never written to
        the database. A key seen twice is a duplicate. What stays unseen in the dict at
        the end are the people missing from the export. A full resync compares with
        Staffbase instead, so it stages every record.
        """
        index = inactive = None
        if self.remote is None:
            index = self._load_hashes(ACTIVE_HASHES, {}, MAX_INDEXED_PEOPLE)
        if index is not None:
            inactive = self._load_inactive_hashes(MAX_INDEXED_PEOPLE - len(index))
            if inactive is None:
                index = None
        self.index = index
        comparer = RecordComparer(self.mapper, self.salt, index, inactive)
        pending: list[tuple[Any, ...]] = []

        for batch in source.read_batches(self.mapper.source_fields):
            self._check_stop()
            rows, digests, rejected = comparer.compare(batch)
            for issue in rejected:
                self._reject(issue)
            # Hashing the concatenated digests equals feeding them one at a time.
            self.fingerprint.update(b"".join(digests))
            pending.extend(rows)
            if len(pending) >= INSERT_BATCH:
                self._stage(pending, comparer.records)
                pending = []

        self._stage(pending, comparer.records)
        self.records = comparer.records
        self.unchanged_rows = comparer.unchanged
        if comparer.duplicates:
            self._reject_indexed_duplicates(comparer.duplicates)

    def _load_inactive_hashes(self, limit: int) -> dict[str, bytes | int] | None:
        """Return the record hashes of people HR lists as inactive, by key.

        These are the deactivated users and the settled records: inactive people who
        have no Staffbase user. A user's own hash takes precedence over a settled one.
        With ``manager_match``, settled records are left out: a manager reference could
        then only find the person on a staged row. None when there are more than ``limit``.
        """
        hashes: dict[str, bytes | int] | None = {}
        if not self.by_match_value:
            hashes = self._load_hashes(SETTLED_HASHES, {}, limit)
        if hashes is None:
            return None
        return self._load_hashes(INACTIVE_HASHES, hashes, limit)

    def _load_hashes(
        self, statement: str, hashes: dict[str, bytes | int], limit: int
    ) -> dict[str, bytes | int] | None:
        """Add the ``(key, record hash)`` rows of ``statement`` to ``hashes``.

        Returns None, and stops reading, once ``hashes`` would hold more than ``limit``
        keys: such a state is compared in the database, slower but in memory that does
        not grow with the roster (see :data:`MAX_INDEXED_PEOPLE`).

        The rows are read with the driver's own cursor, in the run's transaction, and put
        into the dict a page at a time: a million of them through SQLAlchemy's result
        objects, or one Python call per row, would take seconds.
        """
        postgresql = self.connection.dialect.name == "postgresql"
        driver_connection = self.connection.connection.driver_connection
        assert driver_connection is not None
        # psycopg reads a hash in binary form as bytes, with no hex text to decode.
        cursor = driver_connection.cursor(binary=True) if postgresql else driver_connection.cursor()
        try:
            cursor.execute(statement.format(empty="''::bytea" if postgresql else "X''"))
            while rows := cursor.fetchmany(INDEX_PAGE):
                hashes.update(rows)
                if len(hashes) > limit:
                    return None
        finally:
            cursor.close()
        return hashes

    def _stage(self, rows: list[tuple[Any, ...]], records: int) -> None:
        if rows:
            insert_rows(self.connection, self.tables.staging, STAGING_COLUMNS, rows)
        self._progress("read", records, 0)

    def _reject_indexed_duplicates(self, duplicates: dict[str, list[int]]) -> None:
        """Reject every row of each key seen on several rows, as found while reading."""
        staging = self.tables.staging
        staged = set(
            self.connection.execute(
                sa.select(staging.c.key).where(staging.c.key.in_(sorted(duplicates)))
            ).scalars()
        )
        # The first row of a duplicate key was counted as unchanged unless it was staged.
        self.unchanged_rows -= len(duplicates.keys() - staged)
        for key, lines in duplicates.items():
            self._reject_duplicate_rows(key, lines)
        self.connection.execute(
            sa.update(staging).where(staging.c.key.in_(sorted(staged))).values(rejected=True)
        )

    def _check_stop(self) -> None:
        if self.options.stop is not None and self.options.stop.is_set():
            raise PlanningStopped

    def _progress(self, stage: str, done: int, total: int) -> None:
        if self.options.progress is not None:
            self.options.progress(stage, done, total)

    def _reject(self, issue: RecordIssue) -> None:
        self.rejected.add(issue)
        # A source reports the key as written (" E1"), so it is cleaned as staging reads it.
        key = self.mapper.clean_key(issue.key)
        if key is None:
            self.unidentified += 1
        else:
            self.protected.add(key)

    # -- checks across rows ------------------------------------------------------------

    def reject_duplicate_keys(self) -> None:
        """Reject every row of a key that appears on several rows, and leave that person be."""
        staging = self.tables.staging
        duplicates = (
            self.connection.execute(
                sa.select(staging.c.key).group_by(staging.c.key).having(sa.func.count() > 1)
            )
            .scalars()
            .all()
        )
        if not duplicates:
            return

        for key in duplicates:
            lines = (
                self.connection.execute(
                    sa.select(staging.c.line).where(staging.c.key == key).order_by(staging.c.line)
                )
                .scalars()
                .all()
            )
            self._reject_duplicate_rows(key, list(lines))
            self.connection.execute(
                sa.update(staging).where(staging.c.key == key).values(rejected=True)
            )

    def _reject_duplicate_rows(self, key: str, lines: list[int]) -> None:
        listed = ", ".join(str(line) for line in sorted(lines))
        self.duplicate_rows += len(lines)
        for line in sorted(lines):
            self._reject(
                RecordIssue(
                    line,
                    key,
                    self.mapper.source_fields[0],
                    key,
                    f"employee key {key!r} appears on lines {listed}; every one of these rows"
                    " is rejected and the person is left as they are until the export lists"
                    " them once",
                )
            )

    def map_changed_records(self) -> None:
        """Map the records that are new or whose raw values differ from the last run's."""
        staging, baseline, changed = self.tables.staging, self.baseline, self.tables.changed
        query = (
            sa.select(
                staging.c.line,
                staging.c.key,
                staging.c.record_hash,
                staging.c.payload,
                staging.c.match_value,
            )
            .select_from(staging.outerjoin(baseline, baseline.c.key == staging.c.key))
            .where(
                sa.not_(staging.c.rejected),
                sa.or_(
                    baseline.c.key.is_(None),
                    baseline.c.record_hash.is_(None),
                    baseline.c.record_hash != staging.c.record_hash,
                ),
            )
        )
        if self.options.only_keys is not None:
            query = query.where(staging.c.key.in_(sorted(self.options.only_keys)))
        # The changed rows are copied aside and read back a page at a time, so memory
        # does not grow with them (after a [mapping] edit, every record has changed).
        self.connection.execute(sa.insert(changed).from_select(STAGING_COLUMNS, query))
        selected = self.connection.execute(
            sa.select(sa.func.count()).select_from(changed)
        ).scalar_one()

        mapped = 0
        for rows in self._pages(sa.select(changed), changed.c.line):
            batch: list[tuple[Any, ...]] = []
            for line, key, digest, payload, match_value in rows:
                if key in self.deferred:
                    self.protected.add(key)
                    continue
                outcome = self.mapper.map(RawRecord(line, decode_values(payload)))
                if isinstance(outcome, list):
                    for issue in outcome:
                        self._reject(issue)
                    self.protected.add(key)
                    continue
                batch.append(_desired_row(outcome, digest, match_value))
            insert_rows(self.connection, self.tables.desired, DESIRED_COLUMNS, batch)
            mapped += len(rows)
            self._progress("map", mapped, selected)
        self.tables.index_desired(self.connection)

        accepted = self.records - self.duplicate_rows
        self.unchanged += accepted - selected

    def _pages(
        self, query: sa.Select[Any], order: sa.ColumnElement[Any]
    ) -> Iterator[Sequence[Any]]:
        """Yield the rows of ``query`` in pages of :data:`PAGE`, ordered by ``order``.

        ``order`` must be unique and not NULL. Each page is a query of its own (keyset
        paging). No cursor stays open while the caller writes, which SQLite does not allow
        on the table being read, and memory keeps one page at a time.
        """
        last: Any = None
        while True:
            self._check_stop()
            page = query.order_by(order).limit(PAGE)
            if last is not None:
                page = page.where(order > last)
            rows = self.connection.execute(page).all()
            if not rows:
                return
            yield rows
            last = rows[-1]._mapping[order]

    def reject_duplicate_emails(self) -> None:
        """Reject both rows when one e-mail address (any letter case) belongs to two keys."""
        desired = self.tables.desired
        email_field = self.settings.mapping.fields["email"]
        clashes: dict[str, set[tuple[str, int]]] = {}

        within = self.connection.execute(
            sa.select(desired.c.email_key, desired.c.key, desired.c.line).where(
                desired.c.email_key.in_(
                    sa.select(desired.c.email_key)
                    .where(desired.c.active, desired.c.email_key.is_not(None))
                    .group_by(desired.c.email_key)
                    .having(sa.func.count() > 1)
                ),
                desired.c.active,
            )
        )
        for email_key, key, line in within:
            clashes.setdefault(email_key, set()).add((key, line))

        pairs = self._email_holders()
        staged = self._staged_lines({other_key for *_, other_key in pairs})
        unchanged_holders: set[str] = set()
        for email_key, key, line, other_key in pairs:
            if other_key in staged:
                clashes.setdefault(email_key, set()).update(
                    {(key, line), (other_key, staged[other_key])}
                )
                unchanged_holders.add(other_key)
        # Their rows were counted as unchanged; from now on they count as rejected only.
        self.unchanged -= len(unchanged_holders)

        for email_key, holders in clashes.items():
            listed = ", ".join(
                f"{key} (line {line})" for key, line in sorted(holders, key=lambda h: h[1])
            )
            for key, line in holders:
                self._reject(
                    RecordIssue(
                        line,
                        key,
                        email_field,
                        email_key,
                        f"e-mail {email_key!r} is used by several people: {listed}; these rows"
                        " are rejected and the people are left as they are",
                    )
                )
            keys = [key for key, _ in holders]
            self.connection.execute(
                sa.update(desired).where(desired.c.key.in_(keys)).values(rejected=True)
            )

    def _email_holders(self) -> list[tuple[str, str, int, str]]:
        """Find unchanged people who keep an address that a changed record now claims.

        Returns (e-mail, key, line, holder's key) for each clash. The addresses are looked
        up a page at a time on the state's e-mail index: as one join, both databases may
        scan the whole users table instead, for a handful of changed records.
        """
        desired, baseline = self.tables.desired, self.baseline
        claims = sa.select(desired.c.line, desired.c.key, desired.c.email_key).where(
            desired.c.active, desired.c.email_key.is_not(None)
        )
        pairs: list[tuple[str, str, int, str]] = []
        for rows in self._pages(claims, desired.c.line):
            claimants: dict[str, list[tuple[str, int]]] = {}
            for line, key, email_key in rows:
                claimants.setdefault(email_key, []).append((key, line))
            holders = self.connection.execute(
                sa.select(baseline.c.email_key, baseline.c.key).where(
                    in_values(self.connection, baseline.c.email_key, sorted(claimants)),
                    # An inactive person's row is never a claim of its own (see `within`).
                    baseline.c.hr_active,
                )
            )
            for email_key, holder in holders:
                pairs.extend(
                    (email_key, key, line, holder)
                    for key, line in claimants[email_key]
                    if holder != key
                )
        if not pairs:
            return pairs

        # A holder that was mapped again has its new address checked among the claims.
        holder_keys = sorted({holder for *_, holder in pairs})
        remapped: set[str] = set()
        for start in range(0, len(holder_keys), MAP_BATCH):
            batch = holder_keys[start : start + MAP_BATCH]
            remapped.update(
                self.connection.execute(
                    sa.select(desired.c.key).where(in_values(self.connection, desired.c.key, batch))
                ).scalars()
            )
        return [pair for pair in pairs if pair[3] not in remapped]

    def _staged_lines(self, keys: set[str]) -> dict[str, int]:
        """Return the export line of each of ``keys`` that has an accepted row."""
        lines: dict[str, int] = {}
        if self.index is not None:
            # Rows found unchanged while reading were never staged; the index has their line.
            for key in keys:
                seen = self.index.get(key)
                if seen.__class__ is int and key not in self.protected:
                    lines[key] = seen
        staging, ordered = self.tables.staging, sorted(keys - lines.keys())
        for start in range(0, len(ordered), MAP_BATCH):
            rows = self.connection.execute(
                sa.select(staging.c.key, staging.c.line).where(
                    in_values(self.connection, staging.c.key, ordered[start : start + MAP_BATCH]),
                    sa.not_(staging.c.rejected),
                )
            )
            lines.update({key: line for key, line in rows})
        return lines

    def line_of(self, key: str) -> int | None:
        """Return the export line where ``key`` was seen, if the index recorded one."""
        seen = self.index.get(key) if self.index is not None else None
        return seen if seen.__class__ is int else None

    def resolve_managers(self) -> None:
        """Replace each changed record's manager reference with the manager's key."""
        # NOTE: the references, their targets and the chains walked for cycles stay in
        # memory, about 0.5 KB per changed record that names a manager (measured at 100k).
        # A [mapping] edit that changes every record of a million needs about 500 MB here.
        desired = self.tables.desired
        candidates = [
            ManagerCandidate(key, line, ref)
            for key, line, ref in self.connection.execute(
                sa.select(desired.c.key, desired.c.line, desired.c.manager_ref).where(
                    desired.c.active,
                    sa.not_(desired.c.rejected),
                    desired.c.manager_ref.is_not(None),
                )
            )
        ]
        if not candidates:
            return

        resolved, warnings = resolve_managers(
            self.connection,
            self.tables,
            self.baseline,
            candidates,
            manager_field=self.settings.mapping.fields.get("manager", "manager"),
            by_match_value=self.by_match_value,
            line_of=self.line_of,
        )
        self.warnings.extend(warnings)
        self._forget_hashes({issue.key for issue in warnings if issue.key is not None})
        updates = [{"k": key, "m": manager} for key, manager in resolved.items()]
        for start in range(0, len(updates), MAP_BATCH):
            self.connection.execute(
                sa.update(desired)
                .where(desired.c.key == sa.bindparam("k"))
                .values(manager_key=sa.bindparam("m")),
                updates[start : start + MAP_BATCH],
            )

    def _forget_hashes(self, keys: set[str]) -> None:
        """Store no record hash for ``keys``, so the next run maps and checks them again.

        A manager reference that failed may resolve later (the manager's row appears or
        becomes active) without the person's own row changing, and its warning should
        stay in every report until the reference is fixed.
        """
        desired = self.tables.desired
        ordered = sorted(keys)
        for start in range(0, len(ordered), MAP_BATCH):
            batch = ordered[start : start + MAP_BATCH]
            rows = self.connection.execute(
                sa.select(desired.c.key, desired.c.data).where(
                    in_values(self.connection, desired.c.key, batch)
                )
            ).all()
            for key, data in rows:
                self.connection.execute(
                    sa.update(desired)
                    .where(desired.c.key == key)
                    .values(data={**data, "record_hash": None})
                )

    def adopt_by_email(self) -> None:
        """Match new people to Staffbase users without externalID by e-mail, any letter case.

        The matched user gets a baseline row under the person's key, marked for
        adoption, so the plan updates it (setting the externalID) instead of creating a
        second user for the same person.
        """
        assert self.remote is not None
        desired, remote, unkeyed = self.tables.desired, self.remote.remote, self.remote.unkeyed
        matches = (
            self.connection.execute(
                sa.select(desired.c.key, unkeyed)
                .select_from(
                    desired.join(unkeyed, unkeyed.c.email_key == desired.c.email_key).outerjoin(
                        remote, remote.c.key == desired.c.key
                    )
                )
                .where(
                    remote.c.key.is_(None),
                    desired.c.active,
                    sa.not_(desired.c.rejected),
                    unkeyed.c.adopted_by.is_(None),
                )
            )
            .mappings()
            .all()
        )

        rows = []
        for match in matches:
            rows.append(
                {
                    "key": match["key"],
                    "staffbase_id": match["staffbase_id"],
                    "status": match["status"],
                    "hr_active": match["status"] in ("pending", "activated"),
                    "fields": match["fields"],
                    "email_key": match["email_key"],
                    "manager_staffbase_id": match["manager_staffbase_id"],
                    "adopt": True,
                    "created_at": self.options.now,
                    "updated_at": self.options.now,
                }
            )
            self.connection.execute(
                sa.update(unkeyed)
                .where(unkeyed.c.staffbase_id == match["staffbase_id"])
                .values(adopted_by=match["key"])
            )
        if rows:
            self.connection.execute(sa.insert(remote), rows)
            log.info("users_adopted_by_email", count=len(rows))

    def plan_orphans(self) -> None:
        """Report Staffbase users that HR does not list and staffsync does not manage.

        They are left untouched, unless ``[policy] orphans = "deactivate"``, which
        deactivates the activated ones (pending users cannot be deactivated).
        """
        assert self.remote is not None
        remote, unkeyed, staging = self.remote.remote, self.remote.unkeyed, self.tables.staging
        keyed = self.connection.execute(
            sa.select(remote.c.key, remote.c.staffbase_id, remote.c.status, remote.c.fields).where(
                sa.not_(remote.c.managed),
                sa.not_(remote.c.adopt),
                ~sa.exists().where(staging.c.key == remote.c.key),
            )
        ).all()
        loose = self.connection.execute(
            sa.select(sa.null(), unkeyed.c.staffbase_id, unkeyed.c.status, unkeyed.c.fields).where(
                unkeyed.c.adopted_by.is_(None)
            )
        ).all()

        deactivate = self.settings.policy.orphans == "deactivate"
        if deactivate and (self.unidentified or self._every_row_rejected()):
            # As with leavers: an unreadable or wholly rejected row may be an orphan's.
            deactivate = False
            log.warning("orphans_not_deactivated", orphans=len(keyed) + len(loose))
        for external_id, staffbase_id, status, fields in [*keyed, *loose]:
            acted = deactivate and status == "activated" and external_id not in self.protected
            self.orphans.append(
                {
                    "staffbase_id": staffbase_id,
                    "external_id": external_id,
                    "email": (fields or {}).get("email"),
                    "status": status,
                    "action": "deactivate" if acted else "none",
                }
            )
            if acted:
                self._add(
                    PlannedChange(
                        0,
                        Phase.LEAVERS,
                        Action.DEACTIVATE,
                        external_id or staffbase_id,
                        staffbase_id,
                        {
                            "reason": "orphan",
                            "known_status": status,
                            "record": None,
                            "orphan": True,
                            "diff": {"status": {"before": status, "after": "deactivated"}},
                        },
                    )
                )

    # -- producing changes -------------------------------------------------------------

    def number_creation_waves(self) -> None:
        """Give each new person the wave in which it is created (see :class:`Phase`).

        Wave 0 holds those whose manager exists already or who have none; everyone else
        comes one wave after their manager. Manager cycles were broken before, but a
        leftover one is cut: its members are put in wave 0 rather than followed forever.
        """
        desired, baseline = self.tables.desired, self.baseline
        creating, waves = self.tables.creating, self.tables.waves
        self.connection.execute(
            sa.insert(creating).from_select(
                ["key", "manager_key"],
                sa.select(desired.c.key, desired.c.manager_key)
                .select_from(desired.outerjoin(baseline, baseline.c.key == desired.c.key))
                .where(baseline.c.key.is_(None), desired.c.active, sa.not_(desired.c.rejected)),
            )
        )

        # A recursive query walks down from the roots in one statement, however deep the
        # hierarchy of new people is. Each person has one manager, so each is reached once.
        manager = creating.alias("created_manager")
        walk = (
            sa.select(creating.c.key, sa.literal(0, sa.Integer).label("wave"))
            .where(~sa.exists().where(manager.c.key == creating.c.manager_key))
            .cte("walk", recursive=True)
        )
        report = creating.alias("report")
        walk = walk.union_all(
            sa.select(report.c.key, walk.c.wave + 1).where(report.c.manager_key == walk.c.key)
        )
        self.connection.execute(
            sa.insert(waves).from_select(["key", "wave"], sa.select(walk.c.key, walk.c.wave))
        )
        self.connection.execute(
            sa.insert(waves).from_select(
                ["key", "wave"],
                sa.select(creating.c.key, sa.literal(0, sa.Integer)).where(
                    ~sa.exists().where(waves.c.key == creating.c.key)
                ),
            )
        )

    def plan_present_people(self) -> None:
        """Plan creates, updates, reactivations and status deactivations for changed records."""
        desired, baseline, waves = self.tables.desired, self.baseline, self.tables.waves
        manager_wave = waves.alias("manager_wave")
        # Only the baseline columns the diff reads: after a [mapping] edit this loop runs
        # once per person of the roster, and every column costs a conversion.
        unused = _UNUSED_STATE_COLUMNS
        if self.settings.mapping.groups is None:
            unused |= {"groups"}
        state_columns = [column for column in baseline.columns if column.name not in unused]
        names = [column.name for column in state_columns]
        key_at = names.index("key")
        query = (
            sa.select(
                desired.c.line,
                desired.c.key,
                desired.c.active,
                desired.c.manager_key,
                desired.c.data,
                waves.c.wave,
                manager_wave.c.wave,
                *state_columns,
            )
            .select_from(
                desired.outerjoin(baseline, baseline.c.key == desired.c.key)
                .outerjoin(waves, waves.c.key == desired.c.key)
                .outerjoin(manager_wave, manager_wave.c.key == desired.c.manager_key)
            )
            .where(sa.not_(desired.c.rejected))
        )

        for rows in self._pages(query, desired.c.line):
            settled: list[tuple[str, bytes]] = []
            for _line, key, active, manager_key, data, wave, wave_of_manager, *stored in rows:
                state = None
                if stored[key_at] is not None:
                    state = {"groups": None, **dict(zip(names, stored, strict=True))}
                if state is None and not active:
                    # Nothing to do for an inactive person without a user. The next run
                    # skips the record while it stays the same.
                    self.unchanged += 1
                    if data["record_hash"] is not None:
                        settled.append((key, bytes.fromhex(data["record_hash"])))
                    continue
                if state is not None and not active and state["hr_active"]:
                    state = self._fresh_status(state)
                changes = plan_for_desired(
                    key=key,
                    active=active,
                    manager_key=manager_key,
                    data=data,
                    state=state,
                    settings=self.settings,
                    wave=wave,
                    manager_wave=wave_of_manager,
                )
                if not any(change.action != Action.RECORD for change in changes):
                    self.unchanged += 1
                for change in changes:
                    self._add(change)
            insert_rows(self.connection, self.tables.settled, ("key", "record_hash"), settled)

    def plan_leavers(self) -> None:
        """Plan deactivations for active people that a full export no longer lists."""
        if not self.settings.source.full_snapshot:
            return
        staging, baseline = self.tables.staging, self.baseline
        if self.index is not None:
            # The index now contains exactly the active people the export did not list.
            absent_keys = self._absent_table()
            query = sa.select(baseline).where(
                baseline.c.hr_active, baseline.c.key.in_(sa.select(absent_keys.c.key))
            )
        else:
            # The keys missing from the export are found on the key index alone; only
            # their rows are read then, not every row of the state.
            absent = baseline.alias("absent")
            query = sa.select(baseline).where(
                baseline.c.hr_active,
                baseline.c.key.in_(
                    sa.select(absent.c.key).where(~sa.exists().where(staging.c.key == absent.c.key))
                ),
            )
        if self.remote is not None:
            # Users staffsync never provisioned are orphans, not leavers.
            query = query.where(baseline.c.managed)
        if self.options.only_keys is not None:
            query = query.where(baseline.c.key.in_(sorted(self.options.only_keys)))

        if self.unidentified or self.rejected.total:
            count = self.connection.execute(
                sa.select(sa.func.count()).select_from(query.subquery())
            ).scalar_one()
            if count and self.unidentified:
                # A row whose key could not be read may belong to any of these people.
                self._withhold_leavers(count, "some rows could not be read and may be theirs")
                return
            if count and self._every_row_rejected():
                # A new status vocabulary, date format or column layout rejects every row:
                # such an export does not show who left.
                self._withhold_leavers(
                    count, "every row of the export was rejected, so it does not show who left"
                )
                return

        for rows in self._pages(query, baseline.c.key):
            for row in rows:
                state = _state_of(row._mapping, baseline)
                if state["key"] in self.deferred or state["key"] in self.protected:
                    continue
                state = self._fresh_status(state)
                for change in plan_for_leaver(state, self.settings, reason="absent"):
                    self._add(change)

    def _absent_table(self) -> sa.Table:
        """Load the keys of active people missing from the export into a temporary table."""
        assert self.index is not None
        absent = self.tables.absent
        keys = [(key,) for key, seen in self.index.items() if seen.__class__ is not int]
        for start in range(0, len(keys), INSERT_BATCH):
            insert_rows(self.connection, absent, ("key",), keys[start : start + INSERT_BATCH])
        return absent

    def _withhold_leavers(self, count: int, reason: str) -> None:
        self.leavers_withheld = count
        self.leavers_withheld_reason = reason
        log.warning(
            "leavers_withheld", leavers=count, unidentified_rows=self.unidentified, reason=reason
        )

    def _every_row_rejected(self) -> bool:
        """Tell whether rows were rejected and no row was accepted."""
        if not self.rejected.total or self.unchanged_rows:
            return False
        staging = self.tables.staging
        # Keys of accepted rows are unique, so one more than the protected keys is enough
        # to find a row that is neither rejected nor deferred.
        keys = self.connection.execute(
            sa.select(staging.c.key)
            .where(sa.not_(staging.c.rejected))
            .limit(len(self.protected) + 1)
        ).scalars()
        return all(key in self.protected and key not in self.deferred for key in keys)

    def _fresh_status(self, state: dict[str, Any]) -> dict[str, Any]:
        """Return ``state`` with the status Staffbase shows now, for a leaver thought pending."""
        lookup = self.options.status_of
        if state["status"] != "pending" or lookup is None:
            return state
        if self.status_lookups >= MAX_STATUS_LOOKUPS:
            return state
        self._check_stop()
        self.status_lookups += 1
        status = lookup(state["staffbase_id"])
        return state if status is None else {**state, "status": status}

    def find_unknown_only_keys(self) -> None:
        """Find the keys given to ``sync --only`` that no row and no user has."""
        if not self.options.only_keys:
            return
        keys = sorted(self.options.only_keys)
        # A rejected row, or a failing record waiting for its next attempt, counts as seen.
        found = {key for key in keys if self.line_of(key) is not None or key in self.protected}
        for table in (self.tables.staging, self.baseline):
            found.update(
                self.connection.execute(
                    sa.select(table.c.key).where(in_values(self.connection, table.c.key, keys))
                ).scalars()
            )
        self.unknown_only_keys = [key for key in keys if key not in found]

    def plan_expired_deletions(self) -> None:
        """Plan deletion of users deactivated longer than ``[policy] delete_after_days``."""
        days = self.settings.policy.delete_after_days
        if days == 0:
            return
        baseline, desired = self.baseline, self.tables.desired
        cutoff = self.options.now - timedelta(days=days)
        query = sa.select(baseline).where(
            sa.not_(baseline.c.hr_active),
            baseline.c.status == "deactivated",
            baseline.c.left_at < cutoff,
            ~sa.exists().where(desired.c.key == baseline.c.key, desired.c.active),
        )
        if self.options.only_keys is not None:
            query = query.where(baseline.c.key.in_(sorted(self.options.only_keys)))
        for rows in self._pages(query, baseline.c.key):
            for row in rows:
                if row.key in self.deferred:
                    continue
                self._add(
                    PlannedChange(
                        0,
                        Phase.LEAVERS,
                        Action.DELETE,
                        row.key,
                        row.staffbase_id,
                        {
                            "reason": "expired",
                            "diff": {"status": {"before": row.status, "after": "deleted"}},
                        },
                    )
                )

    def _add(self, change: PlannedChange) -> None:
        self.seq += 1
        change.seq = self.seq
        self.counts[change.action] += 1
        if change.action == Action.DELETE and change.data.get("reason") in ("absent", "inactive"):
            self.counts["delete_leaver"] += 1
        data = json.dumps(change.data, ensure_ascii=False, separators=(",", ":"))
        self.plan_rows.append(
            (change.seq, change.phase, change.action, change.key, change.staffbase_id, data)
        )
        if len(self.plan_rows) >= MAP_BATCH:
            self._flush_plan()

    def _flush_plan(self) -> None:
        insert_rows(self.connection, self.tables.plan, PLAN_COLUMNS, self.plan_rows)
        self.plan_rows = []

    # -- bookkeeping -------------------------------------------------------------------

    def _load_deferred(self) -> dict[str, dict[str, Any]]:
        """Return the failing records whose next attempt is not due yet.

        A full resync and ``sync --only`` try every record now, whatever its delay.
        """
        if self.remote is not None or self.options.only_keys is not None:
            return {}
        failures = schema.failures
        rows = (
            self.connection.execute(
                sa.select(failures).where(failures.c.next_attempt_at > self.options.now)
            )
            .mappings()
            .all()
        )
        return {row["key"]: dict(row) for row in rows}

    def result(self) -> Plan:
        self._flush_plan()
        active_synced = 0
        if self.counts[Action.DEACTIVATE] or self.counts["delete_leaver"]:
            # The guards read it only when someone leaves, and it costs a scan of the state.
            active_synced = self.connection.execute(
                sa.select(sa.func.count())
                .select_from(self.baseline)
                .where(
                    self.baseline.c.hr_active, self.baseline.c.status.in_(("pending", "activated"))
                )
            ).scalar_one()
        state_version = _read_state_version(self.connection)
        deferred = [
            {
                "key": key,
                "action": row["action"],
                "message": (
                    f"failed {row['attempts']} time(s), last with: {row['last_error']};"
                    f" next attempt after {row['next_attempt_at'].isoformat()}"
                ),
            }
            for key, row in sorted(self.deferred.items())
        ]
        fingerprint = self.fingerprint.hexdigest()
        if self.remote is not None:
            fingerprint = f"{fingerprint}:{self.remote.fingerprint}"
        return Plan(
            connection=self.connection,
            tables=self.tables,
            counts=self.counts,
            records=self.records,
            unchanged=self.unchanged,
            rejected=self.rejected,
            warnings=self.warnings,
            deferred=deferred,
            orphans=self.orphans,
            source_fingerprint=fingerprint,
            state_version=state_version,
            active_synced=active_synced,
            leavers_withheld=self.leavers_withheld,
            remote=self.remote,
            leavers_withheld_reason=self.leavers_withheld_reason,
            protected=frozenset(self.protected),
            only_keys=self.options.only_keys,
            unknown_only_keys=self.unknown_only_keys,
        )


def _read_state_version(connection: sa.Connection) -> int:
    value = connection.execute(
        sa.select(schema.state_meta.c.value).where(schema.state_meta.c.name == "state_version")
    ).scalar_one_or_none()
    return int(value) if value is not None else 0


def _desired_row(user: DesiredUser, digest: bytes, match_value: str | None) -> tuple[Any, ...]:
    data: dict[str, Any] = {
        "fields": user.fields,
        "record_hash": digest.hex(),
        "match_value": user.match_value if user.match_value is not None else match_value,
    }
    manager_ref = None
    if isinstance(user.manager_ref, str) or user.manager_ref is None:
        data["manager_ref"] = manager_ref = user.manager_ref
    if user.groups is not None:
        data["groups"] = list(user.groups)
    encoded = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return (user.key, user.line, user.active, user.email_key, manager_ref, encoded)


def _state_of(row: Any, baseline: sa.Table) -> dict[str, Any]:
    return {column.name: row[column] for column in baseline.columns}
