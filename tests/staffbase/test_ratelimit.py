"""Tests for the adaptive rate limiter, on a fake clock that only sleeping advances."""

from __future__ import annotations

import pytest

from staffsync.staffbase.ratelimit import (
    DECREASE_FACTOR,
    MIN_RATE,
    RECOVERY_STEP,
    AdaptiveRateLimiter,
)


class FakeClock:
    """A monotonic clock that moves only when something sleeps or time is advanced."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def limiter(clock: FakeClock, max_rate: float = 10.0) -> AdaptiveRateLimiter:
    return AdaptiveRateLimiter(max_rate, clock=clock, sleep=clock.sleep)


class TestPacing:
    def test_first_request_immediate(self, clock: FakeClock) -> None:
        """The first request goes at once."""
        limiter(clock).acquire()

        assert clock.sleeps == []

    def test_requests_spaced(self, clock: FakeClock) -> None:
        """Back-to-back requests are spaced 1 / rate apart."""
        pacer = limiter(clock, max_rate=4.0)

        for _ in range(5):
            pacer.acquire()

        assert clock.sleeps == [0.25, 0.25, 0.25, 0.25]
        assert clock.now == 101.0

    def test_rate_over_many_requests(self, clock: FakeClock) -> None:
        """Over 101 requests at 10 per second, exactly 10 seconds pass."""
        pacer = limiter(clock, max_rate=10.0)

        for _ in range(101):
            pacer.acquire()

        assert clock.now == pytest.approx(110.0)

    def test_idle_time_not_saved(self, clock: FakeClock) -> None:
        """A pause does not buy a burst afterwards: the request after it waits its turn."""
        pacer = limiter(clock, max_rate=2.0)
        pacer.acquire()
        clock.now += 10.0

        pacer.acquire()
        pacer.acquire()

        assert clock.sleeps == [0.5]

    def test_slots_booked_in_order(self, clock: FakeClock) -> None:
        """Callers that arrive together get consecutive slots (as threads would)."""
        booked: list[float] = []
        # A sleep that does not advance the clock: three callers book slots at one moment.
        pacer = AdaptiveRateLimiter(5.0, clock=clock, sleep=booked.append)

        for _ in range(3):
            pacer.acquire()

        assert booked == [pytest.approx(0.2), pytest.approx(0.4)]

    def test_invalid_rate(self) -> None:
        """A rate of zero or less is rejected with the value in the message."""
        with pytest.raises(ValueError, match=r"max_rate must be a positive number.*got 0"):
            AdaptiveRateLimiter(0)


class TestAdapting:
    def test_cut_on_429(self, clock: FakeClock) -> None:
        """A 429 multiplies the rate by the decrease factor."""
        pacer = limiter(clock, max_rate=10.0)

        pacer.on_rate_limited()

        assert pacer.rate == pytest.approx(10.0 * DECREASE_FACTOR)

    def test_one_cut_per_cooldown(self, clock: FakeClock) -> None:
        """429s of requests already in flight do not cut the rate again within a second."""
        pacer = limiter(clock, max_rate=10.0)

        for _ in range(4):
            pacer.on_rate_limited()

        assert pacer.rate == pytest.approx(10.0 * DECREASE_FACTOR)

    def test_cut_again_after_cooldown(self, clock: FakeClock) -> None:
        """A 429 after the cooldown cuts again."""
        pacer = limiter(clock, max_rate=10.0)
        pacer.on_rate_limited()
        clock.now += 1.0

        pacer.on_rate_limited()

        assert pacer.rate == pytest.approx(10.0 * DECREASE_FACTOR**2)

    def test_floor(self, clock: FakeClock) -> None:
        """No number of 429s pushes the rate below the floor."""
        pacer = limiter(clock, max_rate=10.0)

        for _ in range(50):
            pacer.on_rate_limited()
            clock.now += 5.0

        assert pacer.rate == MIN_RATE

    def test_floor_below_low_maximum(self, clock: FakeClock) -> None:
        """A maximum below the floor stays the maximum."""
        pacer = limiter(clock, max_rate=0.2)

        pacer.on_rate_limited()

        assert pacer.rate == 0.2

    def test_recovery(self, clock: FakeClock) -> None:
        """Each success adds the recovery step, up to the maximum."""
        pacer = limiter(clock, max_rate=10.0)
        pacer.on_rate_limited()

        pacer.on_success()
        assert pacer.rate == pytest.approx(10.0 * DECREASE_FACTOR + RECOVERY_STEP)

        for _ in range(1000):
            pacer.on_success()
        assert pacer.rate == 10.0

    def test_slower_pacing_after_cut(self, clock: FakeClock) -> None:
        """After a cut, requests are spaced by the lowered rate."""
        pacer = limiter(clock, max_rate=7.0)
        pacer.on_rate_limited()  # 7 * 0.7 = 4.9 per second
        pacer.acquire()

        pacer.acquire()

        assert clock.sleeps == [pytest.approx(1 / (7.0 * DECREASE_FACTOR))]

    def test_retry_after_holds_everyone(self, clock: FakeClock) -> None:
        """A Retry-After delays the next request until it has passed."""
        pacer = limiter(clock, max_rate=10.0)
        pacer.acquire()

        pacer.on_rate_limited(retry_after=3.0)
        pacer.acquire()

        assert clock.sleeps == [3.0]

    def test_settles_under_lower_server_limit(self, clock: FakeClock) -> None:
        """Against a server allowing 4 per second, a client allowed 10 ends near 4 with few 429s."""
        pacer = limiter(clock, max_rate=10.0)
        window, in_window, rejected = int(clock.now), 0, 0

        # A fixed-window server: 4 requests per whole second, one request at a time.
        for _ in range(600):
            pacer.acquire()
            if int(clock.now) != window:
                window, in_window = int(clock.now), 0
            if in_window < 4:
                in_window += 1
                pacer.on_success()
            else:
                rejected += 1
                pacer.on_rate_limited()

        accepted = 600 - rejected
        elapsed = clock.now - 100.0
        assert accepted / elapsed > 3.2
        assert rejected / 600 < 0.1
