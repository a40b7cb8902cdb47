"""Read the export a batch at a time and keep only the records that are new or changed.

An unchanged person must cost as little as possible, since a million of them are read
on every run. Each batch is first tried whole: its keys checked, its records encoded,
hashed and looked up with one call each over the batch. A batch that needs care (a key
to trim or normalize, an empty key, a value that is not plain text, a key seen before)
is read again record by record, which gives the same result more slowly.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import operator
from typing import TYPE_CHECKING, Any

from staffsync.planning.staging import (
    FIELD_SEPARATOR,
    JSON_MARKER,
    encode_values,
    hash_parameters,
    record_hasher,
)
from staffsync.sources.base import RecordIssue

if TYPE_CHECKING:
    from staffsync.mapping import RecordMapper
    from staffsync.sources.base import RawValue, RecordBatch

__all__ = ["RecordComparer", "StagedBatch"]

StagedBatch = tuple[list[tuple[Any, ...]], list[bytes], list[RecordIssue]]
"""The staging rows, hashes and rejected rows of one batch, from :meth:`RecordComparer.compare`."""

_FIRST = operator.itemgetter(0)


class RecordComparer:
    """Sorts the records of an export into unchanged ones and ones to stage.

    ``index`` maps the key of every active person in the state to their stored record
    hash (``b""`` when none is stored). As records are read, each key seen is set to the
    line it was seen on. A second row with that key then shows up as a duplicate. The
    keys still holding a hash at the end are the active people missing from the export.
    ``inactive`` contains the hashes of people HR lists as inactive, for the keys that
    ``index`` lacks. The comparer only reads it. Without an index (a full resync, or a state too
    large to hold), every record is staged.
    """

    def __init__(
        self,
        mapper: RecordMapper,
        salt: bytes,
        index: dict[str, bytes | int] | None,
        inactive: dict[str, bytes | int] | None = None,
    ) -> None:
        self.index = index
        self.inactive = inactive or {}
        self.records = 0
        self.unchanged = 0
        self.duplicates: dict[str, list[int]] = {}
        """Keys seen on several rows, with every line they were seen on."""

        self._mapper = mapper
        self._key_field = mapper.source_fields[0]
        self._separators = len(mapper.source_fields) - 1
        self._match_index = mapper.match_index
        # :func:`record_hasher` computes the same hash one record at a time.
        self._hasher = hashlib.blake2b(**hash_parameters(salt))
        self._hash_one = record_hasher(salt)

    def compare(self, batch: RecordBatch) -> StagedBatch:
        """Return the batch's records to stage, the hash of each record, and its rejects.

        A staging row is ``(line, key, hash, payload, match value)``. The hashes are
        those of every record with a key, in the order read, for the export's
        fingerprint. The rejects are the source's issues and the rows without a key.
        """
        staged = self._compare_whole(batch)
        if staged is None:
            staged = self._compare_each(batch)
        return staged

    def _compare_whole(self, batch: RecordBatch) -> StagedBatch | None:
        values = batch.values
        count = len(values)
        keys = list(map(_FIRST, values))
        if not count or not self._mapper.all_clean(keys):
            return None
        try:
            payloads = list(map(FIELD_SEPARATOR.join, values))  # type: ignore[arg-type]
        except TypeError:
            return None
        if not batch.plain:
            text = "".join(payloads)
            if (
                text.count(FIELD_SEPARATOR) != count * self._separators
                or JSON_MARKER in text
                or "\0" in text
            ):
                return None

        digests = self._digests(payloads)
        index = self.index
        if index is None:
            changed: list[int] | range = range(count)
        else:
            known = list(map(index.get, keys))
            if self.inactive and None in known:
                find = self.inactive.get
                known = [
                    k if k is not None else find(key) for k, key in zip(known, keys, strict=True)
                ]
            if len(set(keys)) != count or int in set(map(type, known)):
                return None
            index.update(zip(keys, batch.lines, strict=True))
            changed = list(itertools.compress(range(count), map(operator.ne, digests, known)))
            self.unchanged += count - len(changed)
        self.records += count

        lines = batch.lines
        rows = [
            (lines[i], keys[i], digests[i], payloads[i], self._match_value(values[i]))
            for i in changed
        ]
        return rows, digests, list(batch.issues)

    def _digests(self, payloads: list[str]) -> list[bytes]:
        """Hash each payload: copies of one prepared hasher, each method mapped over all.

        Calling the methods unbound through map() costs half of what calling the
        hash constructor with its parameters for every record does.
        """
        kind = type(self._hasher)
        hashers = list(map(kind.copy, itertools.repeat(self._hasher, len(payloads))))
        collections.deque(map(kind.update, hashers, map(str.encode, payloads)), maxlen=0)
        return list(map(kind.digest, hashers))

    def _compare_each(self, batch: RecordBatch) -> StagedBatch:
        index = self.index
        clean_key = self._mapper.clean_key
        rows: list[tuple[Any, ...]] = []
        digests: list[bytes] = []
        rejected = list(batch.issues)

        for line, values in zip(batch.lines, batch.values, strict=True):
            key = clean_key(values[0])
            if key is None:
                rejected.append(self._keyless(line, values[0]))
                continue
            if (issue := self._mapper.nul_issue(line, values)) is not None:
                rejected.append(issue)
                continue
            self.records += 1
            payload = encode_values(values)
            digest = self._hash_one(payload)
            digests.append(digest)
            if index is not None:
                known = index.get(key)
                if known is None:
                    known = self.inactive.get(key)
                if known.__class__ is int:
                    self.duplicates.setdefault(key, [known]).append(line)
                    continue
                index[key] = line
                if known == digest:
                    self.unchanged += 1
                    continue
            rows.append((line, key, digest, payload, self._match_value(values)))

        if batch.issues and len(rejected) > len(batch.issues):
            rejected.sort(key=operator.attrgetter("line"))
        return rows, digests, rejected

    def _match_value(self, values: tuple[RawValue, ...]) -> str | None:
        if self._match_index is None:
            return None
        return self._mapper.clean_key(values[self._match_index])

    def _keyless(self, line: int, raw: RawValue) -> RecordIssue:
        field = self._key_field
        return RecordIssue(
            line,
            None,
            field,
            raw if isinstance(raw, str) else None,
            f"the employee key {field!r} is empty; the row is skipped: every row needs the"
            " key, which becomes the person's Staffbase externalID",
        )
