"""Clocks for the control loop: the real one, and a fake one tests advance by hand.

    clock = SystemClock()        # perf_counter, sleeps with ~0.1 ms accuracy
    clock = FakeClock()          # starts at 0; sleep(dt) / sleep_until(t) only move its time
"""

from __future__ import annotations

import time


class SystemClock:
    def now(self) -> float:
        return time.perf_counter()

    def sleep_until(self, deadline: float) -> None:
        from robokit.control.timing import precise_sleep

        remaining = deadline - time.perf_counter()
        if remaining > 0:
            precise_sleep(remaining)


class FakeClock:
    """Time that moves only when the code under test sleeps (or a test calls `advance`)."""

    def __init__(self, start: float = 0.0):
        self.time = float(start)

    def now(self) -> float:
        return self.time

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"FakeClock.advance: seconds={seconds}, expected >= 0")
        self.time += seconds

    def sleep_until(self, deadline: float) -> None:
        self.time = max(self.time, float(deadline))
