"""The Staffbase User API client that the sync engine calls from its worker threads.

Every request passes through the shared rate limiter and the retry policy, is counted in
``staffsync_staffbase_requests`` by method, route template and status, and ends in one
of three ways: a result, ``None`` where a missing user is a valid result, or a
:class:`~staffsync.staffbase.errors.StaffbaseError` that says what the caller must do.
"""

from __future__ import annotations

import json
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import quote

import httpx
import structlog

from staffsync import metrics
from staffsync.staffbase.auth import ApiTokenAuth, build_auth
from staffsync.staffbase.errors import (
    FatalStaffbaseError,
    OutcomeUnknown,
    RecordFailed,
    StaffbaseError,
)
from staffsync.staffbase.failures import (
    error_after_status,
    error_after_transport,
    error_for_status,
)
from staffsync.staffbase.model import USER_STATUSES
from staffsync.staffbase.ratelimit import AdaptiveRateLimiter
from staffsync.staffbase.retry import RetryableStatus, RetryPolicy

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

REPEAT_WINDOW = 10_000
"""Users whose ids :meth:`StaffbaseClient.iter_users` remembers to drop repeated ones."""

_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE"})


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
        """Yield every user with one of ``statuses``, page by page, each once.

        Staffbase lists only activated users unless the request names other statuses,
        so the status filter is always sent.

        Users added while the pages are read shift the offsets, so a page can repeat
        users listed shortly before. The ids of the last :data:`REPEAT_WINDOW` users
        are remembered to drop such repeats, which keeps memory flat however large the
        tenant is. NOTE: when more users than that are added during one listing, a user
        can still be yielded twice, so callers must tolerate repeats.

        Args:
            statuses: User statuses to list.
            page_size: Users per request; defaults to ``[staffbase] page_size``.
        """
        limit = page_size or self.settings.page_size
        status_filter = ",".join(statuses)
        offset = 0
        recent: deque[str] = deque()
        seen: set[str] = set()
        while True:
            params = {"limit": limit, "offset": offset, "status": status_filter}
            page = self._get_page("/users", params)
            users = page["data"]
            offset += len(users)

            fresh = [user for user in users if user.get("id") is None or user["id"] not in seen]
            if users and not fresh:
                msg = (
                    f"Staffbase returned the same users again at offset {offset - len(users)}"
                    " of GET /users: it seems to ignore the offset parameter"
                )
                raise FatalStaffbaseError(msg, method="GET", route="/users")
            for user in fresh:
                if user.get("id") is not None:
                    seen.add(user["id"])
                    recent.append(user["id"])
            while len(recent) > max(REPEAT_WINDOW, 2 * limit):
                seen.discard(recent.popleft())
            yield from fresh

            if _last_page(page, users, offset, limit):
                return

    def get_user(self, id_or_external_id: str) -> dict[str, Any] | None:
        """Return the user with this Staffbase id or externalID, or None if there is none."""
        response = self._call_unless_missing("GET", "/users/{id}", id_or_external_id)
        if response is None:
            return None
        return _json_dict(response, "GET", "/users/{id}")

    def find_user_by_external_id(self, external_id: str) -> dict[str, Any] | None:
        """Return the user whose externalID is ``external_id``, or None.

        ``GET /users/{id}`` also matches Staffbase ids, so a user found there counts only
        when its externalID is the one asked for.

        NOTE: the externalID is percent-encoded into the path. A server that decodes
        ``%2F`` before routing (the emulator does) cannot find an externalID with a ``/``.
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
        created = _json_dict(response, "POST", "/users", required=False)
        if created:
            return created

        # Some API versions return 201 with only a Location header.
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

        Returns an empty dict when Staffbase returns no body (204).

        Raises:
            UserNotFound: no user has this id.
            ConflictError: a new unique value is taken by another user.
        """
        response = self._call("PUT", "/users/{id}", user_id, json_body=body)
        return _json_dict(response, "PUT", "/users/{id}", required=False)

    def delete_user(self, user_id: str) -> None:
        """Delete a user; a user that does not exist counts as deleted."""
        response = self._call_unless_missing("DELETE", "/users/{id}", user_id)
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
        **options: Any,
    ) -> httpx.Response:
        """Send one request (with its retries) and return its successful response.

        Raises:
            StaffbaseError: the final response is not 2xx, or none arrived.
        """
        response = self._send(method, route, path_id, **options)
        if not response.is_success:
            api_token = isinstance(self.auth, ApiTokenAuth)
            raise error_for_status(response, method=method, route=route, api_token=api_token)
        return response

    def _call_unless_missing(self, method: str, route: str, path_id: str) -> httpx.Response | None:
        """Like :meth:`_call`, but return None when Staffbase returns 404."""
        response = self._send(method, route, path_id)
        if response.status_code == 404:
            return None
        if not response.is_success:
            api_token = isinstance(self.auth, ApiTokenAuth)
            raise error_for_status(response, method=method, route=route, api_token=api_token)
        return response

    def _send(
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
    ) -> httpx.Response:
        """Send one request with its retries and return the final response, of any status."""
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

        return self._send_with_retries(send_once, method, route, idempotent)

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
        # A request rejected with 401 (an expired token) is replayed inside the auth flow;
        # httpx keeps the 401 response in the history of the replay's response.
        # NOTE: when the replay is rejected too, the auth flow raises and neither 401 is
        # counted; that ends the run with AuthenticationFailed.
        for earlier in response.history:
            metrics.STAFFBASE_REQUESTS.labels(
                method=method, route=route, status=str(earlier.status_code)
            ).inc()
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
            raise error_after_status(
                exc, method=method, route=route, idempotent=idempotent, policy=self.retry_policy
            ) from None
        except httpx.TransportError as exc:
            # Not chained: the httpx error keeps the request, Authorization header included.
            raise error_after_transport(
                exc,
                method=method,
                route=route,
                idempotent=idempotent,
                policy=self.retry_policy,
                base_url=self.settings.base_url,
            ) from None
        except StaffbaseError as exc:
            # Raised by the auth flow, which does not know the route template.
            exc.route = exc.route or route
            raise


def _build_http_client(settings: StaffbaseSettings) -> httpx.Client:
    # Room for every worker thread plus a token request, so that no worker waits for a
    # connection while the rate limiter would let it send.
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
