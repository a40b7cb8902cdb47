"""Settings of one emulated Staffbase tenant."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["EmulatorConfig"]


@dataclass(slots=True)
class EmulatorConfig:
    """Credentials, token lifetime and storage of an emulated tenant.

    Attributes:
        client_id: OAuth client id accepted by the token endpoint.
        client_secret: OAuth client secret accepted by the token endpoint.
        api_token: Classic API token accepted verbatim as ``Authorization: Basic <token>``.
        token_lifetime_s: Lifetime of issued access tokens, in seconds (may be fractional).
        state_file: JSON file the users and groups are loaded from and saved to; None keeps
            the tenant in memory only.
        seed: Seed of the random generator behind injected faults and new ids; None draws
            a fresh seed.
        max_page_size: Largest ``limit`` accepted by the list endpoints.
    """

    client_id: str = "staffsync-demo"
    client_secret: str = "demo-secret"  # noqa: S105 - the emulator's published demo credential
    api_token: str = "demo-api-token"  # noqa: S105 - the emulator's published demo credential
    token_lifetime_s: float = 3600.0
    state_file: Path | None = None
    seed: int | None = None
    max_page_size: int = 1000
