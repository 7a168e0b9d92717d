"""Progress of long work: a tqdm bar on a terminal, a few plain summary lines anywhere else.

    from robokit.progress import progress
    for episode in progress(episodes, desc="convert", unit="episode"):
        ...
    with progress(total=steps, desc="train") as bar:
        bar.update(1); bar.set_postfix(loss=f"{loss:.3f}")

A bar redraws itself with carriage returns: in a log file or a pipe every redraw stays, and a long
run leaves megabytes of frames. When the output is not a terminal, `progress` prints one line at
each tenth of the total and at least every `every_s` seconds (only the latter when the total is
unknown), plus one at the end. ROBOKIT_PROGRESS=bar|lines|off overrides the choice.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Iterable, Iterator, TextIO

MODES = ("auto", "bar", "lines", "off")


def progress(
    iterable: Iterable | None = None, *, total: float | None = None, desc: str = "", unit: str = "it",
    initial: float = 0, disable: bool = False, leave: bool = True, file: TextIO | None = None,
    every_s: float = 60.0,
) -> Any:
    """A tqdm bar (a terminal) or a `LineProgress` (anything else); both iterate, `update`, `set_postfix`, `close`."""
    mode = os.environ.get("ROBOKIT_PROGRESS", "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"ROBOKIT_PROGRESS={mode!r}; expected one of {list(MODES)}")
    stream = file if file is not None else sys.stderr
    if mode == "off":
        disable = True
    if mode == "bar" or (mode == "auto" and _is_terminal(stream)):
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, disable=disable, leave=leave,
                    file=file, dynamic_ncols=True)
    return LineProgress(iterable, total=total, desc=desc, unit=unit, initial=initial, disable=disable,
                        file=stream, every_s=every_s)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real stream
        return False


class LineProgress:
    """Progress as whole lines: `desc: 40% 400/1000 steps [1m05s, 6.2 steps/s, 1m38s left] loss=0.12`."""

    def __init__(self, iterable: Iterable | None = None, *, total: float | None = None, desc: str = "",
                 unit: str = "it", initial: float = 0, disable: bool = False, file: TextIO | None = None,
                 every_s: float = 60.0):
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total, self.desc, self.unit, self.disable = total, desc, unit, disable
        self.file = file if file is not None else sys.stderr
        self.every_s = every_s
        self.n = self.initial = initial
        self.postfix = ""
        self.start = self.last_time = time.monotonic()
        self.last_tenth = self._tenth()
        self.printed_n: float | None = None
        self.closed = False

    # -- tqdm's interface, the part robokit uses
    def update(self, n: float = 1) -> None:
        self.n += n
        if self.disable:
            return
        now = time.monotonic()
        tenth = self._tenth()
        if tenth > self.last_tenth or now - self.last_time >= self.every_s:
            self.last_tenth = tenth
            self._print(now)

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True, **kwargs: Any) -> None:
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if not self.disable and self.printed_n != self.n and self.n != self.initial:
            self._print(time.monotonic())

    def __iter__(self) -> Iterator:
        if self.iterable is None:
            raise TypeError("progress(): nothing to iterate (it was made with total= only)")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __len__(self) -> int:
        return int(self.total or 0)

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc: object) -> bool:
        self.close()
        return False

    # -- the line
    def _tenth(self) -> int:
        if not self.total:
            return 0
        return int(10 * self.n / self.total + 1e-9)

    def _print(self, now: float) -> None:
        elapsed = now - self.start
        rate = (self.n - self.initial) / elapsed if elapsed > 0 else 0.0
        count = f"{_num(self.n)}/{_num(self.total)} {self.unit}" if self.total else f"{_num(self.n)} {self.unit}"
        pct = f"{100 * self.n / self.total:3.0f}% " if self.total else ""
        timing = f"{_duration(elapsed)}, {rate:.3g} {self.unit}/s"
        if self.total and rate > 0 and self.n < self.total:
            timing += f", {_duration((self.total - self.n) / rate)} left"
        head = f"{self.desc}: " if self.desc else ""
        tail = f" {self.postfix}" if self.postfix else ""
        print(f"{head}{pct}{count} [{timing}]{tail}", file=self.file, flush=True)
        self.last_time, self.printed_n = now, self.n


def _num(x: float | None) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
