"""Fixtures of the end-to-end sync tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.sync.harness import Bench

if TYPE_CHECKING:
    from pathlib import Path

    from staffsync.emulator import EmulatorServer


@pytest.fixture
def bench(emulator: EmulatorServer, tmp_path: Path, state_url: str) -> Bench:
    """A bench on a fresh emulator tenant, run once on SQLite and once on PostgreSQL.

    Nearly every sync test depends on the planner's and the journal's SQL, so each runs
    on both state backends.
    """
    return Bench(emulator=emulator, folder=tmp_path, state_url=state_url)


@pytest.fixture
def any_bench(bench: Bench) -> Bench:
    """The same as ``bench``: a bench run once on SQLite and once on PostgreSQL."""
    return bench
