"""Progress reported while a run reads, maps and applies, and how the command shows it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from click.testing import CliRunner

from staffsync.cli import cli
from tests.sync.harness import person

if TYPE_CHECKING:
    from pathlib import Path

    from tests.sync.harness import Bench


class Recorder:
    """A progress callback that keeps every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []

    def __call__(self, stage: str, done: int, total: int) -> None:
        self.calls.append((stage, done, total))

    def of(self, stage: str) -> list[tuple[int, int]]:
        return [(done, total) for name, done, total in self.calls if name == stage]


def roster(count: int) -> list[dict[str, str]]:
    return [person(1)] + [person(n, manager_id="E0001") for n in range(2, count + 1)]


class TestProgressCallback:
    def test_read_counts_every_record(self, bench: Bench) -> None:
        """The read stage ends at the number of records, with the total unknown (0)."""
        bench.write_export(roster(12))
        recorder = Recorder()

        bench.sync(progress=recorder)

        assert recorder.of("read")[-1] == (12, 0)

    def test_read_comes_first(self, bench: Bench) -> None:
        """Reading is reported before mapping, and mapping before applying."""
        bench.write_export(roster(3))
        recorder = Recorder()

        bench.sync(progress=recorder)

        stages = list(dict.fromkeys(name for name, _, _ in recorder.calls))
        assert stages == ["read", "map", "apply"]

    def test_map_reaches_changed_total(self, bench: Bench) -> None:
        """The second run maps only the changed record, out of a total of one."""
        bench.write_export(roster(5))
        bench.sync()
        rows = roster(5)
        rows[2]["title"] = "Director"
        bench.write_export(rows)
        recorder = Recorder()

        bench.sync(progress=recorder)

        assert recorder.of("map") == [(1, 1)]

    def test_apply_reaches_total(self, bench: Bench) -> None:
        """The apply stage ends with every planned change done."""
        bench.write_export(roster(7))
        recorder = Recorder()

        bench.sync(progress=recorder)

        assert recorder.of("apply")[-1] == (7, 7)

    def test_dry_run_applies_nothing(self, bench: Bench) -> None:
        """A dry run reports reading and mapping but no apply stage."""
        bench.write_export(roster(4))
        recorder = Recorder()

        bench.sync(progress=recorder, dry_run=True)

        assert recorder.of("apply") == []
        assert recorder.of("map")[-1] == (4, 4)


class TestCommandProgress:
    def write_config(self, bench: Bench, folder: Path) -> Path:
        emulator = bench.emulator
        config = folder / "staffsync.toml"
        config.write_text(
            f"""
[source]
path = "{bench.export}"

[staffbase]
base_url = "{emulator.base_url}"
token_url = "{emulator.token_url}"
client_id = "{emulator.config.client_id}"
client_secret = "{emulator.config.client_secret}"
max_requests_per_second = 500

[state]
url = "{bench.state_url}"

[safety]
max_deactivation_percent = 100
""",
            encoding="utf-8",
        )
        return config

    def test_no_bars_without_terminal(self, bench: Bench, tmp_path: Path) -> None:
        """Off a terminal, sync writes no progress bars to stderr."""
        bench.write_export(roster(6))
        config = self.write_config(bench, tmp_path)

        result = CliRunner().invoke(cli, ["--config", str(config), "sync"])

        assert result.exit_code == 0, result.output
        assert "Reading the export" not in result.stderr
        assert "Applying changes" not in result.stderr
        assert "\x1b[?25l" not in result.stderr  # rich hides the cursor while drawing

    def test_plan_without_terminal(self, bench: Bench, tmp_path: Path) -> None:
        """Off a terminal, plan prints its table and no progress bars."""
        bench.write_export(roster(2))
        config = self.write_config(bench, tmp_path)

        result = CliRunner().invoke(cli, ["--config", str(config), "plan"])

        assert result.exit_code == 0, result.output
        assert "Reading the export" not in result.stderr
        assert "Reading the export" not in result.stdout
