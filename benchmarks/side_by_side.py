"""Shared pieces of the robokit-vs-LeRobot benchmarks: the host line, the LeRobot interpreter, timing,
and the interleaved A/B summary.

Standard library only: the LeRobot-side scripts import this module from the reference LeRobot venv
(built by ../shared/tools/lerobot-reference/make-venv, default /tmp/venv-lerobot), where robokit is not
installed. Each side runs in its own process; the parent alternates them (robokit, LeRobot, robokit,
LeRobot, ...) so that a neighbour's load on a shared machine falls on both sides alike, and reports
the median of each side and the median of the per-round ratios.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

DEFAULT_LEROBOT_PYTHON = "/tmp/venv-lerobot/bin/python"
RESULT_PREFIX = "RESULT "


def host_line() -> str:
    """CPU model, the vector / matrix extensions that matter for torch, cores, load and the date (UTC)."""
    model, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown CPU":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")
    have = [f for f in wanted if f in flags] or ["none of avx2/avx512/amx"]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"host: {model}; flags {' '.join(have)}; {os.cpu_count()} cores; load {load}; {date}"


def lerobot_python(path: str | None, wanted: bool = True) -> str | None:
    """The LeRobot venv's interpreter. `path` None means the default venv, if it has been built: without
    it the benchmark runs robokit only and says so; a path given explicitly must exist."""
    if not wanted:
        return None
    if path is None:
        if Path(DEFAULT_LEROBOT_PYTHON).is_file():
            return DEFAULT_LEROBOT_PYTHON
        print(f"no LeRobot side: {DEFAULT_LEROBOT_PYTHON} does not exist (build the reference venv with "
              f"../shared/tools/lerobot-reference/make-venv, or pass --lerobot-python)", flush=True)
        return None
    if not Path(path).is_file():
        sys.exit(f"--lerobot-python: {path} does not exist; build the reference venv with "
                 f"../shared/tools/lerobot-reference/make-venv (or pass --no-lerobot)")
    return path


def timed(fn, repeats: int, warmup: int, sync=None) -> list[float]:
    """Seconds of each of `repeats` calls of fn after `warmup` calls (sync() after each, if given)."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if sync:
            sync()
        out.append(time.perf_counter() - start)
    return out


def emit(result: dict) -> None:
    """A child's machine-readable answer: one line the parent picks out of its output."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_child(cmd: list[str], label: str, env: dict | None = None, echo: bool = True) -> dict | None:
    """Run one measurement process; its human lines are echoed, its RESULT line is returned (None on failure)."""
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env={**os.environ, **(env or {})})
    result = None
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX):])
        elif echo and line.strip():
            print(f"  [{label}] {line}", flush=True)
    if proc.returncode != 0 or result is None:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        print(f"  [{label}] failed (exit {proc.returncode}):\n{tail}", flush=True)
        return None
    return result


def summary(name: str, key: str, robokit: list[dict | None], lerobot: list[dict | None], unit: str,
            scale: float = 1.0, higher_is_better: bool = False, digits: int = 0) -> str:
    """One line: each side's median (range) over the rounds and the median of the per-round ratios
    robokit / LeRobot of `key`, with which way is better (a time: lower; a rate: higher_is_better)."""
    ours = [r[key] for r in robokit if r]
    theirs = [r[key] for r in lerobot if r]
    pairs = [(a[key], b[key]) for a, b in zip(robokit, lerobot) if a and b]
    line = f"{name:44s} robokit {fmt(ours, scale, digits)} {unit}   LeRobot {fmt(theirs, scale, digits)} {unit}"
    if pairs:
        ratios = [a / b for a, b in pairs]
        ratio = statistics.median(ratios)
        if higher_is_better:
            verdict = "robokit faster" if ratio > 1 else "robokit SLOWER"
            line += f"   robokit/LeRobot {ratio:.2f}x ({verdict}; rounds {', '.join(f'{r:.2f}' for r in ratios)})"
        else:
            verdict = "robokit faster" if ratio < 1 else "robokit SLOWER"
            line += f"   time ratio robokit/LeRobot {ratio:.2f} ({verdict}; rounds {', '.join(f'{r:.2f}' for r in ratios)})"
    return line


def fmt(values: list[float], scale: float, digits: int) -> str:
    if not values:
        return "   n/a"
    med = statistics.median(values) * scale
    spread = f" ({min(values) * scale:.{digits}f}-{max(values) * scale:.{digits}f})" if len(values) > 1 else ""
    return f"{med:8.{digits}f}{spread}"


def loading_windows(fps: int, cameras: tuple[str, ...]) -> dict[str, dict | None]:
    """The delta_timestamps of issue 2's loading cases: none, ACT (100 future actions), Diffusion
    (2 frames per camera and of state, 16 actions); the same dict for robokit and LeRobot."""
    act = {"action": [i / fps for i in range(100)]}
    diffusion = {"observation.state": [-1 / fps, 0], "action": [i / fps for i in range(-1, 15)]}
    diffusion |= {cam: [-1 / fps, 0] for cam in cameras}
    return {"none": None, "act": act, "diffusion": diffusion}


def loader_rate(dataset, workers: int, samples: int) -> float:
    """Samples/s of a shuffled DataLoader (batch 8) over `dataset`, after its first batch (worker start-up
    and the first decoder open are not throughput). Imports torch only when called."""
    import torch

    loader = torch.utils.data.DataLoader(dataset, batch_size=8, shuffle=True, num_workers=workers,
                                         generator=torch.Generator().manual_seed(0), persistent_workers=False)
    it = iter(loader)
    next(it)
    start, seen = time.perf_counter(), 0
    for batch in it:
        seen += len(batch["index"])
        if seen >= samples:
            break
    return seen / (time.perf_counter() - start)
