"""Resolve manager references to employee keys and reject unknown, self and cyclic ones.

A record names its manager by a reference (the manager's key, or the value of the field
named by ``[mapping] manager_match``). The manager's row may be anywhere in the export,
or only in the state database when this run did not change it. A reference that cannot
be resolved, that points at the person, that closes a cycle, or that names someone with
no Staffbase user (an inactive or rejected row) is a warning: the person is synced
without that manager, and nobody is rejected for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from staffsync.planning.staging import in_values, values_per_query
from staffsync.sources.base import RecordIssue

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

    from staffsync.planning.staging import StagingTables

__all__ = ["ManagerCandidate", "resolve_managers"]

MAX_CHAIN = 100_000


@dataclass(frozen=True, slots=True)
class ManagerCandidate:
    """A changed record that names a manager: its key, line and raw reference."""

    key: str
    line: int
    ref: str


def _batches(values: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for value in values:
        batch.append(value)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class _Lookups:
    """Batched queries against the staging table and the baseline (state) table."""

    def __init__(
        self,
        connection: sa.Connection,
        tables: StagingTables,
        baseline: sa.Table,
        *,
        by_match_value: bool,
        line_of: Callable[[str], int | None] | None = None,
    ) -> None:
        self.connection = connection
        self.line_of = line_of
        self.staging = tables.staging
        self.desired = tables.desired
        self.baseline = baseline
        self.by_match_value = by_match_value
        self.parents: dict[str, str | None] = {}
        self._size = values_per_query(connection)

    def _batches(self, values: Iterable[str]) -> Iterator[list[str]]:
        return _batches(values, self._size)

    def _in(self, column: sa.ColumnElement[Any], values: list[str]) -> sa.ColumnElement[bool]:
        return in_values(self.connection, column, values)

    def keys_for_refs(self, refs: set[str]) -> dict[str, set[str]]:
        """Return every employee key each reference points at (several means ambiguous)."""
        found: dict[str, set[str]] = {}
        staging_column = self.staging.c.match_value if self.by_match_value else self.staging.c.key
        baseline_column = (
            self.baseline.c.match_value if self.by_match_value else self.baseline.c.key
        )

        for batch in self._batches(sorted(refs)):
            rows = self.connection.execute(
                sa.select(staging_column, self.staging.c.key).where(self._in(staging_column, batch))
            )
            for ref, key in rows:
                found.setdefault(ref, set()).add(key)

        unresolved = refs - found.keys()
        if not self.by_match_value and self.line_of is not None:
            # A key read unchanged was never staged; its row was seen all the same.
            for ref in [ref for ref in unresolved if self.line_of(ref) is not None]:
                found[ref] = {ref}
                unresolved.discard(ref)
        for batch in self._batches(sorted(unresolved)):
            rows = self.connection.execute(
                sa.select(baseline_column, self.baseline.c.key).where(
                    self._in(baseline_column, batch)
                )
            )
            for ref, key in rows:
                found.setdefault(ref, set()).add(key)
        return found

    def load_parents(self, keys: set[str]) -> None:
        """Cache the manager each of ``keys`` has in the state (None for none)."""
        missing = keys - self.parents.keys()
        for batch in self._batches(sorted(missing)):
            rows = self.connection.execute(
                sa.select(self.baseline.c.key, self.baseline.c.manager_key).where(
                    self._in(self.baseline.c.key, batch)
                )
            )
            for key, manager_key in rows:
                self.parents[key] = manager_key
        for key in missing:
            self.parents.setdefault(key, None)

    def keys_without_user(self, keys: set[str]) -> set[str]:
        """Return the keys that have no Staffbase user and get none in this run.

        Every baseline row has a user. Anyone else gets one only from an accepted,
        active record of this run; an inactive or rejected row never creates one.
        """
        without = set(keys)
        for batch in self._batches(sorted(keys)):
            without.difference_update(
                self.connection.execute(
                    sa.select(self.baseline.c.key).where(self._in(self.baseline.c.key, batch))
                ).scalars()
            )
        for batch in self._batches(sorted(without)):
            without.difference_update(
                self.connection.execute(
                    sa.select(self.desired.c.key).where(
                        self._in(self.desired.c.key, batch),
                        self.desired.c.active,
                        sa.not_(self.desired.c.rejected),
                    )
                ).scalars()
            )
        return without

    def lines_of(self, keys: Sequence[str]) -> dict[str, int]:
        """Return the export line of each key that has one."""
        lines: dict[str, int] = {}
        if self.line_of is not None:
            for key in keys:
                line = self.line_of(key)
                if line is not None:
                    lines[key] = line
            keys = [key for key in keys if key not in lines]
        for batch in self._batches(keys):
            rows = self.connection.execute(
                sa.select(self.staging.c.key, self.staging.c.line).where(
                    self._in(self.staging.c.key, batch)
                )
            )
            lines.update({key: line for key, line in rows})
        return lines


def resolve_managers(
    connection: sa.Connection,
    tables: StagingTables,
    baseline: sa.Table,
    candidates: Sequence[ManagerCandidate],
    *,
    manager_field: str,
    by_match_value: bool,
    line_of: Callable[[str], int | None] | None = None,
) -> tuple[dict[str, str | None], list[RecordIssue]]:
    """Resolve each candidate's manager to an employee key.

    Returns:
        The manager key for every candidate (None when it must be synced without one),
        and a warning for every reference that was unknown, ambiguous, the person
        themself, or part of a cycle.
    """
    lookups = _Lookups(connection, tables, baseline, by_match_value=by_match_value, line_of=line_of)
    targets = lookups.keys_for_refs({c.ref for c in candidates})
    resolved: dict[str, str | None] = {}
    warnings: list[RecordIssue] = []

    def warn(candidate: ManagerCandidate, message: str) -> None:
        warnings.append(
            RecordIssue(candidate.line, candidate.key, manager_field, candidate.ref, message)
        )

    for candidate in candidates:
        keys = targets.get(candidate.ref, set())
        if not keys:
            warn(
                candidate,
                f"manager {candidate.ref!r} is not in the export or the state;"
                " the person is synced without a manager",
            )
            resolved[candidate.key] = None
        elif len(keys) > 1:
            warn(
                candidate,
                f"manager reference {candidate.ref!r} matches several people"
                f" ({', '.join(sorted(keys))}); the person is synced without a manager",
            )
            resolved[candidate.key] = None
        elif candidate.key in keys:
            warn(
                candidate,
                "the record names the person as their own manager;"
                " the person is synced without a manager",
            )
            resolved[candidate.key] = None
        else:
            resolved[candidate.key] = next(iter(keys))

    _drop_managers_without_user(candidates, resolved, lookups, warn)
    cycles = _find_cycles(resolved, lookups)
    lines = lookups.lines_of(sorted({key for path in cycles.values() for key in path}))
    by_key = {c.key: c for c in candidates}
    for key, path in cycles.items():
        chain = " -> ".join(f"{k} (line {lines[k]})" if k in lines else k for k in path)
        warn(
            by_key[key],
            f"manager references form a cycle: {chain} -> {key};"
            " the person is synced without a manager",
        )
        resolved[key] = None
    return resolved, warnings


def _drop_managers_without_user(
    candidates: Sequence[ManagerCandidate],
    resolved: dict[str, str | None],
    lookups: _Lookups,
    warn: Callable[[ManagerCandidate, str], None],
) -> None:
    """Warn about and drop managers that will have no Staffbase user after this run.

    Their id cannot be sent, so keeping the reference would plan the same update on
    every run without ever sending it.
    """
    managers = {manager for manager in resolved.values() if manager is not None}
    without_user = lookups.keys_without_user(managers)
    if not without_user:
        return

    lines = lookups.lines_of(sorted(without_user))
    for candidate in candidates:
        manager = resolved[candidate.key]
        if manager not in without_user:
            continue
        where = [f"key {manager!r}"] if manager != candidate.ref else []
        if manager in lines:
            where.append(f"line {lines[manager]}")
        shown = f" ({', '.join(where)})" if where else ""
        warn(
            candidate,
            f"manager {candidate.ref!r}{shown} has no Staffbase user: HR lists them as"
            " inactive, their row was rejected, or creating their user failed; the person is"
            " synced without a manager until the manager has one",
        )
        resolved[candidate.key] = None


def _find_cycles(resolved: dict[str, str | None], lookups: _Lookups) -> dict[str, list[str]]:
    """Return, for each changed person whose manager chain leads back to them, that chain.

    Chains are walked on the graph as it will be after this run: the new manager of each
    changed person, the stored manager of everyone else. All walkers advance together so
    that the stored managers they need are fetched in one query per step; a person whose
    chain is known to end without a cycle is remembered, so no chain is walked twice.
    """

    def parent(key: str) -> str | None:
        return resolved[key] if key in resolved else lookups.parents.get(key)

    safe: set[str] = set()
    cycles: dict[str, list[str]] = {}
    walkers = {key: [key] for key, manager in resolved.items() if manager is not None}

    while walkers:
        unknown = {
            path[-1]
            for path in walkers.values()
            if path[-1] not in resolved and path[-1] not in lookups.parents
        }
        lookups.load_parents(unknown)

        finished: list[str] = []
        for start, path in walkers.items():
            step = parent(path[-1])
            if step is None or step in safe:
                safe.update(path)
                finished.append(start)
            elif step == start:
                cycles[start] = path
                finished.append(start)
            elif step in path or len(path) > MAX_CHAIN:
                # The chain runs into a cycle that does not include this person.
                finished.append(start)
            else:
                path.append(step)
        for start in finished:
            del walkers[start]
    return cycles
