"""The Groups API: groups and their members."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

ADD = "application/vnd.staffbase.accessors.group.members-add.v1+json"
REMOVE = "application/vnd.staffbase.accessors.group.members-remove.v1+json"


def create_user(api: httpx.Client, key: str) -> str:
    body = {"externalID": key, "emails": [{"value": f"{key}@example.com", "primary": True}]}
    return str(api.post("/users", json=body).json()["id"])


def patch_members(
    api: httpx.Client, group_id: str, media_type: str, user_ids: list[str]
) -> httpx.Response:
    body: dict[str, Any] = {"userIds": user_ids}
    return api.patch(f"/groups/{group_id}/members", json=body, headers={"Content-Type": media_type})


def members(control: httpx.Client) -> dict[str, list[str]]:
    return {group["name"]: group["members"] for group in control.get("/groups").json()}


class TestGroups:
    def test_create(self, api: httpx.Client) -> None:
        """A new group has an id, its name and externalId, and a Location."""
        response = api.post("/groups", json={"name": "Ops", "externalId": "g-ops"})

        group = response.json()
        assert response.status_code == 201
        assert group["name"] == "Ops"
        assert group["externalId"] == "g-ops"
        assert response.headers["location"] == f"/api/groups/{group['id']}"

    def test_duplicate_external_id(self, api: httpx.Client) -> None:
        """Two groups cannot share an externalId."""
        api.post("/groups", json={"name": "Ops", "externalId": "g-ops"})

        response = api.post("/groups", json={"name": "Ops 2", "externalId": "g-ops"})

        assert response.status_code == 409
        assert response.json()["ref"] == "ERROR_DUPLICATE_GROUP_EXTERNAL_ID"

    def test_name_required(self, api: httpx.Client) -> None:
        """A group needs a non-empty name."""
        assert api.post("/groups", json={"externalId": "g"}).status_code == 400
        assert api.post("/groups", json={"name": " "}).status_code == 400

    def test_get(self, api: httpx.Client) -> None:
        """A group is found by its id."""
        group = api.post("/groups", json={"name": "Ops"}).json()

        assert api.get(f"/groups/{group['id']}").json() == group

    def test_get_missing(self, api: httpx.Client) -> None:
        """An unknown group id is a 404."""
        assert api.get(f"/groups/{'0' * 24}").status_code == 404

    def test_list_pages(self, api: httpx.Client) -> None:
        """The list is paged with limit and offset in creation order."""
        for name in ("A", "B", "C"):
            api.post("/groups", json={"name": name})

        body = api.get("/groups", params={"limit": 2, "offset": 1}).json()

        assert body["total"] == 3
        assert [group["name"] for group in body["data"]] == ["B", "C"]


class TestMembers:
    def test_add(self, api: httpx.Client, control: httpx.Client) -> None:
        """Added users show as members."""
        group = api.post("/groups", json={"name": "Ops"}).json()
        first, second = create_user(api, "E1"), create_user(api, "E2")

        response = patch_members(api, group["id"], ADD, [first, second])

        assert response.status_code == 204
        assert members(control) == {"Ops": [first, second]}

    def test_add_twice(self, api: httpx.Client, control: httpx.Client) -> None:
        """Adding a member again changes nothing."""
        group = api.post("/groups", json={"name": "Ops"}).json()
        user = create_user(api, "E1")
        patch_members(api, group["id"], ADD, [user])

        response = patch_members(api, group["id"], ADD, [user])

        assert response.status_code == 204
        assert members(control) == {"Ops": [user]}

    def test_remove(self, api: httpx.Client, control: httpx.Client) -> None:
        """Removed users are no longer members; removing a non-member is fine."""
        group = api.post("/groups", json={"name": "Ops"}).json()
        first, second = create_user(api, "E1"), create_user(api, "E2")
        patch_members(api, group["id"], ADD, [first, second])

        response = patch_members(api, group["id"], REMOVE, [first, first])

        assert response.status_code == 204
        assert members(control) == {"Ops": [second]}

    def test_unknown_user(self, api: httpx.Client, control: httpx.Client) -> None:
        """An unknown user id rejects the whole request."""
        group = api.post("/groups", json={"name": "Ops"}).json()
        user = create_user(api, "E1")

        response = patch_members(api, group["id"], ADD, [user, "E1"])

        assert response.status_code == 400
        assert members(control) == {"Ops": []}

    def test_plain_json(self, api: httpx.Client) -> None:
        """Plain application/json is a 415: the media type selects add or remove."""
        group = api.post("/groups", json={"name": "Ops"}).json()

        response = api.patch(f"/groups/{group['id']}/members", json={"userIds": []})

        assert response.status_code == 415

    def test_body_shape(self, api: httpx.Client) -> None:
        """The body must be exactly {"userIds": [...]} with at least one id."""
        group = api.post("/groups", json={"name": "Ops"}).json()
        url = f"/groups/{group['id']}/members"
        headers = {"Content-Type": ADD}

        assert api.patch(url, json=[], headers=headers).status_code == 400
        assert api.patch(url, json={"userIds": []}, headers=headers).status_code == 400
        assert api.patch(url, json={"ids": ["x"]}, headers=headers).status_code == 400

    def test_deleted_user_leaves_groups(self, api: httpx.Client, control: httpx.Client) -> None:
        """Deleting a user removes it from every group."""
        group = api.post("/groups", json={"name": "Ops"}).json()
        user = create_user(api, "E1")
        patch_members(api, group["id"], ADD, [user])

        api.delete(f"/users/{user}")

        assert members(control) == {"Ops": []}
