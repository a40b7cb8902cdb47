"""The User API: list, get, create, update and delete, with Staffbase's rules."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx


def user_body(key: str, email: str | None = None, **fields: Any) -> dict[str, Any]:
    """A create body for the user with externalID ``key`` and one primary e-mail."""
    address = email or f"{key.lower()}@example.com"
    return {"externalID": key, "emails": [{"value": address, "primary": True}], **fields}


def seed(control: httpx.Client, key: str | None, status: str, **fields: Any) -> dict[str, Any]:
    """Create a user directly in the tenant, as an admin would in the Studio."""
    body = user_body(key or "nokey", **fields)
    if key is None:
        del body["externalID"]
    response = control.post("/users", json={**body, "status": status})
    response.raise_for_status()
    return dict(response.json())


def external_ids(response: httpx.Response) -> list[str]:
    return [user.get("externalID") for user in response.json()["data"]]


class TestListUsers:
    def test_default_status_filter(self, api: httpx.Client, control: httpx.Client) -> None:
        """Without a status parameter only activated users are listed."""
        seed(control, "A", "activated")
        seed(control, "P", "pending")
        seed(control, "D", "deactivated")

        response = api.get("/users")

        assert external_ids(response) == ["A"]
        assert response.json()["total"] == 1

    def test_all_statuses(self, api: httpx.Client, control: httpx.Client) -> None:
        """A comma list of statuses lists users of each."""
        seed(control, "A", "activated", lastName="Abel")
        seed(control, "P", "pending", lastName="Berg")
        seed(control, "D", "deactivated", lastName="Cole")

        response = api.get("/users", params={"status": "activated,pending,deactivated"})

        assert external_ids(response) == ["A", "P", "D"]

    def test_envelope(self, api: httpx.Client, control: httpx.Client) -> None:
        """The response carries total, limit and offset next to the data."""
        for index in range(3):
            seed(control, f"E{index}", "activated")

        body = api.get("/users", params={"limit": 2, "offset": 1}).json()

        assert body["total"] == 3
        assert body["limit"] == 2
        assert body["offset"] == 1
        assert len(body["data"]) == 2

    def test_default_limit(self, api: httpx.Client) -> None:
        """The default page size is 100."""
        assert api.get("/users").json()["limit"] == 100

    def test_paging_is_stable(self, api: httpx.Client, control: httpx.Client) -> None:
        """Pages follow lastName, firstName, then id, and cover every user exactly once."""
        users = [seed(control, f"E{index}", "activated", lastName="Same") for index in range(7)]

        seen: list[str] = []
        for offset in range(0, 7, 3):
            page = api.get("/users", params={"limit": 3, "offset": offset}).json()["data"]
            seen.extend(user["id"] for user in page)

        assert seen == sorted(user["id"] for user in users)

    def test_sorted_by_name(self, api: httpx.Client, control: httpx.Client) -> None:
        """The default order is lastName then firstName, ignoring case."""
        seed(control, "C", "activated", lastName="berg", firstName="Zoe")
        seed(control, "B", "activated", lastName="Berg", firstName="anna")
        seed(control, "A", "activated", lastName="Cole", firstName="Al")

        assert external_ids(api.get("/users")) == ["B", "C", "A"]

    def test_sort_descending(self, api: httpx.Client, control: httpx.Client) -> None:
        """A sort parameter with DESC reverses the order."""
        seed(control, "A", "activated", lastName="Abel", firstName="X")
        seed(control, "B", "activated", lastName="Berg", firstName="X")

        response = api.get("/users", params={"sort": "lastName_DESC_firstName_ASC"})

        assert external_ids(response) == ["B", "A"]

    def test_write_refreshes_list(self, api: httpx.Client, control: httpx.Client) -> None:
        """A change after a list shows in the next list."""
        user = seed(control, "A", "activated", lastName="Abel")
        seed(control, "B", "activated", lastName="Berg")
        api.get("/users")

        api.put(f"/users/{user['id']}", json={"lastName": "Zeta"})

        assert external_ids(api.get("/users")) == ["B", "A"]

    def test_limit_bounds(self, api: httpx.Client) -> None:
        """limit must be between 1 and the maximum page size of 1000."""
        assert api.get("/users", params={"limit": 0}).status_code == 400
        assert api.get("/users", params={"limit": 1001}).status_code == 400
        assert api.get("/users", params={"limit": 1000}).status_code == 200

    def test_bad_offset(self, api: httpx.Client) -> None:
        """A negative or non-numeric offset is rejected."""
        assert api.get("/users", params={"offset": -1}).status_code == 400
        assert api.get("/users", params={"offset": "ten"}).status_code == 400

    def test_unknown_status(self, api: httpx.Client) -> None:
        """An unknown status in the filter is rejected with the invalid-request envelope."""
        response = api.get("/users", params={"status": "activated,contact"})

        assert response.status_code == 400
        assert response.json()["ref"] == "ERROR_INVALID_REQUEST"

    def test_unsupported_parameter(self, api: httpx.Client) -> None:
        """A filter the emulator does not implement is rejected, not ignored."""
        response = api.get("/users", params={"filter": 'externalId eq "A"'})

        assert response.status_code == 400

    def test_bad_sort(self, api: httpx.Client) -> None:
        """An unknown sort field is rejected."""
        assert api.get("/users", params={"sort": "salary_ASC"}).status_code == 400


class TestGetUser:
    def test_by_id(self, api: httpx.Client) -> None:
        """A user is found by its Staffbase id."""
        created = api.post("/users", json=user_body("E1")).json()

        response = api.get(f"/users/{created['id']}")

        assert response.json() == created

    def test_by_external_id(self, api: httpx.Client) -> None:
        """A user is found by its externalID."""
        created = api.post("/users", json=user_body("E1")).json()

        assert api.get("/users/E1").json()["id"] == created["id"]

    def test_missing(self, api: httpx.Client) -> None:
        """An unknown id gets the not-found envelope."""
        response = api.get("/users/E404")

        assert response.status_code == 404
        assert response.json()["ref"] == "ERROR_NOT_FOUND"


class TestCreateUser:
    def test_created_pending(self, api: httpx.Client) -> None:
        """A new user is pending, with an id, a Location and no activation time."""
        body = user_body("E1", firstName="Ann", lastName="Lee", profile={"team": "Ops"})

        response = api.post("/users", json=body)

        user = response.json()
        assert response.status_code == 201
        assert re.fullmatch(r"[0-9a-f]{24}", user["id"])
        assert response.headers["location"] == f"/api/users/{user['id']}"
        assert user["status"] == "pending"
        assert user["activated"] is None
        assert user["firstName"] == "Ann"
        assert user["profile"] == {"team": "Ops"}
        assert user["created"].endswith("Z")

    def test_send_mail_recorded(self, api: httpx.Client, control: httpx.Client) -> None:
        """sendMail is accepted and counted as a requested invitation."""
        api.post("/users", json=user_body("E1", sendMail=True))

        assert control.get("/stats").json()["invitations_requested"] == 1

    def test_duplicate_external_id(self, api: httpx.Client) -> None:
        """A second user with the same externalID is a 409 naming the field."""
        api.post("/users", json=user_body("E1"))

        response = api.post("/users", json=user_body("E1", "other@example.com"))

        assert response.status_code == 409
        assert response.json()["ref"] == "ERROR_DUPLICATE_EXTERNAL_ID"
        assert "externalID" in response.json()["message"]

    def test_duplicate_email_ignores_case(self, api: httpx.Client) -> None:
        """Primary e-mails are unique regardless of case."""
        api.post("/users", json=user_body("E1", "ann@example.com"))

        response = api.post("/users", json=user_body("E2", "ANN@Example.com"))

        assert response.status_code == 409
        assert response.json()["ref"] == "ERROR_DUPLICATE_EMAIL"
        assert "email" in response.json()["message"]

    def test_duplicate_username_ignores_case(self, api: httpx.Client) -> None:
        """userNames are unique regardless of case."""
        api.post("/users", json=user_body("E1", userName="alee"))

        response = api.post("/users", json=user_body("E2", userName="ALee"))

        assert response.status_code == 409
        assert response.json()["ref"] == "ERROR_DUPLICATE_USERNAME"
        assert "userName" in response.json()["message"]

    def test_duplicate_across_statuses(self, api: httpx.Client, control: httpx.Client) -> None:
        """A deactivated user's e-mail still blocks a new user."""
        seed(control, None, "deactivated", email="old@example.com")

        response = api.post("/users", json=user_body("E2", "old@example.com"))

        assert response.status_code == 409

    def test_unknown_field(self, api: httpx.Client) -> None:
        """An unknown field is rejected rather than ignored."""
        response = api.post("/users", json=user_body("E1", nickname="Al"))

        assert response.status_code == 400
        assert "nickname" in response.json()["message"]

    def test_read_only_fields(self, api: httpx.Client) -> None:
        """id, created and status cannot be set on create."""
        for field, value in [("id", "0" * 24), ("created", "2024-01-01"), ("status", "pending")]:
            response = api.post("/users", json=user_body("E1", **{field: value}))
            assert response.status_code == 400, field

    def test_non_string_value(self, api: httpx.Client) -> None:
        """Field values must be strings or null."""
        response = api.post("/users", json=user_body("E1", position=7))

        assert response.status_code == 400

    def test_primary_email_required(self, api: httpx.Client) -> None:
        """emails needs exactly one primary entry."""
        none = {"emails": [{"value": "a@example.com", "primary": False}]}
        two = {
            "emails": [{"value": "a@x.com", "primary": True}, {"value": "b@x.com", "primary": True}]
        }

        assert api.post("/users", json={"externalID": "E1"}).status_code == 400
        assert api.post("/users", json=none).status_code == 400
        assert api.post("/users", json=two).status_code == 400

    def test_json_content_type_required(self, api: httpx.Client) -> None:
        """A body that is not application/json is a 415."""
        response = api.post("/users", content=b"externalID=E1")

        assert response.status_code == 415

    def test_manager_must_exist(self, api: httpx.Client) -> None:
        """profile.system_manager must name an existing user's Staffbase id."""
        manager = api.post("/users", json=user_body("M1")).json()

        unknown = api.post("/users", json=user_body("E1", profile={"system_manager": "f" * 24}))
        known = api.post("/users", json=user_body("E2", profile={"system_manager": manager["id"]}))

        assert unknown.status_code == 400
        assert known.status_code == 201


class TestUpdateUser:
    def test_partial(self, api: httpx.Client) -> None:
        """Only the given fields change."""
        user = api.post("/users", json=user_body("E1", firstName="Ann", position="Dev")).json()

        updated = api.put(f"/users/{user['id']}", json={"position": "Lead"}).json()

        assert updated["position"] == "Lead"
        assert updated["firstName"] == "Ann"
        assert updated["emails"] == user["emails"]

    def test_null_clears_field(self, api: httpx.Client) -> None:
        """A field set to null is removed."""
        api.post("/users", json=user_body("E1", position="Dev"))

        updated = api.put("/users/E1", json={"position": None}).json()

        assert "position" not in updated

    def test_profile_merges(self, api: httpx.Client) -> None:
        """profile merges per key, and a key set to null is removed."""
        api.post("/users", json=user_body("E1", profile={"a": "1", "b": "2"}))

        updated = api.put("/users/E1", json={"profile": {"b": None, "c": "3"}}).json()

        assert updated["profile"] == {"a": "1", "c": "3"}

    def test_emails_replaced(self, api: httpx.Client) -> None:
        """emails replaces the whole list."""
        api.post("/users", json=user_body("E1", "old@example.com"))
        emails = [{"value": "new@example.com", "primary": True}]

        updated = api.put("/users/E1", json={"emails": emails}).json()

        assert updated["emails"] == emails

    def test_updated_timestamp(self, api: httpx.Client) -> None:
        """A change moves the updated timestamp; created stays."""
        user = api.post("/users", json=user_body("E1")).json()

        updated = api.put("/users/E1", json={"position": "Lead"}).json()

        assert updated["created"] == user["created"]
        assert updated["updated"] >= user["updated"]

    def test_adopt_by_external_id(self, api: httpx.Client, control: httpx.Client) -> None:
        """A hand-made user without externalID can be given one and found by it."""
        user = seed(control, None, "activated")

        api.put(f"/users/{user['id']}", json={"externalID": "E9"})

        assert api.get("/users/E9").json()["id"] == user["id"]

    def test_duplicate_email(self, api: httpx.Client) -> None:
        """Taking another user's e-mail is a 409."""
        api.post("/users", json=user_body("E1", "one@example.com"))
        api.post("/users", json=user_body("E2", "two@example.com"))
        emails = [{"value": "One@example.com", "primary": True}]

        response = api.put("/users/E2", json={"emails": emails})

        assert response.status_code == 409
        assert response.json()["ref"] == "ERROR_DUPLICATE_EMAIL"

    def test_own_email_other_case(self, api: httpx.Client) -> None:
        """A user may change the case of its own e-mail."""
        api.post("/users", json=user_body("E1", "one@example.com"))
        emails = [{"value": "ONE@example.com", "primary": True}]

        response = api.put("/users/E1", json={"emails": emails})

        assert response.status_code == 200

    def test_duplicate_external_id(self, api: httpx.Client) -> None:
        """Taking another user's externalID is a 409."""
        api.post("/users", json=user_body("E1"))
        api.post("/users", json=user_body("E2"))

        response = api.put("/users/E2", json={"externalID": "E1"})

        assert response.status_code == 409
        assert response.json()["ref"] == "ERROR_DUPLICATE_EXTERNAL_ID"

    def test_read_only_id(self, api: httpx.Client) -> None:
        """The id cannot be changed."""
        user = api.post("/users", json=user_body("E1")).json()

        response = api.put("/users/E1", json={"id": user["id"]})

        assert response.status_code == 400

    def test_missing_user(self, api: httpx.Client) -> None:
        """Updating an unknown user is a 404."""
        assert api.put("/users/E404", json={"position": "x"}).status_code == 404


class TestStatusChanges:
    def test_pending_cannot_deactivate(self, api: httpx.Client) -> None:
        """A pending user cannot be deactivated."""
        api.post("/users", json=user_body("E1"))

        response = api.put("/users/E1", json={"status": "deactivated"})

        assert response.status_code == 400
        assert response.json()["ref"] == "ERROR_PENDING_USER_NOT_DEACTIVATABLE"
        assert api.get("/users/E1").json()["status"] == "pending"

    def test_pending_cannot_activate(self, api: httpx.Client) -> None:
        """Only signing in activates a pending user."""
        api.post("/users", json=user_body("E1"))

        response = api.put("/users/E1", json={"status": "activated"})

        assert response.status_code == 400
        assert response.json()["ref"] == "ERROR_PENDING_USER_NOT_ACTIVATABLE"

    def test_deactivate_and_reactivate(self, api: httpx.Client, control: httpx.Client) -> None:
        """An activated user can be deactivated and activated again."""
        seed(control, "E1", "activated")

        deactivated = api.put("/users/E1", json={"status": "deactivated"}).json()
        reactivated = api.put("/users/E1", json={"status": "activated"}).json()

        assert deactivated["status"] == "deactivated"
        assert reactivated["status"] == "activated"

    def test_same_status_no_op(self, api: httpx.Client, control: httpx.Client) -> None:
        """Setting the current status changes nothing, not even the updated timestamp."""
        user = seed(control, "E1", "deactivated")

        response = api.put("/users/E1", json={"status": "deactivated"})

        assert response.status_code == 200
        assert response.json() == user

    def test_back_to_pending(self, api: httpx.Client, control: httpx.Client) -> None:
        """No user goes back to pending."""
        seed(control, "E1", "activated")

        response = api.put("/users/E1", json={"status": "pending"})

        assert response.status_code == 400


class TestDeleteUser:
    def test_delete(self, api: httpx.Client) -> None:
        """A deleted user is gone, by id and by externalID."""
        user = api.post("/users", json=user_body("E1")).json()

        response = api.delete(f"/users/{user['id']}")

        assert response.status_code == 204
        assert api.get("/users/E1").status_code == 404

    def test_delete_frees_email(self, api: httpx.Client) -> None:
        """A deleted user's externalID and e-mail can be used again."""
        api.post("/users", json=user_body("E1"))
        api.delete("/users/E1")

        assert api.post("/users", json=user_body("E1")).status_code == 201

    def test_missing(self, api: httpx.Client) -> None:
        """Deleting an unknown user is a 404."""
        assert api.delete("/users/E404").status_code == 404
