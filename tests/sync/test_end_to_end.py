"""End-to-end runs against the emulator on a real loopback socket.

Each test writes an HR export, runs the whole pipeline (source, planner, state DB,
engine, Staffbase client) and checks what reached the emulator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.sync.harness import person

if TYPE_CHECKING:
    from tests.sync.harness import Bench


def roster(count: int) -> list[dict[str, str]]:
    rows = [person(1, title="CEO")]
    rows += [person(n, manager_id="E0001") for n in range(2, count + 1)]
    return rows


class TestFirstSync:
    def test_creates_everyone_as_pending(self, any_bench: Bench) -> None:
        """The first run creates every active person as a pending, invited user."""
        any_bench.write_export(roster(20))

        report = any_bench.sync()

        users = any_bench.users()
        assert report.status == "succeeded"
        assert report.exit_code == 0
        assert report.counts["created"] == 20
        assert len(users) == 20
        assert {u["status"] for u in users.values()} == {"pending"}

    def test_fields_reach_staffbase(self, bench: Bench) -> None:
        """Names, e-mail, position, department, location and manager arrive as mapped."""
        bench.write_export(roster(3))

        bench.sync()

        users = bench.users()
        second = users["E0002"]
        assert second["firstName"] == "First2"
        assert second["lastName"] == "Last2"
        assert second["emails"] == [{"value": "person2@example.com", "primary": True}]
        assert second["position"] == "Engineer"
        assert second["department"] == "R&D"
        assert second["location"] == "Berlin"
        assert second["profile"]["system_manager"] == users["E0001"]["id"]

    def test_manager_set_in_the_create_request(self, bench: Bench) -> None:
        """A manager created in the same run is created first, so no extra update is sent."""
        bench.write_export(roster(5))

        bench.sync()

        requests = bench.stats()["requests"]
        assert requests.get("POST /api/users") == 5
        assert "PUT /api/users/{id}" not in requests

    def test_inactive_person_is_not_created(self, bench: Bench) -> None:
        """A person HR already marks as terminated gets no Staffbase user."""
        bench.write_export([person(1), person(2, status="terminated")])

        report = bench.sync()

        assert set(bench.users()) == {"E0001"}
        assert report.counts["created"] == 1
        assert report.counts["unchanged"] == 1


class TestIncrementalSync:
    def test_unchanged_export_makes_no_write(self, any_bench: Bench) -> None:
        """Syncing the same export again sends no write request at all."""
        any_bench.write_export(roster(10))
        any_bench.sync()
        writes_before = any_bench.writes()

        report = any_bench.sync()

        assert any_bench.writes() == writes_before
        assert report.counts["unchanged"] == 10
        assert report.changes == []

    def test_changed_title_sends_only_that_field(self, any_bench: Bench) -> None:
        """One changed title sends exactly one update carrying only the position."""
        rows = roster(10)
        any_bench.write_export(rows)
        any_bench.sync()
        rows[4]["title"] = "Staff Engineer"
        any_bench.write_export(rows)
        puts_before = any_bench.stats()["requests"].get("PUT /api/users/{id}", 0)

        report = any_bench.sync()

        log = any_bench.get("/__emulator/requests")
        puts = [r for r in log if r["method"] == "PUT"]
        assert any_bench.stats()["requests"]["PUT /api/users/{id}"] == puts_before + 1
        assert puts[-1]["body"] == {"position": "Staff Engineer"}
        assert report.counts["updated"] == 1
        assert report.changes == [
            {
                "action": "update",
                "key": "E0005",
                "staffbase_id": any_bench.users()["E0005"]["id"],
                "fields": {"position": {"before": "Engineer", "after": "Staff Engineer"}},
            }
        ]

    def test_removed_row_deactivates_and_return_reactivates(self, any_bench: Bench) -> None:
        """A signed-in leaver is deactivated; their return reactivates the same user."""
        rows = roster(10)
        any_bench.write_export(rows)
        any_bench.sync()
        any_bench.sign_in()
        original_id = any_bench.users()["E0007"]["id"]

        any_bench.write_export([r for r in rows if r["employee_id"] != "E0007"])
        leaving = any_bench.sync()
        after_leaving = any_bench.users()

        any_bench.write_export(rows)
        returning = any_bench.sync()
        after_return = any_bench.users()

        assert leaving.counts["deactivated"] == 1
        assert after_leaving["E0007"]["status"] == "deactivated"
        assert [u["status"] for k, u in after_leaving.items() if k != "E0007"] == ["activated"] * 9
        assert returning.counts["reactivated"] == 1
        assert returning.counts["created"] == 0
        assert after_return["E0007"]["id"] == original_id
        assert after_return["E0007"]["status"] == "activated"
        assert len(after_return) == 10

    def test_pending_leaver_is_deleted(self, bench: Bench) -> None:
        """A leaver who never signed in is deleted: Staffbase cannot deactivate them."""
        rows = roster(5)
        bench.write_export(rows)
        bench.sync()

        bench.write_export(rows[:4])
        report = bench.sync()

        assert report.counts["deleted"] == 1
        assert "E0005" not in bench.users()
        assert len(bench.users()) == 4

    def test_pending_leaver_who_signed_in_is_deactivated(self, bench: Bench) -> None:
        """A leaver the state still thinks pending, but who signed in, is deactivated."""
        rows = roster(5)
        bench.write_export(rows)
        bench.sync()
        bench.sign_in([bench.users()["E0005"]["id"]])

        bench.write_export(rows[:4])
        report = bench.sync()

        assert report.counts["deactivated"] == 1
        assert report.counts["deleted"] == 0
        assert bench.users()["E0005"]["status"] == "deactivated"

    def test_status_terminated_deactivates(self, bench: Bench) -> None:
        """A row whose status turns to terminated deactivates that user."""
        rows = roster(5)
        bench.write_export(rows)
        bench.sync()
        bench.sign_in()

        rows[2]["status"] = "Terminated"
        bench.write_export(rows)
        report = bench.sync()

        assert report.counts["deactivated"] == 1
        assert bench.users()["E0003"]["status"] == "deactivated"


class TestTokens:
    @pytest.fixture
    def state_url(self, sqlite_url: str) -> str:
        """Token handling never touches the state database, so SQLite alone will do."""
        return sqlite_url

    def test_one_token_for_five_hundred_creates(self, bench: Bench) -> None:
        """Creating 500 users fetches exactly one access token."""
        bench.write_export(roster(500))

        report = bench.sync()

        assert report.counts["created"] == 500
        assert bench.stats()["token_requests"] == 1

    @pytest.mark.slow
    def test_short_lived_tokens_are_renewed(self, bench: Bench) -> None:
        """With 2-second tokens and added latency a long run renews and nothing fails."""
        bench.faults(token_lifetime_s=2, latency_ms=50)
        bench.write_export(roster(200))
        settings = bench.settings()
        settings.staffbase.max_concurrency = 2

        report = bench.sync(settings)

        assert report.counts["created"] == 200
        assert report.counts["failed"] == 0
        assert bench.stats()["token_requests"] >= 3
        assert len(bench.users()) == 200
