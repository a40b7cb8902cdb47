"""Tests for OAuth client-credentials and API-token authentication against the emulator."""

from __future__ import annotations

import base64
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import structlog.testing

from staffsync.emulator import EmulatorConfig, EmulatorServer
from staffsync.settings import ConfigError, StaffbaseSettings
from staffsync.staffbase.auth import ApiTokenAuth, ClientCredentialsAuth, build_auth
from staffsync.staffbase.client import StaffbaseClient
from staffsync.staffbase.errors import AuthenticationFailed, TokenRequestFailed

from .helpers import EmulatorControl, StubTokenEndpoint, metric, refused_url

if TYPE_CHECKING:
    from collections.abc import Iterator

    from .helpers import SettingsFactory


class FakeClock:
    """A monotonic clock that tests move by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def auth_for(server: EmulatorServer, http: httpx.Client, clock: FakeClock) -> ClientCredentialsAuth:
    return ClientCredentialsAuth(
        token_url=server.token_url,
        client_id="staffsync-demo",
        client_secret="demo-secret",
        http=http,
        leeway=60.0,
        clock=clock,
    )


def stub_auth(
    stub: StubTokenEndpoint, http: httpx.Client, clock: FakeClock, **options: Any
) -> ClientCredentialsAuth:
    values: dict[str, Any] = {
        "token_url": stub.url,
        "client_id": "sync",
        "client_secret": "s:cret",
        "http": http,
        "clock": clock,
        "sleep": lambda _: None,
    }
    values.update(options)
    return ClientCredentialsAuth(**values)


class TestTokenCache:
    def test_one_token_for_many_requests(
        self, control: EmulatorControl, make_settings: SettingsFactory
    ) -> None:
        """500 requests share a single token."""
        fetched_before = metric("staffsync_token_fetches_total")

        with StaffbaseClient(make_settings()) as client:
            for _ in range(500):
                client.check()

        stats = control.stats()
        assert stats["requests"]["GET /api/users"] == 500
        assert stats["token_requests"] == 1
        assert metric("staffsync_token_fetches_total") - fetched_before == 1.0

    def test_concurrent_first_use(
        self, control: EmulatorControl, make_settings: SettingsFactory
    ) -> None:
        """16 threads that need a token at the same moment cause one token request."""
        start = threading.Barrier(16)

        def call(client: StaffbaseClient) -> None:
            start.wait()
            client.check()

        with (
            StaffbaseClient(make_settings(max_concurrency=16)) as client,
            ThreadPoolExecutor(16) as pool,
        ):
            list(pool.map(call, [client] * 16))

        stats = control.stats()
        assert stats["requests"]["GET /api/users"] == 16
        assert stats["token_requests"] == 1

    def test_renewed_before_expiry(
        self, emulator: EmulatorServer, control: EmulatorControl, http: httpx.Client
    ) -> None:
        """A token is renewed once expires_in minus the leeway has passed, not before."""
        clock = FakeClock()
        auth = auth_for(emulator, http, clock)
        first = auth.token()

        clock.now += 3600 - 60 - 1
        assert auth.token() == first
        clock.now += 2
        assert auth.token() != first
        assert control.stats()["token_requests"] == 2

    def test_short_lifetime_leeway(
        self, emulator: EmulatorServer, control: EmulatorControl, http: httpx.Client
    ) -> None:
        """A 2-second token is used for 1.8 seconds: the leeway shrinks to a tenth of it."""
        control.faults(token_lifetime_s=2)
        clock = FakeClock()
        auth = auth_for(emulator, http, clock)
        first = auth.token()

        clock.now += 1.79
        assert auth.token() == first
        clock.now += 0.02
        assert auth.token() != first

    @pytest.mark.slow
    def test_renewal_under_load(
        self, control: EmulatorControl, make_settings: SettingsFactory
    ) -> None:
        """With 2-second tokens, requests spread over 5 seconds all succeed on renewed tokens."""
        control.faults(token_lifetime_s=2)

        # The rate limiter spreads the 100 calls over 5 seconds.
        with StaffbaseClient(make_settings(max_requests_per_second=20.0)) as client:
            for _ in range(100):
                client.check()

        stats = control.stats()
        rejected = stats["responses"].get("401", 0)
        assert stats["token_requests"] >= 3
        assert stats["requests"]["GET /api/users"] == 100 + rejected


class TestRejectedToken:
    def test_refetch_after_revocation(
        self, control: EmulatorControl, make_settings: SettingsFactory
    ) -> None:
        """After every token is revoked, 8 threads failing at once cause one new token."""
        start = threading.Barrier(8)

        def call(client: StaffbaseClient) -> None:
            start.wait()
            client.check()

        with (
            StaffbaseClient(make_settings(max_concurrency=8)) as client,
            ThreadPoolExecutor(8) as pool,
        ):
            client.check()
            control.faults(revoke_tokens=True)
            list(pool.map(call, [client] * 8))

        # Threads that start late may already use the new token, so fewer than 8 can fail.
        stats = control.stats()
        rejected = stats["responses"]["401"]
        assert stats["token_requests"] == 2
        assert 1 <= rejected <= 8
        assert stats["requests"]["GET /api/users"] == 1 + 8 + rejected

    def test_second_401(self, control: EmulatorControl, make_settings: SettingsFactory) -> None:
        """A fresh token rejected again raises AuthenticationFailed naming credentials or scopes."""
        # Tokens that expire a microsecond after issue are rejected on every use.
        control.faults(token_lifetime_s=0.000001)

        with (
            StaffbaseClient(make_settings()) as client,
            pytest.raises(AuthenticationFailed) as caught,
        ):
            client.check()

        assert "credentials or scopes are wrong" in str(caught.value)
        assert "demo-secret" not in str(caught.value)
        assert caught.value.route == "/users"
        assert caught.value.status == 401
        assert control.stats()["token_requests"] == 2


class TestClientAuthMethods:
    @pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
    def test_method_accepted(
        self, method: str, control: EmulatorControl, make_settings: SettingsFactory
    ) -> None:
        """Both client authentication methods obtain a token."""
        with StaffbaseClient(
            make_settings(client_auth_method=method, scopes=["users:manage"])
        ) as client:
            client.check()

        assert control.stats()["token_requests"] == 1

    @pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
    def test_secret_with_special_characters(self, method: str) -> None:
        """Id and secret with ':', '+', '%' and non-ASCII letters are encoded correctly."""
        config = EmulatorConfig(client_id="sync:client", client_secret="p+ss:wörd%20/")
        with EmulatorServer(config) as server:
            settings = StaffbaseSettings.model_validate(
                {
                    "base_url": server.base_url,
                    "token_url": server.token_url,
                    "client_id": "sync:client",
                    "client_secret": "p+ss:wörd%20/",
                    "client_auth_method": method,
                }
            )
            with StaffbaseClient(settings) as client:
                client.check()

            stats = EmulatorControl(server).stats()
        assert stats["token_requests"] == 1
        assert stats["requests"]["GET /api/users"] == 1

    @pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
    def test_wrong_secret(self, method: str, make_settings: SettingsFactory) -> None:
        """A wrong secret raises TokenRequestFailed with the OAuth error code, not the secret."""
        settings = make_settings(client_secret="not-the-secret", client_auth_method=method)

        with (
            structlog.testing.capture_logs() as logs,
            StaffbaseClient(settings) as client,
            pytest.raises(TokenRequestFailed) as caught,
        ):
            client.check()

        assert caught.value.error == "invalid_client"
        assert caught.value.status == 401
        assert "invalid_client" in str(caught.value)
        assert "not-the-secret" not in str(caught.value)
        assert "not-the-secret" not in repr(logs)

    def test_token_endpoint_unreachable(self, make_settings: SettingsFactory) -> None:
        """A token endpoint that refuses connections raises TokenRequestFailed after retries."""
        settings = make_settings(token_url=refused_url())

        with (
            StaffbaseClient(settings, sleep=lambda _: None) as client,
            pytest.raises(TokenRequestFailed, match="could not be reached after 4 attempts"),
        ):
            client.check()


class TestApiToken:
    def test_api_token(self, control: EmulatorControl, make_settings: SettingsFactory) -> None:
        """The API token works without any token request."""
        with StaffbaseClient(make_settings(auth="token", api_token="demo-api-token")) as client:
            client.check()

        assert control.stats()["token_requests"] == 0

    def test_header_verbatim(self) -> None:
        """The token is sent as 'Basic <token>' without further encoding."""
        request = httpx.Request("GET", "http://127.0.0.1/api/users")

        flow = ApiTokenAuth("abc:def==").sync_auth_flow(request)

        assert next(flow).headers["Authorization"] == "Basic abc:def=="

    def test_wrong_api_token(self, make_settings: SettingsFactory) -> None:
        """A rejected API token raises AuthenticationFailed without the token in it."""
        with (
            StaffbaseClient(make_settings(auth="token", api_token="wrong-token")) as client,
            pytest.raises(AuthenticationFailed, match="rejected the API token") as caught,
        ):
            client.check()

        assert "wrong-token" not in str(caught.value)


class TestBuildAuth:
    def test_oauth(self, make_settings: SettingsFactory) -> None:
        """auth = "oauth" builds the client-credentials flow."""
        with httpx.Client() as http:
            assert isinstance(build_auth(make_settings(), http), ClientCredentialsAuth)

    def test_missing_secret(self, make_settings: SettingsFactory) -> None:
        """OAuth without a secret is a configuration error."""
        with (
            httpx.Client() as http,
            pytest.raises(ConfigError, match="needs client_id and client_secret"),
        ):
            build_auth(make_settings(client_secret=None), http)

    def test_missing_api_token(self, make_settings: SettingsFactory) -> None:
        """Token auth without a token is a configuration error."""
        with httpx.Client() as http, pytest.raises(ConfigError, match="needs api_token"):
            build_auth(make_settings(auth="token"), http)

    def test_repr_hides_secret(self, make_settings: SettingsFactory) -> None:
        """Neither auth shows its secret in repr."""
        with httpx.Client() as http:
            oauth = build_auth(make_settings(), http)
            token = build_auth(make_settings(auth="token", api_token="demo-api-token"), http)

        assert "demo-secret" not in repr(oauth)
        assert "demo-api-token" not in repr(token)


class TestTokenResponses:
    def test_default_lifetime(self, http: httpx.Client) -> None:
        """A token without expires_in lives default_token_lifetime_seconds, less the leeway."""
        clock = FakeClock()
        with StubTokenEndpoint((200, {"access_token": "t1", "token_type": "bearer"})) as stub:
            auth = stub_auth(stub, http, clock, default_lifetime=300.0, leeway=60.0)
            auth.token()

            clock.now += 269
            auth.token()
            assert len(stub.requests) == 1
            clock.now += 2
            auth.token()
            assert len(stub.requests) == 2

    def test_form_and_basic_header(self, http: httpx.Client) -> None:
        """client_secret_basic sends form-encoded credentials in Basic and the scopes joined."""
        with StubTokenEndpoint((200, {"access_token": "t1", "expires_in": 60})) as stub:
            scopes = ["Users.Read.All", "offline"]
            auth = stub_auth(stub, http, FakeClock(), client_id="a b", scopes=scopes)
            auth.token()

        headers, form = stub.requests[0]
        assert form == {"grant_type": ["client_credentials"], "scope": ["Users.Read.All offline"]}
        assert headers["Authorization"] == "Basic " + base64.b64encode(b"a+b:s%3Acret").decode()

    def test_post_method_form(self, http: httpx.Client) -> None:
        """client_secret_post sends id and secret as form fields and no Authorization."""
        with StubTokenEndpoint((200, {"access_token": "t1", "expires_in": 60})) as stub:
            auth = stub_auth(stub, http, FakeClock(), client_auth_method="client_secret_post")
            auth.token()

        headers, form = stub.requests[0]
        assert form == {
            "grant_type": ["client_credentials"],
            "client_id": ["sync"],
            "client_secret": ["s:cret"],
        }
        assert "Authorization" not in headers

    def test_retry_on_503(self, http: httpx.Client) -> None:
        """A 503 from the token endpoint is retried, and the next token is used."""
        sleeps: list[float] = []
        replies = [(503, {}), (200, {"access_token": "t2", "expires_in": 60})]
        with StubTokenEndpoint(*replies) as stub:
            auth = stub_auth(stub, http, FakeClock(), sleep=sleeps.append)
            assert auth.token() == "t2"

        assert len(stub.requests) == 2
        assert len(sleeps) == 1

    def test_invalid_scope(self, http: httpx.Client) -> None:
        """A 400 carries the RFC 6749 error code and description."""
        reply = (400, {"error": "invalid_scope", "error_description": "scope x is not allowed"})
        with StubTokenEndpoint(reply) as stub:
            auth = stub_auth(stub, http, FakeClock())
            with pytest.raises(TokenRequestFailed) as caught:
                auth.token()

        assert caught.value.error == "invalid_scope"
        assert caught.value.error_description == "scope x is not allowed"
        assert "invalid_scope (scope x is not allowed)" in str(caught.value)
        assert "s:cret" not in str(caught.value)
        assert len(stub.requests) == 1

    def test_no_access_token(self, http: httpx.Client) -> None:
        """A 200 without access_token is rejected with a hint at token_url."""
        with StubTokenEndpoint((200, {"hello": "world"})) as stub:
            auth = stub_auth(stub, http, FakeClock())
            with pytest.raises(TokenRequestFailed, match="without an access_token"):
                auth.token()
