"""Clients for the emulator's own tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from staffsync.emulator import EmulatorServer

API_TOKEN_HEADER = {"Authorization": "Basic demo-api-token"}


@pytest.fixture(scope="session")
def _api_client(emulator_server: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator_server.base_url, headers=API_TOKEN_HEADER) as client:
        yield client


@pytest.fixture(scope="session")
def _control_client(emulator_server: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{emulator_server.url}/__emulator") as client:
        yield client


@pytest.fixture
def api(emulator: EmulatorServer, _api_client: httpx.Client) -> httpx.Client:
    """A client for the reset emulator's ``/api``, authenticated with the API token."""
    return _api_client


@pytest.fixture
def control(emulator: EmulatorServer, _control_client: httpx.Client) -> httpx.Client:
    """A client for the reset emulator's ``/__emulator`` endpoints."""
    return _control_client
