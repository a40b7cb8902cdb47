"""Fixtures for the Staffbase client tests: settings aimed at the emulator and its controls."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from staffsync.settings import StaffbaseSettings

from .helpers import EmulatorControl

if TYPE_CHECKING:
    from staffsync.emulator import EmulatorServer

    from .helpers import SettingsFactory


@pytest.fixture
def control(emulator: EmulatorServer) -> EmulatorControl:
    """Controls of the freshly reset session emulator."""
    return EmulatorControl(emulator)


@pytest.fixture
def make_settings(emulator: EmulatorServer) -> SettingsFactory:
    """Build ``[staffbase]`` settings for the emulator, with short waits and no real pacing."""

    def build(**overrides: Any) -> StaffbaseSettings:
        values: dict[str, Any] = {
            "base_url": emulator.base_url,
            "token_url": emulator.token_url,
            "client_id": "staffsync-demo",
            "client_secret": "demo-secret",
            "max_requests_per_second": 1000.0,
            "retry_initial_wait_seconds": 0.01,
            "max_retry_wait_seconds": 2.0,
            "timeout_seconds": 10.0,
        }
        values.update(overrides)
        return StaffbaseSettings(**values)

    return build
