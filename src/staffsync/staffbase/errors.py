"""Errors raised by the Staffbase client, grouped by what the caller has to do next.

- :class:`FatalStaffbaseError`: stop the run, because every further request would fail
  the same way (rejected credentials, missing permission, wrong URL).
- :class:`RecordFailed`: this one record's request failed for good; record the failure
  and carry on with the next record.
- :class:`OutcomeUnknown`: a create may or may not have been applied; look the user up
  by externalID before sending anything again.

Every error carries the request's method and route template, the HTTP status and the
``ref`` and ``message`` of Staffbase's JSON error envelope when there was one. None of
them carries a request body, a header, a token or a secret.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import httpx

__all__ = [
    "AuthenticationFailed",
    "ConflictError",
    "ConflictField",
    "FatalStaffbaseError",
    "OutcomeUnknown",
    "PermissionDenied",
    "RecordFailed",
    "RetriesExhausted",
    "StaffbaseError",
    "TokenRequestFailed",
    "UserNotFound",
    "classify_conflict",
    "read_error_envelope",
]

ConflictField = Literal["externalID", "email", "userName"]

# Maximum length of a server's error text kept in a message. Without a limit, an error
# page from a proxy would fill the run report.
_MAX_SERVER_TEXT = 300


class StaffbaseError(Exception):
    """Base of every error raised while talking to Staffbase.

    Attributes:
        method: HTTP method of the failed request, e.g. ``"PUT"``.
        route: Route template of the request, e.g. ``"/users/{id}"`` (never a real id).
        status: HTTP status of the last response, or None when none arrived.
        ref: The ``ref`` code of Staffbase's error envelope, e.g. ``"ERROR_LOGIN_REQUIRED"``.
        api_message: The ``message`` of Staffbase's error envelope.
    """

    def __init__(
        self,
        summary: str,
        *,
        method: str | None = None,
        route: str | None = None,
        status: int | None = None,
        ref: str | None = None,
        api_message: str | None = None,
    ) -> None:
        super().__init__(summary)
        self.method = method
        self.route = route
        self.status = status
        self.ref = ref
        self.api_message = api_message


class FatalStaffbaseError(StaffbaseError):
    """Every further request would fail the same way: stop the run."""


class AuthenticationFailed(FatalStaffbaseError):
    """Staffbase rejected the credentials, even with a freshly fetched token."""


class TokenRequestFailed(FatalStaffbaseError):
    """The OAuth token endpoint did not issue a token.

    Attributes:
        error: The RFC 6749 ``error`` code from the token endpoint (``invalid_client``,
            ``invalid_scope`` …), or None when the endpoint returned none.
        error_description: The endpoint's ``error_description``, or None.
    """

    def __init__(
        self,
        summary: str,
        *,
        status: int | None = None,
        error: str | None = None,
        error_description: str | None = None,
    ) -> None:
        super().__init__(summary, method="POST", route="token_url", status=status)
        self.error = error
        self.error_description = error_description


class PermissionDenied(FatalStaffbaseError):
    """Staffbase returned 403 because the credentials lack the access level or scope for a call."""


class RecordFailed(StaffbaseError):
    """This record's request failed for good; the run goes on with the next record."""


class RetriesExhausted(RecordFailed):
    """The request still failed after its last attempt, or Staffbase asked to wait too long."""


class UserNotFound(RecordFailed):
    """The user to update does not exist in Staffbase (HTTP 404)."""


class ConflictError(RecordFailed):
    """Staffbase rejected a create or update because a unique value is taken.

    Attributes:
        field: The flat field whose value clashes (``"externalID"``, ``"email"`` or
            ``"userName"``), or None when the error envelope does not say which.
    """

    def __init__(
        self,
        summary: str,
        *,
        field: ConflictField | None,
        method: str | None = None,
        route: str | None = None,
        status: int | None = None,
        ref: str | None = None,
        api_message: str | None = None,
    ) -> None:
        super().__init__(
            summary, method=method, route=route, status=status, ref=ref, api_message=api_message
        )
        self.field = field


class OutcomeUnknown(StaffbaseError):
    """A create may or may not have been applied (the reply was lost or was 5xx).

    Sending it again could create a duplicate. Look the user up by externalID instead.
    """


def read_error_envelope(response: httpx.Response) -> tuple[str | None, str | None]:
    """Return the ``(ref, message)`` of Staffbase's JSON error envelope in ``response``.

    A body that is not such an envelope gives ``(None, <its start>)`` for a short text
    body, or ``(None, None)`` when it is empty or not text.
    """
    try:
        envelope = response.json()
    except ValueError:
        text = response.text.strip() if _is_text(response) else ""
        return None, text[:_MAX_SERVER_TEXT] or None

    if not isinstance(envelope, dict):
        return None, None
    ref = envelope.get("ref") or envelope.get("error")
    message = envelope.get("message") or envelope.get("error_description")
    return (
        str(ref)[:_MAX_SERVER_TEXT] if ref else None,
        str(message)[:_MAX_SERVER_TEXT] if message else None,
    )


def classify_conflict(ref: str | None, message: str | None) -> ConflictField | None:
    """Name the unique field that a duplicate-value error is about, or None.

    NOTE: Staffbase does not document its duplicate-value codes, so this matches words
    in the ``ref`` code first and then in the message, ignoring case.
    """
    for text in (ref, message):
        if not text:
            continue
        folded = text.casefold()
        if "external" in folded:
            return "externalID"
        if "username" in folded or "user name" in folded or "user_name" in folded:
            return "userName"
        if "mail" in folded:
            return "email"
    return None


def _is_text(response: httpx.Response) -> bool:
    # Plain text only, because an HTML error page from a proxy adds nothing useful to a message.
    content_type = response.headers.get("content-type", "")
    return content_type.startswith("text/plain") or not content_type
