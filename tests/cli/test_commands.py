"""The command line as an operator uses it: subprocesses, real emulator, example config."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def staffsync(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m staffsync ARGS`` and return the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "staffsync", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def emulator_process(tmp_path: Path) -> Iterator[str]:
    """A ``staffsync emulator`` subprocess on a free port; yields its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "staffsync", "emulator", "--port", "0"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    first = process.stdout.readline().strip()
    prefix = "staffsync emulator listening on "
    assert first.startswith(prefix), first
    try:
        yield first.removeprefix(prefix)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


@pytest.fixture
def example(tmp_path: Path, emulator_process: str) -> tuple[Path, dict[str, str]]:
    """A temporary copy of the example folder, and the environment aiming it at the emulator."""
    folder = tmp_path / "examples"
    shutil.copytree(EXAMPLES, folder, ignore=shutil.ignore_patterns("*.db*", "__pycache__"))
    env = {
        "STAFFSYNC_STAFFBASE__BASE_URL": f"{emulator_process}/api",
        "STAFFSYNC_STAFFBASE__TOKEN_URL": f"{emulator_process}/oauth2/token",
        # The example's 10 requests per second would make this test take a minute.
        "STAFFSYNC_STAFFBASE__MAX_REQUESTS_PER_SECOND": "400",
        "STAFFSYNC_STAFFBASE__MAX_CONCURRENCY": "8",
        "STAFFSYNC_STATE__URL": f"sqlite:///{tmp_path / 'state.db'}",
    }
    return folder, env


def emulator_json(url: str, path: str) -> Any:
    response = httpx.get(f"{url}{path}", timeout=10)
    response.raise_for_status()
    return response.json()


class TestDemo:
    def test_demo_syncs_twice(self, tmp_path: Path) -> None:
        """``staffsync demo`` creates the sample roster, then finds nothing to change."""
        result = staffsync("demo", "--keep", str(tmp_path / "demo"), cwd=tmp_path)

        first = json.loads((tmp_path / "demo" / "run-1.json").read_text(encoding="utf-8"))
        second = json.loads((tmp_path / "demo" / "run-2.json").read_text(encoding="utf-8"))
        assert result.returncode == 0, result.stderr
        assert first["counts"]["created"] == 487
        assert first["counts"]["failed"] == 0
        assert second["counts"]["unchanged"] == 500
        assert second["changes"] == []
        assert "1 access token(s)" in result.stdout


class TestExampleConfig:
    def test_sync_update_plan_status(
        self, example: tuple[Path, dict[str, str]], emulator_process: str
    ) -> None:
        """The example config syncs, a title change sends one minimal PUT, plan and status work."""
        folder, env = example
        config = str(folder / "staffsync.toml")

        first = staffsync(
            "--config", config, "sync", "--report-json", "r1.json", cwd=folder, env=env
        )
        rows = list(csv.DictReader((folder / "sailpoint_identities.csv").open(encoding="utf-8")))
        rows[1]["title"] = "Head of Everything"
        with (folder / "sailpoint_identities.csv").open("w", encoding="utf-8", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        planned = staffsync("--config", config, "plan", cwd=folder, env=env)
        second = staffsync("--config", config, "sync", cwd=folder, env=env)
        status = staffsync("--config", config, "status", "--format", "json", cwd=folder, env=env)

        users = emulator_json(emulator_process, "/__emulator/users")
        puts = [
            r
            for r in emulator_json(emulator_process, "/__emulator/requests")
            if r["method"] == "PUT"
        ]
        assert first.returncode == 0, first.stderr
        assert (
            json.loads((folder / "r1.json").read_text(encoding="utf-8"))["counts"]["created"] == 487
        )
        assert len(users) == 487
        assert {u["status"] for u in users} == {"pending"}
        assert planned.returncode == 0, planned.stderr
        assert "Head of Everything" in planned.stdout
        assert second.returncode == 0, second.stderr
        assert len(puts) == 1
        assert puts[0]["body"] == {"position": "Head of Everything"}
        assert status.returncode == 0, status.stderr
        assert [run["status"] for run in json.loads(status.stdout)["runs"]] == [
            "succeeded",
            "succeeded",
        ]

    def test_plan_json_is_the_report(self, example: tuple[Path, dict[str, str]]) -> None:
        """``plan --format json`` prints the run report and nothing else on stdout."""
        folder, env = example

        result = staffsync(
            "--config",
            str(folder / "staffsync.toml"),
            "plan",
            "--format",
            "json",
            cwd=folder,
            env=env,
        )

        report = json.loads(result.stdout)
        assert result.returncode == 0, result.stderr
        assert report["dry_run"] is True
        assert report["counts"]["created"] == 487
        assert len(report["changes"]) == 487


class TestExitCodes:
    def test_bad_config_is_2(self, tmp_path: Path) -> None:
        """An invalid configuration exits 2 and names the key."""
        config = tmp_path / "bad.toml"
        config.write_text("[staffbase]\nmax_concurrency = 0\n", encoding="utf-8")

        result = staffsync("--config", str(config), "sync", cwd=tmp_path)

        assert result.returncode == 2
        assert "[staffbase] max_concurrency" in result.stderr

    def test_no_configuration_is_2_and_creates_nothing(self, tmp_path: Path) -> None:
        """Without a file or variables, a command refuses to run on built-in defaults."""
        env = {name: value for name, value in os.environ.items() if "__" not in name}
        env.pop("STAFFSYNC_CONFIG", None)

        result = subprocess.run(
            [sys.executable, "-m", "staffsync", "status"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        assert result.returncode == 2
        assert "no configuration: pass --config PATH" in result.stderr
        assert list(tmp_path.iterdir()) == []

    def test_status_of_a_missing_sqlite_file_is_2(self, tmp_path: Path) -> None:
        """A mistyped state path is reported, and no empty database is created."""
        config = tmp_path / "c.toml"
        missing = tmp_path / "typo" / "state.db"
        config.write_text(f'[state]\nurl = "sqlite:///{missing}"\n', encoding="utf-8")

        result = staffsync("--config", str(config), "status", cwd=tmp_path)

        assert result.returncode == 2
        assert "does not exist: check [state] url" in result.stderr
        assert not missing.parent.exists()

    def test_missing_export_is_1(self, example: tuple[Path, dict[str, str]]) -> None:
        """An export that does not exist fails the run with exit 1 and says which file."""
        folder, env = example
        env = {**env, "STAFFSYNC_SOURCE__PATH": "missing.csv"}

        result = staffsync(
            "--config",
            str(folder / "staffsync.toml"),
            "sync",
            "--report-json",
            "r.json",
            cwd=folder,
            env=env,
        )

        report = json.loads((folder / "r.json").read_text(encoding="utf-8"))
        assert result.returncode == 1
        assert report["status"] == "failed"
        assert "missing.csv" in report["error"]

    def test_unwritable_report_path_is_2_before_any_request(
        self, example: tuple[Path, dict[str, str]], emulator_process: str
    ) -> None:
        """A report path inside a file is refused before anything is sent."""
        folder, env = example

        result = staffsync(
            "--config",
            str(folder / "staffsync.toml"),
            "sync",
            "--report-json",
            str(folder / "staffsync.toml" / "r.json"),
            cwd=folder,
            env=env,
        )

        assert result.returncode == 2
        assert "is inside" in result.stderr
        assert "a file" in result.stderr
        assert emulator_json(emulator_process, "/__emulator/stats")["requests"] == {}

    def test_missing_secret_is_2_but_plan_needs_none(
        self, example: tuple[Path, dict[str, str]], tmp_path: Path
    ) -> None:
        """A sync without the client secret is a configuration error; a plan sends nothing."""
        folder, env = example
        config = folder / "staffsync.toml"
        text = config.read_text(encoding="utf-8").replace('client_secret = "demo-secret"', "")
        config.write_text(text, encoding="utf-8")

        synced = staffsync("--config", str(config), "sync", cwd=folder, env=env)
        planned = staffsync("--config", str(config), "plan", cwd=folder, env=env)

        assert synced.returncode == 2
        assert "needs client_id and client_secret" in synced.stderr
        assert "Traceback" not in synced.stderr
        assert planned.returncode == 0

    def test_rejected_rows_are_4_and_held_plan_is_3(
        self, example: tuple[Path, dict[str, str]]
    ) -> None:
        """A run with rejected rows exits 4; a run the guards hold exits 3."""
        folder, env = example
        config = str(folder / "staffsync.toml")
        export = folder / "sailpoint_identities.csv"
        lines = export.read_text(encoding="utf-8").splitlines(keepends=True)
        staffsync("--config", config, "sync", cwd=folder, env=env)

        export.write_text(
            "".join([*lines[:5], "E999999,,,,,,,,,nonsense,\n", *lines[5:]]), encoding="utf-8"
        )
        partial = staffsync("--config", config, "sync", cwd=folder, env=env)
        export.write_text("".join(lines[:100]), encoding="utf-8")
        held = staffsync("--config", config, "sync", cwd=folder, env=env)

        assert partial.returncode == 4, partial.stdout + partial.stderr
        assert held.returncode == 3, held.stdout + held.stderr
        assert "--approve" in held.stdout

    def test_db_upgrade_and_current(self, tmp_path: Path) -> None:
        """``db upgrade`` creates the schema and ``db current`` reports it."""
        env = {"STAFFSYNC_STATE__URL": f"sqlite:///{tmp_path / 's.db'}"}

        upgraded = staffsync("db", "upgrade", cwd=tmp_path, env=env)
        current = staffsync("db", "current", cwd=tmp_path, env=env)

        assert upgraded.returncode == 0, upgraded.stderr
        assert "state database at revision 0003 (was empty)" in upgraded.stdout
        assert "current: 0003" in current.stdout


class TestInterrupt:
    @pytest.mark.slow
    def test_ctrl_c_stops_after_requests_in_flight(
        self, example: tuple[Path, dict[str, str]], emulator_process: str
    ) -> None:
        """SIGINT stops sending; the next sync creates the rest, each user once."""
        folder, env = example
        httpx.post(f"{emulator_process}/__emulator/faults", json={"latency_ms": 150}, timeout=10)
        args = [sys.executable, "-m", "staffsync", "--config", str(folder / "staffsync.toml")]
        process = subprocess.Popen(
            [*args, "sync"],
            cwd=folder,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        created = 0
        for _ in range(200):
            stats = emulator_json(emulator_process, "/__emulator/stats")
            created = stats["requests"].get("POST /api/users", 0)
            if created >= 20:
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        stopped_at = emulator_json(emulator_process, "/__emulator/stats")["requests"]

        httpx.post(f"{emulator_process}/__emulator/faults", json={"latency_ms": 0}, timeout=10)
        rest = staffsync("--config", str(folder / "staffsync.toml"), "sync", cwd=folder, env=env)
        users = emulator_json(emulator_process, "/__emulator/users")

        assert created >= 20
        assert process.returncode == 1
        assert "stopping after the requests in flight" in stderr
        assert stopped_at["POST /api/users"] < 487
        assert rest.returncode == 0, rest.stderr
        external_ids = [user["externalID"] for user in users]
        assert len(external_ids) == len(set(external_ids)) == 487

    @pytest.mark.slow
    def test_ctrl_c_while_planning_sends_nothing(
        self, example: tuple[Path, dict[str, str]], emulator_process: str
    ) -> None:
        """A stop during the pending leavers' status lookups ends the run before any write."""
        folder, env = example
        config = str(folder / "staffsync.toml")
        export = folder / "sailpoint_identities.csv"
        assert staffsync("--config", config, "sync", cwd=folder, env=env).returncode == 0
        lines = export.read_text(encoding="utf-8").splitlines(keepends=True)
        export.write_text("".join(lines[:-150]), encoding="utf-8")
        env = {**env, "STAFFSYNC_SAFETY__MAX_DEACTIVATIONS": "1000"}
        httpx.post(f"{emulator_process}/__emulator/faults", json={"latency_ms": 200}, timeout=10)
        before = emulator_json(emulator_process, "/__emulator/stats")["requests"]

        process = subprocess.Popen(
            [sys.executable, "-m", "staffsync", "--config", config, "sync"],
            cwd=folder,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(3)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
        after = emulator_json(emulator_process, "/__emulator/stats")["requests"]

        assert process.returncode == 1
        assert "stopped while planning, before anything was sent" in stderr
        assert after.get("DELETE /api/users/{id}", 0) == before.get("DELETE /api/users/{id}", 0)
        assert after.get("PUT /api/users/{id}", 0) == before.get("PUT /api/users/{id}", 0)

    @pytest.mark.slow
    def test_killed_run_is_counted_by_the_next(
        self, example: tuple[Path, dict[str, str]], emulator_process: str
    ) -> None:
        """After kill -9, the dead run's record counts the users it created."""
        folder, env = example
        config = str(folder / "staffsync.toml")
        httpx.post(f"{emulator_process}/__emulator/faults", json={"latency_ms": 100}, timeout=10)
        process = subprocess.Popen(
            [sys.executable, "-m", "staffsync", "--config", config, "sync"],
            cwd=folder,
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(300):
            created = emulator_json(emulator_process, "/__emulator/stats")["requests"]
            if created.get("POST /api/users", 0) >= 30:
                break
            time.sleep(0.05)
        process.kill()
        process.wait(timeout=10)
        httpx.post(f"{emulator_process}/__emulator/faults", json={"latency_ms": 0}, timeout=10)

        rest = staffsync("--config", config, "sync", cwd=folder, env=env)
        status = staffsync("--config", config, "status", "--format", "json", cwd=folder, env=env)
        runs = json.loads(status.stdout)["runs"]

        assert rest.returncode == 0, rest.stderr
        finished, dead = runs[0], runs[1]
        assert dead["status"] == "failed"
        assert dead["counts"]["created"] > 0
        assert dead["counts"]["created"] + finished["counts"]["created"] == 487
        assert len(emulator_json(emulator_process, "/__emulator/users")) == 487
