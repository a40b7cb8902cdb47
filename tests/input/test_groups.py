"""Group memberships from [mapping.groups], end to end."""

from __future__ import annotations

from typing import TYPE_CHECKING

from staffsync.staffbase.client import StaffbaseClient

if TYPE_CHECKING:
    from staffsync.settings import Settings
    from tests.input.bench import InputBench

GROUPS = {"groups": {"field": "groups", "separator": ";"}}


def sync_groups(bench: InputBench, file: str) -> Settings:
    settings = bench.settings_for(bench.use(file), mapping=GROUPS)
    bench.sync(settings)
    return settings


class TestGroups:
    def test_trimmed_and_deduplicated(self, any_bench: InputBench) -> None:
        """Names are trimmed, repeats in any letter case join once, empty parts are skipped."""
        settings = sync_groups(any_bench, "groups.csv")

        assert any_bench.group_members() == {"Berlin": ["E1", "E2"], "Sales": ["E1"]}
        assert sorted(g["externalId"] for g in any_bench.get("/__emulator/groups")) == [
            "Berlin",
            "Sales",
        ]
        any_bench.assert_quiet_rerun(settings)

    def test_removed_membership_removed(self, bench: InputBench) -> None:
        """A group dropped from a person's row is left on the next run; a new one is joined."""
        sync_groups(bench, "groups.csv")

        settings = sync_groups(bench, "groups_changed.csv")

        assert bench.group_members() == {
            "Berlin": ["E2"],
            "Leads": ["E2"],
            "Sales": ["E1"],
        }
        bench.assert_quiet_rerun(settings)

    def test_hand_added_member_kept(self, bench: InputBench) -> None:
        """A member added by hand to a group staffsync manages stays when others leave it."""
        settings = sync_groups(bench, "groups.csv")
        berlin = next(g for g in bench.get("/__emulator/groups") if g["name"] == "Berlin")
        with StaffbaseClient(settings.staffbase) as client:
            client.add_group_members(berlin["id"], [bench.users()["E3"]["id"]])

        sync_groups(bench, "groups_changed.csv")

        assert bench.group_members()["Berlin"] == ["E2", "E3"]
