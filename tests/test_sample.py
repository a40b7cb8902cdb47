"""Tests for the made-up export generator."""

from __future__ import annotations

import csv
from typing import TYPE_CHECKING

import pytest

from staffsync.sample import COLUMNS, ExportSummary, generate_rows, write_export

if TYPE_CHECKING:
    from pathlib import Path

COUNT = 1000


def people(**options: float) -> dict[str, dict[str, str]]:
    return {row[0]: dict(zip(COLUMNS, row, strict=True)) for row in generate_rows(COUNT, **options)}  # type: ignore[arg-type]


class TestWriteExport:
    def test_same_seed_same_bytes(self, tmp_path: Path) -> None:
        """The same arguments write identical files."""
        first, second = tmp_path / "a.csv", tmp_path / "b.csv"

        write_export(first, 300, seed=3, changed=0.1, leavers=0.05, joiners=0.02)
        write_export(second, 300, seed=3, changed=0.1, leavers=0.05, joiners=0.02)

        assert first.read_bytes() == second.read_bytes()

    def test_other_seed_other_people(self, tmp_path: Path) -> None:
        """Another seed writes other people."""
        first, second = tmp_path / "a.csv", tmp_path / "b.csv"

        write_export(first, 50, seed=1)
        write_export(second, 50, seed=2)

        assert first.read_bytes() != second.read_bytes()

    def test_file_layout(self, tmp_path: Path) -> None:
        """The file has the header and one row per person, with unique e-mail addresses."""
        path = tmp_path / "export.csv"

        summary = write_export(path, 200)

        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))
        assert tuple(rows[0]) == COLUMNS
        assert len(rows) == 201
        assert rows[1][0] == "E000001"
        assert len({row[4] for row in rows[1:]}) == 200
        assert summary == ExportSummary(
            rows=200, terminated=summary.terminated, changed=0, leavers=0, joiners=0
        )
        assert 0 < summary.terminated < 20


class TestGenerateRows:
    def test_managers_are_earlier_active_people(self) -> None:
        """Every manager is an earlier employee who is active; only the first has none."""
        rows = list(generate_rows(COUNT))
        position = {row[0]: index for index, row in enumerate(rows)}
        status = {row[0]: row[9] for row in rows}

        without_manager = [row[0] for row in rows if not row[8]]
        assert without_manager == ["E000001"]
        for row in rows[1:]:
            assert position[row[8]] < position[row[0]]
            assert status[row[8]] == "active"

    @pytest.mark.parametrize(
        ("changed", "leavers", "joiners"),
        [(0.1, 0.0, 0.0), (0.0, 0.05, 0.0), (0.0, 0.0, 0.03), (0.2, 0.1, 0.05)],
    )
    def test_variant_shares(self, changed: float, leavers: float, joiners: float) -> None:
        """A variant changes, drops and adds the requested shares of people."""
        base = people()

        variant = people(changed=changed, leavers=leavers, joiners=joiners, variant_seed=5)

        gone = base.keys() - variant.keys()
        new = variant.keys() - base.keys()
        moved = [
            key
            for key in base.keys() & variant.keys()
            if (base[key]["title"], base[key]["department"])
            != (variant[key]["title"], variant[key]["department"])
        ]
        assert abs(len(gone) - leavers * COUNT) <= 1
        assert abs(len(new) - joiners * COUNT) <= 1
        assert abs(len(moved) - changed * COUNT) <= 1

    def test_variant_keeps_other_attributes(self) -> None:
        """Apart from the job, a changed person keeps names, e-mail and start date."""
        base = people()

        variant = people(changed=0.5, variant_seed=2)

        for key, person in variant.items():
            original = base[key]
            assert (person["first_name"], person["work_email"], person["start_date"]) == (
                original["first_name"],
                original["work_email"],
                original["start_date"],
            )

    def test_leavers_managers_replaced(self) -> None:
        """Nobody in a variant reports to a leaver."""
        variant = people(leavers=0.2, variant_seed=3)

        assert all(
            person["manager_id"] in variant for person in variant.values() if person["manager_id"]
        )

    def test_joiners_active(self) -> None:
        """Joiners are appended after the base people, all active."""
        rows = list(generate_rows(100, joiners=0.1))

        assert [row[0] for row in rows[100:]] == [f"E{n:06d}" for n in range(101, 111)]
        assert {row[9] for row in rows[100:]} == {"active"}

    def test_shares_over_everyone(self) -> None:
        """Changed and leavers together cannot exceed everyone."""
        with pytest.raises(ValueError, match="add up to more than everyone"):
            list(generate_rows(10, changed=0.6, leavers=0.5))
