"""Fixed-rate loops that measure themselves: achieved rate, per-stage time, late ticks.

timer = LoopTimer(fps=30)
while ...:
    with timer.stage("read"):  obs = robot.get_observation()
    with timer.stage("send"):  robot.send_action(action)
    timer.wait()                     # sleeps to the next tick; counts the tick late if it overran
print(timer.report())
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import defaultdict

import numpy as np

logger = logging.getLogger(__name__)


def precise_sleep(seconds: float) -> None:
    """Sleep with ~0.1 ms accuracy: coarse sleep, then a short spin (time.sleep alone overshoots)."""
    end = time.perf_counter() + seconds
    if seconds > 0.002:
        time.sleep(seconds - 0.0015)
    while time.perf_counter() < end:
        pass


class LoopTimer:
    def __init__(self, fps: float, warn_every_s: float = 5.0):
        if fps <= 0:
            raise ValueError(f"LoopTimer: fps={fps}, expected > 0")
        self.fps = fps
        self.period = 1.0 / fps
        self.stages: dict[str, list[float]] = defaultdict(list)
        self.tick_durations: list[float] = []
        self.late_ticks = 0
        self._warn_every_s = warn_every_s
        self._last_warn = 0.0
        self._restart(time.perf_counter())
        self._started = False

    def _restart(self, now: float) -> None:
        self._start = self._tick_start = now
        self._next = now + self.period

    def _start_if_first(self, now: float) -> None:
        """The schedule starts with the first tick, not at construction (connecting can take seconds)."""
        if not self._started:
            self._started = True
            self._restart(now)

    @contextlib.contextmanager
    def stage(self, name: str):
        t0 = time.perf_counter()
        self._start_if_first(t0)
        try:
            yield
        finally:
            self.stages[name].append(time.perf_counter() - t0)

    def wait(self) -> None:
        """End the tick: sleep until the next one (a late tick restarts the schedule from now).

        A tick is late when it ends past its deadline, for one of two reasons, named in the
        warning: its work took longer than the period, or it started late because the host woke
        the loop late from the previous sleep (a busy machine). The work's own time is measured
        from the end of the previous tick's wait.
        """
        now = time.perf_counter()
        self._start_if_first(now)
        busy = now - self._tick_start
        if now > self._next:
            if busy > self.period:
                why = f"a tick's work took {busy * 1e3:.1f} ms"
            else:
                started_late = self._tick_start - (self._next - self.period)
                why = (f"a tick started {started_late * 1e3:.1f} ms late, as the host woke the loop late "
                       f"(its work took {busy * 1e3:.1f} ms)")
            self._late(now, why)
        else:
            precise_sleep(self._next - now)
        end = time.perf_counter()
        self.tick_durations.append(end - self._tick_start)
        self._tick_start = end
        self._next += self.period

    def _late(self, now: float, why: str) -> None:
        self.late_ticks += 1
        self._next = now  # do not try to catch up with a burst of ticks
        if now - self._last_warn > self._warn_every_s:
            self._last_warn = now
            logger.warning("loop is behind %g fps (period %.1f ms): %s", self.fps, self.period * 1e3, why)

    @property
    def ticks(self) -> int:
        return len(self.tick_durations)

    @property
    def elapsed(self) -> float:
        """Seconds since the first tick started (0 before)."""
        return time.perf_counter() - self._start if self._started else 0.0

    def summary(self) -> dict:
        durations = np.asarray(self.tick_durations) if self.tick_durations else np.zeros(1)
        out = {
            "ticks": self.ticks,
            "target_fps": self.fps,
            "achieved_fps": float(self.ticks / durations.sum()) if self.ticks else 0.0,
            "late_ticks": self.late_ticks,
            "late_fraction": self.late_ticks / max(1, self.ticks),
            "stages_ms": {},
        }
        for name, values in self.stages.items():
            arr = np.asarray(values) * 1e3
            out["stages_ms"][name] = {
                "mean": float(arr.mean()),
                "p95": float(np.percentile(arr, 95)),
                "max": float(arr.max()),
            }
        return out

    def report(self) -> str:
        s = self.summary()
        stages = "  ".join(f"{n} {v['mean']:.1f}/{v['p95']:.1f} ms" for n, v in s["stages_ms"].items())
        return (
            f"{s['ticks']} ticks at {s['achieved_fps']:.1f} fps (target {self.fps:g}), "
            f"{s['late_ticks']} late ({100 * s['late_fraction']:.1f}%); stage mean/p95: {stages}"
        )
