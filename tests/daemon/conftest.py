"""Fixtures of the daemon tests: an emulator process and staffsync processes around it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.daemon.processes import EmulatorProcess, StaffsyncProcess

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path


@pytest.fixture
def emulator_process(tmp_path: Path) -> Iterator[EmulatorProcess]:
    """``staffsync emulator --port 0`` in a subprocess, stopped after the test."""
    emulator = EmulatorProcess(tmp_path).start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., StaffsyncProcess]]:
    """Start staffsync processes; any still running after the test is stopped."""
    started: list[StaffsyncProcess] = []

    def start(
        name: str, config: Path, *command: str, env: dict[str, str] | None = None
    ) -> StaffsyncProcess:
        process = StaffsyncProcess(name, tmp_path, config, command, env or {}).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
