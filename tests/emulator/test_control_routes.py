"""The operator and test endpoints under /__emulator."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx


def user_body(key: str, **fields: Any) -> dict[str, Any]:
    """A create body for the user with externalID ``key`` and one primary e-mail."""
    return {
        "externalID": key,
        "emails": [{"value": f"{key}@example.com", "primary": True}],
        **fields,
    }


class TestStats:
    def test_route_templates(self, api: httpx.Client, control: httpx.Client) -> None:
        """Requests are counted by method and route template."""
        api.post("/users", json=user_body("E1"))
        api.post("/users", json=user_body("E2"))
        api.put("/users/E1", json={"position": "Lead"})
        api.get("/users/E404")
        api.get("/users")
        group = api.post("/groups", json={"name": "Ops"}).json()
        api.patch(f"/groups/{group['id']}/members", json={"userIds": []})

        stats = control.get("/stats").json()

        assert stats["requests"] == {
            "GET /api/users": 1,
            "GET /api/users/{id}": 1,
            "PATCH /api/groups/{id}/members": 1,
            "POST /api/groups": 1,
            "POST /api/users": 2,
            "PUT /api/users/{id}": 1,
        }
        assert stats["responses"] == {"200": 2, "201": 3, "404": 1, "415": 1}

    def test_wrong_method_counted(self, api: httpx.Client, control: httpx.Client) -> None:
        """A wrong method is a 405 envelope, counted under its route's template."""
        response = api.patch("/users/E1", json={})

        assert response.status_code == 405
        assert response.json()["ref"] == "ERROR_METHOD_NOT_ALLOWED"
        assert control.get("/stats").json()["requests"] == {"PATCH /api/users/{id}": 1}

    def test_unknown_route(self, api: httpx.Client) -> None:
        """An unknown API path is a 404 envelope."""
        response = api.get("/profile-fields")

        assert response.status_code == 404
        assert response.json()["ref"] == "ERROR_NOT_FOUND"

    def test_trailing_slash(self, api: httpx.Client) -> None:
        """A path with a trailing slash is a 404, not a redirect."""
        assert api.get("/users/").status_code == 404


class TestSeedUser:
    def test_any_status(self, control: httpx.Client) -> None:
        """A seeded user takes the given status; an activated one has an activation time."""
        response = control.post("/users", json=user_body("E1", status="activated"))

        user = response.json()
        assert response.status_code == 201
        assert user["status"] == "activated"
        assert user["activated"] == user["created"]

    def test_without_external_id(self, control: httpx.Client) -> None:
        """A seeded user may lack an externalID and defaults to pending."""
        body = {"emails": [{"value": "hand@example.com", "primary": True}]}

        user = control.post("/users", json=body).json()

        assert "externalID" not in user
        assert user["status"] == "pending"

    def test_chosen_id(self, control: httpx.Client) -> None:
        """A seeded user may bring its own Staffbase id."""
        user = control.post("/users", json=user_body("E1", id="a" * 24)).json()

        assert user["id"] == "a" * 24

    def test_uniqueness(self, api: httpx.Client, control: httpx.Client) -> None:
        """Seeding follows the same uniqueness rules as the API."""
        api.post("/users", json=user_body("E1"))

        response = control.post("/users", json=user_body("E1", status="deactivated"))

        assert response.status_code == 409

    def test_listed_with_all_statuses(self, control: httpx.Client) -> None:
        """GET /__emulator/users lists every user whatever its status."""
        for key, status in [("A", "activated"), ("P", "pending"), ("D", "deactivated")]:
            control.post("/users", json=user_body(key, status=status))

        users = control.get("/users").json()

        assert [user["externalID"] for user in users] == ["A", "P", "D"]


class TestSignIn:
    def test_named_users(self, api: httpx.Client, control: httpx.Client) -> None:
        """Named pending users become activated with an activation time."""
        first = api.post("/users", json=user_body("E1")).json()
        api.post("/users", json=user_body("E2"))

        response = control.post("/sign-in", json={"ids": [first["id"]]})

        signed_in = api.get("/users/E1").json()
        assert response.json() == {"activated": [first["id"]]}
        assert signed_in["status"] == "activated"
        assert signed_in["activated"] is not None
        assert api.get("/users/E2").json()["status"] == "pending"

    def test_named_twice(self, api: httpx.Client, control: httpx.Client) -> None:
        """A user named by id and by externalID is activated once."""
        user = api.post("/users", json=user_body("E1")).json()

        response = control.post("/sign-in", json={"ids": [user["id"], "E1"]})

        assert response.json() == {"activated": [user["id"]]}

    def test_unknown_user(self, control: httpx.Client) -> None:
        """Naming an unknown user is a 404 and activates nobody."""
        response = control.post("/sign-in", json={"ids": ["E404"]})

        assert response.status_code == 404

    def test_everyone(self, api: httpx.Client, control: httpx.Client) -> None:
        """An empty body activates every pending user and leaves the others."""
        api.post("/users", json=user_body("E1"))
        api.post("/users", json=user_body("E2"))
        control.post("/users", json=user_body("D", status="deactivated"))

        control.post("/sign-in", json={})

        statuses = {user["externalID"]: user["status"] for user in control.get("/users").json()}
        assert statuses == {"E1": "activated", "E2": "activated", "D": "deactivated"}

    def test_activated_can_deactivate(self, api: httpx.Client, control: httpx.Client) -> None:
        """After signing in, a user can be deactivated through the API."""
        api.post("/users", json=user_body("E1"))
        control.post("/sign-in", json={})

        response = api.put("/users/E1", json={"status": "deactivated"})

        assert response.status_code == 200


class TestReset:
    def test_clears_everything(self, api: httpx.Client, control: httpx.Client) -> None:
        """Reset empties users and groups and clears faults and statistics."""
        api.post("/users", json=user_body("E1"))
        api.post("/groups", json={"name": "Ops"})
        control.post("/faults", json={"latency_ms": 5})

        response = control.post("/reset")

        assert response.status_code == 200
        assert control.get("/users").json() == []
        assert control.get("/groups").json() == []
        assert control.get("/faults").json()["latency_ms"] == 0
        assert control.get("/stats").json()["requests"] == {}

    def test_keeps_credentials(self, api: httpx.Client, control: httpx.Client) -> None:
        """The API token still works after a reset."""
        control.post("/reset")

        assert api.get("/users").status_code == 200


class TestFaultSettings:
    def test_defaults(self, control: httpx.Client) -> None:
        """Without changes every fault is off and tokens live an hour."""
        assert control.get("/faults").json() == {
            "rate_limit_per_second": None,
            "rate_limit_retry_after": True,
            "error_rate": 0.0,
            "latency_ms": 0.0,
            "drop_rate": 0.0,
            "token_lifetime_s": 3600.0,
        }

    def test_partial_update(self, control: httpx.Client) -> None:
        """Posting some settings changes only those."""
        control.post("/faults", json={"error_rate": 0.5})

        settings = control.post("/faults", json={"latency_ms": 10}).json()

        assert settings["error_rate"] == 0.5
        assert settings["latency_ms"] == 10

    def test_invalid(self, control: httpx.Client) -> None:
        """Unknown keys and out-of-range values are rejected and change nothing."""
        unknown = control.post("/faults", json={"error_rate": 0.5, "chaos": True})
        out_of_range = control.post("/faults", json={"drop_rate": 1.5})

        assert unknown.status_code == 400
        assert out_of_range.status_code == 400
        assert control.get("/faults").json()["error_rate"] == 0.0
