"""Real staffsync processes for the daemon tests: ``staffsync emulator`` and ``staffsync run``.

Each process runs ``python -m staffsync`` from this interpreter, so it uses the code under
test, and writes its output to files in the test's folder, where the tests read the JSON
log lines.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.sync.harness import COLUMNS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from pathlib import Path

START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 0.05

_LISTENING = re.compile(r"^staffsync emulator listening on (?P<url>http://\S+)$")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail with ``what`` when ``timeout`` runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            msg = f"timed out after {timeout:g} s waiting for {what}"
            raise TimeoutError(msg)
        time.sleep(POLL_SECONDS)


def write_export(path: Path, rows: Iterable[Mapping[str, str]]) -> None:
    """Write an export CSV in one atomic rename, so a daemon never reads half a file."""
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(partial, path)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    # A JSON string is a valid TOML basic string for the values written here.
    return json.dumps(str(value))


def write_config(path: Path, sections: Mapping[str, Mapping[str, Any]]) -> Path:
    """Write a TOML configuration file from ``{section: {key: value}}``."""
    lines: list[str] = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def staffsync_command(*args: str) -> list[str]:
    """Return the command line that runs ``staffsync ARGS`` with this interpreter."""
    return [sys.executable, "-m", "staffsync", *args]


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    """Return the JSON objects in a log file, skipping lines that are not JSON objects."""
    if not path.exists():
        return []
    events = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        with contextlib.suppress(ValueError):
            events.append(json.loads(line))
    return events


def daemon_config(
    path: Path,
    *,
    emulator_url: str,
    state_url: str,
    export: Path,
    ops_port: int | None = None,
    **sections: dict[str, Any],
) -> Path:
    """Write a config for a daemon aimed at the emulator; ``sections`` extend the defaults.

    A key given as None in ``sections`` is left out of the file.
    """
    values: dict[str, dict[str, Any]] = {
        "source": {"path": str(export)},
        "staffbase": {
            "base_url": f"{emulator_url}/api",
            "token_url": f"{emulator_url}/oauth2/token",
            "client_id": "staffsync-demo",
            "client_secret": "demo-secret",
            "max_concurrency": 4,
            "max_requests_per_second": 200,
            "max_retry_wait_seconds": 2,
        },
        "state": {"url": state_url},
        # Test rosters are small, so the percentage guard would hold every leaver.
        "safety": {"max_deactivation_percent": 100},
        "schedule": {"sync": "2s", "resync": ""},
        "ops": {
            "listen": f"127.0.0.1:{ops_port if ops_port is not None else free_port()}",
            "log_format": "json",
            "shutdown_grace_seconds": 15,
        },
    }
    for section, overrides in sections.items():
        merged = {**values.get(section, {}), **overrides}
        # None removes a key, for values that come from secret files or the environment.
        values[section] = {key: value for key, value in merged.items() if value is not None}
    return write_config(path, values)


@dataclass
class EmulatorProcess:
    """``staffsync emulator --port 0`` in a subprocess, and HTTP helpers for its endpoints."""

    folder: Path
    args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    url: str = ""

    @property
    def output(self) -> Path:
        return self.folder / "emulator.out"

    def start(self) -> EmulatorProcess:
        command = staffsync_command("emulator", "--port", "0", *self.args)
        with self.output.open("wb") as stdout, (self.folder / "emulator.err").open("wb") as err:
            self.process = subprocess.Popen(command, stdout=stdout, stderr=err)
        wait_until(self._read_url, START_TIMEOUT_SECONDS, "the emulator's first line")
        return self

    def _read_url(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            error = (self.folder / "emulator.err").read_text(errors="replace")
            msg = f"the emulator exited with {self.process.returncode}: {error}"
            raise RuntimeError(msg)
        lines = self.output.read_text(errors="replace").splitlines()
        if len(lines) < 2:
            return False
        match = _LISTENING.match(lines[0])
        assert match is not None, f"unexpected first line {lines[0]!r}"
        self.url = match.group("url")
        return True

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    @property
    def base_url(self) -> str:
        return f"{self.url}/api"

    @property
    def token_url(self) -> str:
        return f"{self.url}/oauth2/token"

    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.url}{path}", timeout=30)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: Any) -> Any:
        response = httpx.post(f"{self.url}{path}", json=body, timeout=30)
        response.raise_for_status()
        return response.json() if response.content else None

    def users(self) -> list[dict[str, Any]]:
        return list(self.get("/__emulator/users"))

    def write_counts(self) -> dict[str, int]:
        """Write requests to the API by method since the last reset."""
        counts = {"POST": 0, "PUT": 0, "PATCH": 0, "DELETE": 0}
        for route, count in self.get("/__emulator/stats")["requests"].items():
            method = route.split(" ")[0]
            if method in counts:
                counts[method] += count
        return counts


@dataclass
class StaffsyncProcess:
    """One ``python -m staffsync --config FILE COMMAND…`` process with its output in files."""

    name: str
    folder: Path
    config: Path
    command: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0

    @property
    def stdout(self) -> Path:
        return self.folder / f"{self.name}.out"

    @property
    def stderr(self) -> Path:
        return self.folder / f"{self.name}.err"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> StaffsyncProcess:
        command = staffsync_command("--config", str(self.config), *self.command)
        environment = {**os.environ, **self.env}
        environment.pop("STAFFSYNC_CONFIG", None)
        with self.stdout.open("wb") as stdout, self.stderr.open("wb") as stderr:
            self.process = subprocess.Popen(
                command, stdout=stdout, stderr=stderr, env=environment, cwd=self.folder
            )
        self.started_at = time.monotonic()
        return self

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """JSON log events written so far, all of them or those named ``name``."""
        events = read_json_lines(self.stdout) + read_json_lines(self.stderr)
        events.sort(key=lambda event: str(event.get("timestamp", "")))
        if name is None:
            return events
        return [event for event in events if event.get("event") == name]

    def wait_for_event(self, name: str, timeout: float = START_TIMEOUT_SECONDS) -> dict[str, Any]:
        def logged() -> bool:
            self._check_running(f"waiting for {name!r}")
            return bool(self.events(name))

        wait_until(logged, timeout, f"{self.name} to log {name!r}")
        return self.events(name)[0]

    def _check_running(self, doing: str) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            msg = (
                f"{self.name} exited with {self.process.returncode} while {doing}:"
                f" {self.stderr.read_text(errors='replace')[-3000:]}"
            )
            raise RuntimeError(msg)

    def signal(self, signum: int = signal.SIGTERM) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        """Stop the process if it still runs: SIGTERM, then SIGKILL after the timeout."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def ops_get(self, path: str, port: int) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10)


class MetricSamples:
    """The samples of one ``/metrics`` scrape, read with prometheus_client's own parser."""

    def __init__(self, text: str) -> None:
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        self.families: set[str] = set()
        for family in text_string_to_metric_families(text):
            self.families.add(family.name)
            for sample in family.samples:
                key = (sample.name, frozenset(sample.labels.items()))
                self.samples[key] = sample.value

    def value(self, name: str, **labels: str) -> float:
        """Return one sample's value, 0 when the series has no such sample yet."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def names(self) -> set[str]:
        return {name for name, _ in self.samples}

    def total(self, name: str, **labels: str) -> float:
        """Sum the samples of ``name`` whose labels include ``labels``."""
        wanted = set(labels.items())
        return sum(
            value
            for (sample, sample_labels), value in self.samples.items()
            if sample == name and wanted <= sample_labels
        )
