"""Fixtures of the engine tests: the sync bench of the end-to-end tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.sync.harness import Bench

if TYPE_CHECKING:
    from pathlib import Path

    from staffsync.emulator import EmulatorServer


@pytest.fixture
def bench(emulator: EmulatorServer, tmp_path: Path, sqlite_url: str) -> Bench:
    """A bench on a fresh emulator tenant and a new SQLite state file."""
    return Bench(emulator=emulator, folder=tmp_path, state_url=sqlite_url)


@pytest.fixture
def any_bench(emulator: EmulatorServer, tmp_path: Path, state_url: str) -> Bench:
    """A bench run once on SQLite and once on PostgreSQL."""
    return Bench(emulator=emulator, folder=tmp_path, state_url=state_url)
