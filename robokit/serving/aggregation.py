"""How an arriving chunk's action is merged with the action already queued for the same timestep.

An aggregation function takes `(old, new, n)`: `old` is the queued action (already a merge of
`n` >= 1 earlier predictions), `new` the newly predicted one (arrays of shape (action_dim,)),
and returns the action to queue. A user callable may also take just `(old, new)`.

    latest_only               new
    average                   running mean of every prediction for that timestep
    weighted_average(alpha)   (1 - alpha) * old + alpha * new   (alpha: the weight of the new one)
    conservative              0.7 * old + 0.3 * new             (trusts what is already queued)
    temporal_ensemble(m)      ACT's ensembling: prediction i (0 = oldest) weighs exp(-m * i)
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import numpy as np

AggregateFn = Callable[[np.ndarray, np.ndarray, int], np.ndarray]


def latest_only(old: np.ndarray, new: np.ndarray, n: int) -> np.ndarray:
    return new


def average(old: np.ndarray, new: np.ndarray, n: int) -> np.ndarray:
    return (old * n + new) / (n + 1)


def weighted_average(alpha: float = 0.7) -> AggregateFn:
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"weighted_average: alpha={alpha}, expected 0..1 (the weight of the new prediction)")

    def merge(old: np.ndarray, new: np.ndarray, n: int) -> np.ndarray:
        return (1.0 - alpha) * old + alpha * new

    merge.__name__ = f"weighted_average({alpha:g})"
    return merge


def conservative(old: np.ndarray, new: np.ndarray, n: int) -> np.ndarray:
    return 0.7 * old + 0.3 * new


def temporal_ensemble(m: float = 0.01) -> AggregateFn:
    """exp(-m * i) weights over the predictions of one timestep, oldest first (ACT, Zhao et al. 2023)."""
    if m < 0:
        raise ValueError(f"temporal_ensemble: m={m}, expected >= 0 (larger m trusts older predictions more)")

    def merge(old: np.ndarray, new: np.ndarray, n: int) -> np.ndarray:
        # `old` is the weighted mean of predictions 0..n-1 with total weight sum(exp(-m*i)).
        total = sum(math.exp(-m * i) for i in range(n))
        w_new = math.exp(-m * n)
        return (old * total + new * w_new) / (total + w_new)

    merge.__name__ = f"temporal_ensemble({m:g})"
    return merge


AGGREGATIONS = ("latest_only", "average", "weighted_average", "conservative", "temporal_ensemble")


def make_aggregate(name_or_fn: str | Callable, alpha: float = 0.7, m: float = 0.01) -> AggregateFn:
    """An aggregation by name (with its parameter) or a user callable `(old, new[, n]) -> action`."""
    if callable(name_or_fn):
        return _wrap_callable(name_or_fn)
    if name_or_fn == "weighted_average":
        return weighted_average(alpha)
    if name_or_fn == "temporal_ensemble":
        return temporal_ensemble(m)
    simple = {"latest_only": latest_only, "average": average, "conservative": conservative}
    if name_or_fn not in simple:
        from robokit.cli import suggest

        raise ValueError(f"unknown aggregation {name_or_fn!r}; expected one of {list(AGGREGATIONS)} or a "
                         f"callable.{suggest(str(name_or_fn), AGGREGATIONS)}")
    return simple[name_or_fn]


def _wrap_callable(fn: Callable) -> AggregateFn:
    try:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
    except (TypeError, ValueError):
        return fn
    if len(params) == 2 and all(p.kind is not p.VAR_POSITIONAL for p in params):
        return lambda old, new, n: fn(old, new)
    return fn
