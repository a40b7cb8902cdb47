"""Turn failed Staffbase responses and transport errors into :mod:`~staffsync.staffbase.errors`.

The client calls these once a request has used up its retries, or once a response
arrived that is not worth retrying. The class of each error decides what the caller does next.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

import httpx

from staffsync.staffbase.errors import (
    AuthenticationFailed,
    ConflictError,
    FatalStaffbaseError,
    OutcomeUnknown,
    PermissionDenied,
    RecordFailed,
    RetriesExhausted,
    StaffbaseError,
    UserNotFound,
    classify_conflict,
    read_error_envelope,
)
from staffsync.staffbase.retry import failure_reason, sent_nothing

if TYPE_CHECKING:
    from staffsync.staffbase.retry import RetryableStatus, RetryPolicy

__all__ = ["error_after_status", "error_after_transport", "error_for_status"]

# Words in a 400 error envelope that mark a duplicate value. Staffbase does not document
# how it reports duplicates, so a 400 that mentions one is treated like a 409.
_DUPLICATE_WORDS = ("duplicate", "already", "exists", "unique", "taken", "in use", "conflict")

# Collection routes: a 404 or 405 on them means the base URL points somewhere else.
_COLLECTION_ROUTES = ("/users", "/groups")


class _Where(TypedDict):
    """The context that every error about a received response carries."""

    method: str
    route: str
    status: int
    ref: str | None
    api_message: str | None


def error_after_status(
    exc: RetryableStatus, *, method: str, route: str, idempotent: bool, policy: RetryPolicy
) -> StaffbaseError:
    """Build the error for a retryable status (429, 5xx) that the retries did not get past.

    Args:
        exc: The last retryable status.
        method: HTTP method of the request.
        route: Route template of the request.
        idempotent: Whether the request may be sent twice.
        policy: The retry policy that gave up.
    """
    ref, api_message = read_error_envelope(exc.response)
    where = _Where(method=method, route=route, status=exc.status, ref=ref, api_message=api_message)
    detail = _detail(ref, api_message)

    if not idempotent and not sent_nothing(exc):
        msg = (
            f"{method} {route} failed with HTTP {exc.status}{detail}, so it may or may not"
            " have been applied: look the record up before sending it again"
        )
        return OutcomeUnknown(msg, **where)
    if policy.retry_after_too_long(exc):
        msg = (
            f"{method} {route} failed with HTTP {exc.status} and Retry-After"
            f" {exc.retry_after:.0f} s, longer than max_retry_wait_seconds"
            f" = {policy.max_wait:g}; the record is tried again on the next run"
        )
        return RetriesExhausted(msg, **where)
    msg = (
        f"{method} {route} still failed with HTTP {exc.status}{detail} after"
        f" {policy.max_attempts} attempts"
    )
    return RetriesExhausted(msg, **where)


def error_after_transport(
    exc: httpx.TransportError,
    *,
    method: str,
    route: str,
    idempotent: bool,
    policy: RetryPolicy,
    base_url: str,
) -> StaffbaseError:
    """Build the error for a request that got no response (connection failed, timed out …)."""
    reason = failure_reason(exc)
    if isinstance(exc, httpx.UnsupportedProtocol):
        msg = f"base_url {base_url!r} is invalid: use an http:// or https:// URL"
        return FatalStaffbaseError(msg, method=method, route=route)

    if not idempotent and not sent_nothing(exc):
        msg = (
            f"{method} {route} failed before its response arrived ({reason}:"
            f" {type(exc).__name__}), so it may or may not have been applied: look the"
            " record up before sending it again"
        )
        return OutcomeUnknown(msg, method=method, route=route)
    msg = (
        f"{method} {route} failed after {policy.max_attempts} attempts"
        f" ({reason}: {type(exc).__name__}); check base_url and the network"
    )
    return RetriesExhausted(msg, method=method, route=route)


def error_for_status(
    response: httpx.Response, *, method: str, route: str, api_token: bool
) -> StaffbaseError:
    """Build the error for a final response whose status is not 2xx.

    A 404 the caller expects (a lookup or a delete) is handled before this is called.

    Args:
        response: The final response.
        method: HTTP method of the request.
        route: Route template of the request.
        api_token: Whether the request used an API token rather than an OAuth token.
    """
    status = response.status_code
    ref, api_message = read_error_envelope(response)
    where = _Where(method=method, route=route, status=status, ref=ref, api_message=api_message)
    detail = _detail(ref, api_message)
    if status == 401:
        credential = "API token" if api_token else "access token"
        msg = f"Staffbase rejected the {credential} for {method} {route} (HTTP 401{detail})"
        return AuthenticationFailed(msg, **where)
    if status == 403:
        msg = (
            f"Staffbase denied {method} {route} (HTTP 403{detail}): the credentials"
            " need the Administrative access level or the scopes to manage users"
        )
        return PermissionDenied(msg, **where)
    if 300 <= status < 400 or (status in (404, 405) and route in _COLLECTION_ROUTES):
        msg = f"{method} {route} returned HTTP {status}: check base_url, which should end in /api"
        return FatalStaffbaseError(msg, **where)
    if status == 409 or (status == 400 and _mentions_duplicate(ref, api_message)):
        field = classify_conflict(ref, api_message)
        clash = f"the {field} is already taken" if field else "a unique value is taken"
        msg = f"{method} {route} was rejected because {clash} (HTTP {status}{detail})"
        return ConflictError(msg, field=field, **where)
    if status == 404 and route.startswith("/users/"):
        msg = f"{method} {route} found no such user (HTTP 404{detail})"
        return UserNotFound(msg, **where)
    msg = f"{method} {route} was rejected with HTTP {status}{detail}"
    return RecordFailed(msg, **where)


def _detail(ref: str | None, api_message: str | None) -> str:
    parts = [part for part in (ref, api_message) if part]
    return f": {' '.join(parts)}" if parts else ""


def _mentions_duplicate(ref: str | None, api_message: str | None) -> bool:
    text = f"{ref or ''} {api_message or ''}".casefold()
    return any(word in text for word in _DUPLICATE_WORDS)
