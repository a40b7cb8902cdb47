"""Injected faults: rate limits, server errors, latency and dropped connections."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from staffsync.emulator import EmulatorConfig, EmulatorServer

if TYPE_CHECKING:
    from collections.abc import Iterator

API_TOKEN_HEADER = {"Authorization": "Basic demo-api-token"}


def user_body(key: str) -> dict[str, Any]:
    """A create body for the user with externalID ``key`` and one primary e-mail."""
    return {"externalID": key, "emails": [{"value": f"{key}@example.com", "primary": True}]}


@pytest.fixture(scope="module")
def _seeded_server() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorConfig(seed=7)) as server:
        yield server


@pytest.fixture
def seeded(_seeded_server: EmulatorServer) -> EmulatorServer:
    """An emulator with a fixed fault seed, reset so that its random draws start over."""
    _seeded_server.call(_seeded_server.emulator.reset)
    return _seeded_server


def set_faults(server: EmulatorServer, **settings: Any) -> None:
    httpx.post(f"{server.url}/__emulator/faults", json=settings).raise_for_status()


def stored_keys(server: EmulatorServer) -> list[str]:
    users = httpx.get(f"{server.url}/__emulator/users").json()
    return [user["externalID"] for user in users]


class TestRateLimit:
    def test_retry_after(self, api: httpx.Client, emulator: EmulatorServer) -> None:
        """Past the burst a request gets a 429 envelope with Retry-After."""
        set_faults(emulator, rate_limit_per_second=1)

        first = api.get("/users")
        second = api.get("/users")

        assert first.status_code == 200
        assert second.status_code == 429
        assert second.headers["retry-after"] == "1"
        assert second.json()["ref"] == "ERROR_RATE_LIMIT_EXCEEDED"

    def test_without_retry_after(self, api: httpx.Client, emulator: EmulatorServer) -> None:
        """With rate_limit_retry_after off the 429 has no Retry-After."""
        set_faults(emulator, rate_limit_per_second=1, rate_limit_retry_after=False)

        api.get("/users")
        response = api.get("/users")

        assert response.status_code == 429
        assert "retry-after" not in response.headers

    def test_not_processed(self, api: httpx.Client, emulator: EmulatorServer) -> None:
        """A rate-limited create changes nothing and is counted."""
        set_faults(emulator, rate_limit_per_second=1)

        api.post("/users", json=user_body("E1"))
        limited = api.post("/users", json=user_body("E2"))

        stats = httpx.get(f"{emulator.url}/__emulator/stats").json()
        assert limited.status_code == 429
        assert stored_keys(emulator) == ["E1"]
        assert stats["rate_limited"] == 1
        assert stats["requests"] == {"POST /api/users": 2}

    def test_capacity_returns(self, api: httpx.Client, emulator: EmulatorServer) -> None:
        """After the Retry-After time requests pass again."""
        set_faults(emulator, rate_limit_per_second=1)
        api.get("/users")
        limited = api.get("/users")

        time.sleep(float(limited.headers["retry-after"]))

        assert api.get("/users").status_code == 200

    def test_off_again(self, api: httpx.Client, emulator: EmulatorServer) -> None:
        """Setting the rate to null turns rate limiting off."""
        set_faults(emulator, rate_limit_per_second=1)
        set_faults(emulator, rate_limit_per_second=None)

        statuses = {api.get("/users").status_code for _ in range(5)}

        assert statuses == {200}


class TestServerErrors:
    def test_not_processed(self, api: httpx.Client, emulator: EmulatorServer) -> None:
        """With error_rate 1 a create fails with a 5xx envelope and changes nothing."""
        set_faults(emulator, error_rate=1.0)

        response = api.post("/users", json=user_body("E1"))

        assert response.status_code in (500, 503)
        assert response.json()["statusCode"] == response.status_code
        assert stored_keys(emulator) == []

    def test_mix_of_codes(self, seeded: EmulatorServer) -> None:
        """Injected errors are a mix of 500 and 503."""
        set_faults(seeded, error_rate=1.0)

        with httpx.Client(base_url=seeded.base_url, headers=API_TOKEN_HEADER) as client:
            statuses = {client.get("/users").status_code for _ in range(12)}

        assert statuses == {500, 503}

    def test_control_routes_spared(self, emulator: EmulatorServer) -> None:
        """Faults leave the /__emulator endpoints alone."""
        set_faults(emulator, error_rate=1.0, drop_rate=1.0)

        response = httpx.get(f"{emulator.url}/__emulator/stats")

        assert response.status_code == 200


class TestLatency:
    def test_api_delayed(self, api: httpx.Client, emulator: EmulatorServer) -> None:
        """latency_ms delays every API request by at least that long."""
        set_faults(emulator, latency_ms=300)

        started = time.monotonic()
        response = api.get("/users")
        elapsed = time.monotonic() - started

        assert response.status_code == 200
        assert elapsed >= 0.3

    def test_token_delayed(self, emulator: EmulatorServer) -> None:
        """latency_ms also delays the token endpoint."""
        set_faults(emulator, latency_ms=300)
        data = {"grant_type": "client_credentials"}

        started = time.monotonic()
        httpx.post(emulator.token_url, data=data, auth=("staffsync-demo", "demo-secret"))
        elapsed = time.monotonic() - started

        assert elapsed >= 0.3


class TestDrops:
    def test_no_response(self, emulator: EmulatorServer) -> None:
        """A dropped request ends in a transport error, not an HTTP response."""
        set_faults(emulator, drop_rate=1.0)

        with pytest.raises(httpx.TransportError):
            httpx.get(f"{emulator.base_url}/users", headers=API_TOKEN_HEADER)

    def test_before_and_after(self, seeded: EmulatorServer) -> None:
        """Some drops happen before processing and some after: those created the user."""
        set_faults(seeded, drop_rate=1.0)
        keys = [f"E{index}" for index in range(12)]

        with httpx.Client(base_url=seeded.base_url, headers=API_TOKEN_HEADER) as client:
            for key in keys:
                with pytest.raises(httpx.TransportError):
                    client.post("/users", json=user_body(key))

        dropped = httpx.get(f"{seeded.url}/__emulator/stats").json()["dropped"]
        created = stored_keys(seeded)
        assert dropped["before"] > 0
        assert dropped["after"] > 0
        assert dropped["before"] + dropped["after"] == len(keys)
        assert len(created) == dropped["after"]
        assert set(created) < set(keys)

    def test_server_recovers(self, emulator: EmulatorServer) -> None:
        """After drops are turned off the same client is served again."""
        set_faults(emulator, drop_rate=1.0)

        with httpx.Client(base_url=emulator.base_url, headers=API_TOKEN_HEADER) as client:
            with pytest.raises(httpx.TransportError):
                client.get("/users")
            set_faults(emulator, drop_rate=0.0)
            response = client.get("/users")

        assert response.status_code == 200
