"""A [mapping] edit that changes every record hash but no field sends nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from staffsync.settings import MappingSettings
from tests.sync.harness import person

if TYPE_CHECKING:
    from tests.sync.harness import Bench


def roster(count: int) -> list[dict[str, str]]:
    return [person(1)] + [person(n, manager_id="E0001") for n in range(2, count + 1)]


class TestMappingEdit:
    def test_new_hashes_stored_without_requests(self, any_bench: Bench) -> None:
        """Every record is mapped again and recorded; Staffbase gets no write."""
        any_bench.write_export(roster(30))
        any_bench.sync()
        writes_before = any_bench.writes()
        edited = any_bench.settings(mapping=MappingSettings(empty_values=["n/a"]))

        report = any_bench.sync(edited)

        assert report.status == "succeeded"
        assert report.counts["unchanged"] == 30
        assert any_bench.writes() == writes_before

    def test_next_run_maps_nothing(self, any_bench: Bench) -> None:
        """After the edit is recorded, the following run finds every record unchanged."""
        any_bench.write_export(roster(12))
        any_bench.sync()
        edited = any_bench.settings(mapping=MappingSettings(empty_values=["n/a"]))
        any_bench.sync(edited)
        stages: list[str] = []

        report = any_bench.sync(edited, progress=lambda stage, done, total: stages.append(stage))

        assert report.counts["unchanged"] == 12
        assert "map" not in stages
