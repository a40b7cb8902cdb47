"""Injected faults: rate limiting, server errors, latency and dropped connections.

Staffbase publishes no rate-limit numbers or headers, so the limit here is a plain token
bucket that the tests and benchmarks set, and ``Retry-After`` can be switched off to
exercise a client's fallback backoff.
"""

from __future__ import annotations

import asyncio
import enum
import math
import random
import time
from dataclasses import asdict, dataclass
from typing import Any

from staffsync.emulator.errors import INVALID_REQUEST, ApiError

__all__ = ["Action", "FaultInjector", "FaultSettings", "TokenBucket", "Verdict"]


@dataclass(slots=True)
class FaultSettings:
    """The current faults; all off by default.

    Attributes:
        rate_limit_per_second: Sustained request rate of the token bucket, with one
            second's worth of burst; None turns rate limiting off.
        rate_limit_retry_after: Whether a 429 carries a ``Retry-After`` header.
        error_rate: Fraction (0..1) of requests that get a 500 or 503 without being processed.
        latency_ms: Delay added before every API and token request, in milliseconds.
        drop_rate: Fraction (0..1) of requests whose connection is closed with no
            response: half before the request is processed, half after.
        token_lifetime_s: Lifetime of tokens issued from now on; None uses the config's.
    """

    rate_limit_per_second: float | None = None
    rate_limit_retry_after: bool = True
    error_rate: float = 0.0
    latency_ms: float = 0.0
    drop_rate: float = 0.0
    token_lifetime_s: float | None = None


class Action(enum.Enum):
    """The fate of one API request."""

    PROCEED = "proceed"
    RATE_LIMITED = "rate_limited"
    DROP_BEFORE = "drop_before"
    DROP_AFTER = "drop_after"
    FAIL_500 = "fail_500"
    FAIL_503 = "fail_503"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The fate of one request; ``retry_after_s`` is set for ``RATE_LIMITED``."""

    action: Action
    retry_after_s: int | None = None


PROCEED = Verdict(Action.PROCEED)


class TokenBucket:
    """A token bucket holding one second's worth of requests (at least one)."""

    def __init__(self, rate_per_second: float) -> None:
        self.rate = rate_per_second
        self.capacity = max(rate_per_second, 1.0)
        self._tokens = self.capacity
        self._last = time.monotonic()

    def take(self) -> float | None:
        """Take one token; return None on success, else the seconds until one is back."""
        now = time.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now

        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        return (1.0 - self._tokens) / self.rate


class FaultInjector:
    """Holds the fault settings and decides, per request, which fault applies.

    Args:
        seed: Seed of the random draws; None draws a fresh seed.
    """

    def __init__(self, seed: int | None = None) -> None:
        self._seed = seed
        self._rng = random.Random(seed)
        self.settings = FaultSettings()
        self._bucket: TokenBucket | None = None

    def reset(self) -> None:
        """Turn every fault off and restart the random sequence of a seeded injector."""
        self._rng.seed(self._seed)
        self.settings = FaultSettings()
        self._bucket = None

    def update(self, payload: object) -> bool:
        """Change the settings named in ``payload``; all or nothing.

        Returns:
            True when the payload requests revoking every token issued so far.

        Raises:
            ApiError: ``ERROR_INVALID_REQUEST`` for an unknown key or invalid value.
        """
        if not isinstance(payload, dict):
            raise ApiError(INVALID_REQUEST, "The fault settings must be a JSON object.")
        values = {name: _check_setting(name, value) for name, value in payload.items()}

        revoke = bool(values.pop("revoke_tokens", False))
        for name, value in values.items():
            setattr(self.settings, name, value)
        if "rate_limit_per_second" in values:
            rate = self.settings.rate_limit_per_second
            self._bucket = TokenBucket(rate) if rate else None
        return revoke

    def describe(self, default_lifetime_s: float) -> dict[str, Any]:
        """Return the settings as JSON, with the token lifetime in effect."""
        described = asdict(self.settings)
        described["token_lifetime_s"] = self.token_lifetime_s(default_lifetime_s)
        return described

    def token_lifetime_s(self, default_lifetime_s: float) -> float:
        """Return the lifetime for a token issued now."""
        lifetime = self.settings.token_lifetime_s
        return default_lifetime_s if lifetime is None else lifetime

    async def delay(self) -> None:
        """Wait the configured latency without blocking the event loop."""
        if self.settings.latency_ms > 0:
            await asyncio.sleep(self.settings.latency_ms / 1000)

    def judge(self) -> Verdict:
        """Decide the fate of one API request: rate limit, then drop, then server error."""
        if self._bucket is not None:
            wait_s = self._bucket.take()
            if wait_s is not None:
                return Verdict(Action.RATE_LIMITED, max(1, math.ceil(wait_s)))

        settings = self.settings
        if settings.drop_rate > 0 and self._rng.random() < settings.drop_rate:
            before = self._rng.random() < 0.5
            return Verdict(Action.DROP_BEFORE if before else Action.DROP_AFTER)
        if settings.error_rate > 0 and self._rng.random() < settings.error_rate:
            unavailable = self._rng.random() < 0.5
            return Verdict(Action.FAIL_503 if unavailable else Action.FAIL_500)
        return PROCEED


def _check_setting(name: str, value: object) -> object:
    if name in ("rate_limit_retry_after", "revoke_tokens"):
        if not isinstance(value, bool):
            raise _invalid(name, value, "true or false")
        return value
    if name in ("error_rate", "drop_rate"):
        number = _number(name, value)
        if not 0.0 <= number <= 1.0:
            raise _invalid(name, value, "a fraction between 0 and 1")
        return number
    if name == "latency_ms":
        number = _number(name, value)
        if number < 0:
            raise _invalid(name, value, "a number of milliseconds, 0 or more")
        return number
    if name in ("rate_limit_per_second", "token_lifetime_s"):
        if value is None:
            return None
        number = _number(name, value)
        if number < 0 or (name == "token_lifetime_s" and number == 0):
            raise _invalid(name, value, "a positive number or null")
        return number or None

    known = ", ".join([*FaultSettings.__dataclass_fields__, "revoke_tokens"])
    raise ApiError(INVALID_REQUEST, f"Unknown fault setting {name!r}; known: {known}.")


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _invalid(name, value, "a number")
    return float(value)


def _invalid(name: str, value: object, expected: str) -> ApiError:
    return ApiError(
        INVALID_REQUEST, f"The fault setting {name!r} must be {expected}, got {value!r}."
    )
