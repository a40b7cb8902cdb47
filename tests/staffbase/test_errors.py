"""Tests for reading Staffbase's error envelope and classifying duplicate-value errors."""

from __future__ import annotations

import httpx
import pytest

from staffsync.staffbase.errors import (
    ConflictError,
    RecordFailed,
    StaffbaseError,
    classify_conflict,
    read_error_envelope,
)


class TestClassifyConflict:
    @pytest.mark.parametrize(
        ("ref", "message", "field"),
        [
            ("ERROR_DUPLICATE_EXTERNAL_ID", None, "externalID"),
            ("ERROR_DUPLICATE_EMAIL", None, "email"),
            ("ERROR_DUPLICATE_USERNAME", None, "userName"),
            ("ERROR_CONFLICT", "The user name 'ada' is taken.", "userName"),
            ("ERROR_CONFLICT", "E-Mail already in use", "email"),
            (None, "externalId E1 exists", "externalID"),
            ("ERROR_CONFLICT", "Duplicate entry", None),
            (None, None, None),
        ],
    )
    def test_fields(self, ref: str | None, message: str | None, field: str | None) -> None:
        """The field is found in the ref first, then in the message, ignoring case."""
        assert classify_conflict(ref, message) == field


class TestReadErrorEnvelope:
    def test_envelope(self) -> None:
        """ref and message are taken from Staffbase's JSON envelope."""
        response = httpx.Response(
            409,
            json={
                "traceId": "abc",
                "type": "DuplicateEntryException",
                "ref": "ERROR_DUPLICATE_EMAIL",
                "statusCode": 409,
                "message": "Another user has this e-mail.",
                "identifier": 40902,
            },
        )

        assert read_error_envelope(response) == (
            "ERROR_DUPLICATE_EMAIL",
            "Another user has this e-mail.",
        )

    def test_oauth_error(self) -> None:
        """An RFC 6749 error body gives its error code and description."""
        response = httpx.Response(400, json={"error": "invalid_scope", "error_description": "nope"})

        assert read_error_envelope(response) == ("invalid_scope", "nope")

    def test_text_body(self) -> None:
        """A plain-text body is kept as the message, shortened."""
        response = httpx.Response(502, text="Bad gateway " * 100)

        ref, message = read_error_envelope(response)
        assert ref is None
        assert message is not None
        assert len(message) == 300

    def test_html_body(self) -> None:
        """An HTML error page is not copied into the message."""
        response = httpx.Response(502, html="<html><body>Bad gateway</body></html>")

        assert read_error_envelope(response) == (None, None)

    def test_empty_body(self) -> None:
        """An empty body has neither."""
        assert read_error_envelope(httpx.Response(500)) == (None, None)


class TestTaxonomy:
    def test_conflict_is_record_failure(self) -> None:
        """A conflict fails the record, not the run, and keeps the context."""
        error = ConflictError(
            "taken", field="email", method="POST", route="/users", status=409, ref="ERROR_X"
        )

        assert isinstance(error, RecordFailed)
        assert isinstance(error, StaffbaseError)
        assert error.field == "email"
        assert error.route == "/users"
        assert error.status == 409
        assert str(error) == "taken"
