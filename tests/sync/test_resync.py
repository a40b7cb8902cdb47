"""Full resync: adoption, drift repair, orphans and a rebuilt state, against the emulator."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from staffsync.settings import MappingSettings, PolicySettings
from tests.sync.harness import person

if TYPE_CHECKING:
    from tests.sync.harness import Bench


def seed(bench: Bench, **user: Any) -> dict[str, Any]:
    """Create a user in the emulator as if made by hand in the Studio."""
    return bench.post("/__emulator/users", user)


def hand_edit(bench: Bench, staffbase_id: str, body: dict[str, Any]) -> None:
    """Change a user through the API as an administrator would in the Studio."""
    response = httpx.put(
        f"{bench.emulator.base_url}/users/{staffbase_id}",
        json=body,
        headers={"Authorization": f"Basic {bench.emulator.config.api_token}"},
        timeout=10,
    )
    response.raise_for_status()


def staffbase_user(number: int, **values: Any) -> dict[str, Any]:
    """A Staffbase user body matching export row ``number``."""
    user: dict[str, Any] = {
        "firstName": f"First{number}",
        "lastName": f"Last{number}",
        "emails": [{"value": f"person{number}@example.com", "primary": True}],
        "position": "Engineer",
        "department": "R&D",
        "location": "Berlin",
    }
    user.update(values)
    return user


class TestResync:
    def test_adopts_repairs_and_reports(self, any_bench: Bench) -> None:
        """Hand-made users are adopted, drift is repaired, orphans are left alone."""
        by_key = seed(
            any_bench,
            externalID="E0001",
            status="activated",
            **staffbase_user(1, position="Hand-edited"),
        )
        by_email = seed(
            any_bench,
            status="activated",
            **staffbase_user(2, emails=[{"value": "PERSON2@Example.COM", "primary": True}]),
        )
        deactivated = seed(any_bench, externalID="E0003", status="deactivated", **staffbase_user(3))
        orphan = seed(any_bench, externalID="X0999", status="activated", **staffbase_user(999))
        loose = seed(any_bench, status="activated", **staffbase_user(998))
        any_bench.write_export([person(n) for n in range(1, 6)])
        settings = any_bench.settings(mapping=MappingSettings(adopt_by_email=True))

        report = any_bench.sync(settings, mode="full")
        users = any_bench.users()

        assert report.status == "succeeded"
        assert len(users) == 7
        assert users["E0001"]["id"] == by_key["id"]
        assert users["E0001"]["position"] == "Engineer"
        assert users["E0002"]["id"] == by_email["id"]
        assert users["E0003"]["id"] == deactivated["id"]
        assert users["E0003"]["status"] == "activated"
        assert users["X0999"]["status"] == "activated"
        assert users[loose["id"]]["status"] == "activated"
        assert report.counts["created"] == 2
        assert report.counts["updated"] == 2
        assert report.counts["reactivated"] == 1
        assert {o["staffbase_id"] for o in report.orphans} == {orphan["id"], loose["id"]}

    def test_second_resync_writes_nothing(self, bench: Bench) -> None:
        """A resync on a tenant already in step makes no write, nor does a later sync."""
        seed(bench, externalID="E0001", status="activated", **staffbase_user(1, position="Old"))
        bench.write_export([person(n) for n in range(1, 4)])
        bench.sync(mode="full")
        writes = bench.writes()

        again = bench.sync(mode="full")
        incremental = bench.sync()

        assert bench.writes() == writes
        assert again.counts["unchanged"] == 3
        assert incremental.counts["unchanged"] == 3

    def test_repairs_hand_edits_after_sync(self, bench: Bench) -> None:
        """Fields edited, users deactivated or deleted by hand are put back."""
        bench.write_export([person(n, manager_id="E0001" if n > 1 else "") for n in range(1, 5)])
        bench.sync()
        bench.sign_in()
        users = bench.users()
        hand_edit(bench, users["E0002"]["id"], {"location": "Moon"})
        hand_edit(bench, users["E0003"]["id"], {"status": "deactivated"})
        httpx.delete(
            f"{bench.emulator.base_url}/users/{users['E0004']['id']}",
            headers={"Authorization": f"Basic {bench.emulator.config.api_token}"},
            timeout=10,
        ).raise_for_status()

        report = bench.sync(mode="full")
        after = bench.users()

        assert after["E0002"]["location"] == "Berlin"
        assert after["E0003"]["status"] == "activated"
        assert "E0004" in after
        assert after["E0004"]["profile"]["system_manager"] == users["E0001"]["id"]
        assert report.counts["updated"] == 1
        assert report.counts["reactivated"] == 1
        assert report.counts["created"] == 1

    def test_orphans_deactivated_by_policy(self, bench: Bench) -> None:
        """With orphans = "deactivate", activated users HR does not list are deactivated."""
        orphan = seed(bench, externalID="X0001", status="activated", **staffbase_user(900))
        pending = seed(bench, externalID="X0002", status="pending", **staffbase_user(901))
        bench.write_export([person(n) for n in range(1, 21)])
        settings = bench.settings(policy=PolicySettings(orphans="deactivate"))

        report = bench.sync(settings, mode="full")
        users = bench.users()

        assert users["X0001"]["status"] == "deactivated"
        assert users["X0001"]["id"] == orphan["id"]
        assert users["X0002"]["status"] == "pending"
        assert users["X0002"]["id"] == pending["id"]
        assert report.counts["deactivated"] == 1

    def test_dry_run_resync_writes_nothing(self, bench: Bench) -> None:
        """A dry resync reports drift but sends no write."""
        seed(bench, externalID="E0001", status="activated", **staffbase_user(1, position="Old"))
        bench.write_export([person(1)])

        report = bench.sync(mode="full", dry_run=True)

        assert bench.writes() == 0
        assert report.counts["updated"] == 1
        assert report.changes[0]["fields"] == {"position": {"before": "Old", "after": "Engineer"}}
