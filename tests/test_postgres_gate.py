"""Tests for the plugin that fails a CI session whose PostgreSQL tests did not run."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

REPOSITORY = Path(__file__).parents[1]

CONFTEST = """
import pytest
from tests.postgres_gate import PostgresGate


def pytest_configure(config):
    config.addinivalue_line("markers", "postgres: needs PostgreSQL")
    config.pluginmanager.register(PostgresGate(), "staffsync-postgres-gate")


@pytest.fixture
def postgres_server():
    if {skip!r}:
        pytest.skip("PostgreSQL is not reachable")
    return "server"
"""

TESTS = """
import pytest


def test_uses_server(postgres_server):
    assert postgres_server == "server"


@pytest.mark.postgres
def test_marked():
    pass


def test_plain():
    pass
"""


@pytest.fixture(autouse=True)
def importable_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the inner sessions import the plugin from this repository's tests package."""
    monkeypatch.setenv("PYTHONPATH", str(REPOSITORY))


@pytest.fixture
def session(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_gate=TESTS)
    return pytester


def _run(pytester: pytest.Pytester, *, skip: bool) -> pytest.RunResult:
    pytester.makeconftest(CONFTEST.format(skip=skip))
    return pytester.runpytest("-p", "no:cacheprovider")


class TestPostgresGate:
    """Under CI=true a session fails unless its PostgreSQL tests passed."""

    def test_ci_passes_when_run(
        self, session: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Passing PostgreSQL tests leave the exit status 0."""
        monkeypatch.setenv("CI", "true")

        result = _run(session, skip=False)

        assert result.ret == pytest.ExitCode.OK

    def test_ci_fails_on_skip(
        self, session: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A skipped PostgreSQL test fails the session and names the test."""
        monkeypatch.setenv("CI", "true")

        result = _run(session, skip=True)

        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.stdout.fnmatch_lines(["*CI=true but 1 PostgreSQL tests were skipped*"])

    def test_ci_fails_without_any(
        self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A session in which no PostgreSQL test ran fails."""
        monkeypatch.setenv("CI", "true")
        pytester.makepyfile(test_other="def test_plain():\n    pass\n")

        result = _run(pytester, skip=False)

        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.stdout.fnmatch_lines(["*no PostgreSQL test passed*"])

    def test_skip_allowed_outside_ci(
        self, session: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without CI=true a skipped PostgreSQL test is only a skip."""
        monkeypatch.delenv("CI", raising=False)

        result = _run(session, skip=True)

        assert result.ret == pytest.ExitCode.OK
        result.assert_outcomes(passed=2, skipped=1)

    def test_fixture_users_marked(self, session: pytest.Pytester) -> None:
        """A test that uses postgres_server gets the postgres marker."""
        session.makeconftest(CONFTEST.format(skip=False))

        result = session.runpytest("-m", "postgres", "-p", "no:cacheprovider")

        result.assert_outcomes(passed=2, deselected=1)
