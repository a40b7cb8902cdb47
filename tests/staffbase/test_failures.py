"""Tests for turning failed responses and transport errors into the error taxonomy.

Most cases also happen end to end against the emulator in ``test_client.py``. The cases
here (403, redirects, undocumented duplicate reports) are ones the emulator never produces.
"""

from __future__ import annotations

import httpx
import pytest

from staffsync.staffbase.errors import (
    AuthenticationFailed,
    ConflictError,
    FatalStaffbaseError,
    OutcomeUnknown,
    PermissionDenied,
    RecordFailed,
    RetriesExhausted,
    UserNotFound,
)
from staffsync.staffbase.failures import (
    error_after_status,
    error_after_transport,
    error_for_status,
)
from staffsync.staffbase.retry import RetryableStatus, RetryPolicy

POLICY = RetryPolicy(max_attempts=5, max_wait=30.0)


def response(status: int, ref: str | None = None, message: str | None = None) -> httpx.Response:
    body = {"ref": ref, "message": message} if ref or message else None
    return httpx.Response(status, json=body) if body else httpx.Response(status)


class TestErrorForStatus:
    def test_api_token_rejected(self) -> None:
        """A 401 with an API token reports that the API token was rejected."""
        error = error_for_status(response(401), method="GET", route="/users", api_token=True)

        assert isinstance(error, AuthenticationFailed)
        assert str(error) == "Staffbase rejected the API token for GET /users (HTTP 401)"

    def test_forbidden(self) -> None:
        """A 403 stops the run and names the access level needed."""
        error = error_for_status(
            response(403, "ERROR_FORBIDDEN"), method="PUT", route="/users/{id}", api_token=False
        )

        assert isinstance(error, PermissionDenied)
        assert isinstance(error, FatalStaffbaseError)
        assert "Administrative access level" in str(error)
        assert error.ref == "ERROR_FORBIDDEN"

    @pytest.mark.parametrize(
        ("status", "route"), [(302, "/users/{id}"), (404, "/users"), (405, "/groups")]
    )
    def test_wrong_base_url(self, status: int, route: str) -> None:
        """Redirects, and 404 or 405 on a collection, point at a wrong base_url."""
        error = error_for_status(response(status), method="GET", route=route, api_token=False)

        assert isinstance(error, FatalStaffbaseError)
        assert "check base_url" in str(error)

    def test_duplicate_as_400(self) -> None:
        """A 400 that reports a duplicate e-mail is a conflict on email."""
        error = error_for_status(
            response(400, "ERROR_VALIDATION", "E-mail address already exists"),
            method="POST",
            route="/users",
            api_token=False,
        )

        assert isinstance(error, ConflictError)
        assert error.field == "email"

    def test_conflict_without_field(self) -> None:
        """A 409 that names no field is a conflict with field None."""
        error = error_for_status(response(409), method="POST", route="/users", api_token=False)

        assert isinstance(error, ConflictError)
        assert error.field is None
        assert "a unique value is taken" in str(error)

    def test_user_not_found(self) -> None:
        """A 404 on a user route is UserNotFound."""
        error = error_for_status(response(404), method="PUT", route="/users/{id}", api_token=False)

        assert isinstance(error, UserNotFound)

    def test_other_client_error(self) -> None:
        """Any other 4xx fails the record with the envelope in the message."""
        error = error_for_status(
            response(422, "ERROR_INVALID", "firstName is too long"),
            method="PUT",
            route="/users/{id}",
            api_token=False,
        )

        assert type(error) is RecordFailed
        assert str(error) == (
            "PUT /users/{id} was rejected with HTTP 422: ERROR_INVALID firstName is too long"
        )


class TestErrorAfterRetries:
    @pytest.mark.parametrize("status", [500, 502, 504])
    def test_create_ambiguous_status(self, status: int) -> None:
        """A create that ended in a 5xx other than 503 has an unknown outcome."""
        error = error_after_status(
            RetryableStatus(response(status)),
            method="POST",
            route="/users",
            idempotent=False,
            policy=POLICY,
        )

        assert isinstance(error, OutcomeUnknown)
        assert "look the record up" in str(error)

    def test_create_still_rate_limited(self) -> None:
        """A create that was rate-limited to the end was never applied."""
        error = error_after_status(
            RetryableStatus(response(429)),
            method="POST",
            route="/users",
            idempotent=False,
            policy=POLICY,
        )

        assert isinstance(error, RetriesExhausted)
        assert str(error) == "POST /users still failed with HTTP 429 after 5 attempts"

    def test_retry_after_too_long(self) -> None:
        """A Retry-After beyond the longest wait is named in the message."""
        rate_limited = RetryableStatus(httpx.Response(429, headers={"Retry-After": "3600"}))

        error = error_after_status(
            rate_limited, method="GET", route="/users", idempotent=True, policy=POLICY
        )

        assert isinstance(error, RetriesExhausted)
        assert "Retry-After 3600 s, longer than max_retry_wait_seconds = 30" in str(error)

    def test_create_read_timeout(self) -> None:
        """A create whose response timed out has an unknown outcome."""
        error = error_after_transport(
            httpx.ReadTimeout("timed out"),
            method="POST",
            route="/users",
            idempotent=False,
            policy=POLICY,
            base_url="https://app.example.com/api",
        )

        assert isinstance(error, OutcomeUnknown)

    def test_unreachable(self) -> None:
        """A server that cannot be reached fails the record after every attempt."""
        error = error_after_transport(
            httpx.ConnectError("refused"),
            method="POST",
            route="/users",
            idempotent=False,
            policy=POLICY,
            base_url="https://app.example.com/api",
        )

        assert isinstance(error, RetriesExhausted)
        assert str(error) == (
            "POST /users failed after 5 attempts (connection: ConnectError);"
            " check base_url and the network"
        )

    def test_bad_scheme(self) -> None:
        """A base_url without http(s) stops the run."""
        error = error_after_transport(
            httpx.UnsupportedProtocol("no scheme"),
            method="GET",
            route="/users",
            idempotent=True,
            policy=POLICY,
            base_url="app.example.com/api",
        )

        assert isinstance(error, FatalStaffbaseError)
        assert "'app.example.com/api' is invalid" in str(error)
