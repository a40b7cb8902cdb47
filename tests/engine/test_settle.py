"""Settling the changes a crashed run left ``sent``: confirmed, or planned again.

A :class:`~tests.engine.crashing.CrashingClient` ends a run in-process at a chosen
request, before it is sent or after Staffbase applied it, leaving the journal as a
SIGKILL would. The next run must confirm what landed without sending it twice, and send
again what did not. ``tests/crash`` does the same with real processes and real kills.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from staffsync.runner import RunRequest, execute_run
from tests.engine.crashing import CrashingClient, SimulatedCrash
from tests.sync.harness import person

if TYPE_CHECKING:
    from staffsync.settings import Settings
    from tests.sync.harness import Bench

POSTS = "POST /api/users"
PUTS = "PUT /api/users/{id}"


def crash_run(bench: Bench, settings: Settings, *, method: str, after_sending: bool) -> None:
    """Run a sync that crashes at its first ``method`` write."""
    client = CrashingClient(settings.staffbase, method=method, after_sending=after_sending)
    with client, pytest.raises(SimulatedCrash):
        execute_run(settings, RunRequest(), client=client)


def journal_states(state_url: str) -> dict[str, int]:
    engine = sa.create_engine(state_url)
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT state, count(*) FROM changes GROUP BY state"))
        states = {state: count for state, count in rows}
    engine.dispose()
    return states


@pytest.fixture
def settings(bench: Bench) -> Settings:
    """Settings with one worker, so that the crash is the only request in flight."""
    settings = bench.settings()
    settings.staffbase.max_concurrency = 1
    return settings


class TestCrashedCreate:
    def test_applied_create_is_not_sent_again(self, bench: Bench, settings: Settings) -> None:
        """A create whose response was lost is found by externalID, not posted again."""
        bench.write_export([person(1)])
        crash_run(bench, settings, method="POST", after_sending=True)
        assert journal_states(bench.state_url) == {"sent": 1}

        report = bench.sync(settings)

        assert bench.stats()["requests"][POSTS] == 1
        assert list(bench.users()) == ["E0001"]
        assert report.counts["created"] == 0
        assert journal_states(bench.state_url) == {"done": 1}
        assert bench.sync(settings).changes == []

    def test_unsent_create_is_sent(self, bench: Bench, settings: Settings) -> None:
        """A create journaled but never sent is abandoned and created by the next plan."""
        bench.write_export([person(1)])
        crash_run(bench, settings, method="POST", after_sending=False)

        report = bench.sync(settings)

        assert bench.stats()["requests"][POSTS] == 1
        assert report.counts["created"] == 1
        assert journal_states(bench.state_url) == {"abandoned": 1, "done": 1}

    def test_applied_create_keeps_its_manager(self, bench: Bench, settings: Settings) -> None:
        """A confirmed create whose manager landed needs no further update."""
        bench.write_export([person(1)])
        bench.sync(settings)
        bench.write_export([person(1), person(2, manager_id="E0001")])
        crash_run(bench, settings, method="POST", after_sending=True)

        bench.sync(settings)

        assert PUTS not in bench.stats()["requests"]
        assert bench.sync(settings).changes == []

    def test_failed_check_leaves_change_open(self, bench: Bench, settings: Settings) -> None:
        """A check that keeps failing leaves the change open, and the run goes on."""
        bench.write_export([person(1)])
        crash_run(bench, settings, method="POST", after_sending=True)
        bench.faults(error_rate=1.0)
        settings.staffbase.max_attempts = 2
        settings.staffbase.retry_initial_wait_seconds = 0.01

        failing = bench.sync(settings)

        assert failing.status == "partial"
        assert journal_states(bench.state_url) == {"sent": 1, "failed": 1}
        bench.faults(error_rate=0.0)
        settled = bench.sync(settings)
        assert settled.status == "succeeded"
        assert settled.counts["created"] == 0
        assert journal_states(bench.state_url) == {"done": 1, "failed": 1}
        assert list(bench.users()) == ["E0001"]
        assert bench.sync(settings).changes == []


class TestCrashedUpdate:
    def test_applied_update_is_not_sent_again(self, bench: Bench, settings: Settings) -> None:
        """An update that reached Staffbase before the crash is confirmed by reading it back."""
        bench.write_export([person(1)])
        bench.sync(settings)
        bench.write_export([person(1, title="Staff Engineer")])
        crash_run(bench, settings, method="PUT", after_sending=True)

        report = bench.sync(settings)

        assert bench.stats()["requests"][PUTS] == 1
        assert report.counts["updated"] == 0
        assert bench.users()["E0001"]["position"] == "Staff Engineer"
        assert bench.sync(settings).changes == []

    def test_unsent_update_is_sent(self, bench: Bench, settings: Settings) -> None:
        """An update journaled but never sent is made again by the next run."""
        bench.write_export([person(1)])
        bench.sync(settings)
        bench.write_export([person(1, title="Staff Engineer")])
        crash_run(bench, settings, method="PUT", after_sending=False)

        report = bench.sync(settings)

        assert report.counts["updated"] == 1
        assert bench.users()["E0001"]["position"] == "Staff Engineer"

    def test_unsent_manager_removal_is_sent(self, bench: Bench, settings: Settings) -> None:
        """An unsent change of the manager alone is not mistaken for one that landed."""
        bench.write_export([person(1), person(2, manager_id="E0001")])
        bench.sync(settings)
        bench.write_export([person(1), person(2)])
        crash_run(bench, settings, method="PUT", after_sending=False)
        assert bench.users()["E0002"]["profile"].get("system_manager") is not None

        report = bench.sync(settings)

        assert report.counts["updated"] == 1
        assert bench.users()["E0002"]["profile"].get("system_manager") is None
        assert bench.sync(settings).changes == []

    def test_unsent_manager_change_is_sent(self, bench: Bench, settings: Settings) -> None:
        """An unsent switch to another manager is sent by the next run."""
        rows = [person(1), person(2), person(3, manager_id="E0001")]
        bench.write_export(rows)
        bench.sync(settings)
        rows[2]["manager_id"] = "E0002"
        bench.write_export(rows)
        crash_run(bench, settings, method="PUT", after_sending=False)

        bench.sync(settings)

        users = bench.users()
        assert users["E0003"]["profile"]["system_manager"] == users["E0002"]["id"]

    def test_applied_deactivation_is_confirmed(self, bench: Bench, settings: Settings) -> None:
        """A deactivation that landed before the crash is recorded, not sent again."""
        bench.write_export([person(1), person(2)])
        bench.sync(settings)
        bench.sign_in()
        bench.write_export([person(1)])
        crash_run(bench, settings, method="PUT", after_sending=True)

        report = bench.sync(settings)

        assert bench.stats()["requests"][PUTS] == 1
        assert report.counts["deactivated"] == 0
        assert bench.users()["E0002"]["status"] == "deactivated"
        assert bench.sync(settings).changes == []


class TestKilledRunRecord:
    def test_marked_failed_by_next_run(self, bench: Bench, settings: Settings) -> None:
        """A run left recorded as running by a crash is marked failed by the next one."""
        bench.write_export([person(1)])
        crash_run(bench, settings, method="POST", after_sending=False)
        engine = sa.create_engine(bench.state_url)
        with engine.begin() as connection:
            # The in-process crash still records its run; a SIGKILL would not.
            connection.execute(sa.text("UPDATE runs SET status = 'running'"))

        bench.sync(settings)

        with engine.connect() as connection:
            statuses = connection.execute(
                sa.text("SELECT status FROM runs ORDER BY started_at")
            ).scalars()
            assert list(statuses) == ["failed", "succeeded"]
        engine.dispose()
