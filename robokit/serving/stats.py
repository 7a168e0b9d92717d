"""Statistics of one client run: rate, empty-queue ticks, round trips, server timing, queue length.

    stats.summary()          # a dict (JSON-serializable)
    stats.report()           # one readable paragraph
    stats.plot_queue(path)   # PNG of the queue length per tick (needs matplotlib)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TIMING_KEYS = ("queue", "preprocess", "inference", "postprocess")


def _percentiles(values) -> dict[str, float]:
    if not len(values):
        return {}
    arr = np.asarray(values, dtype=np.float64)
    return {"p50": float(np.percentile(arr, 50)), "p90": float(np.percentile(arr, 90)),
            "p95": float(np.percentile(arr, 95)), "p99": float(np.percentile(arr, 99)),
            "mean": float(arr.mean()), "max": float(arr.max())}


@dataclass
class RunStats:
    fps: float
    chunk_size: int = 0
    ticks: int = 0
    actions_executed: int = 0
    empty_ticks: int = 0
    """Ticks with no action to execute (the robot idled), start-up included."""
    empty_ticks_after_start: int = 0
    """Empty ticks after the first action was executed."""
    late_ticks: int = 0
    observations_sent: int = 0
    chunks_received: int = 0
    stale_actions: int = 0
    """Actions that arrived for timesteps already executed."""
    elapsed_s: float = 0.0
    first_action_s: float | None = None
    round_trip_ms: list[float] = field(default_factory=list)
    server_ms: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in TIMING_KEYS})
    queue_lengths: list[int] = field(default_factory=list)
    reconnects: int = 0

    def record_chunk(self, round_trip_ms: float | None, timing_ms: dict[str, float]) -> None:
        self.chunks_received += 1
        if round_trip_ms is not None:
            self.round_trip_ms.append(round_trip_ms)
        for key in TIMING_KEYS:
            if key in timing_ms:
                self.server_ms[key].append(float(timing_ms[key]))

    @property
    def achieved_fps(self) -> float:
        return self.ticks / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def overhead_ms(self) -> list[float]:
        """Round trip minus the server's inference time, per chunk (protocol + queueing + conversion)."""
        n = min(len(self.round_trip_ms), len(self.server_ms["inference"]))
        return [r - i for r, i in zip(self.round_trip_ms[-n:], self.server_ms["inference"][-n:])] if n else []

    def summary(self) -> dict:
        return {
            "ticks": self.ticks, "target_fps": self.fps, "achieved_fps": self.achieved_fps,
            "elapsed_s": self.elapsed_s, "first_action_s": self.first_action_s,
            "actions_executed": self.actions_executed, "empty_ticks": self.empty_ticks,
            "empty_ticks_after_start": self.empty_ticks_after_start, "late_ticks": self.late_ticks,
            "observations_sent": self.observations_sent, "chunks_received": self.chunks_received,
            "stale_actions": self.stale_actions, "reconnects": self.reconnects,
            "round_trip_ms": _percentiles(self.round_trip_ms),
            "overhead_ms": _percentiles(self.overhead_ms()),
            "server_ms": {k: _percentiles(v) for k, v in self.server_ms.items() if v},
            "queue_length": _percentiles(self.queue_lengths),
        }

    def report(self) -> str:
        s = self.summary()
        rt = s["round_trip_ms"]
        server = "  ".join(f"{k} {v['mean']:.1f}" for k, v in s["server_ms"].items())
        lines = [
            f"{s['ticks']} ticks in {s['elapsed_s']:.1f} s: {s['achieved_fps']:.1f} fps (target {self.fps:g}), "
            f"{s['actions_executed']} actions, {s['empty_ticks']} empty ticks "
            f"({s['empty_ticks_after_start']} after start-up), {s['late_ticks']} late",
            f"{s['observations_sent']} observations sent, {s['chunks_received']} chunks received, "
            f"{s['stale_actions']} stale actions dropped",
        ]
        if rt:
            lines.append(f"round trip p50 {rt['p50']:.1f} / p95 {rt['p95']:.1f} / p99 {rt['p99']:.1f} ms; "
                         f"server mean ms: {server}")
        return "\n".join(lines)

    def plot_queue(self, path: str | Path) -> Path:
        """A PNG of the queue length at each tick, with the send threshold's level if known."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError as err:
            from robokit.errors import install_hint

            raise ImportError(f"the queue plot needs matplotlib ({err}): {install_hint('train')}") from err
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig, ax = plt.subplots(figsize=(8, 3))
        t = np.arange(len(self.queue_lengths)) / self.fps
        ax.step(t, self.queue_lengths, where="post", lw=1)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("queued actions")
        ax.set_title(f"queue length ({self.empty_ticks_after_start} empty ticks after start-up)")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path
