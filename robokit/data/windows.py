"""Time windows (`delta_timestamps`): offsets in seconds -> frame offsets, clamping and padding masks."""

from __future__ import annotations

import numpy as np


def delta_frames(delta_timestamps: dict[str, list[float]] | None, fps: int, features: dict, tolerance_s: float) -> dict[str, np.ndarray]:
    """Convert `{key: [seconds, ...]}` into `{key: int64 frame offsets}`.

    Each offset must be a multiple of 1/fps within `tolerance_s`: a window that falls between
    frames would silently return neighbours, so it is an error.
    """
    if not delta_timestamps:
        return {}
    if not isinstance(delta_timestamps, dict):
        raise TypeError(f"delta_timestamps must be a dict {{feature: [seconds, ...]}}, got {type(delta_timestamps).__name__}")
    out = {}
    for key, deltas in delta_timestamps.items():
        if key not in features:
            import difflib

            close = difflib.get_close_matches(key, list(features), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise KeyError(f"delta_timestamps has key {key!r}, which is not a feature of this dataset.{hint}")
        seconds = np.asarray(list(deltas), dtype=np.float64)
        if seconds.ndim != 1 or seconds.size == 0:
            raise ValueError(f"delta_timestamps[{key!r}] must be a non-empty list of seconds, got {deltas!r}")
        frames = np.round(seconds * fps)
        error = np.abs(seconds - frames / fps)
        if (error > tolerance_s).any():
            bad = float(seconds[np.argmax(error)])
            raise ValueError(
                f"delta_timestamps[{key!r}] has {bad} s, which is not a multiple of 1/fps = {1 / fps:.6f} s "
                f"within tolerance_s={tolerance_s}"
            )
        out[key] = frames.astype(np.int64)
    return out


def window(position: int, offsets: np.ndarray, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions of a window around `position`, clamped to the episode [start, end), and its pad mask."""
    wanted = position + offsets
    return np.clip(wanted, start, end - 1), (wanted < start) | (wanted >= end)
