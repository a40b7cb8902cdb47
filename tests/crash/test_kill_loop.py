"""``staffsync sync`` killed with SIGKILL at random moments converges without duplicates.

Each test starts the emulator as a process and kills a real ``python -m staffsync
sync`` 20 or more times: during start-up, while it settles the changes an earlier kill
left open, and while it sends. It restarts the sync each time, lets a last run finish,
and then compares every user of the tenant with the export. The delays come from a seeded
random source; the seed is in every assertion message.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from staffsync.sample import write_export
from tests.crash.harness import (
    EmulatorProcess,
    KillLoop,
    read_export,
    run_sync,
    tenant_problems,
    write_config,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

PEOPLE = 2000
KILLS = 22
CHANGE_KINDS = ("created", "updated", "deactivated", "reactivated", "deleted")

pytestmark = pytest.mark.slow


@pytest.fixture
def emulator_process(tmp_path: Path) -> Iterator[EmulatorProcess]:
    """``staffsync emulator --port 0`` as a child process, stopped after the test."""
    process = EmulatorProcess(tmp_path / "emulator.log")
    try:
        yield process
    finally:
        process.stop()


def finish_and_check(
    emulator: EmulatorProcess,
    config: Path,
    export: Path,
    state_url: str,
    seed: int,
    loop: KillLoop,
    *,
    deactivated_keys: set[str] | frozenset[str] = frozenset(),
) -> None:
    """Let a run finish, then check the tenant, the journal and a further run."""
    context = f"seed {seed}; attempts: {loop.summary()}"
    print(context)  # shown by pytest -rP, to see where the kills landed
    report_path = config.with_name("report.json")
    final = run_sync(config, report_path)
    if final.returncode == 4:
        # A record may fail for good under injected faults; the next run retries it.
        final = run_sync(config, report_path)
    assert final.returncode == 0, f"{context}\n{final.stderr[-3000:]}"

    emulator.faults(latency_ms=0, drop_rate=0, error_rate=0)
    problems = tenant_problems(
        emulator.users(), read_export(export), deactivated_keys=deactivated_keys
    )
    assert problems == [], context
    # The emulator rejects a second user with the same externalID, so duplicates cannot
    # appear in the tenant; a create sent again blindly would show up as a 409 instead.
    assert emulator.stats()["responses"].get("409", 0) == 0, context

    engine = sa.create_engine(state_url)
    with engine.connect() as connection:
        open_changes = connection.execute(
            sa.text("SELECT count(*) FROM changes WHERE state = 'sent'")
        ).scalar_one()
    engine.dispose()
    assert open_changes == 0, context

    again = run_sync(config, report_path)
    assert again.returncode == 0, f"{context}\n{again.stderr[-3000:]}"
    assert {kind: again.report["counts"][kind] for kind in CHANGE_KINDS} == dict.fromkeys(
        CHANGE_KINDS, 0
    ), context
    assert again.report["counts"]["failed"] == 0, context


def first_load_config(tmp_path: Path, emulator: EmulatorProcess, state_url: str) -> Path:
    """Write the export and a config that paces 2,000 creates over about 13 seconds.

    Unpaced, the creates take a few seconds, too few for most kills to land while
    the run sends.
    """
    export = tmp_path / "export.csv"
    write_export(export, PEOPLE)
    return write_config(
        tmp_path / "staffsync.toml",
        emulator=emulator,
        export=export,
        state_url=state_url,
        staffbase={"max_requests_per_second": 150},
    )


def check_kills_spread(loop: KillLoop, seed: int) -> None:
    landed = loop.landed()
    context = f"seed {seed}; attempts: {loop.summary()}"
    assert loop.kill_count >= 20, context
    assert landed["startup"] >= 1, context
    assert landed["settle"] >= 1, context
    assert landed["apply"] >= 5, context


class TestKilledFirstLoad:
    def test_sqlite_with_latency(
        self, emulator_process: EmulatorProcess, tmp_path: Path, sqlite_url: str
    ) -> None:
        """Creating 2,000 people, killed 22 times, ends with each of them exactly once."""
        seed = 4101
        config = first_load_config(tmp_path, emulator_process, sqlite_url)

        loop = KillLoop(config, sqlite_url, random.Random(seed), emulator_process)
        loop.run(KILLS)

        check_kills_spread(loop, seed)
        finish_and_check(emulator_process, config, tmp_path / "export.csv", sqlite_url, seed, loop)

    @pytest.mark.postgres
    def test_postgres_with_dropped_connections(
        self, emulator_process: EmulatorProcess, tmp_path: Path, postgres_url: str
    ) -> None:
        """With 5 % of connections dropped (some after the user was created) it still converges."""
        seed = 4102
        config = first_load_config(tmp_path, emulator_process, postgres_url)
        emulator_process.faults(drop_rate=0.05)

        loop = KillLoop(config, postgres_url, random.Random(seed), emulator_process)
        loop.run(KILLS)

        check_kills_spread(loop, seed)
        stats = emulator_process.stats()
        assert stats["dropped"]["after"] > 0, f"seed {seed}"
        finish_and_check(
            emulator_process, config, tmp_path / "export.csv", postgres_url, seed, loop
        )


class TestKilledUpdates:
    def test_titles_changed_and_leavers(
        self, emulator_process: EmulatorProcess, tmp_path: Path, sqlite_url: str
    ) -> None:
        """Updates of 10 % and deactivations of 2 %, killed 22 times, all land exactly once."""
        seed = 4103
        export = tmp_path / "export.csv"
        write_export(export, PEOPLE)
        config_path = tmp_path / "staffsync.toml"
        config = write_config(
            config_path, emulator=emulator_process, export=export, state_url=sqlite_url
        )
        first = run_sync(config, tmp_path / "report.json")
        assert first.returncode == 0, first.stderr[-3000:]
        emulator_process.sign_in_everyone()
        before = {row["employee_id"] for row in read_export(export) if row["status"] == "active"}

        write_export(export, PEOPLE, changed=0.10, leavers=0.02)
        after = {row["employee_id"] for row in read_export(export)}
        # About 240 changes, and status lookups of 40 leavers, at 30 requests a second
        # keep each run busy for several seconds, so that most kills land while it sends.
        write_config(
            config_path,
            emulator=emulator_process,
            export=export,
            state_url=sqlite_url,
            staffbase={"max_requests_per_second": 30},
        )
        loop = KillLoop(
            config, sqlite_url, random.Random(seed), emulator_process, apply_delay_s=(1.2, 3.5)
        )
        loop.run(KILLS)

        check_kills_spread(loop, seed)
        finish_and_check(
            emulator_process,
            config,
            export,
            sqlite_url,
            seed,
            loop,
            deactivated_keys=before - after,
        )
