"""Client-side pacing of Staffbase requests that adapts to the server's 429 responses.

Staffbase does not publish its rate limits, so staffsync starts at the configured
``max_requests_per_second`` and learns the real limit from the 429s it gets, the way
TCP congestion control does (additive increase, multiplicative decrease):

- every 429 cuts the rate by :data:`DECREASE_FACTOR`, at most once per cooldown,
  because requests already in flight when the first 429 arrives mostly get 429 as well
  and carry no new information;
- every other response adds :data:`RECOVERY_STEP` requests per second back, up to the
  maximum. Responses arrive ``rate`` times a second, so the rate grows by about
  ``RECOVERY_STEP`` (5 %) of itself each second, at any scale: after one cut it is back
  where it was within about seven seconds.

When the server's limit is below ours, the rate settles into a saw-tooth between 70 %
of that limit and the limit, with a few 429s every several seconds instead of a storm.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["DECREASE_FACTOR", "MIN_RATE", "RECOVERY_STEP", "AdaptiveRateLimiter"]

DECREASE_FACTOR = 0.7
"""The rate is multiplied by this on a 429."""

RECOVERY_STEP = 0.05
"""Requests per second that each response other than a 429 adds to the rate."""

MIN_RATE = 0.5
"""Lowest rate in requests per second that 429s can push the limiter down to."""

MIN_COOLDOWN_SECONDS = 1.0
"""Shortest time between two rate cuts; rate-limit windows are commonly one second long."""


class AdaptiveRateLimiter:
    """A thread-safe pacer that lets at most ``rate`` requests per second through.

    Pacing works like a token bucket that contains at most one token: each :meth:`acquire` takes
    the next free slot on a timeline whose slots are ``1 / rate`` seconds apart and
    sleeps until that slot comes. A slot in the past counts as now, so idle time is not
    saved up for a later burst.

    Args:
        max_rate: The highest rate in requests per second, and the starting rate.
        clock: Returns seconds from a monotonic clock (``time.monotonic``).
        sleep: Sleeps for the given seconds (``time.sleep``); tests pass a fake that
            advances a fake clock.
    """

    def __init__(
        self,
        max_rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_rate <= 0:
            msg = f"max_rate must be a positive number of requests per second, got {max_rate!r}"
            raise ValueError(msg)
        self.max_rate = float(max_rate)
        self.min_rate = min(MIN_RATE, self.max_rate)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._rate = self.max_rate
        self._next_slot = float("-inf")
        self._last_cut = float("-inf")

    @property
    def rate(self) -> float:
        """The current rate in requests per second."""
        return self._rate

    def acquire(self) -> None:
        """Block until the caller may send its request."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_slot)
            self._next_slot = slot + 1.0 / self._rate

        # Sleep outside the lock so that other threads can book the following slots.
        if slot > now:
            self._sleep(slot - now)

    def on_rate_limited(self, retry_after: float | None = None) -> None:
        """Lower the rate after a 429, and hold every request for ``retry_after`` seconds.

        Args:
            retry_after: The server's ``Retry-After`` in seconds, already checked to be
                a wait worth making; None when the response had none.
        """
        with self._lock:
            now = self._clock()
            if retry_after is not None and retry_after > 0:
                self._next_slot = max(self._next_slot, now + retry_after)

            if now - self._last_cut < self._cooldown():
                return
            self._rate = max(self.min_rate, self._rate * DECREASE_FACTOR)
            self._last_cut = now

    def on_success(self) -> None:
        """Raise the rate a little after a response that was not a 429."""
        with self._lock:
            self._rate = min(self.max_rate, self._rate + RECOVERY_STEP)

    def _cooldown(self) -> float:
        return max(MIN_COOLDOWN_SECONDS, 1.0 / self._rate)
