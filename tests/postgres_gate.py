"""A pytest plugin that makes a CI run fail when the PostgreSQL tests did not run.

Tests that use the ``postgres_server`` fixture (directly, through ``postgres_url``, or as
the PostgreSQL case of ``state_url``) carry the ``postgres`` marker. Under ``CI=true`` the
session fails when none of them passed or when any of them was skipped, so a CI machine
without a working PostgreSQL server cannot report success.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from _pytest.terminal import TerminalReporter

__all__ = ["PostgresGate"]

MARKER = "postgres"


class PostgresGate:
    """Counts the outcomes of ``postgres`` tests and fails a CI session without them."""

    def __init__(self) -> None:
        self.passed = 0
        self.skipped: list[str] = []
        self.problem: str | None = None

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            if "postgres_server" in item.fixturenames:
                item.add_marker(MARKER)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if MARKER not in report.keywords:
            return
        if report.skipped:
            self.skipped.append(report.nodeid)
        elif report.when == "call" and report.passed:
            self.passed += 1

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if os.environ.get("CI") != "true":
            return
        if self.skipped:
            self.problem = (
                f"CI=true but {len(self.skipped)} PostgreSQL tests were skipped, the first"
                f" {self.skipped[0]}; make PostgreSQL reachable (see .ci/ensure-postgres)"
            )
        elif self.passed == 0:
            self.problem = (
                "CI=true but no PostgreSQL test passed; run the whole suite against a"
                " PostgreSQL server (see .ci/ensure-postgres)"
            )
        if self.problem is not None:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: TerminalReporter) -> None:
        if self.problem is not None:
            terminalreporter.write_line(self.problem, red=True, bold=True)
