"""OAuth 2.0 client-credentials token endpoint and the API's authentication check.

The token endpoint follows RFC 6749: the client authenticates either with HTTP Basic
(``client_secret_basic``, id and secret form-urlencoded before base64, section 2.3.1) or
with ``client_id``/``client_secret`` form fields (``client_secret_post``), never both.
Errors use the RFC's ``{"error", "error_description"}`` body. Tokens are opaque strings
in the form Staffbase ID (an Ory Hydra deployment) hands out, ``ory_at_…``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import math
import secrets
import time
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote_plus

from starlette.responses import JSONResponse

if TYPE_CHECKING:
    from starlette.requests import Request

    from staffsync.emulator.config import EmulatorConfig

__all__ = ["TokenStore", "authenticate_api_request", "handle_token_request"]

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# Expired tokens are dropped from memory once this many have been issued since the last sweep.
_SWEEP_EVERY = 1000


class TokenStore:
    """Issued access tokens with their expiry on the monotonic clock."""

    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}
        self._issued_since_sweep = 0

    def issue(self, lifetime_s: float) -> str:
        """Create a token valid for ``lifetime_s`` seconds from now."""
        self._sweep_if_due()

        token = "ory_at_" + secrets.token_urlsafe(32)
        self._expiry[token] = time.monotonic() + lifetime_s
        return token

    def problem_with(self, token: str) -> str | None:
        """Return why ``token`` is not accepted, or None when it is valid."""
        expiry = self._expiry.get(token)
        if expiry is None:
            return "The access token is unknown or was revoked."
        if time.monotonic() >= expiry:
            return "The access token has expired."
        return None

    def revoke_all(self) -> None:
        """Make every token issued so far invalid."""
        self._expiry.clear()

    def _sweep_if_due(self) -> None:
        self._issued_since_sweep += 1
        if self._issued_since_sweep < _SWEEP_EVERY:
            return
        now = time.monotonic()
        self._expiry = {token: expiry for token, expiry in self._expiry.items() if expiry > now}
        self._issued_since_sweep = 0


def authenticate_api_request(
    authorization: str | None, tokens: TokenStore, api_token: str
) -> str | None:
    """Check an API request's ``Authorization`` header.

    Accepted are ``Bearer <valid token>`` and ``Basic <api token>``, the configured token
    verbatim as the Studio shows it.

    Returns:
        None when the request is authenticated, otherwise the reason it is not.
    """
    if not authorization:
        return "Authentication is required: send an Authorization header."
    scheme, _, credentials = authorization.partition(" ")
    credentials = credentials.strip()

    if scheme.lower() == "bearer" and credentials:
        return tokens.problem_with(credentials)
    if scheme.lower() == "basic" and credentials:
        if hmac.compare_digest(credentials.encode(), api_token.encode()):
            return None
        return "The API token is not valid."
    return "The Authorization header must use the Bearer or Basic scheme."


class _TokenRequestError(Exception):
    """A token request that fails with an RFC 6749 section 5.2 error."""

    def __init__(
        self, status_code: int, error: str, description: str, *, basic_used: bool = False
    ) -> None:
        super().__init__(description)
        self.status_code = status_code
        self.error = error
        self.description = description
        self.basic_used = basic_used

    def response(self) -> JSONResponse:
        headers = dict(_NO_STORE)
        if self.status_code == 401 and self.basic_used:
            headers["WWW-Authenticate"] = 'Basic realm="staffsync-emulator"'
        body = {"error": self.error, "error_description": self.description}
        return JSONResponse(body, status_code=self.status_code, headers=headers)


async def handle_token_request(
    request: Request, config: EmulatorConfig, tokens: TokenStore, lifetime_s: float
) -> JSONResponse:
    """Handle ``POST /oauth2/token`` for the client-credentials grant."""
    try:
        form = await _read_form(request)
        _check_token_request(form, request.headers.get("authorization"), config)
    except _TokenRequestError as exc:
        return exc.response()

    token = tokens.issue(lifetime_s)
    body = {
        "access_token": token,
        "token_type": "bearer",
        # expires_in is whole seconds, rounded down and at least 1, while the token itself
        # expires after the exact, possibly fractional, lifetime.
        "expires_in": max(1, math.floor(lifetime_s)),
        "scope": form.get("scope", ""),
    }
    return JSONResponse(body, headers=_NO_STORE)


def _check_token_request(
    form: dict[str, str], authorization: str | None, config: EmulatorConfig
) -> None:
    basic = _basic_credentials(authorization)
    client_id, client_secret = _client_credentials(form, basic)
    if "grant_type" not in form:
        raise _TokenRequestError(400, "invalid_request", "The grant_type parameter is missing.")

    _authenticate_client(config, client_id, client_secret, basic_used=basic is not None)
    if form["grant_type"] != "client_credentials":
        msg = f"Unsupported grant_type {form['grant_type']!r}; use client_credentials."
        raise _TokenRequestError(400, "unsupported_grant_type", msg)


async def _read_form(request: Request) -> dict[str, str]:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        msg = "The body must be application/x-www-form-urlencoded."
        raise _TokenRequestError(400, "invalid_request", msg)

    try:
        pairs = parse_qsl((await request.body()).decode(), keep_blank_values=True)
    except UnicodeDecodeError as exc:
        raise _TokenRequestError(400, "invalid_request", "The body is not valid UTF-8.") from exc

    form: dict[str, str] = {}
    for name, value in pairs:
        # RFC 6749 section 3.2: parameters must not be sent more than once.
        if name in form:
            raise _TokenRequestError(400, "invalid_request", f"The parameter {name!r} is repeated.")
        form[name] = value
    return form


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if authorization is None:
        return None
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        msg = "Client authentication must use the Basic scheme."
        raise _TokenRequestError(401, "invalid_client", msg)

    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        msg = "The Basic credentials are not valid base64 of id:secret."
        raise _TokenRequestError(401, "invalid_client", msg, basic_used=True) from exc
    client_id, colon, client_secret = decoded.partition(":")
    if not colon:
        msg = "The Basic credentials lack the ':' between client id and secret."
        raise _TokenRequestError(401, "invalid_client", msg, basic_used=True)
    return unquote_plus(client_id), unquote_plus(client_secret)


def _client_credentials(
    form: dict[str, str], basic: tuple[str, str] | None
) -> tuple[str | None, str | None]:
    in_form = "client_id" in form or "client_secret" in form
    if basic is not None and in_form:
        msg = "Use one client authentication method: HTTP Basic or form fields, not both."
        raise _TokenRequestError(400, "invalid_request", msg)
    if basic is not None:
        return basic
    return form.get("client_id"), form.get("client_secret")


def _authenticate_client(
    config: EmulatorConfig, client_id: str | None, client_secret: str | None, *, basic_used: bool
) -> None:
    if client_id is None or client_secret is None:
        msg = "Client authentication is missing: send HTTP Basic or client_id and client_secret."
        raise _TokenRequestError(401, "invalid_client", msg, basic_used=basic_used)

    id_ok = hmac.compare_digest(client_id.encode(), config.client_id.encode())
    secret_ok = hmac.compare_digest(client_secret.encode(), config.client_secret.encode())
    if not (id_ok and secret_ok):
        msg = "Unknown client or wrong client secret."
        raise _TokenRequestError(401, "invalid_client", msg, basic_used=basic_used)
