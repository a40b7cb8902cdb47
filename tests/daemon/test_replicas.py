"""Two ``staffsync run`` replicas on one PostgreSQL state database and one emulator.

Both replicas schedule an incremental run every 2 s. The test changes the export between
cycles and checks that each change reaches Staffbase exactly once, that the run lock
makes the replicas take turns, and that both stop cleanly on SIGTERM.
"""

from __future__ import annotations

import itertools
import signal
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from tests.daemon.processes import (
    MetricSamples,
    daemon_config,
    free_port,
    wait_until,
    write_export,
)
from tests.sync.harness import person

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.daemon.processes import EmulatorProcess, StaffsyncProcess

CYCLES = 12
CONVERGE_SECONDS = 45.0
QUIET_SECONDS = 5.0
# Every request waits this long in the emulator, so a run with changes lasts longer
# than the gap between the two replicas' ticks, and the other replica finds the lock held.
LATENCY_MS = 250


class Roster:
    """The export's people by key, and what each cycle changed."""

    def __init__(self, count: int) -> None:
        self.rows = {row["employee_id"]: row for row in (person(n) for n in range(1, count + 1))}
        self.next_number = count + 1
        self.left: set[str] = set()

    def add(self, count: int) -> list[str]:
        added = []
        for _ in range(count):
            row = person(self.next_number)
            self.rows[row["employee_id"]] = row
            added.append(row["employee_id"])
            self.next_number += 1
        return added

    def retitle(self, keys: list[str], title: str) -> None:
        for key in keys:
            self.rows[key]["title"] = title

    def new_email(self, key: str, cycle: int) -> None:
        self.rows[key]["work_email"] = f"{key.lower()}.c{cycle}@example.com"

    def remove(self, keys: list[str]) -> None:
        for key in keys:
            del self.rows[key]
        self.left.update(keys)


def _tenant_matches(emulator: EmulatorProcess, roster: Roster) -> bool:
    users = {user.get("externalID"): user for user in emulator.users()}
    for key, row in roster.rows.items():
        user = users.get(key)
        if user is None or user["status"] == "deactivated":
            return False
        if user.get("position") != row["title"]:
            return False
        if user["emails"][0]["value"] != row["work_email"]:
            return False
    return all(users[key]["status"] == "deactivated" for key in roster.left if key in users)


def _run_intervals(process: StaffsyncProcess) -> list[tuple[datetime, datetime, str]]:
    started = {e["run_id"]: e["timestamp"] for e in process.events("run_started")}
    finished = {e["run_id"]: e["timestamp"] for e in process.events("run_finished")}
    return [
        (datetime.fromisoformat(started[run]), datetime.fromisoformat(finished[run]), run)
        for run in started
        if run in finished
    ]


def _last_applied(process: StaffsyncProcess) -> str:
    """Return when the process last finished a run that updated someone ('' if never)."""
    applied = [e["timestamp"] for e in process.events("run_finished") if e["updated"]]
    return max(applied, default="")


@pytest.mark.slow
class TestTwoReplicas:
    """Two daemons on one PostgreSQL database apply every change once and take turns."""

    def test_cycles_apply_once(
        self,
        tmp_path: Path,
        postgres_url: str,
        emulator_process: EmulatorProcess,
        spawn: Callable[..., StaffsyncProcess],
    ) -> None:
        """Over twelve changed exports, with a replica restarted, each change is sent once."""
        emulator = emulator_process
        export = tmp_path / "export.csv"
        roster = Roster(20)
        write_export(export, roster.rows.values())
        emulator.post("/__emulator/faults", {"latency_ms": LATENCY_MS})
        configs = [
            daemon_config(
                tmp_path / f"replica{index}.toml",
                emulator_url=emulator.url,
                state_url=postgres_url,
                export=export,
                ops_port=free_port(),
            )
            for index in range(2)
        ]
        replicas = [spawn(f"replica{index}", config, "run") for index, config in enumerate(configs)]
        processes = list(replicas)

        # Both replicas start at once on an empty database: one migrates, both come up.
        for replica in replicas:
            replica.wait_for_event("daemon_started")
        wait_until(lambda: _tenant_matches(emulator, roster), CONVERGE_SECONDS, "the first sync")
        assert emulator.write_counts() == {"POST": 20, "PUT": 0, "PATCH": 0, "DELETE": 0}
        emulator.post("/__emulator/sign-in", {})

        for cycle in range(1, CYCLES + 1):
            if cycle == CYCLES // 2:
                # The replica that applied the last cycle stops, and the other one takes over.
                busy = max(replicas, key=_last_applied)
                busy.signal(signal.SIGTERM)
                assert busy.wait() == 0
                replicas.remove(busy)
            if cycle == CYCLES * 3 // 4:
                # It comes back, as after a rolling update.
                index = processes.index(busy)
                restarted = spawn(f"replica{index}-restarted", configs[index], "run")
                restarted.wait_for_event("daemon_started")
                replicas.append(restarted)
                processes.append(restarted)
            self._cycle(emulator, roster, export, cycle)

        # Quiet period: the replicas keep ticking, and nothing is sent again.
        writes_before = emulator.write_counts()
        runs_before = sum(len(r.events("run_finished")) for r in replicas)
        wait_until(
            lambda: sum(len(r.events("run_finished")) for r in replicas) >= runs_before + 2,
            CONVERGE_SECONDS,
            "two more runs",
        )
        assert emulator.write_counts() == writes_before

        users = emulator.users()
        external_ids = Counter(user.get("externalID") for user in users)
        emails = Counter(user["emails"][0]["value"].lower() for user in users)
        active = {u["externalID"] for u in users if u["status"] != "deactivated"}
        assert [key for key, count in external_ids.items() if count > 1] == []
        assert [email for email, count in emails.items() if count > 1] == []
        assert active == set(roster.rows)
        assert _tenant_matches(emulator, roster)

        self._check_turns(processes)
        for replica in replicas:
            self._check_metrics(replica)
        self._check_one_migration(processes, postgres_url)

        for replica in replicas:
            replica.signal(signal.SIGTERM)
        codes = [replica.wait() for replica in replicas]
        assert codes == [0, 0]
        for process in processes:
            assert [event["exit_code"] for event in process.events("daemon_stopped")] == [0]

    def _cycle(self, emulator: EmulatorProcess, roster: Roster, export: Path, cycle: int) -> None:
        existing = sorted(roster.rows)
        removed = existing[-2:]
        retitled = existing[:3]
        new_email = existing[3]
        ids = {user.get("externalID"): user["id"] for user in emulator.users()}
        writes_before = emulator.write_counts()
        log_before = len(emulator.get("/__emulator/requests"))

        added = roster.add(3)
        roster.retitle(retitled, f"Title {cycle}")
        roster.new_email(new_email, cycle)
        roster.remove(removed)
        write_export(export, roster.rows.values())
        wait_until(
            lambda: _tenant_matches(emulator, roster), CONVERGE_SECONDS, f"cycle {cycle} to apply"
        )

        writes = emulator.write_counts()
        delta = {method: writes[method] - writes_before[method] for method in writes}
        # Creates are POSTs; title and e-mail changes and deactivations are PUTs.
        assert delta == {"POST": 3, "PUT": 6, "PATCH": 0, "DELETE": 0}, f"cycle {cycle}"

        log = emulator.get("/__emulator/requests")[log_before:]
        posted = sorted(entry["body"]["externalID"] for entry in log if entry["method"] == "POST")
        put_ids = Counter(
            entry["path"].rsplit("/", 1)[-1] for entry in log if entry["method"] == "PUT"
        )
        assert posted == sorted(added), f"cycle {cycle}"
        assert put_ids == Counter(ids[key] for key in [*retitled, new_email, *removed])
        deactivations = [
            entry["path"].rsplit("/", 1)[-1]
            for entry in log
            if entry["method"] == "PUT" and entry["body"].get("status") == "deactivated"
        ]
        assert sorted(deactivations) == sorted(ids[key] for key in removed)

        # The new people sign in, so that they are deactivated, not deleted, when they leave.
        emulator.post("/__emulator/sign-in", {})

    def _check_turns(self, processes: list[StaffsyncProcess]) -> None:
        intervals = sorted(
            interval for process in processes for interval in _run_intervals(process)
        )
        overlapping = [
            (earlier[2], later[2])
            for earlier, later in itertools.pairwise(intervals)
            if later[0] < earlier[1]
        ]
        applied = [
            process.name
            for process in processes
            if any(event["updated"] for event in process.events("run_finished"))
        ]
        skipped = [
            (process, event)
            for process in processes
            for event in process.events("run_skipped")
            if event.get("reason") == "run lock held"
        ]
        assert overlapping == []
        assert len(applied) >= 2, applied
        assert skipped != []
        for process, event in skipped:
            others = [other.pid for other in processes if other is not process]
            assert any(f"(pid {pid} on " in event["holder"] for pid in others), event["holder"]
            assert event["level"] == "warning"

    def _check_metrics(self, replica: StaffsyncProcess) -> None:
        port = replica.events("daemon_started")[0]["ops_port"]
        response = replica.ops_get("/metrics", port)
        samples = MetricSamples(response.text)
        finished = Counter(event["status"] for event in replica.events("run_finished"))
        skipped = [
            event
            for event in replica.events("run_skipped")
            if event.get("reason") == "run lock held"
        ]
        assert response.status_code == 200
        assert samples.total("staffsync_runs_total") == sum(finished.values())
        for status, count in finished.items():
            runs = samples.value("staffsync_runs_total", mode="incremental", status=status)
            assert runs == count
        assert samples.value("staffsync_run_lock_skipped_total") == len(skipped)
        assert replica.ops_get("/readyz", port).status_code == 200
        assert replica.ops_get("/healthz", port).status_code == 200

    def _check_one_migration(self, processes: list[StaffsyncProcess], state_url: str) -> None:
        migrated = [event for process in processes for event in process.events("state_db_migrated")]
        assert len(migrated) == 1
        engine = sa.create_engine(state_url)
        try:
            with engine.connect() as connection:
                versions = connection.execute(sa.text("SELECT version_num FROM alembic_version"))
                assert [row[0] for row in versions] == [migrated[0]["revision_after"]]
        finally:
            engine.dispose()
