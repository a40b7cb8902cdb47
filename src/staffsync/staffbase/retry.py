"""When and how long a Staffbase request is retried (built on tenacity).

Which failures are retried depends on whether sending the request twice is harmless:

- Idempotent requests (GET, PUT, DELETE, and the group-membership PATCH, which adds or
  removes a set of ids) are retried on connection errors, timeouts and the statuses 429,
  500, 502, 503 and 504.
- A create (POST) is retried only when the request provably was not processed: the
  connection could not be made, no pooled connection became free, or Staffbase returned
  429 or 503. Any other failure may have created the user, so the caller gets
  :class:`~staffsync.staffbase.errors.OutcomeUnknown` and must look the user up first.

Waits follow ``Retry-After`` on 429 and 503 when the server sends one, and otherwise
exponential backoff with full jitter. A ``Retry-After`` longer than the longest allowed
wait ends the retries at once instead of sleeping.
"""

from __future__ import annotations

import email.utils
import math
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

import httpx
import structlog
import tenacity

from staffsync import metrics

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "RETRYABLE_STATUSES",
    "RetryPolicy",
    "RetryableStatus",
    "failure_reason",
    "is_retryable",
    "parse_retry_after",
    "sent_nothing",
]

logger = structlog.get_logger(__name__)

T = TypeVar("T")

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
"""Statuses after which an idempotent request is sent again."""

_NOT_PROCESSED_STATUSES = frozenset({429, 503})
"""Statuses with which the server rejects a request unprocessed, so a POST may be resent."""

_NOTHING_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Transport errors raised before any byte of the request left this process."""

_RETRYABLE_TRANSPORT_ERRORS = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)


_STATUS_REASONS = {429: "rate_limited", 503: "unavailable"}


class RetryableStatus(Exception):
    """A response whose status may succeed later, raised so that tenacity can retry it.

    The client raises it inside the retry loop for every status in
    :data:`RETRYABLE_STATUSES` and turns it into a
    :class:`~staffsync.staffbase.errors.StaffbaseError` once the retries are over.

    Attributes:
        response: The response, already read.
        status: Its HTTP status.
        retry_after: Seconds the server asked to wait (``Retry-After`` on 429 or 503),
            or None.
    """

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response
        self.status = response.status_code
        self.retry_after: float | None = None
        if self.status in (429, 503):
            self.retry_after = parse_retry_after(response.headers.get("retry-after"))


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Return the wait in seconds that a ``Retry-After`` header requests, or None if unusable.

    Both forms of the header are read: delta-seconds (``"120"``) and an HTTP-date
    (``"Wed, 21 Oct 2026 07:28:00 GMT"``). A date in the past or a negative number
    gives 0. A missing or unparsable value gives None, so the caller falls back to its
    own backoff.

    Args:
        value: The header value.
        now: The current time for HTTP-dates; defaults to the system clock (UTC).
    """
    if value is None or not value.strip():
        return None
    text = value.strip()

    try:
        seconds = float(text)
    except ValueError:
        return _seconds_until_http_date(text, now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _seconds_until_http_date(text: str, now: datetime | None) -> float | None:
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        # An HTTP-date is always GMT; parsedate_to_datetime leaves "-0000" dates naive.
        moment = moment.replace(tzinfo=UTC)

    current = now if now is not None else datetime.now(UTC)
    return max(0.0, (moment - current).total_seconds())


def sent_nothing(exc: BaseException) -> bool:
    """Tell whether ``exc`` proves the request never reached Staffbase's application."""
    if isinstance(exc, RetryableStatus):
        return exc.status in _NOT_PROCESSED_STATUSES
    return isinstance(exc, _NOTHING_SENT_ERRORS)


def is_retryable(exc: BaseException, *, idempotent: bool) -> bool:
    """Tell whether a request that failed with ``exc`` may be sent again.

    Args:
        exc: A :class:`RetryableStatus` or an httpx transport error; anything else
            (including every :class:`~staffsync.staffbase.errors.StaffbaseError`) is
            never retried.
        idempotent: Whether sending the request twice has the same effect as once.
    """
    if sent_nothing(exc):
        return True
    if not idempotent:
        return False
    return isinstance(exc, (RetryableStatus, *_RETRYABLE_TRANSPORT_ERRORS))


def failure_reason(exc: BaseException) -> str:
    """Name the kind of failure, as used in logs and the ``reason`` label of the retry metric."""
    if isinstance(exc, RetryableStatus):
        return _STATUS_REASONS.get(exc.status, "server_error")
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "connection_dropped"
    if isinstance(exc, httpx.NetworkError):
        return "connection"
    return type(exc).__name__


class RetryPolicy:
    """Sends a request up to ``max_attempts`` times, waiting between attempts.

    Args:
        max_attempts: Attempts per request, the first included.
        max_wait: Maximum single wait in seconds; a longer ``Retry-After`` ends the retries.
        initial_wait: Upper bound of the first random backoff wait; each later bound
            doubles, up to ``max_wait``.
        sleep: Called with the seconds to wait; tests pass a function that returns at once.
    """

    def __init__(
        self,
        *,
        max_attempts: int,
        max_wait: float,
        initial_wait: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self._backoff = tenacity.wait_random_exponential(multiplier=initial_wait, max=max_wait)
        self._sleep = sleep

    def call(self, send: Callable[[], T], *, method: str, route: str, idempotent: bool) -> T:
        """Run ``send`` until it succeeds, fails for good, or has used every attempt.

        ``send`` raises :class:`RetryableStatus` for a retryable status. The last
        exception is raised unchanged once the retries are over.

        Args:
            send: Sends the request once and returns the result.
            method: HTTP method, for the retry log.
            route: Route template, for the retry log.
            idempotent: Whether the request may be resent after an ambiguous failure.
        """
        retrying = tenacity.Retrying(
            sleep=self._sleep,
            stop=tenacity.stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception(lambda exc: self._should_retry(exc, idempotent)),
            before_sleep=lambda state: _log_retry(state, method, route),
            reraise=True,
        )
        return retrying(send)

    def retry_after_too_long(self, exc: BaseException) -> bool:
        """Tell whether ``exc`` carries a ``Retry-After`` longer than :attr:`max_wait`."""
        retry_after = getattr(exc, "retry_after", None)
        return retry_after is not None and retry_after > self.max_wait

    def _should_retry(self, exc: BaseException, idempotent: bool) -> bool:
        if self.retry_after_too_long(exc):
            return False
        return is_retryable(exc, idempotent=idempotent)

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return min(float(retry_after), self.max_wait)
        return float(self._backoff(state))


def _log_retry(state: tenacity.RetryCallState, method: str, route: str) -> None:
    exc = state.outcome.exception() if state.outcome else None
    reason = failure_reason(exc) if exc else "unknown"
    metrics.RETRIES.labels(reason=reason).inc()
    # Only the method, route template and failure kind are logged: never a URL with an
    # id in it, a body, a header or the function's arguments.
    logger.warning(
        "staffbase_request_retry",
        method=method,
        route=route,
        reason=reason,
        status=getattr(exc, "status", None),
        attempt=state.attempt_number,
        wait_seconds=round(state.upcoming_sleep, 3),
    )
