"""Every series of ``staffsync.metrics``, scraped from a real ``/metrics`` after real runs.

The registry is global to the process and other tests add to it, so each check compares
a scrape taken before the runs with one taken after. The emulator's own counts are the
reference for the request, 429 and token series.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING

import httpx
import pytest

from staffsync import metrics
from staffsync.ops import OpsServer
from staffsync.runner import RunRequest, execute_run
from staffsync.settings import StaffbaseSettings
from staffsync.staffbase.client import StaffbaseClient
from tests.daemon.processes import MetricSamples
from tests.sync.harness import Bench, person

if TYPE_CHECKING:
    from staffsync.emulator import EmulatorServer
    from staffsync.report import RunReport

PEOPLE = 40
ROUTE_TEMPLATES = {"/users", "/users/{id}", "/groups", "/groups/{id}/members"}


def scrape(server: OpsServer) -> MetricSamples:
    response = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=10)
    response.raise_for_status()
    return MetricSamples(response.text)


class Delta:
    """The change of each sample between two scrapes."""

    def __init__(self, before: MetricSamples, after: MetricSamples) -> None:
        self.before = before
        self.after = after

    def value(self, name: str, **labels: str) -> float:
        return self.after.value(name, **labels) - self.before.value(name, **labels)

    def by_label(self, name: str, label: str, **labels: str) -> Counter[str]:
        """Deltas of ``name`` summed by one label, among samples with ``labels``."""
        totals: Counter[str] = Counter()
        for (sample, sample_labels), value in self.after.samples.items():
            found = dict(sample_labels)
            if sample != name or any(found.get(k) != v for k, v in labels.items()):
                continue
            change = value - self.before.samples.get((sample, sample_labels), 0.0)
            if change:
                totals[found[label]] += int(change)
        return totals


class Runs:
    """A run with rejects, a failed record, 5xx errors and 429s, then a clean full run."""

    def __init__(self, bench: Bench) -> None:
        rows = [person(n) for n in range(1, PEOPLE + 1)]
        rows.append(person(PEOPLE + 1, work_email="not an address"))
        bench.write_export(rows)
        # A user made by hand owns person 5's e-mail, so creating E0005 fails with 409.
        bench.post(
            "/__emulator/users",
            {
                "firstName": "Pat",
                "lastName": "Hand",
                "emails": [{"value": "person5@example.com", "primary": True}],
            },
        )
        bench.faults(error_rate=0.2, rate_limit_per_second=20)

        settings = bench.settings(
            staffbase=StaffbaseSettings(
                base_url=bench.emulator.base_url,
                token_url=bench.emulator.token_url,
                client_id=bench.emulator.config.client_id,
                client_secret=bench.emulator.config.client_secret,
                max_concurrency=4,
                max_requests_per_second=500,
                max_attempts=12,
                max_retry_wait_seconds=2,
                retry_initial_wait_seconds=0.05,
            )
        )
        self.started = time.time()
        self.partial: RunReport = bench.sync(settings)
        self.emulator_stats = bench.stats()

        bench.faults(error_rate=0, rate_limit_per_second=None)
        for row in rows[:3]:
            row["title"] = "Lead"
        # Persons 36 to 40 leave, and person 5 too, so the full run has no failing record.
        bench.write_export([row for row in rows[:-6] if row["employee_id"] != "E0005"] + rows[-1:])
        bench.sign_in()

        self.full: RunReport = bench.sync(settings, mode="full")
        self.finished = time.time()
        self.all_stats = bench.stats()


@pytest.fixture(scope="class")
def observed(
    emulator_server: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Runs, Delta]:
    """The runs, made once for the class, and the scrapes of a real OpsServer around them."""
    emulator_server.call(emulator_server.emulator.reset)
    folder = tmp_path_factory.mktemp("metrics")
    bench = Bench(emulator_server, folder, f"sqlite:///{folder / 'state.db'}")
    server = OpsServer("127.0.0.1:0", readiness=lambda: (True, "test"))
    server.start()
    try:
        before = scrape(server)
        runs = Runs(bench)
        return runs, Delta(before, scrape(server))
    finally:
        server.stop()


class TestMetricValues:
    """After real runs, each series moved by exactly what happened."""

    def test_every_series_exported(self, observed: tuple[Runs, Delta]) -> None:
        """The scrape lists every series that staffsync.metrics defines."""
        _, delta = observed
        defined = {
            family.name
            for name in metrics.__all__
            if name != "REGISTRY"
            for family in getattr(metrics, name).describe()
        }

        assert len(defined) == len(metrics.__all__) - 1
        assert defined <= delta.after.families

    def test_runs_and_duration(self, observed: tuple[Runs, Delta]) -> None:
        """Runs count by mode and status, and the histogram records each run's duration."""
        runs, delta = observed

        # Both runs rejected the row with the bad e-mail, so both ended partial.
        assert runs.partial.status == "partial"
        assert runs.full.status == "partial"
        assert delta.value("staffsync_runs_total", mode="incremental", status="partial") == 1
        assert delta.value("staffsync_runs_total", mode="full", status="partial") == 1
        assert delta.by_label("staffsync_runs_total", "status") == {"partial": 2}
        for mode in ("incremental", "full"):
            assert delta.value("staffsync_run_duration_seconds_count", mode=mode) == 1
            assert delta.value("staffsync_run_duration_seconds_sum", mode=mode) > 0

    def test_last_success(self, observed: tuple[Runs, Delta]) -> None:
        """The last-success gauge of each mode is set to the end time of its run."""
        runs, delta = observed

        for mode in ("incremental", "full"):
            stamp = delta.after.value("staffsync_last_success_timestamp_seconds", mode=mode)
            assert runs.started <= stamp <= runs.finished

    def test_changes_rejects_failures(self, observed: tuple[Runs, Delta]) -> None:
        """Changes count by action; the bad e-mail is rejected, the taken e-mail failed."""
        runs, delta = observed

        assert delta.by_label("staffsync_changes_total", "action") == {
            "created": PEOPLE - 1,
            "updated": 3,
            "deactivated": 5,
        }
        assert runs.partial.counts["created"] == PEOPLE - 1
        assert runs.full.counts["deactivated"] + runs.full.counts["deleted"] == 5
        assert delta.value("staffsync_records_rejected_total") == 2
        assert delta.value("staffsync_records_failed_total") == 1

    def test_requests_match_emulator(self, observed: tuple[Runs, Delta]) -> None:
        """Requests by route template and by status add up to what the emulator received."""
        runs, delta = observed
        stats = runs.all_stats

        by_route = Counter()
        for (name, labels), _value in delta.after.samples.items():
            if name != "staffsync_staffbase_requests_total":
                continue
            found = dict(labels)
            change = delta.value(name, **found)
            by_route[f"{found['method']} /api{found['route']}"] += int(change)
        by_status = delta.by_label("staffsync_staffbase_requests_total", "status")
        routes = {
            dict(labels)["route"]
            for name, labels in delta.after.samples
            if name == "staffsync_staffbase_requests_total"
        }

        assert routes <= ROUTE_TEMPLATES
        assert +by_route == Counter(stats["requests"])
        assert +by_status == Counter(stats["responses"])
        assert "error" not in by_status

    def test_retries_and_rate_limits(self, observed: tuple[Runs, Delta]) -> None:
        """Each 429 and each retried 5xx counts once as a retry, by reason."""
        runs, delta = observed
        stats = runs.emulator_stats
        retried_500 = sum(
            delta.by_label(
                "staffsync_staffbase_requests_total", "status", method=method, route=route
            )["500"]
            for method in ("GET", "PUT", "DELETE")
            for route in ROUTE_TEMPLATES
        )
        retries = delta.by_label("staffsync_staffbase_retries_total", "reason")

        assert stats["rate_limited"] > 0
        assert stats["errors_injected"] > 0
        assert delta.value("staffsync_staffbase_rate_limited_total") == stats["rate_limited"]
        assert retries["rate_limited"] == stats["rate_limited"]
        assert retries["unavailable"] == stats["responses"].get("503", 0)
        assert retries["server_error"] == retried_500
        assert set(retries) <= {"rate_limited", "unavailable", "server_error"}

    def test_token_fetches(self, observed: tuple[Runs, Delta]) -> None:
        """Token fetches count the tokens that the emulator issued."""
        runs, delta = observed

        assert delta.value("staffsync_token_fetches_total") == runs.all_stats["token_requests"]
        assert delta.value("staffsync_token_fetches_total") >= 1


class TestRequestCounting:
    """Requests replayed inside the auth flow are counted too."""

    def test_expired_token_replay(self, bench: Bench) -> None:
        """Each 401 from a revoked token and each replay count as a request."""
        rows = [person(n) for n in range(1, 6)]
        bench.write_export(rows)
        settings = bench.settings()
        server = OpsServer("127.0.0.1:0", readiness=lambda: (True, "test"))
        server.start()
        try:
            with StaffbaseClient(settings.staffbase) as client:
                execute_run(settings, RunRequest(), client=client)
                bench.faults(revoke_tokens=True)
                before = scrape(server)
                responses_before = Counter(bench.stats()["responses"])
                for row in rows:
                    row["title"] = "Lead"
                bench.write_export(rows)
                report = execute_run(settings, RunRequest(), client=client)
                delta = Delta(before, scrape(server))
        finally:
            server.stop()

        responses = Counter(bench.stats()["responses"])
        responses.subtract(responses_before)
        by_status = delta.by_label("staffsync_staffbase_requests_total", "status")
        assert report.counts["updated"] == 5
        # Each request in flight with the revoked token gets its own 401.
        assert responses["401"] >= 1
        assert responses["200"] == 5
        assert by_status == +responses
