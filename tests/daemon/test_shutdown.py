"""SIGTERM in the middle of a large run of ``staffsync run``.

The daemon must stop within ``[ops] shutdown_grace_seconds`` with exit status 0, leave
no change journaled as ``sent``, and let the next run finish the work without sending a
create twice.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from staffsync.settings import StateSettings
from staffsync.state import schema
from staffsync.state.database import create_state_engine
from tests.daemon.processes import daemon_config, staffsync_command, wait_until, write_export
from tests.sync.harness import person

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.daemon.processes import EmulatorProcess, StaffsyncProcess

PEOPLE = 3000
GRACE_SECONDS = 20
# With 4 requests in flight, 3000 creates at 10 ms each take several seconds.
LATENCY_MS = 10
CREATES_BEFORE_SIGNAL = 300


def _journal_states(state_url: str) -> Counter[str]:
    engine = create_state_engine(StateSettings(url=state_url))
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.select(schema.changes.c.state, sa.func.count()).group_by(schema.changes.c.state)
            )
            return Counter({state: count for state, count in rows})
    finally:
        engine.dispose()


@pytest.mark.slow
class TestSigtermMidRun:
    """A daemon stopped in the middle of 3,000 creates stops cleanly and loses nothing."""

    def test_stop_and_resume(
        self,
        tmp_path: Path,
        state_url: str,
        emulator_process: EmulatorProcess,
        spawn: Callable[..., StaffsyncProcess],
    ) -> None:
        """The daemon exits 0 in time, nothing stays 'sent', and a sync completes the rest."""
        emulator = emulator_process
        export = tmp_path / "export.csv"
        write_export(export, (person(n) for n in range(1, PEOPLE + 1)))
        emulator.post("/__emulator/faults", {"latency_ms": LATENCY_MS})
        config = daemon_config(
            tmp_path / "staffsync.toml",
            emulator_url=emulator.url,
            state_url=state_url,
            export=export,
            schedule={"sync": "1h"},
            ops={"shutdown_grace_seconds": GRACE_SECONDS},
        )
        daemon = spawn("daemon", config, "run")
        wait_until(
            lambda: emulator.write_counts()["POST"] >= CREATES_BEFORE_SIGNAL,
            60,
            f"{CREATES_BEFORE_SIGNAL} creates",
        )

        daemon.signal(signal.SIGTERM)
        signalled = time.monotonic()
        code = daemon.wait(GRACE_SECONDS + 10)
        stop_seconds = time.monotonic() - signalled

        sent_before_stop = emulator.write_counts()["POST"]
        journal = _journal_states(state_url)
        run = daemon.events("run_finished")[0]
        stopped = daemon.events("daemon_stopped")[0]
        assert code == 0
        assert stop_seconds < GRACE_SECONDS
        assert stopped["in_flight"] == "finished"
        assert run["status"] == "failed"
        assert run["created"] == sent_before_stop
        assert sent_before_stop < PEOPLE
        assert journal["sent"] == 0
        assert journal["done"] == sent_before_stop
        assert journal["planned"] == PEOPLE - sent_before_stop

        emulator.post("/__emulator/faults", {"latency_ms": 0})
        resumed = subprocess.run(
            staffsync_command("--config", str(config), "sync"),
            capture_output=True,
            timeout=300,
            check=False,
        )

        users = emulator.users()
        external_ids = Counter(user["externalID"] for user in users)
        assert resumed.returncode == 0, resumed.stderr.decode(errors="replace")[-2000:]
        assert emulator.write_counts() == {"POST": PEOPLE, "PUT": 0, "PATCH": 0, "DELETE": 0}
        assert len(users) == PEOPLE
        assert max(external_ids.values()) == 1
        assert _journal_states(state_url)["sent"] == 0
