"""Made-up SailPoint-style identity exports, for demos, tests and benchmarks.

Every attribute of person ``i`` is computed from ``(seed, i)`` alone. So a variant of an
export (some people changed, some gone, some new) is written without reading the base
file, and a file of any size is written in constant memory.
"""

from __future__ import annotations

import csv
import hashlib
import math
import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = ["COLUMNS", "ExportSummary", "employee_id", "generate_rows", "write_export"]

COLUMNS = (
    "employee_id",
    "first_name",
    "last_name",
    "preferred_name",
    "work_email",
    "title",
    "department",
    "location",
    "manager_id",
    "status",
    "start_date",
)

FIRST_NAMES = (
    "Aiko", "Alexander", "Amara", "Ana María", "Benjamin", "Chloé", "Daniel", "Elena",
    "Émile", "Farah", "Felix", "Hannah", "Ingrid", "Isabel", "Jakob", "James", "Jürgen",
    "Katharina", "Kenji", "Lars", "Laura", "Leila", "Łucja", "Lukas", "Maria", "Mateo",
    "Michael", "Nadia", "Noémie", "Olivia", "Omar", "Priya", "Rafael", "Rebecca", "Samuel",
    "Sofia", "Søren", "Thomas", "Valentina", "William", "Yusuf", "Zoë",
)  # fmt: skip

LAST_NAMES = (
    "Andersen", "Becker", "Costa", "Dubois", "Fischer", "García", "Hansen", "Ivanova",
    "Jensen", "Kowalczyk", "Lambert", "Martin", "Müller", "Nakamura", "Nguyen", "Novak",
    "O'Brien", "Okafor", "Olsen", "Patel", "Petrov", "Rossi", "Santos", "Schmidt",
    "Silva", "Smith", "Tanaka", "Van Dijk", "Wagner", "Weber", "Williams", "Ødegaard",
)  # fmt: skip

SHORT_NAMES = {
    "Alexander": "Alex",
    "Benjamin": "Ben",
    "Daniel": "Dan",
    "Katharina": "Kathi",
    "Michael": "Mike",
    "Rebecca": "Becky",
    "Samuel": "Sam",
    "Thomas": "Tom",
    "Valentina": "Vale",
    "William": "Will",
}

DEPARTMENTS = {
    "Engineering": ("Software Engineer", "Senior Software Engineer", "Engineering Manager",
                    "Site Reliability Engineer", "QA Engineer"),
    "Sales": ("Account Executive", "Sales Development Representative", "Sales Manager",
              "Solutions Consultant"),
    "Marketing": ("Marketing Specialist", "Content Manager", "Product Marketing Manager"),
    "Customer Success": ("Customer Success Manager", "Support Specialist", "Onboarding Lead"),
    "Finance": ("Accountant", "Financial Analyst", "Controller"),
    "People": ("HR Business Partner", "Recruiter", "People Operations Specialist"),
    "Operations": ("Office Manager", "Facilities Coordinator", "Operations Analyst"),
    "Product": ("Product Manager", "Product Designer", "UX Researcher"),
}  # fmt: skip

LOCATIONS = (
    "Berlin", "Hamburg", "Munich", "London", "Dublin", "New York", "Chicago", "Toronto",
    "Madrid", "Lisbon", "Warsaw", "Singapore", "Sydney",
)  # fmt: skip

CEO_DEPARTMENT = "Management"
CEO_TITLES = ("Chief Executive Officer", "Managing Director")

_DEPARTMENT_NAMES = tuple(DEPARTMENTS)
_FIRST_START_DATE = date(2008, 1, 1).toordinal()
_START_DATE_SPAN = date(2025, 12, 31).toordinal() - _FIRST_START_DATE
_TERMINATED_PER_MILLE = 20
_PREFERRED_PER_MILLE = 300
_SPAN_OF_CONTROL = 5
_ASCII_FALLBACKS = str.maketrans({"ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "ß": "ss", "æ": "ae"})

_BASE_SALT = 0
_VARIANT_SALT = 1


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """How many rows an export has, and how it differs from its base."""

    rows: int
    terminated: int
    changed: int
    leavers: int
    joiners: int


@dataclass(frozen=True, slots=True)
class _Variant:
    """The plan of a variant: the base people it changes or leaves out, by a keyed permutation."""

    count: int
    multiplier: int
    offset: int
    leavers: int
    changed: int
    variant_seed: int

    @classmethod
    def plan(cls, count: int, *, changed: float, leavers: float, variant_seed: int) -> _Variant:
        for name, share in (("changed", changed), ("leavers", leavers)):
            if not 0.0 <= share <= 1.0:
                msg = f"{name} must be a share between 0 and 1, got {share!r}"
                raise ValueError(msg)
        leaver_count = round(leavers * count)
        changed_count = round(changed * count)
        if leaver_count + changed_count > count:
            msg = f"changed ({changed!r}) and leavers ({leavers!r}) add up to more than everyone"
            raise ValueError(msg)

        modulus = max(count, 1)
        multiplier = _draw(_VARIANT_SALT, variant_seed, -1) % modulus or 1
        while math.gcd(multiplier, modulus) != 1:
            multiplier += 1
        offset = _draw(_VARIANT_SALT, variant_seed, -2) % modulus
        return cls(count, multiplier, offset, leaver_count, changed_count, variant_seed)

    def rank(self, index: int) -> int:
        """Return the index's place in a permutation of ``range(count)``; -1 for joiners."""
        if index >= self.count:
            return -1
        return (self.multiplier * index + self.offset) % self.count

    def is_leaver(self, index: int) -> bool:
        return 0 <= self.rank(index) < self.leavers

    def is_changed(self, index: int) -> bool:
        return self.leavers <= self.rank(index) < self.leavers + self.changed


def employee_id(index: int) -> str:
    """Return the employee id of person ``index`` (0-based): ``E000001`` for index 0."""
    return f"E{index + 1:06d}"


def generate_rows(
    count: int,
    *,
    seed: int = 7,
    changed: float = 0.0,
    leavers: float = 0.0,
    joiners: float = 0.0,
    variant_seed: int = 1,
) -> Iterator[tuple[str, ...]]:
    """Yield the data rows of an export of ``count`` people, in the order of :data:`COLUMNS`.

    With all shares zero this is the base export. ``changed`` is the share of people
    whose title or department differs from the base. ``leavers`` is the share left out,
    and ``joiners`` the share of new people appended. Each share becomes
    ``round(share * count)`` people, chosen by ``variant_seed``.
    """
    if joiners < 0:
        msg = f"joiners must be a share of at least 0, got {joiners!r}"
        raise ValueError(msg)
    variant = _Variant.plan(count, changed=changed, leavers=leavers, variant_seed=variant_seed)

    for index in range(count + round(joiners * count)):
        if variant.is_leaver(index):
            continue
        yield _person_row(seed, index, variant)


def write_export(
    path: Path,
    count: int,
    *,
    seed: int = 7,
    changed: float = 0.0,
    leavers: float = 0.0,
    joiners: float = 0.0,
    variant_seed: int = 1,
) -> ExportSummary:
    """Write an export of ``count`` made-up people to ``path`` as UTF-8 CSV with a header.

    The shares work as in :func:`generate_rows`. The same arguments write the same bytes.
    """
    rows = terminated = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in generate_rows(
            count,
            seed=seed,
            changed=changed,
            leavers=leavers,
            joiners=joiners,
            variant_seed=variant_seed,
        ):
            writer.writerow(row)
            rows += 1
            terminated += row[9] == "terminated"

    variant = _Variant.plan(count, changed=changed, leavers=leavers, variant_seed=variant_seed)
    return ExportSummary(
        rows=rows,
        terminated=terminated,
        changed=variant.changed,
        leavers=variant.leavers,
        joiners=round(joiners * count),
    )


def _draw(salt: int, seed: int, index: int) -> int:
    """Return 128 pseudo-random bits that depend only on the arguments."""
    digest = hashlib.blake2b(b"%d:%d:%d" % (salt, seed, index), digest_size=16).digest()
    return int.from_bytes(digest, "little")


def _is_terminated(seed: int, index: int, variant: _Variant, bits: int | None = None) -> bool:
    # Joiners are new hires, and the first person heads the company.
    if index == 0 or index >= variant.count:
        return False
    if bits is None:
        bits = _draw(_BASE_SALT, seed, index)
    return bits % 1000 < _TERMINATED_PER_MILLE


def _manager_of(seed: int, index: int, variant: _Variant, bits: int) -> int | None:
    """Return an earlier person who still works there, or None for the head of the company.

    ``bits`` is person ``index``'s draw; each step up the hierarchy draws for the manager.
    """
    current = index
    while current > 0:
        current = (bits >> 100) % ((current + _SPAN_OF_CONTROL - 1) // _SPAN_OF_CONTROL)
        bits = _draw(_BASE_SALT, seed, current)
        if not _is_terminated(seed, current, variant, bits) and not variant.is_leaver(current):
            return current
    return None


def _person_row(seed: int, index: int, variant: _Variant) -> tuple[str, ...]:
    own_bits = _draw(_BASE_SALT, seed, index)
    bits, first_index = divmod(own_bits, len(FIRST_NAMES))
    bits, last_index = divmod(bits, len(LAST_NAMES))
    bits, department_index = divmod(bits, len(_DEPARTMENT_NAMES))
    bits, title_draw = divmod(bits, 1000)
    bits, location_index = divmod(bits, len(LOCATIONS))
    bits, start_offset = divmod(bits, _START_DATE_SPAN + 1)
    preferred_draw = bits % 1000

    first = FIRST_NAMES[first_index]
    last = LAST_NAMES[last_index]
    department, title = _job(index, department_index, title_draw)
    if variant.is_changed(index):
        department, title = _changed_job(variant.variant_seed, index, department, title)

    preferred = SHORT_NAMES.get(first, "") if preferred_draw < _PREFERRED_PER_MILLE else ""
    manager = _manager_of(seed, index, variant, own_bits)
    return (
        employee_id(index),
        first,
        last,
        preferred,
        f"{_email_part(first)}.{_email_part(last)}.{index + 1}@example.com",
        title,
        department,
        LOCATIONS[location_index],
        employee_id(manager) if manager is not None else "",
        "terminated" if _is_terminated(seed, index, variant, own_bits) else "active",
        date.fromordinal(_FIRST_START_DATE + start_offset).isoformat(),
    )


def _job(index: int, department_index: int, title_draw: int) -> tuple[str, str]:
    if index == 0:
        return CEO_DEPARTMENT, CEO_TITLES[0]
    department = _DEPARTMENT_NAMES[department_index]
    titles = DEPARTMENTS[department]
    return department, titles[title_draw % len(titles)]


def _changed_job(variant_seed: int, index: int, department: str, title: str) -> tuple[str, str]:
    """Return a job that differs from the base one in its title, its department or both."""
    bits = _draw(_VARIANT_SALT, variant_seed, index)
    if department == CEO_DEPARTMENT:
        return department, CEO_TITLES[1]

    if bits % 2 == 0:
        titles = DEPARTMENTS[department]
        step = 1 + (bits >> 1) % (len(titles) - 1)
        return department, titles[(titles.index(title) + step) % len(titles)]

    names = _DEPARTMENT_NAMES
    step = 1 + (bits >> 1) % (len(names) - 1)
    new_department = names[(names.index(department) + step) % len(names)]
    new_titles = DEPARTMENTS[new_department]
    return new_department, new_titles[(bits >> 8) % len(new_titles)]


def _email_part(name: str) -> str:
    """Return ``name`` as the ASCII letters of an e-mail local part (``Søren`` -> ``soren``)."""
    decomposed = unicodedata.normalize("NFKD", name.translate(_ASCII_FALLBACKS))
    return "".join(char for char in decomposed if char.isascii() and char.isalpha()).lower()
