"""Helpers for the Staffbase client tests: the emulator's controls and metric samples."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import urllib.parse
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from staffsync import metrics

if TYPE_CHECKING:
    from staffsync.emulator import EmulatorServer
    from staffsync.settings import StaffbaseSettings


class EmulatorControl:
    """The emulator's ``/__emulator`` endpoints: statistics, faults and the stored tenant."""

    def __init__(self, server: EmulatorServer) -> None:
        self.server = server

    def stats(self) -> dict[str, Any]:
        response = httpx.get(f"{self.server.url}/__emulator/stats")
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats

    def faults(self, **settings: Any) -> None:
        httpx.post(f"{self.server.url}/__emulator/faults", json=settings).raise_for_status()

    def sign_in(self, ids: list[str]) -> None:
        httpx.post(f"{self.server.url}/__emulator/sign-in", json={"ids": ids}).raise_for_status()

    def users(self) -> list[dict[str, Any]]:
        users: list[dict[str, Any]] = httpx.get(f"{self.server.url}/__emulator/users").json()
        return users

    def groups(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = httpx.get(f"{self.server.url}/__emulator/groups").json()
        return groups


class SettingsFactory(Protocol):
    def __call__(self, **overrides: Any) -> StaffbaseSettings: ...


def metric(name: str, **labels: str) -> float:
    """Return the current value of a staffsync metric sample, 0 when it has none yet."""
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def refused_url() -> str:
    """Return a 127.0.0.1 URL on a port that was free a moment ago, so connecting fails."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/oauth2/token"


class StubTokenEndpoint:
    """A bare token endpoint on 127.0.0.1 that returns the next canned reply to each POST.

    It records every request's headers and form body so that tests can check what the
    client sent. Use it as a context manager.
    """

    def __init__(self, *replies: tuple[int, dict[str, Any]]) -> None:
        self.replies = list(replies)
        self.requests: list[tuple[dict[str, str], dict[str, list[str]]]] = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                stub.requests.append((dict(self.headers), form))
                status, body = stub.replies.pop(0) if len(stub.replies) > 1 else stub.replies[0]
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                """Keep the test output quiet."""

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}/oauth2/token"

    def __enter__(self) -> StubTokenEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
