"""The OAuth 2.0 client-credentials token endpoint and the API's authentication."""

from __future__ import annotations

import base64
import time
from typing import TYPE_CHECKING
from urllib.parse import quote_plus

import httpx

from staffsync.emulator import EmulatorConfig, EmulatorServer

if TYPE_CHECKING:
    from collections.abc import Mapping

GRANT = {"grant_type": "client_credentials"}
CREDENTIALS = ("staffsync-demo", "demo-secret")


def fetch_token(server: EmulatorServer) -> str:
    response = httpx.post(server.token_url, data=GRANT, auth=CREDENTIALS)
    response.raise_for_status()
    return str(response.json()["access_token"])


def list_users(server: EmulatorServer, headers: Mapping[str, str]) -> httpx.Response:
    return httpx.get(f"{server.base_url}/users", headers=dict(headers))


class TestTokenRequest:
    def test_basic_auth(self, emulator: EmulatorServer) -> None:
        """Client credentials in HTTP Basic get a bearer token."""
        response = httpx.post(emulator.token_url, data=GRANT, auth=CREDENTIALS)

        body = response.json()
        assert response.status_code == 200
        assert body["token_type"] == "bearer"
        assert body["expires_in"] == 3600
        assert body["access_token"].startswith("ory_at_")
        assert response.headers["cache-control"] == "no-store"

    def test_form_auth(self, emulator: EmulatorServer) -> None:
        """Client credentials as form fields (client_secret_post) get a bearer token."""
        form = {**GRANT, "client_id": "staffsync-demo", "client_secret": "demo-secret"}

        response = httpx.post(emulator.token_url, data=form)

        assert response.status_code == 200

    def test_basic_auth_decodes_form_encoding(self) -> None:
        """Basic credentials are form-urlencoded before base64, as RFC 6749 requires."""
        config = EmulatorConfig(client_id="ops:sync", client_secret="s3c+r t/=")
        pair = f"{quote_plus(config.client_id)}:{quote_plus(config.client_secret)}"
        header = {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}

        with EmulatorServer(config) as server:
            response = httpx.post(server.token_url, data=GRANT, headers=header)

        assert response.status_code == 200

    def test_scope_echoed(self, emulator: EmulatorServer) -> None:
        """The requested scope comes back in the response."""
        data = {**GRANT, "scope": "Users.Manage.All"}

        response = httpx.post(emulator.token_url, data=data, auth=CREDENTIALS)

        assert response.json()["scope"] == "Users.Manage.All"

    def test_configured_lifetime(self) -> None:
        """expires_in is the configured lifetime rounded down."""
        with EmulatorServer(EmulatorConfig(token_lifetime_s=90.9)) as server:
            response = httpx.post(server.token_url, data=GRANT, auth=CREDENTIALS)

        assert response.json()["expires_in"] == 90

    def test_success_counted(self, emulator: EmulatorServer) -> None:
        """Only successful token requests count in the statistics."""
        httpx.post(emulator.token_url, data=GRANT, auth=CREDENTIALS)
        httpx.post(emulator.token_url, data=GRANT, auth=("staffsync-demo", "wrong"))

        stats = httpx.get(f"{emulator.url}/__emulator/stats").json()

        assert stats["token_requests"] == 1


class TestTokenRequestErrors:
    def test_wrong_secret_basic(self, emulator: EmulatorServer) -> None:
        """A wrong secret in Basic is invalid_client with a WWW-Authenticate challenge."""
        response = httpx.post(emulator.token_url, data=GRANT, auth=("staffsync-demo", "nope"))

        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"
        assert response.headers["www-authenticate"].startswith("Basic")

    def test_wrong_secret_form(self, emulator: EmulatorServer) -> None:
        """A wrong secret in the form is invalid_client without a challenge."""
        form = {**GRANT, "client_id": "staffsync-demo", "client_secret": "nope"}

        response = httpx.post(emulator.token_url, data=form)

        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"
        assert "www-authenticate" not in response.headers

    def test_unknown_client(self, emulator: EmulatorServer) -> None:
        """An unknown client id is invalid_client."""
        response = httpx.post(emulator.token_url, data=GRANT, auth=("someone", "demo-secret"))

        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"

    def test_no_client_auth(self, emulator: EmulatorServer) -> None:
        """A request without any client authentication is invalid_client."""
        response = httpx.post(emulator.token_url, data=GRANT)

        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"

    def test_both_auth_methods(self, emulator: EmulatorServer) -> None:
        """Basic and form credentials together are invalid_request."""
        form = {**GRANT, "client_id": "staffsync-demo", "client_secret": "demo-secret"}

        response = httpx.post(emulator.token_url, data=form, auth=CREDENTIALS)

        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"

    def test_wrong_grant(self, emulator: EmulatorServer) -> None:
        """A grant other than client_credentials is unsupported_grant_type."""
        data = {"grant_type": "password"}

        response = httpx.post(emulator.token_url, data=data, auth=CREDENTIALS)

        assert response.status_code == 400
        assert response.json()["error"] == "unsupported_grant_type"

    def test_missing_grant(self, emulator: EmulatorServer) -> None:
        """A request without grant_type is invalid_request."""
        response = httpx.post(emulator.token_url, data={"scope": "x"}, auth=CREDENTIALS)

        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"

    def test_json_body(self, emulator: EmulatorServer) -> None:
        """A JSON body instead of a form is invalid_request."""
        response = httpx.post(emulator.token_url, json=GRANT, auth=CREDENTIALS)

        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"

    def test_repeated_parameter(self, emulator: EmulatorServer) -> None:
        """A parameter sent twice is invalid_request."""
        body = "grant_type=client_credentials&grant_type=client_credentials"
        headers = {"Content-Type": "application/x-www-form-urlencoded"}

        response = httpx.post(emulator.token_url, content=body, headers=headers, auth=CREDENTIALS)

        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"


class TestApiAuthentication:
    def test_bearer_token(self, emulator: EmulatorServer) -> None:
        """A fresh bearer token is accepted."""
        response = list_users(emulator, {"Authorization": f"Bearer {fetch_token(emulator)}"})

        assert response.status_code == 200

    def test_api_token(self, emulator: EmulatorServer) -> None:
        """The configured API token is accepted verbatim in Basic."""
        response = list_users(emulator, {"Authorization": "Basic demo-api-token"})

        assert response.status_code == 200

    def test_wrong_api_token(self, emulator: EmulatorServer) -> None:
        """Another Basic credential is rejected."""
        response = list_users(emulator, {"Authorization": "Basic other-token"})

        assert response.status_code == 401

    def test_missing_header(self, emulator: EmulatorServer) -> None:
        """A request without credentials gets Staffbase's login-required envelope."""
        response = list_users(emulator, {})

        body = response.json()
        assert response.status_code == 401
        assert body["type"] == "NotLoggedInException"
        assert body["ref"] == "ERROR_LOGIN_REQUIRED"
        assert body["statusCode"] == 401
        assert body["identifier"] == 40102
        assert isinstance(body["traceId"], str)
        assert isinstance(body["message"], str)

    def test_unknown_bearer(self, emulator: EmulatorServer) -> None:
        """A bearer token the server never issued is rejected."""
        response = list_users(emulator, {"Authorization": "Bearer ory_at_made_up"})

        assert response.status_code == 401

    def test_expiry(self, emulator: EmulatorServer) -> None:
        """A token stops working after its fractional lifetime; expires_in is rounded down."""
        httpx.post(f"{emulator.url}/__emulator/faults", json={"token_lifetime_s": 1.5})
        response = httpx.post(emulator.token_url, data=GRANT, auth=CREDENTIALS)
        headers = {"Authorization": f"Bearer {response.json()['access_token']}"}

        before = list_users(emulator, headers)
        time.sleep(1.6)
        after = list_users(emulator, headers)

        assert response.json()["expires_in"] == 1
        assert before.status_code == 200
        assert after.status_code == 401
        assert after.json()["message"] == "The access token has expired."

    def test_revocation(self, emulator: EmulatorServer) -> None:
        """revoke_tokens invalidates earlier tokens; a new one works."""
        old = {"Authorization": f"Bearer {fetch_token(emulator)}"}

        httpx.post(f"{emulator.url}/__emulator/faults", json={"revoke_tokens": True})
        new = {"Authorization": f"Bearer {fetch_token(emulator)}"}

        assert list_users(emulator, old).status_code == 401
        assert list_users(emulator, new).status_code == 200

    def test_rejected_request_counted(self, emulator: EmulatorServer) -> None:
        """Requests rejected for missing credentials still count in the statistics."""
        list_users(emulator, {})

        stats = httpx.get(f"{emulator.url}/__emulator/stats").json()

        assert stats["requests"] == {"GET /api/users": 1}
        assert stats["responses"] == {"401": 1}
