"""The gateway in front of the API: statistics, injected faults and authentication.

It receives every request before Starlette's router and handles the ``/api`` ones in this
order: count the request by route template, add the latency, apply the rate limit, drop
the connection or fail with a 5xx when the random draw picks it, check the credentials,
and only then let the route process it. A request dropped "after" is processed in full and its
response thrown away before the connection is reset.
"""

from __future__ import annotations

import json
from collections import Counter, deque
from typing import TYPE_CHECKING, Any

from starlette.routing import Match

from staffsync.emulator.auth import authenticate_api_request
from staffsync.emulator.errors import (
    INTERNAL_ERROR,
    LOGIN_REQUIRED,
    RATE_LIMIT_EXCEEDED,
    SERVICE_UNAVAILABLE,
    error_response,
)
from staffsync.emulator.faults import Action

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from starlette.routing import BaseRoute
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from staffsync.emulator.app import Emulator

__all__ = ["ABORT_EXTENSION", "ApiGateway", "RequestStats"]

ABORT_EXTENSION = "staffsync.emulator.abort"
"""Scope extension holding a coroutine function that resets the request's connection.

The emulator's uvicorn protocol (see ``server.py``) provides it, because ASGI itself has
no way to close a connection without a response.
"""

TOKEN_PATH = "/oauth2/token"  # noqa: S105 - a URL path, not a secret
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOGGED_WRITES = 1000
"""Write requests kept for ``GET /__emulator/requests``, newest last."""


class RequestStats:
    """Counts of API requests and of what the gateway did with them, since the last reset."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Set every count back to zero."""
        self.requests: Counter[str] = Counter()
        self.responses: Counter[int] = Counter()
        self.token_requests = 0
        self.rate_limited = 0
        self.dropped_before = 0
        self.dropped_after = 0
        self.errors_injected = 0
        self.writes: deque[dict[str, Any]] = deque(maxlen=LOGGED_WRITES)

    def to_json(self) -> dict[str, Any]:
        """Return the counts in the form of ``GET /__emulator/stats``."""
        return {
            "requests": dict(sorted(self.requests.items())),
            "token_requests": self.token_requests,
            "rate_limited": self.rate_limited,
            "dropped": {"before": self.dropped_before, "after": self.dropped_after},
            "errors_injected": self.errors_injected,
            "responses": {str(status): count for status, count in sorted(self.responses.items())},
        }


class ApiGateway:
    """ASGI middleware applying statistics, faults and authentication to ``/api``."""

    def __init__(self, app: ASGIApp, emulator: Emulator, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.emulator = emulator
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection scope."""
        path = scope.get("path", "")
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        elif path == "/api" or path.startswith("/api/"):
            await self._handle_api(scope, receive, send)
        else:
            if path == TOKEN_PATH:
                await self.emulator.faults.delay()
            await self.app(scope, receive, send)

    async def _handle_api(self, scope: Scope, receive: Receive, send: Send) -> None:
        emulator = self.emulator
        stats = emulator.stats
        route = self._route_template(scope)
        stats.requests[f"{scope['method']} {route}"] += 1
        logged: dict[str, Any] = {"method": scope["method"], "path": scope["path"], "route": route}
        if scope["method"] in WRITE_METHODS:
            receive = _logging_receive(receive, stats.writes, logged)
        await emulator.faults.delay()

        verdict = emulator.faults.judge()
        counted_send = self._counting(send)
        if verdict.action is Action.RATE_LIMITED:
            stats.rate_limited += 1
            headers = {}
            if emulator.faults.settings.rate_limit_retry_after:
                headers["Retry-After"] = str(verdict.retry_after_s)
            response = error_response(RATE_LIMIT_EXCEEDED, "Too many requests.", headers)
            await response(scope, receive, counted_send)
            return
        if verdict.action is Action.DROP_BEFORE:
            stats.dropped_before += 1
            await _abort_connection(scope)
            return
        if verdict.action in (Action.FAIL_500, Action.FAIL_503):
            stats.errors_injected += 1
            kind = INTERNAL_ERROR if verdict.action is Action.FAIL_500 else SERVICE_UNAVAILABLE
            response = error_response(kind, "Injected server error; nothing was processed.")
            await response(scope, receive, counted_send)
            return

        drop_after = verdict.action is Action.DROP_AFTER
        respond = _discard if drop_after else counted_send
        problem = authenticate_api_request(
            _header(scope, b"authorization"), emulator.tokens, emulator.config.api_token
        )
        if problem is not None:
            await error_response(LOGIN_REQUIRED, problem)(scope, receive, respond)
        else:
            await self.app(scope, receive, respond)

        if drop_after:
            stats.dropped_after += 1
            logged["response_sent"] = False
            await _abort_connection(scope)

    def _route_template(self, scope: Scope) -> str:
        # A route whose path matches but not its method still names the template. The
        # request is counted under it, and the router returns 405.
        partial: str | None = None
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return str(getattr(route, "path", scope["path"]))
            if match is Match.PARTIAL and partial is None:
                partial = str(getattr(route, "path", scope["path"]))
        return partial or str(scope["path"])

    def _counting(self, send: Send) -> Send:
        responses = self.emulator.stats.responses

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                responses[int(message["status"])] += 1
            await send(message)

        return counting_send


async def _discard(message: Message) -> None:
    """Throw the response away (an ASGI ``send`` for requests dropped after processing)."""


async def _abort_connection(scope: Scope) -> None:
    abort: Callable[[], Awaitable[None]] | None = scope.get("extensions", {}).get(ABORT_EXTENSION)
    if abort is None:
        msg = (
            "Cannot drop the connection: the server does not provide the"
            f" {ABORT_EXTENSION!r} extension; serve the emulator with EmulatorServer."
        )
        raise RuntimeError(msg)
    await abort()


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _logging_receive(
    receive: Receive, log: deque[dict[str, Any]], entry: dict[str, Any]
) -> Receive:
    """Wrap ``receive`` so that ``entry`` is added to ``log`` once the request body is read.

    Only a request that reaches its route has its body read, so rate-limited, failed and
    dropped-before requests are not logged. ``entry`` gets the body, and ``response_sent``
    is true unless the gateway drops the connection instead of sending the response.
    """
    chunks: list[bytes] = []

    async def wrapped() -> Message:
        message = await receive()
        if message["type"] == "http.request":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                raw = b"".join(chunks)
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                entry.update(body=body, response_sent=True)
                log.append(entry)
        return message

    return wrapped
