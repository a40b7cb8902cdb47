"""Helpers shared by the route modules: reading bodies and query parameters."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, cast

from staffsync.emulator.errors import INVALID_REQUEST, UNSUPPORTED_MEDIA_TYPE, ApiError

if TYPE_CHECKING:
    from starlette.requests import Request

    from staffsync.emulator.app import Emulator

__all__ = ["emulator_of", "media_type_of", "query_int", "read_json", "reject_unknown_params"]

_INTEGER = re.compile(r"-?[0-9]+")


def emulator_of(request: Request) -> Emulator:
    """Return the emulator whose app serves ``request``."""
    return cast("Emulator", request.app.state.emulator)


def media_type_of(request: Request) -> str:
    """Return the request's media type, lower-cased and without parameters."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_json(
    request: Request, media_type: str = "application/json", *, allow_empty: bool = False
) -> object:
    """Return the request's JSON body.

    Args:
        request: The request.
        media_type: The only media type accepted.
        allow_empty: Return None for an empty body instead of rejecting it.

    Raises:
        ApiError: 415 for another media type, 400 for a missing or malformed body.
    """
    body = await request.body()
    if not body and allow_empty:
        return None
    if media_type_of(request) != media_type:
        msg = f"The Content-Type must be {media_type}, got {request.headers.get('content-type')!r}."
        raise ApiError(UNSUPPORTED_MEDIA_TYPE, msg)

    try:
        return json.loads(body)
    except ValueError as exc:
        raise ApiError(INVALID_REQUEST, f"The request body is not valid JSON: {exc}.") from exc


def reject_unknown_params(request: Request, known: tuple[str, ...]) -> None:
    """Reject query parameters that the route does not support or that are repeated.

    Silently ignoring an unsupported filter would return more users than the client
    asked for, so the emulator refuses it.
    """
    for name in request.query_params:
        if name not in known:
            msg = f"The query parameter {name!r} is not supported; use {', '.join(known)}."
            raise ApiError(INVALID_REQUEST, msg)
        if len(request.query_params.getlist(name)) > 1:
            raise ApiError(INVALID_REQUEST, f"The query parameter {name!r} is repeated.")


def query_int(request: Request, name: str, default: int, minimum: int, maximum: int) -> int:
    """Return an integer query parameter within ``minimum``..``maximum``.

    Raises:
        ApiError: ``ERROR_INVALID_REQUEST`` when it is not an integer or out of range.
    """
    text = request.query_params.get(name)
    if text is None:
        return default
    if _INTEGER.fullmatch(text) is None:
        raise ApiError(INVALID_REQUEST, f"The parameter {name!r} must be an integer, got {text!r}.")

    value = int(text)
    if not minimum <= value <= maximum:
        msg = f"The parameter {name!r} must be between {minimum} and {maximum}, got {value}."
        raise ApiError(INVALID_REQUEST, msg)
    return value
