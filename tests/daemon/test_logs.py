"""The JSON log lines of ``staffsync run``, read from a real daemon process.

A run with retries logs from the run's thread and from the engine's worker threads;
each of those lines must name the run.
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from tests.daemon.processes import daemon_config, wait_until, write_export
from tests.sync.harness import person

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.daemon.processes import EmulatorProcess, StaffsyncProcess

# Modules that log only while a run is in progress.
RUN_LOGGERS = (
    "staffsync.runner",
    "staffsync.engine.",
    "staffsync.planning.",
    "staffsync.staffbase.",
    "staffsync.sources.",
)


@pytest.mark.slow
class TestDaemonLogs:
    """Every line is JSON, and every event of a run carries its run_id."""

    def test_runs_carry_run_id(
        self,
        tmp_path: Path,
        sqlite_url: str,
        emulator_process: EmulatorProcess,
        spawn: Callable[..., StaffsyncProcess],
    ) -> None:
        """Retries in worker threads, the run's own events and its summary name the run."""
        export = tmp_path / "export.csv"
        write_export(export, (person(n) for n in range(1, 61)))
        emulator_process.post("/__emulator/faults", {"error_rate": 0.3})
        config = daemon_config(
            tmp_path / "staffsync.toml",
            emulator_url=emulator_process.url,
            state_url=sqlite_url,
            export=export,
            staffbase={"max_attempts": 8, "retry_initial_wait_seconds": 0.05},
        )
        daemon = spawn("daemon", config, "run")
        daemon.wait_for_event("run_finished")
        emulator_process.post("/__emulator/faults", {"error_rate": 0})
        write_export(export, (person(n, title="Lead") for n in range(1, 61)))
        wait_until(lambda: len(daemon.events("run_finished")) >= 3, 60, "three runs")
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0

        lines = daemon.stdout.read_text(encoding="utf-8").splitlines()
        events = [json.loads(line) for line in lines]
        run_ids = [event["run_id"] for event in daemon.events("run_started")]
        in_runs = [e for e in events if str(e.get("logger", "")).startswith(RUN_LOGGERS)]
        retries = [e for e in events if e["event"] == "staffbase_request_retry"]
        finished = Counter(event["run_id"] for event in daemon.events("run_finished"))
        assert daemon.stderr.read_text() == ""
        assert len(run_ids) >= 3
        assert retries != []
        assert [e for e in in_runs if e.get("run_id") not in run_ids] == []
        assert finished == Counter(dict.fromkeys(run_ids, 1))
        for event in events:
            assert {"timestamp", "level", "logger", "event"} <= set(event), event
