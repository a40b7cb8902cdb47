"""Tests for ``.ci/ensure-postgres`` with stand-ins for ``pg_isready`` and ``psql``.

The stand-ins record how they were called, so the tests can check that the script never
lets psql wait for a password, without touching the real PostgreSQL server.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / ".ci" / "ensure-postgres"

FAKE_PSQL = """#!/usr/bin/env bash
echo "timeout=${PGCONNECT_TIMEOUT:-unset} args=$*" >> "$FAKE_LOG"
if [ "$FAKE_LOGIN" != "ok" ]; then
    echo "psql: error: fe_sendauth: no password supplied" >&2
    exit 2
fi
case "$*" in
    *"FROM pg_database"*) [ "$FAKE_TEST_DB" = "yes" ] && echo 1 ;;
esac
exit 0
"""

FAKE_PG_ISREADY = """#!/usr/bin/env bash
exit 0
"""


@pytest.fixture
def fakes(tmp_path: Path) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    for name, text in (("psql", FAKE_PSQL), ("pg_isready", FAKE_PG_ISREADY)):
        path = folder / name
        path.write_text(text)
        path.chmod(0o755)
    return folder


def _run(fakes: Path, *, login: str, test_db: str) -> tuple[subprocess.CompletedProcess[str], str]:
    log = fakes / "calls.log"
    environment = {
        **os.environ,
        "PATH": f"{fakes}{os.pathsep}{os.environ['PATH']}",
        "FAKE_LOG": str(log),
        "FAKE_LOGIN": login,
        "FAKE_TEST_DB": test_db,
    }
    environment.pop("CI", None)
    result = subprocess.run(
        ["bash", str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return result, log.read_text() if log.exists() else ""


class TestEnsurePostgres:
    """The script checks the server without ever prompting for a password."""

    def test_ready_server(self, fakes: Path) -> None:
        """A server that lets postgres in and has the test database needs nothing more."""
        result, calls = _run(fakes, login="ok", test_db="yes")

        lines = calls.splitlines()
        assert result.returncode == 0
        assert len(lines) == 2
        assert all(line.startswith("timeout=5 args=-w ") for line in lines), lines
        assert "CREATE DATABASE" not in calls

    def test_creates_test_database(self, fakes: Path) -> None:
        """A missing test database is created."""
        result, calls = _run(fakes, login="ok", test_db="no")

        assert result.returncode == 0
        assert "CREATE DATABASE test" in calls
        assert all(line.startswith("timeout=5 args=-w ") for line in calls.splitlines())

    def test_password_required_outside_ci(self, fakes: Path) -> None:
        """Outside CI a server that wants a password stops the script with instructions."""
        result, calls = _run(fakes, login="refused", test_db="yes")

        assert result.returncode == 1
        assert "pg_hba.conf" in result.stderr
        assert "STAFFSYNC_TEST_POSTGRES_URL" in result.stderr
        assert all(line.startswith("timeout=5 args=-w ") for line in calls.splitlines())
