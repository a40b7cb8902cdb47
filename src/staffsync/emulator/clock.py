"""Timestamps and ids in the forms Staffbase uses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import random
    from collections.abc import Container

__all__ = ["new_object_id", "utc_timestamp"]


def utc_timestamp() -> str:
    """Return the current time as ISO-8601 UTC with milliseconds: ``2024-05-01T08:00:00.000Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_object_id(rng: random.Random, used_ids: Container[str]) -> str:
    """Draw a 24-hex-digit id (the form of a MongoDB ObjectId) that is not in ``used_ids``."""
    while True:
        candidate = f"{rng.getrandbits(96):024x}"
        if candidate not in used_ids:
            return candidate
