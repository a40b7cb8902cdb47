"""EmulatorServer: starting, stopping and reaching the server from other threads."""

from __future__ import annotations

import socket
import threading

import httpx
import pytest

from staffsync.emulator import EmulatorConfig, EmulatorServer


def emulator_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "staffsync-emulator"]


class TestEmulatorServer:
    def test_urls(self) -> None:
        """The URLs carry the bound port."""
        with EmulatorServer() as server:
            port = server.port
            assert server.url == f"http://127.0.0.1:{port}"
            assert server.base_url == f"http://127.0.0.1:{port}/api"
            assert server.token_url == f"http://127.0.0.1:{port}/oauth2/token"

    def test_stop_ends_thread(self) -> None:
        """Stopping leaves no server thread behind, even with a client still connected."""
        before = len(emulator_threads())
        server = EmulatorServer().start()
        with httpx.Client() as client:
            client.get(f"{server.url}/__emulator/stats")
            server.stop()

        assert len(emulator_threads()) == before

    def test_port_before_start(self) -> None:
        """Asking for the port of a stopped server is an error."""
        with pytest.raises(RuntimeError, match="not running"):
            _ = EmulatorServer().port

    def test_start_twice(self) -> None:
        """A running server cannot be started again."""
        with EmulatorServer() as server, pytest.raises(RuntimeError, match="already running"):
            server.start()

    def test_port_taken(self) -> None:
        """A port in use makes start fail with a RuntimeError."""
        with socket.socket() as blocker:
            blocker.bind(("127.0.0.1", 0))
            blocker.listen()
            port = blocker.getsockname()[1]

            with pytest.raises(RuntimeError, match="could not listen"):
                EmulatorServer(port=port).start()

    def test_config_credentials(self) -> None:
        """The server accepts the credentials of its config."""
        config = EmulatorConfig(api_token="other-token")
        with EmulatorServer(config) as server:
            response = httpx.get(
                f"{server.base_url}/users", headers={"Authorization": "Basic other-token"}
            )

        assert response.status_code == 200

    def test_call_on_loop(self) -> None:
        """call runs a function on the server's event loop and returns its result."""
        with EmulatorServer() as server:
            httpx.post(
                f"{server.url}/__emulator/users",
                json={"emails": [{"value": "a@example.com", "primary": True}]},
            )
            count = server.call(lambda: len(server.emulator.tenant))

        assert count == 1

    def test_tenant_on_app_state(self) -> None:
        """The app exposes its tenant for in-process use."""
        server = EmulatorServer()

        assert server.app.state.tenant is server.emulator.tenant
