"""The in-memory tenant: users, their indexes and the User API's rules.

User records are replaced, never changed in place: an update builds a new dict. Lists
handed out (pages, snapshots for the state file) therefore stay consistent without
copying every user.

Rules where Staffbase's documentation is silent, each the stricter choice:

- ``externalID`` (exact), ``userName`` and the primary e-mail (both case-insensitive) are
  unique across every status, on create and on update.
- ``profile.system_manager`` must be the Staffbase id of another existing user.
- A ``pending`` user can be neither deactivated nor activated through the API (only the
  person's first sign-in activates it), and no user goes back to ``pending``.
- Fields without a value are left out of user objects, so a client must not rely on
  their keys being present. ``activated`` is the exception: it is null until sign-in.
- Deleting a user leaves ``profile.system_manager`` references to it in place.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from staffsync.emulator.clock import new_object_id, utc_timestamp
from staffsync.emulator.errors import (
    DUPLICATE_EMAIL,
    DUPLICATE_EXTERNAL_ID,
    DUPLICATE_USERNAME,
    INVALID_REQUEST,
    INVALID_STATUS_TRANSITION,
    NOT_FOUND,
    PENDING_USER_NOT_ACTIVATABLE,
    PENDING_USER_NOT_DEACTIVATABLE,
    ApiError,
    ErrorKind,
)
from staffsync.emulator.groups import GroupDirectory
from staffsync.emulator.listing import UserListCache
from staffsync.emulator.validation import STRING_FIELDS, parse_user_payload, primary_email

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from staffsync.emulator.listing import SortOrder

__all__ = ["STATE_VERSION", "Tenant", "User"]

User = dict[str, Any]

STATE_VERSION = 1
"""Version of the snapshot format written by :meth:`Tenant.snapshot`."""

_FIELD_ORDER = (
    "id",
    "externalID",
    "userName",
    "firstName",
    "lastName",
    "emails",
    *STRING_FIELDS[4:],
    "profile",
    "config",
    "status",
    "created",
    "updated",
    "activated",
)
_TIMESTAMPS = ("created", "updated", "activated")


class Tenant:
    """Users and groups of one emulated Staffbase tenant.

    Not thread-safe: call it from the event loop that serves the app.

    Args:
        seed: Seed for new ids, so that a seeded tenant hands out the same ids each run.
    """

    def __init__(self, seed: int | None = None) -> None:
        self._seed = seed
        self._rng = random.Random(seed)
        self._users: dict[str, User] = {}
        self._by_external_id: dict[str, str] = {}
        self._by_username: dict[str, str] = {}
        self._by_email: dict[str, str] = {}
        self._lists = UserListCache()
        self.groups = GroupDirectory(self._rng, self._users.__contains__, self._changed)
        self.version = 0
        """Counts changes; the state file writer compares it with what it last saved."""
        self.invitations_requested = 0
        """How many creates asked for an invitation e-mail (``sendMail: true``)."""
        self.on_change: Callable[[], None] | None = None
        """Called after every change, e.g. to schedule a save of the state file."""

    def __len__(self) -> int:
        return len(self._users)

    # Reading

    def all_users(self) -> list[User]:
        """Return every user, any status, in creation order."""
        return list(self._users.values())

    def get_user(self, ref: str) -> User:
        """Return the user whose Staffbase id, or else whose ``externalID``, is ``ref``.

        Raises:
            ApiError: ``ERROR_NOT_FOUND`` when neither matches.
        """
        user = self._users.get(ref)
        if user is None:
            user_id = self._by_external_id.get(ref)
            user = self._users.get(user_id) if user_id is not None else None
        if user is None:
            raise ApiError(NOT_FOUND, f"No user has the id or externalID {ref!r}.")
        return user

    def list_users(
        self, order: SortOrder, statuses: frozenset[str], offset: int, limit: int
    ) -> tuple[int, list[User]]:
        """Return the number of users with one of ``statuses`` and one page of them."""
        selected = self._lists.select(self._users.values(), order, statuses)
        return len(selected), selected[offset : offset + limit]

    # Writing

    def create_user(self, body: object) -> User:
        """Create a user from a POST /api/users body; it starts as ``pending``."""
        changes = parse_user_payload(body, "create")
        if changes.pop("sendMail", False):
            self.invitations_requested += 1

        now = utc_timestamp()
        user = self._new_record(changes, status="pending", now=now)
        self._check_rules(user, changes, exclude_id=None)
        self._insert(user)
        self._changed()
        return user

    def seed_user(self, body: object) -> User:
        """Create a user as if made by hand in the Studio: any status, ``id`` optional.

        The status defaults to ``pending``; an activated or deactivated user gets an
        ``activated`` timestamp.
        """
        changes = parse_user_payload(body, "seed")
        user_id = changes.pop("id", None)
        if user_id is not None and user_id in self._users:
            raise ApiError(INVALID_REQUEST, f"A user with the id {user_id!r} already exists.")

        now = utc_timestamp()
        status = changes.pop("status", "pending")
        user = self._new_record(changes, status=status, now=now, user_id=user_id)
        if status != "pending":
            user["activated"] = now
        self._check_rules(user, changes, exclude_id=None)
        self._insert(user)
        self._changed()
        return user

    def update_user(self, ref: str, body: object) -> User:
        """Apply a partial update (PUT /api/users/{id}) and return the user as it is now.

        Only the given fields change; ``profile`` and ``config`` merge per key, where a key
        set to null is removed; ``emails`` replaces the whole list.
        """
        current = self.get_user(ref)
        changes = parse_user_payload(body, "update")

        updated = _merge(current, changes)
        self._check_status_change(current["status"], updated["status"])
        self._check_rules(updated, changes, exclude_id=current["id"])
        if updated == current:
            return current

        updated["updated"] = utc_timestamp()
        self._replace(current, updated)
        self._changed()
        return updated

    def delete_user(self, ref: str) -> None:
        """Delete a user and take it out of every group."""
        user = self.get_user(ref)

        self._unindex(user)
        del self._users[user["id"]]
        self.groups.remove_user(user["id"])
        self._changed()

    def sign_in(self, refs: Iterable[str] | None) -> list[str]:
        """Activate pending users as their first sign-in would; None means every user.

        Returns:
            The Staffbase ids of the users that were activated; users named in ``refs``
            that are not pending are left as they are.
        """
        users = self._users.values() if refs is None else [self.get_user(ref) for ref in refs]
        # Keyed by id, so that a user named twice (by id and by externalID) is activated once.
        pending = list({user["id"]: user for user in users if user["status"] == "pending"}.values())

        now = utc_timestamp()
        for user in pending:
            self._replace(user, {**user, "status": "activated", "updated": now, "activated": now})
        if pending:
            self._changed()
        return [user["id"] for user in pending]

    def clear(self) -> None:
        """Remove every user and group and restart the id sequence of a seeded tenant."""
        self._rng.seed(self._seed)
        self._users.clear()
        self._by_external_id.clear()
        self._by_username.clear()
        self._by_email.clear()
        self.groups.clear()
        self.invitations_requested = 0
        self._changed()

    # State file

    def snapshot(self) -> dict[str, Any]:
        """Return the tenant as a JSON-ready object; safe to serialize in another thread."""
        return {
            "version": STATE_VERSION,
            "users": list(self._users.values()),
            "groups": [group.to_stored() for group in self.groups.all()],
        }

    def load(self, state: object) -> None:
        """Replace the tenant's content with a snapshot read back from the state file.

        Raises:
            ValueError: The snapshot is malformed or breaks a uniqueness rule.
        """
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            msg = f"expected an object with version {STATE_VERSION} and lists of users and groups"
            raise ValueError(msg)

        self.clear()
        try:
            for stored in state.get("users", []):
                self._load_user(stored)
            for stored in state.get("groups", []):
                self.groups.load(stored)
        except ApiError as exc:
            raise ValueError(exc.message) from exc
        except (KeyError, TypeError) as exc:
            msg = f"malformed user or group record ({type(exc).__name__}: {exc})"
            raise ValueError(msg) from exc
        self._changed()

    def _load_user(self, stored: object) -> None:
        if not isinstance(stored, dict):
            msg = f"a user record must be an object, got {stored!r}"
            raise TypeError(msg)

        fields = {key: value for key, value in stored.items() if key not in _TIMESTAMPS}
        changes = parse_user_payload(fields, "seed")
        status = changes.pop("status", "pending")
        user_id = changes.pop("id", None)
        if user_id is None or user_id in self._users:
            msg = f"every stored user needs an id of its own, got {user_id!r}"
            raise ValueError(msg)

        user = self._new_record(changes, status=status, now=stored["created"], user_id=user_id)
        user.update({name: stored.get(name) for name in _TIMESTAMPS})
        self._check_unique(user, exclude_id=None)
        self._insert(user)

    # Internals

    def _new_record(
        self, changes: dict[str, Any], *, status: str, now: str, user_id: str | None = None
    ) -> User:
        record: User = {
            "id": user_id or new_object_id(self._rng, self._users),
            **{name: value for name, value in changes.items() if value is not None},
            "profile": changes.get("profile", {}),
            "config": _without_nulls(changes.get("config", {})),
            "status": status,
            "created": now,
            "updated": now,
            "activated": None,
        }
        return _ordered(record)

    def _check_status_change(self, before: str, after: str) -> None:
        if before == after:
            return
        if before == "pending" and after == "deactivated":
            msg = "A pending user (invited, never signed in) cannot be deactivated; delete it."
            raise ApiError(PENDING_USER_NOT_DEACTIVATABLE, msg)
        if before == "pending" and after == "activated":
            msg = "A pending user becomes activated only by signing in for the first time."
            raise ApiError(PENDING_USER_NOT_ACTIVATABLE, msg)
        if after == "pending":
            msg = f"An {before} user cannot go back to pending."
            raise ApiError(INVALID_STATUS_TRANSITION, msg)

    def _check_rules(self, user: User, changes: dict[str, Any], exclude_id: str | None) -> None:
        # Only a manager the request sets is checked, so that a reference left dangling by
        # a deleted manager does not block unrelated updates.
        manager_id = changes.get("profile", {}).get("system_manager")
        if manager_id is not None and (manager_id == user["id"] or manager_id not in self._users):
            msg = (
                f"profile.system_manager must be the Staffbase id of another existing user,"
                f" got {manager_id!r}."
            )
            raise ApiError(INVALID_REQUEST, msg)
        self._check_unique(user, exclude_id)

    def _check_unique(self, user: User, exclude_id: str | None) -> None:
        for index, key, kind, label in self._unique_keys(user):
            owner = index.get(key) if key is not None else None
            if owner is not None and owner != exclude_id:
                raise ApiError(kind, f"Another user already has the {label} {key!r}.")

    def _unique_keys(self, user: User) -> list[tuple[dict[str, str], str | None, ErrorKind, str]]:
        email = primary_email(user["emails"])
        username = user.get("userName")
        return [
            (self._by_external_id, user.get("externalID"), DUPLICATE_EXTERNAL_ID, "externalID"),
            (self._by_email, email.casefold() if email else None, DUPLICATE_EMAIL, "email"),
            (
                self._by_username,
                username.casefold() if username else None,
                DUPLICATE_USERNAME,
                "userName",
            ),
        ]

    def _insert(self, user: User) -> None:
        self._users[user["id"]] = user
        for index, key, _kind, _label in self._unique_keys(user):
            if key is not None:
                index[key] = user["id"]

    def _unindex(self, user: User) -> None:
        for index, key, _kind, _label in self._unique_keys(user):
            if key is not None:
                index.pop(key, None)

    def _replace(self, current: User, updated: User) -> None:
        self._unindex(current)
        self._insert(updated)

    def _changed(self) -> None:
        self._lists.invalidate()
        self.version += 1
        if self.on_change is not None:
            self.on_change()


def _merge(current: User, changes: dict[str, Any]) -> User:
    merged = dict(current)
    for name, value in changes.items():
        if name == "profile":
            merged["profile"] = _without_nulls({**current["profile"], **value})
        elif name == "config":
            merged["config"] = _without_nulls({**current["config"], **value})
        elif value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return _ordered(merged)


def _without_nulls(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _ordered(record: User) -> User:
    return {name: record[name] for name in _FIELD_ORDER if name in record}
