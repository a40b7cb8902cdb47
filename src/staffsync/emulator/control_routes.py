"""Operator and test endpoints under ``/__emulator`` (no authentication, not Staffbase)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.responses import JSONResponse
from starlette.routing import Route

from staffsync.emulator.errors import INVALID_REQUEST, ApiError
from staffsync.emulator.request_helpers import emulator_of, read_json

if TYPE_CHECKING:
    from starlette.requests import Request

__all__ = ["control_routes"]


async def list_all_users(request: Request) -> JSONResponse:
    """Return every user, any status, as stored."""
    return JSONResponse(emulator_of(request).tenant.all_users())


async def seed_user(request: Request) -> JSONResponse:
    """Create a user as if made by hand in the Studio (see ``Tenant.seed_user``)."""
    user = emulator_of(request).tenant.seed_user(await read_json(request))
    return JSONResponse(user, status_code=201)


async def list_all_groups(request: Request) -> JSONResponse:
    """Return every group with the Staffbase ids of its members."""
    groups = emulator_of(request).tenant.groups.all()
    return JSONResponse([group.to_stored() for group in groups])


async def get_stats(request: Request) -> JSONResponse:
    """Return request counts by method and route template since the last reset."""
    emulator = emulator_of(request)
    stats = emulator.stats.to_json()
    stats["invitations_requested"] = emulator.tenant.invitations_requested
    return JSONResponse(stats)


async def list_write_requests(request: Request) -> JSONResponse:
    """The last write requests that reached an API route, oldest first, with their bodies.

    ``response_sent`` is false for a request whose response was dropped after processing.
    """
    return JSONResponse(list(emulator_of(request).stats.writes))


async def get_faults(request: Request) -> JSONResponse:
    """Return the current fault settings."""
    emulator = emulator_of(request)
    return JSONResponse(emulator.faults.describe(emulator.config.token_lifetime_s))


async def set_faults(request: Request) -> JSONResponse:
    """Change the named fault settings and return all of them."""
    emulator = emulator_of(request)
    if emulator.faults.update(await read_json(request)):
        emulator.tokens.revoke_all()
    return JSONResponse(emulator.faults.describe(emulator.config.token_lifetime_s))


async def sign_in(request: Request) -> JSONResponse:
    """Activate pending users, ``{"ids": [...]}`` (id or externalID) or ``{}`` for all."""
    body = await read_json(request, allow_empty=True)
    if body is None:
        body = {}
    if not isinstance(body, dict) or set(body) - {"ids"}:
        raise ApiError(INVALID_REQUEST, 'The body must be {"ids": [...]} or {}.')
    ids = body.get("ids")
    if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)):
        raise ApiError(INVALID_REQUEST, f"The field 'ids' must be a list of strings, got {ids!r}.")

    activated = emulator_of(request).tenant.sign_in(ids)
    return JSONResponse({"activated": activated})


async def reset(request: Request) -> JSONResponse:
    """Empty the tenant and clear faults and statistics; credentials and tokens stay."""
    emulator_of(request).reset()
    return JSONResponse({"reset": True})


def control_routes() -> list[Route]:
    """Return the ``/__emulator`` routes."""
    return [
        Route("/__emulator/users", list_all_users, methods=["GET"]),
        Route("/__emulator/users", seed_user, methods=["POST"]),
        Route("/__emulator/groups", list_all_groups, methods=["GET"]),
        Route("/__emulator/stats", get_stats, methods=["GET"]),
        Route("/__emulator/requests", list_write_requests, methods=["GET"]),
        Route("/__emulator/faults", get_faults, methods=["GET"]),
        Route("/__emulator/faults", set_faults, methods=["POST"]),
        Route("/__emulator/sign-in", sign_in, methods=["POST"]),
        Route("/__emulator/reset", reset, methods=["POST"]),
    ]
