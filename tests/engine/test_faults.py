"""Runs under injected faults: 5xx, dropped connections and a rate limit.

A run under faults must finish (succeeded or partial, never failed), report exactly
the records it could not apply, show them in ``status``, and leave them for the next
run, which converges once the faults are gone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import sqlalchemy as sa

from staffsync.engine.journal import RETRY_DELAYS, STUCK_AFTER_ATTEMPTS
from staffsync.settings import StateSettings
from staffsync.state import schema
from staffsync.state.status import read_status
from tests.sync.harness import person

if TYPE_CHECKING:
    from pathlib import Path

    from tests.sync.harness import Bench

PEOPLE = 200
JOINERS = 50


def roster(count: int, *, title: str = "Engineer") -> list[dict[str, str]]:
    rows = [person(1, title="CEO")]
    rows += [person(n, manager_id="E0001", title=title) for n in range(2, count + 1)]
    return rows


def wrong_keys(users: dict[str, dict[str, Any]], rows: list[dict[str, str]]) -> set[str]:
    """Return the keys of export rows that the tenant does not show exactly."""
    ids = {key: user["id"] for key, user in users.items()}
    wrong = set()
    for row in rows:
        user = users.get(row["employee_id"])
        if user is None:
            wrong.add(row["employee_id"])
            continue
        manager = ids.get(row["manager_id"]) if row["manager_id"] else None
        actual = (
            user["firstName"],
            user["lastName"],
            user["emails"][0]["value"],
            user.get("position"),
            user.get("department"),
            user.get("location"),
            (user.get("profile") or {}).get("system_manager"),
        )
        expected = (
            row["first_name"],
            row["last_name"],
            row["work_email"],
            row["title"],
            row["department"],
            row["location"],
            manager,
        )
        if actual != expected:
            wrong.add(row["employee_id"])
    return wrong


def response_lost_keys(bench: Bench) -> set[str]:
    """Return the keys of users with a write that Staffbase applied but whose response was lost."""
    by_id = {user["id"]: key for key, user in bench.users().items()}
    keys = set()
    for entry in bench.get("/__emulator/requests"):
        if entry["response_sent"]:
            continue
        if entry["method"] == "POST":
            keys.add(entry["body"]["externalID"])
        else:
            keys.add(by_id.get(entry["path"].rsplit("/", 1)[-1], "?"))
    return keys


def failing(bench: Bench) -> list[dict[str, Any]]:
    engine = sa.create_engine(bench.state_url)
    with engine.connect() as connection:
        rows: list[dict[str, Any]] = read_status(connection)["failing"]
    engine.dispose()
    return rows


class TestFaultyRun:
    @pytest.mark.slow
    @pytest.mark.parametrize("retry_after", [True, False], ids=["retry-after", "backoff"])
    def test_reports_exactly_what_failed(self, bench: Bench, retry_after: bool) -> None:
        """Under 5xx, drops and 429s the run ends partial, listing exactly the failed records."""
        bench.write_export(roster(PEOPLE))
        bench.sync()
        rows = roster(PEOPLE, title="Senior Engineer")
        rows += [person(n, manager_id="E0001") for n in range(1000, 1000 + JOINERS)]
        bench.write_export(rows)
        bench.faults(
            error_rate=0.2,
            drop_rate=0.05,
            rate_limit_per_second=50,
            rate_limit_retry_after=retry_after,
        )
        settings = bench.settings()
        # Two attempts per request make some records fail for good; the client starts
        # above the server's limit, so that 429s happen until it has adapted.
        settings.staffbase.max_attempts = 2
        settings.staffbase.max_concurrency = 8
        settings.staffbase.max_requests_per_second = 100
        settings.staffbase.retry_initial_wait_seconds = 0.05

        report = bench.sync(settings)

        stats = bench.stats()
        failed = {entry["key"] for entry in report.failed}
        wrong = wrong_keys(bench.users(), rows)
        assert report.status == "partial"
        assert stats["rate_limited"] > 0
        assert len(report.failed) == len(failed)
        assert report.counts["failed"] == len(failed)
        # Every record the tenant does not show is reported, and every other reported one
        # had a request that Staffbase applied without the response arriving.
        assert wrong <= failed
        assert failed - wrong <= response_lost_keys(bench)
        assert report.counts["updated"] + report.counts["created"] == len(rows) - 1 - len(failed)
        assert {row["key"] for row in failing(bench)} == failed
        assert {row["attempts"] for row in failing(bench)} == {1}

        bench.faults(error_rate=0, drop_rate=0, rate_limit_per_second=None)
        second = bench.sync(settings)

        assert second.status == "succeeded"
        assert wrong_keys(bench.users(), rows) == set()
        assert failing(bench) == []
        assert len(bench.users()) == len(rows)


def set_next_attempt_due(bench: Bench, key: str) -> None:
    """Move a failing record's next attempt into the past, as if its delay had passed."""
    engine = sa.create_engine(bench.state_url)
    with engine.begin() as connection:
        connection.execute(
            sa.update(schema.failures)
            .where(schema.failures.c.key == key)
            .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    engine.dispose()


def api(bench: Bench, method: str, path: str, body: Any = None) -> httpx.Response:
    """Call the emulator's API with its API token, as an administrator would by hand."""
    headers = {"Authorization": f"Basic {bench.emulator.config.api_token}"}
    url = f"{bench.emulator.base_url}{path}"
    response = httpx.request(method, url, json=body, headers=headers, timeout=30)
    response.raise_for_status()
    return response


class TestStuckRecord:
    def test_retried_with_growing_delays(self, bench: Bench) -> None:
        """A record failing run after run waits longer each time, then shows as stuck."""
        # A user made by hand has E0002's e-mail, so creating E0002 fails every time.
        hand_made = api(
            bench,
            "POST",
            "/users",
            {
                "firstName": "Hand",
                "lastName": "Made",
                "emails": [{"value": "person2@example.com", "primary": True}],
            },
        ).json()
        bench.write_export([person(1), person(2)])

        delays: list[float] = []
        for attempt in range(1, STUCK_AFTER_ATTEMPTS + 2):
            report = bench.sync()
            (row,) = failing(bench)
            delay = _parse(row["next_attempt_at"]) - _parse(row["last_failed_at"])
            delays.append(delay.total_seconds())
            assert row["attempts"] == attempt
            assert [entry["key"] for entry in report.failed] == ["E0002"]
            assert report.status == "partial"
            assert row["stuck"] is (attempt >= STUCK_AFTER_ATTEMPTS)
            if delay:
                posts = bench.stats()["requests"]["POST /api/users"]
                waiting = bench.sync()
                assert bench.stats()["requests"]["POST /api/users"] == posts
                assert [entry["key"] for entry in waiting.failed] == ["E0002"]
                assert "next attempt after" in waiting.failed[0]["message"]
            set_next_attempt_due(bench, "E0002")

        expected = [delay.total_seconds() for delay in RETRY_DELAYS]
        assert delays == [*expected, expected[-1]]

        api(bench, "DELETE", f"/users/{hand_made['id']}")
        fixed = bench.sync()

        assert fixed.status == "succeeded"
        assert fixed.counts["created"] == 1
        assert failing(bench) == []


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


class TestResolvedFailure:
    def test_failure_no_longer_needed_is_forgotten(self, bench: Bench) -> None:
        """HR undoes a change that kept failing: once due, the failure leaves the state."""
        bench.write_export([person(1), person(2)])
        bench.sync()
        api(
            bench,
            "POST",
            "/users",
            {"firstName": "Hand", "emails": [{"value": "taken@example.com", "primary": True}]},
        )
        bench.write_export([person(1, work_email="taken@example.com"), person(2)])
        failed = bench.sync()
        still = failing(bench)
        bench.write_export([person(1), person(2)])

        set_next_attempt_due(bench, "E0001")
        resolved = bench.sync()

        assert [entry["key"] for entry in failed.failed] == ["E0001"]
        assert [row["key"] for row in still] == ["E0001"]
        assert resolved.status == "succeeded"
        assert resolved.failed == []
        assert failing(bench) == []
        assert bench.users()["E0001"]["emails"][0]["value"] == "person1@example.com"


class TestManagerWithoutUser:
    def test_update_that_sends_nothing_is_not_counted(self, bench: Bench) -> None:
        """A report's manager update waits for a manager whose create fails; no PUT, no count."""
        api(
            bench,
            "POST",
            "/users",
            {"firstName": "Hand", "emails": [{"value": "person2@example.com", "primary": True}]},
        )
        bench.write_export([person(1), person(2), person(3, manager_id="E0002")])
        first = bench.sync()
        set_next_attempt_due(bench, "E0002")
        puts = bench.stats()["requests"].get("PUT /api/users/{id}", 0)

        second = bench.sync()

        assert first.counts["created"] == 2
        assert [entry["key"] for entry in second.failed] == ["E0002"]
        assert second.counts["updated"] == 0
        assert bench.stats()["requests"].get("PUT /api/users/{id}", 0) == puts
        assert bench.users()["E0003"].get("profile", {}).get("system_manager") is None
        assert [(w["key"], w["value"]) for w in second.warnings] == [("E0003", "E0002")]

    def test_current_manager_is_cleared_like_the_planner_does(self, bench: Bench) -> None:
        """The new manager cannot be set: the old one is cleared, and the report shows it."""
        bench.write_export([person(1), person(3, manager_id="E0001")])
        bench.sync()
        api(
            bench,
            "POST",
            "/users",
            {"firstName": "Hand", "emails": [{"value": "person2@example.com", "primary": True}]},
        )
        rows = [person(1), person(2), person(3, manager_id="E0002", title="Lead")]
        bench.write_export(rows)

        report = bench.sync()
        bodies = [
            entry["body"] for entry in bench.get("/__emulator/requests") if entry["method"] == "PUT"
        ]
        (change,) = [c for c in report.changes if c["key"] == "E0003"]

        assert report.counts["updated"] == 1
        assert bodies[-1] == {"position": "Lead", "profile": {"system_manager": None}}
        assert change["fields"]["manager"] == {"before": "E0001", "after": None}
        assert [(w["key"], w["value"]) for w in report.warnings] == [("E0003", "E0002")]
        assert bench.users()["E0003"]["profile"].get("system_manager") is None


class TestLostState:
    def test_existing_users_are_adopted_not_counted_as_created(
        self, bench: Bench, tmp_path: Path
    ) -> None:
        """With a new state database, users already in Staffbase are taken over, not made."""
        bench.write_export([person(1), person(2), person(3)])
        bench.sync()
        fresh = bench.settings(state=StateSettings(url=f"sqlite:///{tmp_path / 'fresh.db'}"))
        bench.write_export([person(1), person(2), person(3, title="Chief")])

        report = bench.sync(fresh)

        assert report.counts["created"] == 0
        assert report.counts["updated"] == 1
        assert report.counts["unchanged"] == 2
        assert [change["key"] for change in report.changes] == ["E0003"]
        assert len(bench.users()) == 3
