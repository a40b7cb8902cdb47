"""The emulator's Starlette application and the state shared by its routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Route

from staffsync.emulator.api_routes import api_routes
from staffsync.emulator.auth import TokenStore, handle_token_request
from staffsync.emulator.config import EmulatorConfig
from staffsync.emulator.control_routes import control_routes
from staffsync.emulator.errors import (
    INTERNAL_ERROR,
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    ApiError,
    ErrorKind,
    error_response,
)
from staffsync.emulator.faults import FaultInjector
from staffsync.emulator.gateway import TOKEN_PATH, ApiGateway, RequestStats
from staffsync.emulator.persistence import StateFileWriter, load_state_file
from staffsync.emulator.request_helpers import emulator_of
from staffsync.emulator.tenant import Tenant

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["Emulator", "create_app"]


@dataclass(slots=True)
class Emulator:
    """Everything one emulated tenant keeps between requests."""

    config: EmulatorConfig
    tenant: Tenant
    tokens: TokenStore
    faults: FaultInjector
    stats: RequestStats
    state_writer: StateFileWriter | None

    def reset(self) -> None:
        """Empty the tenant and clear faults and statistics; credentials and tokens stay."""
        self.tenant.clear()
        self.faults.reset()
        self.stats.reset()

    def token_lifetime_s(self) -> float:
        """Return the lifetime of a token issued now, in seconds."""
        return self.faults.token_lifetime_s(self.config.token_lifetime_s)


async def issue_token(request: Request) -> Response:
    """``POST /oauth2/token``: the client-credentials grant."""
    emulator = emulator_of(request)
    response = await handle_token_request(
        request, emulator.config, emulator.tokens, emulator.token_lifetime_s()
    )
    if response.status_code == 200:
        emulator.stats.token_requests += 1
    return response


def create_app(config: EmulatorConfig | None = None) -> Starlette:
    """Build the emulator app; ``app.state.emulator`` and ``app.state.tenant`` expose its state.

    The tenant is not thread-safe: code outside the server's event loop should change it
    through the HTTP endpoints or ``EmulatorServer.call``.

    Raises:
        ValueError: ``config.state_file`` exists but is not a valid state file.
    """
    config = config or EmulatorConfig()
    tenant = Tenant(seed=config.seed)
    writer = None
    if config.state_file is not None:
        load_state_file(config.state_file, tenant)
        writer = StateFileWriter(config.state_file, tenant)
    emulator = Emulator(
        config=config,
        tenant=tenant,
        tokens=TokenStore(),
        faults=FaultInjector(seed=config.seed),
        stats=RequestStats(),
        state_writer=writer,
    )

    routes = [*api_routes(), *control_routes(), Route(TOKEN_PATH, issue_token, methods=["POST"])]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(ApiGateway, emulator=emulator, routes=routes)],
        exception_handlers={
            ApiError: _api_error_response,
            HTTPException: _http_error_response,
            Exception: _unexpected_error_response,
        },
    )
    # A trailing slash is a 404 rather than a redirect, so that a client's wrong path
    # fails here instead of working by accident.
    app.router.redirect_slashes = False
    app.state.emulator = emulator
    app.state.tenant = tenant
    app.state.config = config
    return app


def _api_error_response(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.kind, exc.message, exc.headers)


def _http_error_response(_request: Request, exc: Exception) -> Response:
    # Starlette raises these for unknown paths (404) and wrong methods (405).
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        kind = NOT_FOUND
    elif exc.status_code == 405:
        kind = METHOD_NOT_ALLOWED
    else:
        kind = ErrorKind(exc.status_code, "HttpException", "ERROR_HTTP", exc.status_code * 100)
    return error_response(kind, str(exc.detail), exc.headers)


def _unexpected_error_response(_request: Request, _exc: Exception) -> Response:
    return error_response(INTERNAL_ERROR, "Unexpected error in the emulator; see its log.")
