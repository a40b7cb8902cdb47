"""A first end-to-end pass through the emulator: token, create, list, read back."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from staffsync.emulator import EmulatorServer


def test_token_create_list(emulator: EmulatorServer) -> None:
    """A token from the token endpoint creates a user that the list then shows."""
    token = httpx.post(
        emulator.token_url,
        data={"grant_type": "client_credentials"},
        auth=("staffsync-demo", "demo-secret"),
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    body = {"externalID": "E1", "emails": [{"value": "a@example.com", "primary": True}]}

    created = httpx.post(f"{emulator.base_url}/users", json=body, headers=headers)
    listed = httpx.get(f"{emulator.base_url}/users?status=pending", headers=headers)

    assert created.status_code == 201
    assert [user["externalID"] for user in listed.json()["data"]] == ["E1"]
