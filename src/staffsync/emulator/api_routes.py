"""Routes of the User and Groups API under ``/api`` (legacy JSON form).

Authentication, statistics and faults are handled by the gateway before these run.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from staffsync.emulator.errors import INVALID_REQUEST, UNSUPPORTED_MEDIA_TYPE, ApiError
from staffsync.emulator.listing import DEFAULT_SORT, parse_sort
from staffsync.emulator.request_helpers import (
    emulator_of,
    media_type_of,
    query_int,
    read_json,
    reject_unknown_params,
)
from staffsync.emulator.validation import STATUSES

if TYPE_CHECKING:
    from starlette.requests import Request

__all__ = ["MEMBERS_ADD", "MEMBERS_REMOVE", "api_routes"]

MEMBERS_ADD = "application/vnd.staffbase.accessors.group.members-add.v1+json"
MEMBERS_REMOVE = "application/vnd.staffbase.accessors.group.members-remove.v1+json"

_NO_CONTENT = 204
_LIST_PARAMS = ("limit", "offset", "status", "sort")


async def list_users(request: Request) -> JSONResponse:
    """``GET /api/users``: one page of users, by default only the activated ones."""
    emulator = emulator_of(request)
    reject_unknown_params(request, _LIST_PARAMS)
    limit = query_int(request, "limit", 100, 1, emulator.config.max_page_size)
    offset = query_int(request, "offset", 0, 0, sys.maxsize)
    statuses = _parse_statuses(request.query_params.get("status", "activated"))
    order = parse_sort(request.query_params.get("sort", DEFAULT_SORT))

    total, page = emulator.tenant.list_users(order, statuses, offset, limit)
    return JSONResponse({"total": total, "limit": limit, "offset": offset, "data": page})


async def get_user(request: Request) -> JSONResponse:
    """``GET /api/users/{id}``: one user by Staffbase id or externalID."""
    return JSONResponse(emulator_of(request).tenant.get_user(request.path_params["id"]))


async def create_user(request: Request) -> JSONResponse:
    """``POST /api/users``: create a pending (invited) user."""
    user = emulator_of(request).tenant.create_user(await read_json(request))
    return JSONResponse(user, status_code=201, headers={"Location": f"/api/users/{user['id']}"})


async def update_user(request: Request) -> JSONResponse:
    """``PUT /api/users/{id}``: partial update by Staffbase id or externalID."""
    body = await read_json(request)
    return JSONResponse(emulator_of(request).tenant.update_user(request.path_params["id"], body))


async def delete_user(request: Request) -> Response:
    """``DELETE /api/users/{id}``: delete by Staffbase id or externalID."""
    emulator_of(request).tenant.delete_user(request.path_params["id"])
    return Response(status_code=_NO_CONTENT)


async def list_groups(request: Request) -> JSONResponse:
    """``GET /api/groups``: one page of groups in creation order."""
    emulator = emulator_of(request)
    reject_unknown_params(request, ("limit", "offset"))
    limit = query_int(request, "limit", 100, 1, emulator.config.max_page_size)
    offset = query_int(request, "offset", 0, 0, sys.maxsize)

    groups = emulator.tenant.groups.all()
    page = [group.to_api() for group in groups[offset : offset + limit]]
    return JSONResponse({"total": len(groups), "limit": limit, "offset": offset, "data": page})


async def create_group(request: Request) -> JSONResponse:
    """``POST /api/groups``: create a group from ``{"name", "externalId"?}``."""
    group = emulator_of(request).tenant.groups.create(await read_json(request))
    return JSONResponse(
        group.to_api(), status_code=201, headers={"Location": f"/api/groups/{group.id}"}
    )


async def get_group(request: Request) -> JSONResponse:
    """``GET /api/groups/{id}``: one group by its Staffbase id."""
    return JSONResponse(emulator_of(request).tenant.groups.get(request.path_params["id"]).to_api())


async def change_group_members(request: Request) -> Response:
    """``PATCH /api/groups/{id}/members``: add or remove members, by the body's media type."""
    media_type = media_type_of(request)
    if media_type not in (MEMBERS_ADD, MEMBERS_REMOVE):
        msg = f"The Content-Type must be {MEMBERS_ADD} or {MEMBERS_REMOVE}, got {media_type!r}."
        raise ApiError(UNSUPPORTED_MEDIA_TYPE, msg)
    body = await read_json(request, media_type)
    if not isinstance(body, dict) or set(body) != {"userIds"}:
        raise ApiError(INVALID_REQUEST, 'The body must be {"userIds": [...]} and nothing else.')

    groups = emulator_of(request).tenant.groups
    groups.change_members(request.path_params["id"], body["userIds"], add=media_type == MEMBERS_ADD)
    return Response(status_code=_NO_CONTENT)


def _parse_statuses(text: str) -> frozenset[str]:
    statuses = text.split(",")
    unknown = [status for status in statuses if status not in STATUSES]
    if unknown:
        msg = (
            f"Unknown status {unknown[0]!r} in {text!r}; use a comma list of {', '.join(STATUSES)}."
        )
        raise ApiError(INVALID_REQUEST, msg)
    return frozenset(statuses)


def api_routes() -> list[Route]:
    """Return the ``/api`` routes; their paths are the templates counted in the statistics."""
    return [
        Route("/api/users", list_users, methods=["GET"]),
        Route("/api/users", create_user, methods=["POST"]),
        Route("/api/users/{id}", get_user, methods=["GET"]),
        Route("/api/users/{id}", update_user, methods=["PUT"]),
        Route("/api/users/{id}", delete_user, methods=["DELETE"]),
        Route("/api/groups", list_groups, methods=["GET"]),
        Route("/api/groups", create_group, methods=["POST"]),
        Route("/api/groups/{id}", get_group, methods=["GET"]),
        Route("/api/groups/{id}/members", change_group_members, methods=["PATCH"]),
    ]
