"""Both ways of finding changed records: in memory, and in the database for huge states.

An incremental run compares each record's hash with a dict of the state's hashes when
the state is small enough, and stages every record in the database otherwise. The two
must plan exactly the same changes, rejects and leavers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from staffsync.planning import planner
from tests.sync.harness import person

if TYPE_CHECKING:
    from tests.sync.harness import Bench


@pytest.fixture(params=["memory", "database"])
def compare_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test once with each way of comparing records."""
    if request.param == "database":
        monkeypatch.setattr(planner, "MAX_INDEXED_PEOPLE", 0)
    return str(request.param)


class TestComparePaths:
    def test_mixed_changes(self, bench: Bench, compare_path: str) -> None:
        """Updates, a leaver, a joiner, duplicates and clashes come out the same either way."""
        rows = [person(n) for n in range(1, 21)]
        bench.write_export(rows)
        bench.sync()
        bench.sign_in()

        changed = [dict(row) for row in rows if row["employee_id"] != "E0020"]
        changed[0]["title"] = "Chief"
        changed[1]["first_name"] = " First2 "
        changed[4]["status"] = "on holiday"
        changed.append(dict(changed[2]))
        changed.append(person(21, work_email="PERSON10@example.com"))
        changed.append(person(22))
        bench.write_export(changed)

        report = bench.sync()
        users = bench.users()

        assert report.counts == {
            "created": 1,
            "updated": 1,
            "deactivated": 1,
            "reactivated": 0,
            "deleted": 0,
            "unchanged": 15,
            "rejected": 5,
            "failed": 0,
        }
        assert sorted((r["key"], r["line"]) for r in report.rejected) == [
            ("E0003", 4),
            ("E0003", 21),
            ("E0005", 6),
            ("E0010", 11),
            ("E0021", 22),
        ]
        assert users["E0001"]["position"] == "Chief"
        assert users["E0002"]["firstName"] == "First2"
        assert users["E0020"]["status"] == "deactivated"
        assert users["E0005"]["status"] == "activated"
        assert "E0021" not in users
        assert "E0022" in users

    def test_rerun_is_quiet(self, bench: Bench, compare_path: str) -> None:
        """A second run of the same export changes nothing either way."""
        bench.write_export([person(n, manager_id="E0001" if n > 1 else "") for n in range(1, 9)])
        bench.sync()
        writes = bench.writes()

        report = bench.sync()

        assert bench.writes() == writes
        assert report.counts["unchanged"] == 8
