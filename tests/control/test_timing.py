"""LoopTimer: a late tick is counted and its cause named truly (issue 17: "loop is behind 30 fps: a
tick took 2.9 ms (period 33.3 ms)" was printed for a tick whose work fit the period)."""

import logging
import re
import time

import pytest

from robokit.control import timing
from robokit.control.timing import LoopTimer

FPS = 30
PERIOD_MS = 1000 / FPS


def _work(ms: float) -> None:
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        pass


def _claimed_work_ms(caplog) -> list[float]:
    """The work times the warnings blame for a late tick."""
    return [float(m) for r in caplog.records for m in re.findall(r"a tick(?:'s work)? took ([\d.]+) ms", r.getMessage())]


def test_a_late_wake_up_is_not_blamed_on_a_short_tick(monkeypatch, caplog):
    slept = []

    def oversleep_once(seconds):  # the host wakes the loop 40 ms late, once
        timing.time.sleep(seconds + (0.040 if not slept else 0.0))
        slept.append(seconds)

    monkeypatch.setattr(timing, "precise_sleep", oversleep_once)
    timer = LoopTimer(FPS, warn_every_s=0)
    with caplog.at_level(logging.WARNING, logger="robokit.control.timing"):
        for _ in range(4):
            with timer.stage("work"):
                _work(2)
            timer.wait()
    assert all(ms > PERIOD_MS for ms in _claimed_work_ms(caplog)), caplog.text
    assert "woke the loop" in caplog.text and timer.late_ticks >= 1


def test_work_longer_than_the_period_is_named(caplog):
    timer = LoopTimer(FPS, warn_every_s=0)
    with caplog.at_level(logging.WARNING, logger="robokit.control.timing"):
        with timer.stage("work"):
            _work(45)
        timer.wait()
    assert timer.late_ticks == 1
    assert any(ms >= 45 for ms in _claimed_work_ms(caplog)) and "period 33.3 ms" in caplog.text


def test_the_schedule_starts_with_the_first_tick(caplog):
    timer = LoopTimer(FPS, warn_every_s=0)  # made before connecting, as `robokit teleoperate` does
    time.sleep(0.3)
    with caplog.at_level(logging.WARNING, logger="robokit.control.timing"):
        with timer.stage("work"):
            _work(1)
        timer.wait()
    assert not any(ms > 250 for ms in _claimed_work_ms(caplog)), caplog.text
    assert timer.tick_durations[0] == pytest.approx(1 / FPS, abs=0.02)
