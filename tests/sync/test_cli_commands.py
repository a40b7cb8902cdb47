"""``staffsync status`` and ``plan`` as subprocesses, on state made by real runs.

The runs leave a partial run with a failing record and a plan held by the safety guards,
on SQLite and on PostgreSQL; the commands must show them in both output formats.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import TYPE_CHECKING, Any

import pytest

from staffsync.settings import SafetySettings
from tests.daemon.processes import staffsync_command, write_config
from tests.sync.harness import person

if TYPE_CHECKING:
    from pathlib import Path

    from tests.sync.harness import Bench


def cli_config(bench: Bench, path: Path, **sections: dict[str, Any]) -> Path:
    """Write the bench's settings as a TOML file for the command line."""
    emulator = bench.emulator
    values: dict[str, dict[str, Any]] = {
        "source": {"path": str(bench.export)},
        "staffbase": {
            "base_url": emulator.base_url,
            "token_url": emulator.token_url,
            "client_id": emulator.config.client_id,
            "client_secret": emulator.config.client_secret,
        },
        "state": {"url": bench.state_url},
        "safety": {"max_deactivation_percent": 100},
    }
    for section, overrides in sections.items():
        values.setdefault(section, {}).update(overrides)
    return write_config(path, values)


def run_command(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # A wide terminal, so that rich does not fold ids across table lines.
    environment = {**os.environ, "COLUMNS": "400"}
    return subprocess.run(
        staffsync_command("--config", str(config), *args),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=environment,
    )


class History:
    """State left by two runs: one partial with a failing record, one held."""

    def __init__(self, bench: Bench) -> None:
        rows = [person(n) for n in range(1, 11)]
        rows.append(person(11, status="on leave"))
        bench.write_export(rows)
        # A user made by hand owns person 3's e-mail, so creating E0003 fails with 409.
        bench.post(
            "/__emulator/users",
            {
                "firstName": "Pat",
                "lastName": "Hand",
                "emails": [{"value": "person3@example.com", "primary": True}],
            },
        )
        self.partial = bench.sync()
        bench.sign_in()
        bench.write_export(rows[:4])
        settings = bench.settings(safety=SafetySettings(max_deactivations=2))
        self.held = bench.sync(settings)
        assert self.held.held is not None
        self.plan_id: str = self.held.held["plan_id"]
        self.config = cli_config(bench, bench.folder / "staffsync.toml")


@pytest.fixture
def history(any_bench: Bench) -> History:
    return History(any_bench)


class TestStatusCommand:
    """``staffsync status`` lists runs, held plans and failing records."""

    def test_json(self, history: History) -> None:
        """The JSON form lists the runs newest first, the held plan and the failing record."""
        result = run_command(history.config, "status", "--format", "json")
        newest = run_command(history.config, "status", "--format", "json", "--runs", "1")

        status = json.loads(result.stdout)
        runs = status["runs"]
        assert result.returncode == 0
        assert [run["id"] for run in json.loads(newest.stdout)["runs"]] == [history.held.run_id]
        assert [run["id"] for run in runs] == [history.held.run_id, history.partial.run_id]
        assert [run["status"] for run in runs] == ["blocked", "partial"]
        assert runs[1]["counts"]["created"] == 9
        assert runs[1]["counts"]["rejected"] == 1
        assert runs[1]["counts"]["failed"] == 1
        assert [plan["id"] for plan in status["held_plans"]] == [history.plan_id]
        assert status["held_plans"][0]["run_id"] == history.held.run_id
        assert "deactivat" in status["held_plans"][0]["reason"]
        assert [(f["key"], f["action"], f["attempts"]) for f in status["failing"]] == [
            ("E0003", "create", 1)
        ]
        assert status["failing"][0]["stuck"] is False

    def test_table(self, history: History) -> None:
        """The table form names both runs, the held plan with how to approve it, and E0003."""
        result = run_command(history.config, "status")

        output = " ".join(result.stdout.split())
        assert result.returncode == 0
        assert history.held.run_id in output
        assert history.partial.run_id in output
        assert "blocked" in output
        assert "partial" in output
        assert "staffsync sync --approve ID" in output
        assert history.plan_id in output
        assert "E0003" in output
        assert "No failing records." not in output

    def test_empty_state(self, any_bench: Bench) -> None:
        """A state database without runs shows empty lists."""
        config = cli_config(any_bench, any_bench.folder / "staffsync.toml")
        assert run_command(config, "db", "upgrade").returncode == 0

        result = run_command(config, "status", "--format", "json")

        assert result.returncode == 0
        assert json.loads(result.stdout) == {"runs": [], "held_plans": [], "failing": []}


class TestCommandStreams:
    """Log lines go to stderr, so a command's standard output stays machine-readable."""

    @pytest.fixture
    def state_url(self, sqlite_url: str) -> str:
        """Where the log lines go does not depend on the state database."""
        return sqlite_url

    def test_plan_json_with_json_logs(self, bench: Bench) -> None:
        """plan --format json prints one JSON document even with --log-format json."""
        bench.write_export([person(n) for n in range(1, 4)])
        config = cli_config(bench, bench.folder / "staffsync.toml")

        result = run_command(config, "--log-format", "json", "plan", "--format", "json")

        plan = json.loads(result.stdout)
        events = [json.loads(line)["event"] for line in result.stderr.splitlines()]
        assert result.returncode == 0
        assert plan["counts"]["created"] == 3
        assert "run_finished" in events
