"""Authentication for the Staffbase API: an OAuth client-credentials token, or an API token.

Staffbase offers two kinds of credentials for a program like this one:

- a "DAEMON" OAuth client, whose id and secret buy short-lived bearer tokens at the
  token endpoint (OAuth 2.0 client credentials grant); :class:`ClientCredentialsAuth`
  fetches, caches and renews them;
- a classic API token from the Studio, sent as ``Authorization: Basic <token>``;
  :class:`ApiTokenAuth` does that.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote_plus

import httpx
import structlog
import tenacity

from staffsync import metrics
from staffsync.settings import ConfigError
from staffsync.staffbase.errors import AuthenticationFailed, TokenRequestFailed
from staffsync.staffbase.retry import RetryableStatus, failure_reason

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Callable, Generator, Sequence

    from staffsync.settings import StaffbaseSettings

__all__ = ["ApiTokenAuth", "ClientCredentialsAuth", "build_auth", "check_credentials"]

logger = structlog.get_logger(__name__)

TOKEN_REQUEST_ATTEMPTS = 4
"""Attempts per token fetch when the token endpoint is unreachable or returns 5xx or 429."""

_TOKEN_RETRY_MAX_WAIT = 10.0


@dataclass(frozen=True, slots=True)
class _CachedToken:
    value: str
    renew_at: float
    """Clock reading from which the token counts as expired and is fetched anew."""


class ClientCredentialsAuth(httpx.Auth):
    """Bearer tokens from an OAuth 2.0 client credentials grant, cached and shared by threads.

    A token is reused until ``expires_in`` minus a leeway has passed, counted from the
    moment its request started. The leeway is ``min(leeway, lifetime / 10)`` so that
    short-lived tokens stay usable for most of their life. Threads that need a token at
    the same moment wait for one shared fetch.

    When the API returns 401, the token that request carried is dropped (unless another
    thread has already replaced it), a new one is fetched and the request is sent once
    more. A second 401 raises :class:`AuthenticationFailed`.

    Args:
        token_url: The token endpoint.
        client_id: The OAuth client's id.
        client_secret: The OAuth client's secret.
        http: The client that sends token requests.
        client_auth_method: How the id and secret travel: ``client_secret_basic`` (HTTP
            Basic) or ``client_secret_post`` (form fields).
        scopes: Scopes to request, sent space-separated; none sends no ``scope``.
        leeway: Seconds before expiry at which a token is renewed.
        default_lifetime: Lifetime in seconds assumed when a response lacks ``expires_in``.
        timeout: Timeout in seconds of each token request.
        clock: Returns seconds from a monotonic clock.
        sleep: Sleeps between token request attempts.
    """

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        http: httpx.Client,
        client_auth_method: Literal[
            "client_secret_basic", "client_secret_post"
        ] = "client_secret_basic",
        scopes: Sequence[str] = (),
        leeway: float = 60.0,
        default_lifetime: float = 300.0,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self._http = http
        self.client_auth_method = client_auth_method
        self.scopes = tuple(scopes)
        self.leeway = leeway
        self.default_lifetime = default_lifetime
        self._timeout = timeout
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._token: _CachedToken | None = None

    def __repr__(self) -> str:
        return f"ClientCredentialsAuth(token_url={self.token_url!r}, client_id={self.client_id!r})"

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        """Send ``request`` with a bearer token, and once more with a new token after a 401."""
        request.read()  # so that the body can be sent a second time
        token = self.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401:
            return

        # Reading the 401 returns its connection to the pool before the token fetch needs
        # one. Otherwise threads holding every pooled connection could wait on each other.
        response.read()
        token = self._replace_rejected(token)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            msg = (
                f"Staffbase rejected a newly fetched token of OAuth client {self.client_id!r}"
                " (HTTP 401): the client's credentials or scopes are wrong; check that"
                " client_id and client_secret belong to this tenant and that the client"
                " has the scopes to manage users"
            )
            raise AuthenticationFailed(msg, method=request.method, status=401)

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Not supported: the token cache blocks on a thread lock and a synchronous client."""
        msg = "ClientCredentialsAuth works with httpx.Client only, not httpx.AsyncClient"
        raise NotImplementedError(msg)
        yield request  # pragma: no cover (makes this function an async generator)

    def token(self) -> str:
        """Return a valid access token, fetching one if none is cached or it is about to expire."""
        with self._lock:
            cached = self._token
            if cached is None or self._clock() >= cached.renew_at:
                cached = self._fetch()
                self._token = cached
            return cached.value

    def _replace_rejected(self, rejected: str) -> str:
        # Many requests may fail with the same revoked token at once: the first drops and
        # replaces it, and the others find the replacement already cached.
        with self._lock:
            cached = self._token
            if cached is None or cached.value == rejected or self._clock() >= cached.renew_at:
                cached = self._fetch()
                self._token = cached
            return cached.value

    def _fetch(self) -> _CachedToken:
        """Fetch a token (called with the lock held)."""
        started = self._clock()
        retrying = tenacity.Retrying(
            sleep=self._sleep,
            stop=tenacity.stop_after_attempt(TOKEN_REQUEST_ATTEMPTS),
            wait=_token_retry_wait,
            retry=tenacity.retry_if_exception_type((RetryableStatus, httpx.TransportError)),
            before_sleep=_log_token_retry,
            reraise=True,
        )
        try:
            response = retrying(self._post_token_request)
        except RetryableStatus as exc:
            msg = (
                f"the token endpoint {self.token_url!r} still failed with HTTP {exc.status}"
                f" after {TOKEN_REQUEST_ATTEMPTS} attempts; try again later"
            )
            raise TokenRequestFailed(msg, status=exc.status) from None
        except httpx.TransportError as exc:
            msg = (
                f"the token endpoint {self.token_url!r} could not be reached after"
                f" {TOKEN_REQUEST_ATTEMPTS} attempts ({type(exc).__name__});"
                " check token_url and the network"
            )
            raise TokenRequestFailed(msg) from None

        token = self._read_token_response(response, started)
        metrics.TOKEN_FETCHES.inc()
        logger.debug("staffbase_token_fetched", client_id=self.client_id)
        return token

    def _post_token_request(self) -> httpx.Response:
        form = {"grant_type": "client_credentials"}
        if self.scopes:
            form["scope"] = " ".join(self.scopes)

        # A plain httpx.Auth adds nothing, so a default auth set on the client stays out.
        auth = httpx.Auth()
        if self.client_auth_method == "client_secret_basic":
            # RFC 6749 section 2.3.1: id and secret are form-urlencoded before Basic encoding.
            auth = httpx.BasicAuth(quote_plus(self.client_id), quote_plus(self._client_secret))
        else:
            form["client_id"] = self.client_id
            form["client_secret"] = self._client_secret

        response = self._http.post(
            self.token_url,
            data=form,
            auth=auth,
            headers={"Accept": "application/json"},
            timeout=self._timeout,
        )
        if response.status_code == 429 or response.status_code >= 500:
            raise RetryableStatus(response)
        return response

    def _read_token_response(self, response: httpx.Response, started: float) -> _CachedToken:
        body = _json_object(response)
        if response.status_code != 200:
            raise self._rejection(response, body)

        value = body.get("access_token")
        if not isinstance(value, str) or not value:
            msg = (
                f"the token endpoint {self.token_url!r} answered HTTP 200 without an"
                " access_token; check that token_url is the OAuth token endpoint"
            )
            raise TokenRequestFailed(msg, status=200)

        lifetime = _positive_number(body.get("expires_in")) or self.default_lifetime
        leeway = min(self.leeway, lifetime / 10)
        return _CachedToken(value=value, renew_at=started + lifetime - leeway)

    def _rejection(self, response: httpx.Response, body: dict[str, object]) -> TokenRequestFailed:
        error = body.get("error")
        description = body.get("error_description")
        error_code = str(error) if error else None
        error_text = str(description)[:300] if description else None

        detail = f" {error_code}" if error_code else ""
        if error_text:
            detail += f" ({error_text})"
        hint = "check client_id, client_secret, client_auth_method and scopes"
        if response.status_code not in (400, 401):
            hint = "check token_url"
        msg = (
            f"the token endpoint {self.token_url!r} refused a token to OAuth client"
            f" {self.client_id!r}: HTTP {response.status_code}{detail}; {hint}"
        )
        return TokenRequestFailed(
            msg, status=response.status_code, error=error_code, error_description=error_text
        )


class ApiTokenAuth(httpx.Auth):
    """Sends a Staffbase API token as ``Authorization: Basic <token>``, unchanged.

    The token from the Studio's API access page is already base64 text, so it is used
    as it is rather than encoded again like a user name and password.
    """

    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "ApiTokenAuth(token=***)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        """Add the Authorization header to ``request``."""
        request.headers["Authorization"] = f"Basic {self._token}"
        yield request


def check_credentials(settings: StaffbaseSettings) -> None:
    """Check that the credentials ``[staffbase] auth`` needs are all set.

    Raises:
        ConfigError: one is missing; the message names it and never shows a value.
    """
    if settings.auth == "token":
        if settings.api_token is None or not settings.api_token.get_secret_value():
            msg = (
                '[staffbase] auth = "token" needs api_token (or a staffbase__api_token secret file)'
            )
            raise ConfigError(msg)
        return

    secret = settings.client_secret.get_secret_value() if settings.client_secret else ""
    if not settings.client_id or not secret:
        msg = (
            '[staffbase] auth = "oauth" needs client_id and client_secret'
            " (or a staffbase__client_secret secret file)"
        )
        raise ConfigError(msg)


def build_auth(
    settings: StaffbaseSettings,
    http: httpx.Client,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> httpx.Auth:
    """Create the authentication that ``[staffbase] auth`` selects.

    Args:
        settings: The ``[staffbase]`` settings.
        http: The client that sends token requests.
        clock: Monotonic clock for token expiry.
        sleep: Sleeps between token request attempts.

    Raises:
        ConfigError: the credentials that the chosen method needs are missing.
    """
    check_credentials(settings)
    if settings.auth == "token":
        assert settings.api_token is not None
        return ApiTokenAuth(settings.api_token.get_secret_value())

    assert settings.client_secret is not None
    secret = settings.client_secret.get_secret_value()
    return ClientCredentialsAuth(
        token_url=settings.token_url,
        client_id=settings.client_id,
        client_secret=secret,
        http=http,
        client_auth_method=settings.client_auth_method,
        scopes=settings.scopes,
        leeway=settings.token_leeway_seconds,
        default_lifetime=settings.default_token_lifetime_seconds,
        timeout=settings.timeout_seconds,
        clock=clock,
        sleep=sleep,
    )


def _json_object(response: httpx.Response) -> dict[str, object]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _positive_number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number > 0 else None


def _token_retry_wait(state: tenacity.RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        return float(min(retry_after, _TOKEN_RETRY_MAX_WAIT))
    backoff = tenacity.wait_random_exponential(multiplier=0.5, max=_TOKEN_RETRY_MAX_WAIT)
    return float(backoff(state))


def _log_token_retry(state: tenacity.RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    metrics.RETRIES.labels(reason="token_endpoint").inc()
    logger.warning(
        "staffbase_token_request_retry",
        reason=failure_reason(exc) if exc else None,
        status=getattr(exc, "status", None),
        attempt=state.attempt_number,
        wait_seconds=round(state.upcoming_sleep, 3),
    )
