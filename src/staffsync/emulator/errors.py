"""Staffbase's JSON error envelope and the error kinds the emulator responds with.

Every API error has the shape ``{"traceId", "type", "ref", "statusCode", "message",
"identifier"}``. Only the login error is known from a real tenant. Staffbase does not
publish the others, so these ``ref`` values and identifiers are the emulator's own:

====== ======================================= ========== =====================================
status ref                                     identifier when
====== ======================================= ========== =====================================
400    ERROR_INVALID_REQUEST                   40001      malformed body, field or parameter
400    ERROR_PENDING_USER_NOT_DEACTIVATABLE    40002      pending -> deactivated
400    ERROR_PENDING_USER_NOT_ACTIVATABLE      40003      pending -> activated
400    ERROR_INVALID_STATUS_TRANSITION         40004      activated or deactivated -> pending
401    ERROR_LOGIN_REQUIRED                    40102      missing, invalid or expired credentials
404    ERROR_NOT_FOUND                         40401      unknown user, group or path
405    ERROR_METHOD_NOT_ALLOWED                40501      wrong method for a path
409    ERROR_DUPLICATE_EXTERNAL_ID             40901      externalID taken
409    ERROR_DUPLICATE_EMAIL                   40902      primary e-mail taken (any case)
409    ERROR_DUPLICATE_USERNAME                40903      userName taken (any case)
409    ERROR_DUPLICATE_GROUP_EXTERNAL_ID       40904      group externalId taken
415    ERROR_UNSUPPORTED_MEDIA_TYPE            41501      wrong Content-Type
429    ERROR_RATE_LIMIT_EXCEEDED               42901      injected rate limit
500    ERROR_INTERNAL                          50001      injected or unexpected server error
503    ERROR_SERVICE_UNAVAILABLE               50301      injected server error
====== ======================================= ========== =====================================

The 409 messages name the conflicting field (``externalID``, ``email``, ``userName``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.responses import JSONResponse

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "DUPLICATE_EMAIL",
    "DUPLICATE_EXTERNAL_ID",
    "DUPLICATE_GROUP_EXTERNAL_ID",
    "DUPLICATE_USERNAME",
    "INTERNAL_ERROR",
    "INVALID_REQUEST",
    "INVALID_STATUS_TRANSITION",
    "LOGIN_REQUIRED",
    "METHOD_NOT_ALLOWED",
    "NOT_FOUND",
    "PENDING_USER_NOT_ACTIVATABLE",
    "PENDING_USER_NOT_DEACTIVATABLE",
    "RATE_LIMIT_EXCEEDED",
    "SERVICE_UNAVAILABLE",
    "UNSUPPORTED_MEDIA_TYPE",
    "ApiError",
    "ErrorKind",
    "error_response",
]


@dataclass(frozen=True, slots=True)
class ErrorKind:
    """The fixed part of an error envelope: HTTP status, exception type, ref and identifier."""

    status_code: int
    type: str
    ref: str
    identifier: int


# Seen on a real tenant for a request without valid credentials.
LOGIN_REQUIRED = ErrorKind(401, "NotLoggedInException", "ERROR_LOGIN_REQUIRED", 40102)

# The emulator's own codes: the real ones for these cases are not published.
INVALID_REQUEST = ErrorKind(400, "InvalidRequestException", "ERROR_INVALID_REQUEST", 40001)
PENDING_USER_NOT_DEACTIVATABLE = ErrorKind(
    400, "InvalidStatusException", "ERROR_PENDING_USER_NOT_DEACTIVATABLE", 40002
)
PENDING_USER_NOT_ACTIVATABLE = ErrorKind(
    400, "InvalidStatusException", "ERROR_PENDING_USER_NOT_ACTIVATABLE", 40003
)
INVALID_STATUS_TRANSITION = ErrorKind(
    400, "InvalidStatusException", "ERROR_INVALID_STATUS_TRANSITION", 40004
)
NOT_FOUND = ErrorKind(404, "NotFoundException", "ERROR_NOT_FOUND", 40401)
METHOD_NOT_ALLOWED = ErrorKind(405, "MethodNotAllowedException", "ERROR_METHOD_NOT_ALLOWED", 40501)
DUPLICATE_EXTERNAL_ID = ErrorKind(
    409, "DuplicateEntryException", "ERROR_DUPLICATE_EXTERNAL_ID", 40901
)
DUPLICATE_EMAIL = ErrorKind(409, "DuplicateEntryException", "ERROR_DUPLICATE_EMAIL", 40902)
DUPLICATE_USERNAME = ErrorKind(409, "DuplicateEntryException", "ERROR_DUPLICATE_USERNAME", 40903)
DUPLICATE_GROUP_EXTERNAL_ID = ErrorKind(
    409, "DuplicateEntryException", "ERROR_DUPLICATE_GROUP_EXTERNAL_ID", 40904
)
UNSUPPORTED_MEDIA_TYPE = ErrorKind(
    415, "UnsupportedMediaTypeException", "ERROR_UNSUPPORTED_MEDIA_TYPE", 41501
)
RATE_LIMIT_EXCEEDED = ErrorKind(
    429, "RateLimitExceededException", "ERROR_RATE_LIMIT_EXCEEDED", 42901
)
INTERNAL_ERROR = ErrorKind(500, "InternalServerErrorException", "ERROR_INTERNAL", 50001)
SERVICE_UNAVAILABLE = ErrorKind(
    503, "ServiceUnavailableException", "ERROR_SERVICE_UNAVAILABLE", 50301
)


class ApiError(Exception):
    """An API request that fails with ``kind``; the handlers turn it into the envelope."""

    def __init__(
        self, kind: ErrorKind, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.headers = dict(headers or {})


def error_response(
    kind: ErrorKind, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """Build the JSON error envelope for ``kind`` with a fresh trace id."""
    body = {
        "traceId": secrets.token_hex(16),
        "type": kind.type,
        "ref": kind.ref,
        "statusCode": kind.status_code,
        "message": message,
        "identifier": kind.identifier,
    }
    return JSONResponse(body, status_code=kind.status_code, headers=dict(headers or {}))
