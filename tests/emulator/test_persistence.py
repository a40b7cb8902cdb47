"""The JSON state file: loaded at start, saved after changes and at stop."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from staffsync.emulator import EmulatorConfig, EmulatorServer, create_app

if TYPE_CHECKING:
    from pathlib import Path

API_TOKEN_HEADER = {"Authorization": "Basic demo-api-token"}
MEMBERS_ADD = "application/vnd.staffbase.accessors.group.members-add.v1+json"


def user_body(key: str, **fields: Any) -> dict[str, Any]:
    """A create body for the user with externalID ``key`` and one primary e-mail."""
    return {
        "externalID": key,
        "emails": [{"value": f"{key}@example.com", "primary": True}],
        **fields,
    }


def fill_tenant(server: EmulatorServer) -> None:
    """Create two users (one activated) and a group with one member."""
    with httpx.Client(base_url=server.base_url, headers=API_TOKEN_HEADER) as api:
        first = api.post("/users", json=user_body("E1", profile={"team": "Ops"})).json()
        api.post("/users", json=user_body("E2"))
        httpx.post(f"{server.url}/__emulator/sign-in", json={"ids": [first["id"]]})
        group = api.post("/groups", json={"name": "Ops", "externalId": "g-ops"}).json()
        api.patch(
            f"/groups/{group['id']}/members",
            json={"userIds": [first["id"]]},
            headers={"Content-Type": MEMBERS_ADD},
        )


def dump(server: EmulatorServer) -> tuple[Any, Any]:
    users = httpx.get(f"{server.url}/__emulator/users").json()
    groups = httpx.get(f"{server.url}/__emulator/groups").json()
    return users, groups


class TestStateFile:
    def test_round_trip(self, tmp_path: Path) -> None:
        """A second server on the same file starts with the first one's users and groups."""
        config = EmulatorConfig(state_file=tmp_path / "tenant.json")
        with EmulatorServer(config) as first:
            fill_tenant(first)
            saved = dump(first)

        with EmulatorServer(EmulatorConfig(state_file=config.state_file)) as second:
            loaded = dump(second)

        assert loaded == saved

    def test_loaded_users_keep_rules(self, tmp_path: Path) -> None:
        """Loaded users are indexed: lookups and uniqueness work as before."""
        config = EmulatorConfig(state_file=tmp_path / "tenant.json")
        with EmulatorServer(config) as first:
            fill_tenant(first)

        with (
            EmulatorServer(EmulatorConfig(state_file=config.state_file)) as second,
            httpx.Client(base_url=second.base_url, headers=API_TOKEN_HEADER) as api,
        ):
            found = api.get("/users/E1")
            duplicate = api.post(
                "/users",
                json=user_body(
                    "E3", userName=None, emails=[{"value": "E1@example.com", "primary": True}]
                ),
            )

        assert found.status_code == 200
        assert duplicate.status_code == 409

    def test_saved_while_running(self, tmp_path: Path) -> None:
        """Changes reach the file shortly after they happen, before the server stops."""
        path = tmp_path / "tenant.json"
        with EmulatorServer(EmulatorConfig(state_file=path)) as server:
            fill_tenant(server)

            deadline = time.monotonic() + 5
            users: list[Any] = []
            while time.monotonic() < deadline and len(users) < 2:
                time.sleep(0.05)
                if path.exists():
                    users = json.loads(path.read_text())["users"]

        assert [user["externalID"] for user in users] == ["E1", "E2"]

    def test_no_temp_files_left(self, tmp_path: Path) -> None:
        """Only the state file itself remains in its folder."""
        path = tmp_path / "tenant.json"
        with EmulatorServer(EmulatorConfig(state_file=path)) as server:
            fill_tenant(server)

        assert [entry.name for entry in tmp_path.iterdir()] == ["tenant.json"]

    def test_invalid_file(self, tmp_path: Path) -> None:
        """A state file that is not the emulator's is rejected at start with its path."""
        path = tmp_path / "tenant.json"
        path.write_text('{"users": 3}')

        with pytest.raises(ValueError, match=r"tenant\.json") as error:
            create_app(EmulatorConfig(state_file=path))

        assert "fix or remove it" in str(error.value)

    def test_duplicate_in_file(self, tmp_path: Path) -> None:
        """A state file with two users sharing an e-mail is rejected."""
        path = tmp_path / "tenant.json"
        config = EmulatorConfig(state_file=path)
        with EmulatorServer(config) as server:
            fill_tenant(server)
        state = json.loads(path.read_text())
        state["users"][1]["emails"] = state["users"][0]["emails"]
        path.write_text(json.dumps(state))

        with pytest.raises(ValueError, match="email"):
            create_app(config)
