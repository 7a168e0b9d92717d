"""The loss curve of a run as a PNG (matplotlib, from the `train` extra)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def plot_loss_curve(metrics_path: Path, out_path: Path) -> Path | None:
    """Plot loss (log scale) against step from metrics.jsonl; None (with a warning) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from robokit.errors import install_hint

        logger.warning("matplotlib is not installed (%s); no loss curve written", install_hint("train"))
        return None
    records = [json.loads(line) for line in Path(metrics_path).read_text().splitlines() if line.strip()]
    points = [(r["step"], r["loss"]) for r in records if "loss" in r]
    evals = [(r["step"], v) for r in records for k, v in r.items() if k == "eval/success_rate"]
    fig, ax = plt.subplots(figsize=(7, 4))
    if points:
        ax.plot(*zip(*points), label="training loss")
        if all(v > 0 for _, v in points):
            ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    if evals:
        ax2 = ax.twinx()
        ax2.plot(*zip(*evals), "o-", color="tab:green", label="success rate")
        ax2.set_ylabel("success rate")
        ax2.set_ylim(0, 1)
    ax.set_title(Path(metrics_path).parent.name)
    fig.tight_layout()
    fig.savefig(out_path, dpi=120)
    plt.close(fig)
    return Path(out_path)
