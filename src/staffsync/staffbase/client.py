"""The Staffbase User API client that the sync engine calls from its worker threads.

Every request passes through the shared rate limiter and the retry policy, is counted in
``staffsync_staffbase_requests`` by method, route template and status, and ends in one
of three ways: a result, ``None`` where "not found" is an answer, or a
:class:`~staffsync.staffbase.errors.StaffbaseError` that says what the caller must do.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Self, TypedDict
from urllib.parse import quote

import httpx
import structlog

from staffsync import metrics
from staffsync.staffbase.auth import ApiTokenAuth, build_auth
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
from staffsync.staffbase.model import USER_STATUSES
from staffsync.staffbase.ratelimit import AdaptiveRateLimiter
from staffsync.staffbase.retry import (
    RetryableStatus,
    RetryPolicy,
    failure_reason,
    sent_nothing,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping
    from types import TracebackType

    from staffsync.settings import StaffbaseSettings

__all__ = ["GROUP_MEMBERS_ADD", "GROUP_MEMBERS_REMOVE", "StaffbaseClient"]

logger = structlog.get_logger(__name__)

GROUP_MEMBERS_ADD = "application/vnd.staffbase.accessors.group.members-add.v1+json"
GROUP_MEMBERS_REMOVE = "application/vnd.staffbase.accessors.group.members-remove.v1+json"

MEMBER_BATCH_SIZE = 100
"""User ids sent per group-membership request.

NOTE: Staffbase does not document a limit for ``userIds``; 100 matches its default page size.
"""

_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE"})

# Words in a 400 error envelope that mark a duplicate value. Staffbase does not document
# how it reports duplicates, so a 400 saying so is treated like a 409.
_DUPLICATE_WORDS = ("duplicate", "already", "exists", "unique", "taken", "in use", "conflict")


class _Where(TypedDict):
    """What every error about a received response carries."""

    method: str
    route: str
    status: int
    ref: str | None
    api_message: str | None


class StaffbaseClient:
    """Reads and writes Staffbase users and groups through the legacy User API.

    Safe to share between ``max_concurrency`` threads: they share one connection pool,
    one token cache and one rate limiter. Use it as a context manager; it closes the
    HTTP client it created (an ``http`` passed in is left open).

    Args:
        settings: The ``[staffbase]`` settings.
        http: An HTTP client to send requests with; by default one is built from
            ``settings``. Requests carry absolute URLs, their own headers and timeouts.
        sleep: Sleeps for the given seconds; used for pacing, retry waits and token
            request retries.
        clock: Returns seconds from a monotonic clock; used for pacing and token expiry.
    """

    def __init__(
        self,
        settings: StaffbaseSettings,
        *,
        http: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._owns_http = http is None
        self._http = http if http is not None else _build_http_client(settings)
        self._timeout = httpx.Timeout(settings.timeout_seconds)
        self._headers = {"User-Agent": settings.user_agent, "Accept": "application/json"}
        self.auth = build_auth(settings, self._http, clock=clock, sleep=sleep)
        self.rate_limiter = AdaptiveRateLimiter(
            settings.max_requests_per_second, clock=clock, sleep=sleep
        )
        self.retry_policy = RetryPolicy(
            max_attempts=settings.max_attempts,
            max_wait=settings.max_retry_wait_seconds,
            initial_wait=settings.retry_initial_wait_seconds,
            sleep=sleep,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http:
            self._http.close()

    # Users

    def iter_users(
        self, statuses: Iterable[str] = USER_STATUSES, page_size: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield every user with one of ``statuses``, each once, page by page.

        Staffbase lists only activated users unless told otherwise, so the status filter
        is always sent.

        Args:
            statuses: User statuses to list.
            page_size: Users per request; defaults to ``[staffbase] page_size``.
        """
        limit = page_size or self.settings.page_size
        status_filter = ",".join(statuses)
        offset = 0
        seen: set[str] = set()
        while True:
            params = {"limit": limit, "offset": offset, "status": status_filter}
            page = self._get_page("/users", params)
            users = page["data"]
            offset += len(users)

            # Users created or deleted while the pages are read shift the offsets, so a
            # user may come up twice; it is yielded once.
            fresh = [user for user in users if user.get("id") is None or user["id"] not in seen]
            if users and not fresh:
                msg = (
                    f"Staffbase returned the same users again at offset {offset - len(users)}"
                    " of GET /users: it seems to ignore the offset parameter"
                )
                raise FatalStaffbaseError(msg, method="GET", route="/users")
            seen.update(user["id"] for user in fresh if user.get("id") is not None)
            yield from fresh

            if _last_page(page, users, offset, limit):
                return

    def get_user(self, id_or_external_id: str) -> dict[str, Any] | None:
        """Return the user with this Staffbase id or externalID, or None if there is none."""
        response = self._call("GET", "/users/{id}", id_or_external_id, allow_not_found=True)
        if response is None:
            return None
        return _json_dict(response, "GET", "/users/{id}")

    def find_user_by_external_id(self, external_id: str) -> dict[str, Any] | None:
        """Return the user whose externalID is ``external_id``, or None.

        ``GET /users/{id}`` also matches Staffbase ids, so a user found there counts only
        when its externalID is the one asked for.
        """
        user = self.get_user(external_id)
        if user is None or user.get("externalID") != external_id:
            return None
        return user

    def create_user(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a user and return it as Staffbase stored it.

        Raises:
            ConflictError: a unique value (externalID, e-mail, userName) is taken.
            OutcomeUnknown: the user may have been created; look it up by externalID.
            RecordFailed: Staffbase rejected the user, or kept failing.
        """
        response = self._call("POST", "/users", json_body=body)
        assert response is not None
        created = _json_dict(response, "POST", "/users", required=False)
        if created:
            return created

        # Some API versions answer 201 with only a Location header.
        location = response.headers.get("location", "").rstrip("/")
        user = self.get_user(location.rsplit("/", 1)[-1]) if location else None
        if user is None:
            msg = (
                "POST /users succeeded but Staffbase returned no user: look the user up"
                " by externalID to learn its id"
            )
            raise OutcomeUnknown(msg, method="POST", route="/users", status=response.status_code)
        return user

    def update_user(self, user_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Change the fields in ``body`` (a partial update) and return the user.

        Returns an empty dict when Staffbase answers without a body (204).

        Raises:
            UserNotFound: no user has this id.
            ConflictError: a new unique value is taken by another user.
        """
        response = self._call("PUT", "/users/{id}", user_id, json_body=body)
        assert response is not None
        return _json_dict(response, "PUT", "/users/{id}", required=False)

    def delete_user(self, user_id: str) -> None:
        """Delete a user; a user that does not exist counts as deleted."""
        response = self._call("DELETE", "/users/{id}", user_id, allow_not_found=True)
        if response is None:
            logger.debug("staffbase_user_already_gone", route="/users/{id}")

    def check(self) -> None:
        """Make one read-only call that proves the URL, the credentials and the access level."""
        self._call("GET", "/users", params={"limit": 1})

    # Groups

    def iter_groups(self, page_size: int | None = None) -> Iterator[dict[str, Any]]:
        """Yield every group, page by page."""
        limit = page_size or self.settings.page_size
        offset = 0
        while True:
            page = self._get_page("/groups", {"limit": limit, "offset": offset})
            groups = page["data"]
            offset += len(groups)
            yield from groups
            if _last_page(page, groups, offset, limit):
                return

    def create_group(self, name: str, external_id: str) -> dict[str, Any]:
        """Create a group and return it.

        Raises:
            OutcomeUnknown: the group may have been created; list the groups to find it.
        """
        body = {"name": name, "externalId": external_id}
        response = self._call("POST", "/groups", json_body=body)
        assert response is not None
        return _json_dict(response, "POST", "/groups")

    def add_group_members(self, group_id: str, user_ids: Iterable[str]) -> None:
        """Add users (by Staffbase id) to a group; members already in it stay."""
        self._change_members(group_id, user_ids, GROUP_MEMBERS_ADD)

    def remove_group_members(self, group_id: str, user_ids: Iterable[str]) -> None:
        """Remove users (by Staffbase id) from a group; ids not in it are ignored."""
        self._change_members(group_id, user_ids, GROUP_MEMBERS_REMOVE)

    def _change_members(self, group_id: str, user_ids: Iterable[str], media_type: str) -> None:
        ids = list(user_ids)
        headers = {"Content-Type": media_type, "Accept": media_type}
        for start in range(0, len(ids), MEMBER_BATCH_SIZE):
            batch = ids[start : start + MEMBER_BATCH_SIZE]
            self._call(
                "PATCH",
                "/groups/{id}/members",
                group_id,
                content=json.dumps({"userIds": batch}).encode(),
                headers=headers,
                # Adding or removing the same set of members twice changes nothing more.
                idempotent=True,
            )

    # Requests

    def _get_page(self, route: str, params: dict[str, Any]) -> dict[str, Any]:
        response = self._call("GET", route, params=params)
        assert response is not None
        try:
            page = response.json()
        except ValueError:
            page = None
        # A bare list is accepted too, since some list endpoints return one.
        if isinstance(page, list):
            page = {"data": page}
        if not isinstance(page, dict) or not isinstance(page.get("data"), list):
            msg = f"GET {route} returned no list of entries in 'data'; check base_url"
            raise FatalStaffbaseError(msg, method="GET", route=route, status=response.status_code)
        return page

    def _call(
        self,
        method: str,
        route: str,
        path_id: str | None = None,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        allow_not_found: bool = False,
    ) -> httpx.Response | None:
        """Send one logical request (with its retries) and check the final response.

        Returns None for a 404 when ``allow_not_found`` is set.
        """
        path = route if path_id is None else route.replace("{id}", quote(path_id, safe=""))
        url = self.settings.base_url + path
        request_headers = {**self._headers, **(headers or {})}
        if idempotent is None:
            idempotent = method in _IDEMPOTENT_METHODS

        def send_once() -> httpx.Response:
            return self._send_once(
                method,
                route,
                url,
                params=params,
                json_body=json_body,
                content=content,
                headers=request_headers,
            )

        response = self._send_with_retries(send_once, method, route, idempotent)
        if response.status_code == 404 and allow_not_found:
            return None
        self._raise_for_status(response, method, route)
        return response

    def _send_once(
        self,
        method: str,
        route: str,
        url: str,
        *,
        params: Mapping[str, Any] | None,
        json_body: Mapping[str, Any] | None,
        content: bytes | None,
        headers: Mapping[str, str],
    ) -> httpx.Response:
        self.rate_limiter.acquire()
        try:
            response = self._http.request(
                method,
                url,
                params=params,
                json=json_body,
                content=content,
                headers=headers,
                auth=self.auth,
                timeout=self._timeout,
            )
        except httpx.TransportError:
            metrics.STAFFBASE_REQUESTS.labels(method=method, route=route, status="error").inc()
            raise
        # NOTE: a 401 answered to an expired token is replayed inside the auth flow, so
        # only the replay's status is counted here.
        status = response.status_code
        metrics.STAFFBASE_REQUESTS.labels(method=method, route=route, status=str(status)).inc()
        logger.debug("staffbase_request", method=method, route=route, status=status)

        if status == 429:
            metrics.RATE_LIMITED.inc()
            retry = RetryableStatus(response)
            waits = (
                retry.retry_after is not None and retry.retry_after <= self.retry_policy.max_wait
            )
            self.rate_limiter.on_rate_limited(retry.retry_after if waits else None)
            raise retry
        if status < 500:
            self.rate_limiter.on_success()
        if status in (500, 502, 503, 504):
            raise RetryableStatus(response)
        return response

    def _send_with_retries(
        self,
        send_once: Callable[[], httpx.Response],
        method: str,
        route: str,
        idempotent: bool,
    ) -> httpx.Response:
        try:
            return self.retry_policy.call(
                send_once, method=method, route=route, idempotent=idempotent
            )
        except RetryableStatus as exc:
            raise self._error_after_status(exc, method, route, idempotent) from None
        except httpx.TransportError as exc:
            raise self._error_after_transport(exc, method, route, idempotent) from exc
        except StaffbaseError as exc:
            # Raised by the auth flow, which does not know the route template.
            exc.route = exc.route or route
            raise

    def _error_after_status(
        self, exc: RetryableStatus, method: str, route: str, idempotent: bool
    ) -> StaffbaseError:
        ref, api_message = read_error_envelope(exc.response)
        where = _Where(
            method=method, route=route, status=exc.status, ref=ref, api_message=api_message
        )
        detail = _detail(ref, api_message)

        if not idempotent and not sent_nothing(exc):
            msg = (
                f"{method} {route} answered HTTP {exc.status}{detail}, so it may or may not"
                " have been applied: look the record up before sending it again"
            )
            return OutcomeUnknown(msg, **where)
        if self.retry_policy.retry_after_too_long(exc):
            msg = (
                f"{method} {route} answered HTTP {exc.status} and asked to wait"
                f" {exc.retry_after:.0f} s (Retry-After), longer than max_retry_wait_seconds"
                f" = {self.retry_policy.max_wait:g}; the record is retried on the next run"
            )
            return RetriesExhausted(msg, **where)
        msg = (
            f"{method} {route} still answered HTTP {exc.status}{detail} after"
            f" {self.retry_policy.max_attempts} attempts"
        )
        return RetriesExhausted(msg, **where)

    def _error_after_transport(
        self, exc: httpx.TransportError, method: str, route: str, idempotent: bool
    ) -> StaffbaseError:
        reason = failure_reason(exc)
        if isinstance(exc, httpx.UnsupportedProtocol):
            msg = f"base_url {self.settings.base_url!r} is not an http:// or https:// URL"
            return FatalStaffbaseError(msg, method=method, route=route)
        if not idempotent and not sent_nothing(exc):
            msg = (
                f"{method} {route} failed before its response arrived ({reason}:"
                f" {type(exc).__name__}), so it may or may not have been applied: look the"
                " record up before sending it again"
            )
            return OutcomeUnknown(msg, method=method, route=route)
        msg = (
            f"{method} {route} failed after {self.retry_policy.max_attempts} attempts"
            f" ({reason}: {type(exc).__name__}); check base_url and the network"
        )
        return RetriesExhausted(msg, method=method, route=route)

    def _raise_for_status(self, response: httpx.Response, method: str, route: str) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return

        ref, api_message = read_error_envelope(response)
        where = _Where(method=method, route=route, status=status, ref=ref, api_message=api_message)
        detail = _detail(ref, api_message)
        if status == 401:
            who = "API token" if isinstance(self.auth, ApiTokenAuth) else "access token"
            msg = f"Staffbase rejected the {who} for {method} {route} (HTTP 401{detail})"
            raise AuthenticationFailed(msg, **where)
        if status == 403:
            msg = (
                f"Staffbase denied {method} {route} (HTTP 403{detail}): the credentials"
                " need the Administrative access level or the scopes to manage users"
            )
            raise PermissionDenied(msg, **where)
        if 300 <= status < 400 or (status in (404, 405) and route in ("/users", "/groups")):
            msg = (
                f"{method} {route} answered HTTP {status}: check base_url, which should end in /api"
            )
            raise FatalStaffbaseError(msg, **where)
        if status == 409 or (status == 400 and _mentions_duplicate(ref, api_message)):
            field = classify_conflict(ref, api_message)
            taken = f"the {field} is already taken" if field else "a unique value is taken"
            msg = f"{method} {route} was rejected because {taken} (HTTP {status}{detail})"
            raise ConflictError(msg, field=field, **where)
        if status == 404 and route.startswith("/users/"):
            msg = f"{method} {route} found no such user (HTTP 404{detail})"
            raise UserNotFound(msg, **where)
        msg = f"{method} {route} was rejected with HTTP {status}{detail}"
        raise RecordFailed(msg, **where)


def _build_http_client(settings: StaffbaseSettings) -> httpx.Client:
    # Room for every worker thread plus a token request, so that nobody waits for a
    # connection while the rate limiter would let them go.
    connections = settings.max_concurrency + 2
    return httpx.Client(
        timeout=settings.timeout_seconds,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        follow_redirects=False,
    )


def _last_page(page: Mapping[str, Any], entries: list[Any], offset: int, limit: int) -> bool:
    """Tell whether a list response was the last page.

    With a ``total``, the listing ends once ``offset`` reaches it (or a page is empty),
    because a page shorter than requested may only mean that the server caps ``limit``.
    Without one, a page shorter than the server's ``limit`` ends it.
    """
    if not entries:
        return True
    total = page.get("total")
    if isinstance(total, int) and not isinstance(total, bool):
        return offset >= total
    server_limit = page.get("limit")
    effective = server_limit if isinstance(server_limit, int) and server_limit > 0 else limit
    return len(entries) < effective


def _json_dict(
    response: httpx.Response, method: str, route: str, *, required: bool = True
) -> dict[str, Any]:
    if not response.content and not required:
        return {}
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return body
    if not required and body is None:
        return {}
    msg = f"{method} {route} returned HTTP {response.status_code} without a JSON object"
    raise RecordFailed(msg, method=method, route=route, status=response.status_code)


def _detail(ref: str | None, api_message: str | None) -> str:
    parts = [part for part in (ref, api_message) if part]
    return f": {' '.join(parts)}" if parts else ""


def _mentions_duplicate(ref: str | None, api_message: str | None) -> bool:
    text = f"{ref or ''} {api_message or ''}".casefold()
    return any(word in text for word in _DUPLICATE_WORDS)
