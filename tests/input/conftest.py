"""Fixtures of the input tests: a bench on the emulator, and captured JSON logs."""

from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING

import pytest
import structlog

from staffsync import logs
from staffsync.logs import configure_logging
from tests.input.bench import InputBench

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from staffsync.emulator import EmulatorServer


@pytest.fixture
def bench(emulator: EmulatorServer, tmp_path: Path, sqlite_url: str) -> InputBench:
    """A bench on a fresh emulator tenant and a new SQLite state file."""
    return InputBench(emulator=emulator, folder=tmp_path, state_url=sqlite_url)


@pytest.fixture
def any_bench(emulator: EmulatorServer, tmp_path: Path, state_url: str) -> InputBench:
    """A bench run once on SQLite and once on PostgreSQL."""
    return InputBench(emulator=emulator, folder=tmp_path, state_url=state_url)


@pytest.fixture
def log_stream(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """Capture JSON log lines for the test, then remove the handler again."""
    monkeypatch.setattr(logs, "_registered_secrets", set())
    monkeypatch.setattr(logs, "_registered_pattern", None)
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    configure_logging("json", "info", stream=stream)
    yield stream
    for handler in [h for h in root.handlers if h.get_name() == logs.HANDLER_NAME]:
        root.removeHandler(handler)
    root.setLevel(level)
    structlog.reset_defaults()
