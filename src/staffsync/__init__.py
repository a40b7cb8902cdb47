"""staffsync keeps the users of a Staffbase employee app in step with the HR system of record."""

from __future__ import annotations

__version__ = "0.1.0"
