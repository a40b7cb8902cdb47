"""Groups and their members, as managed through the Groups API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from staffsync.emulator.clock import new_object_id, utc_timestamp
from staffsync.emulator.errors import (
    DUPLICATE_GROUP_EXTERNAL_ID,
    INVALID_REQUEST,
    NOT_FOUND,
    ApiError,
)

if TYPE_CHECKING:
    import random
    from collections.abc import Callable

__all__ = ["Group", "GroupDirectory"]


@dataclass(slots=True)
class Group:
    """One group; ``members`` keeps the Staffbase ids of its users in the order they joined."""

    id: str
    name: str
    external_id: str | None
    created: str
    updated: str
    members: dict[str, None] = field(default_factory=dict)

    def to_api(self) -> dict[str, Any]:
        """Return the group as the Groups API shows it (without members)."""
        view: dict[str, Any] = {"id": self.id, "name": self.name}
        if self.external_id is not None:
            view["externalId"] = self.external_id
        view["created"] = self.created
        view["updated"] = self.updated
        return view

    def to_stored(self) -> dict[str, Any]:
        """Return the group with its member ids, as the state file and operators see it."""
        return {**self.to_api(), "members": list(self.members)}


class GroupDirectory:
    """The groups of a tenant, with an index by ``externalId``.

    Args:
        rng: Source of new group ids.
        user_exists: Tells whether a Staffbase user id exists; members must exist.
        on_change: Called after every change.
    """

    def __init__(
        self,
        rng: random.Random,
        user_exists: Callable[[str], bool],
        on_change: Callable[[], None],
    ) -> None:
        self._rng = rng
        self._user_exists = user_exists
        self._on_change = on_change
        self._groups: dict[str, Group] = {}
        self._by_external_id: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._groups)

    def __contains__(self, group_id: object) -> bool:
        return group_id in self._groups

    def clear(self) -> None:
        """Remove every group."""
        self._groups.clear()
        self._by_external_id.clear()

    def all(self) -> list[Group]:
        """Return every group in creation order."""
        return list(self._groups.values())

    def get(self, group_id: str) -> Group:
        """Return the group with this Staffbase id.

        Raises:
            ApiError: ``ERROR_NOT_FOUND`` when there is none.
        """
        group = self._groups.get(group_id)
        if group is None:
            raise ApiError(NOT_FOUND, f"No group has the id {group_id!r}.")
        return group

    def create(self, body: object) -> Group:
        """Create a group from a ``{"name", "externalId"?}`` request body."""
        name, external_id = _parse_group_body(body)
        if external_id is not None and external_id in self._by_external_id:
            msg = f"Another group already has the externalId {external_id!r}."
            raise ApiError(DUPLICATE_GROUP_EXTERNAL_ID, msg)

        now = utc_timestamp()
        group = Group(new_object_id(self._rng, self._groups), name, external_id, now, now)
        self._add(group)
        self._on_change()
        return group

    def change_members(self, group_id: str, user_ids: object, *, add: bool) -> None:
        """Add or remove members; all or nothing, and idempotent for each user id.

        Raises:
            ApiError: ``ERROR_NOT_FOUND`` for an unknown group, ``ERROR_INVALID_REQUEST``
                for a malformed list or an unknown user id.
        """
        group = self.get(group_id)
        if not isinstance(user_ids, list) or not user_ids:
            raise ApiError(INVALID_REQUEST, "The field 'userIds' must be a non-empty list.")
        unknown = [user_id for user_id in user_ids if not self._is_user(user_id)]
        if unknown:
            msg = f"Unknown user ids {unknown!r}: members are named by their Staffbase id."
            raise ApiError(INVALID_REQUEST, msg)

        before = len(group.members)
        for user_id in user_ids:
            if add:
                group.members[user_id] = None
            else:
                group.members.pop(user_id, None)

        if len(group.members) != before:
            group.updated = utc_timestamp()
            self._on_change()

    def remove_user(self, user_id: str) -> None:
        """Take a deleted user out of every group."""
        for group in self._groups.values():
            group.members.pop(user_id, None)

    def load(self, stored: dict[str, Any]) -> None:
        """Add a group read from the state file (the form of :meth:`Group.to_stored`)."""
        group = Group(
            id=stored["id"],
            name=stored["name"],
            external_id=stored.get("externalId"),
            created=stored["created"],
            updated=stored["updated"],
            members=dict.fromkeys(stored.get("members", [])),
        )
        if group.id in self._groups:
            msg = f"The group id {group.id!r} appears twice."
            raise ValueError(msg)
        if group.external_id is not None and group.external_id in self._by_external_id:
            msg = f"The group externalId {group.external_id!r} appears twice."
            raise ValueError(msg)
        self._add(group)

    def _add(self, group: Group) -> None:
        self._groups[group.id] = group
        if group.external_id is not None:
            self._by_external_id[group.external_id] = group.id

    def _is_user(self, user_id: object) -> bool:
        return isinstance(user_id, str) and self._user_exists(user_id)


def _parse_group_body(body: object) -> tuple[str, str | None]:
    if not isinstance(body, dict):
        raise ApiError(INVALID_REQUEST, "The request body must be a JSON object.")
    unknown = set(body) - {"name", "externalId"}
    if unknown:
        raise ApiError(INVALID_REQUEST, f"Unknown or unsupported group fields {sorted(unknown)!r}.")

    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ApiError(
            INVALID_REQUEST, f"The field 'name' must be a non-empty string, got {name!r}."
        )
    external_id = body.get("externalId")
    if external_id is not None and (not isinstance(external_id, str) or not external_id):
        msg = f"The field 'externalId' must be a non-empty string or null, got {external_id!r}."
        raise ApiError(INVALID_REQUEST, msg)
    return name, external_id
