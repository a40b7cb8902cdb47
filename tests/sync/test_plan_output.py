"""The readable plan table printed by ``staffsync plan``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rich.console import Console

from staffsync.render import print_plan, print_summary
from staffsync.report import RunReport
from tests.sync.harness import person

if TYPE_CHECKING:
    from tests.sync.harness import Bench


def rendered_lines(bench: Bench) -> list[str]:
    report = bench.sync(dry_run=True)
    console = Console(record=True, width=160, color_system=None)
    print_plan(console, report)
    return [" ".join(line.replace("│", " ").split()) for line in console.export_text().splitlines()]


class TestPlanTable:
    def test_mixed_change_set(self, bench: Bench) -> None:
        """Each change is listed under its action with before and after, then the totals."""
        rows = [person(n) for n in range(1, 7)]
        bench.write_export(rows)
        bench.sync()
        bench.sign_in()
        rows[0]["title"] = "Chief"
        rows[0]["location"] = "Paris"
        rows[1]["status"] = "terminated"
        bench.write_export([*rows[:5], person(7, last_name="New")])

        lines = rendered_lines(bench)

        assert "Create (1)" in lines
        assert "E0007 department — R&D" in lines
        assert "email — person7@example.com" in lines
        assert "lastName — New" in lines
        assert "Update (1)" in lines
        assert "E0001 location Berlin Paris" in lines
        assert "position Engineer Chief" in lines
        assert "Deactivate (2)" in lines
        assert "E0002 status activated deactivated" in lines
        assert "E0006 status activated deactivated" in lines
        totals = lines[lines.index("Totals") + 1 :]
        assert totals[:7] == [
            "Create 1",
            "Update 1",
            "Reactivate 0",
            "Deactivate 2",
            "Delete 0",
            "Unchanged 3",
            "Rejected 0",
        ]

    def test_dry_run_sends_no_write(self, bench: Bench) -> None:
        """Printing a plan leaves the emulator's statistics without a single write."""
        bench.write_export([person(n) for n in range(1, 4)])

        rendered_lines(bench)

        assert bench.writes() == 0


class TestSummaryText:
    def test_bracketed_names_are_printed_as_written(self) -> None:
        """``[safety]`` and ``[source]`` in messages are text, not console markup."""
        report = RunReport(
            run_id="r-1", mode="incremental", dry_run=False, started_at=datetime.now(UTC)
        )
        report.rejected = [{"line": 2, "key": "E1", "message": "set [source] encoding"}]
        report.held = {"plan_id": "p-1", "reason": "more than [safety] max_deactivations = 5"}
        report.finish("blocked", datetime.now(UTC), error="see [staffbase] client_id")
        console = Console(record=True, width=160, color_system=None)

        print_summary(console, report)
        text = console.export_text()

        assert "Held: more than [safety] max_deactivations = 5." in text
        assert "Error: see [staffbase] client_id" in text
        assert "set [source] encoding" in text
