"""Sorted, filtered and paged views of the users, cached between writes.

Paging through a large tenant requests the same order once per page. Each order, and each
status filter of it, is therefore computed once and kept until the next write clears it.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from staffsync.emulator.errors import INVALID_REQUEST, ApiError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = ["DEFAULT_SORT", "SortOrder", "UserListCache", "parse_sort"]

DEFAULT_SORT = "lastName_ASC_firstName_ASC"

User = dict[str, Any]


def _text_key(field: str) -> Callable[[User], str]:
    # Names compare case-insensitively; a missing value sorts before every other.
    def key(user: User) -> str:
        value = user.get(field)
        return value.casefold() if isinstance(value, str) else ""

    return key


def _raw_key(field: str) -> Callable[[User], str]:
    # ISO-8601 UTC timestamps of one format sort correctly as strings.
    def key(user: User) -> str:
        value = user.get(field)
        return value if isinstance(value, str) else ""

    return key


_SORT_KEYS: dict[str, Callable[[User], str]] = {
    "firstName": _text_key("firstName"),
    "lastName": _text_key("lastName"),
    "userName": _text_key("userName"),
    "externalID": _raw_key("externalID"),
    "created": _raw_key("created"),
    "updated": _raw_key("updated"),
    "activated": _raw_key("activated"),
}


@dataclass(frozen=True, slots=True)
class SortOrder:
    """Sort fields from most to least significant, each with its direction."""

    keys: tuple[tuple[str, bool], ...]
    """Pairs of (field, descending)."""

    def sort(self, users: Iterable[User]) -> list[User]:
        """Return ``users`` in this order, with the Staffbase id as the final tie-breaker."""
        directions = {descending for _field, descending in self.keys}
        if len(directions) == 1:
            # One direction for all fields: a single sort on a tuple key is the fast path,
            # and the id tie-breaker runs in that direction too.
            key_functions = [_SORT_KEYS[field] for field, _descending in self.keys]

            def combined_key(user: User) -> tuple[str, ...]:
                return (*(key(user) for key in key_functions), user["id"])

            return sorted(users, key=combined_key, reverse=directions.pop())

        # Stable sorts from the least to the most significant field keep earlier keys as
        # tie-breakers, which lets each field have its own direction.
        ordered = sorted(users, key=itemgetter("id"))
        for field, descending in reversed(self.keys):
            ordered.sort(key=_SORT_KEYS[field], reverse=descending)
        return ordered


def parse_sort(text: str) -> SortOrder:
    """Parse a ``sort`` parameter such as ``lastName_ASC_firstName_ASC``.

    Raises:
        ApiError: ``ERROR_INVALID_REQUEST`` for an unknown field or direction.
    """
    parts = text.split("_")
    if len(parts) % 2 != 0 or not text:
        raise _invalid_sort(text)

    keys: list[tuple[str, bool]] = []
    for field, direction in zip(parts[::2], parts[1::2], strict=True):
        if field not in _SORT_KEYS or direction not in ("ASC", "DESC"):
            raise _invalid_sort(text)
        keys.append((field, direction == "DESC"))
    return SortOrder(tuple(keys))


def _invalid_sort(text: str) -> ApiError:
    fields = ", ".join(_SORT_KEYS)
    msg = (
        f"Invalid sort {text!r}: use pairs of <field>_ASC or <field>_DESC joined by '_',"
        f" with fields among {fields}."
    )
    return ApiError(INVALID_REQUEST, msg)


class UserListCache:
    """Sorted and status-filtered user lists, valid until :meth:`invalidate`."""

    def __init__(self) -> None:
        self._sorted: dict[SortOrder, list[User]] = {}
        self._filtered: dict[tuple[SortOrder, frozenset[str]], list[User]] = {}

    def invalidate(self) -> None:
        """Forget every cached list; called on every change to the users."""
        self._sorted.clear()
        self._filtered.clear()

    def select(
        self, users: Iterable[User], order: SortOrder, statuses: frozenset[str]
    ) -> list[User]:
        """Return the users whose status is in ``statuses``, in ``order``.

        The returned list is shared with the cache: callers must not change it.
        """
        cached = self._filtered.get((order, statuses))
        if cached is not None:
            return cached

        ordered = self._sorted.get(order)
        if ordered is None:
            ordered = order.sort(users)
            self._sorted[order] = ordered
        selected = [user for user in ordered if user["status"] in statuses]
        self._filtered[(order, statuses)] = selected
        return selected
