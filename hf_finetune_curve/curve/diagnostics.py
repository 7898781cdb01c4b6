"""What a fitted curve says beyond its parameters: paired checks of the points and their wording.

Each check reads the gain-oriented bootstrap replicates of the points (every point on the same
resamples, so a difference of two columns is a paired difference): whether a larger size is
significantly worse than a smaller one (not monotone), whether every finetuned size is below the
factory model (hurts), the trend between sizes, and the plain-language warnings of a fit.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..io_utils import json_safe

def _fmt(n: float) -> str:
    if not math.isfinite(n):
        return "unbounded"
    if abs(n) >= 1e7:
        return f"{n:.2e}"
    return f"{n:,.0f}"



def _trend(sizes: np.ndarray, z: np.ndarray, n0: float) -> tuple[float, float]:
    """Unconstrained OLS slope of z on log(1 + n/n0) and its t statistic (0, 0 when undefined)."""
    x = np.log1p(sizes / n0)
    xc = x - x.mean()
    sxx = float(np.sum(xc * xc))
    m = z.size
    if sxx <= 0 or m < 3:
        return 0.0, 0.0
    slope = float(np.sum(xc * (z - z.mean())) / sxx)
    resid = z - z.mean() - slope * xc
    s2 = float(np.sum(resid**2)) / (m - 2)
    if s2 <= 0:
        return slope, math.copysign(math.inf, slope) if slope else 0.0
    return slope, slope / math.sqrt(s2 / sxx)



HURTS_REASON = ("finetuning hurts: every finetuned size scores significantly worse than the factory model (n = 0), "
                "so there is no gain to reach; with this recipe the answer is the factory model")


def _paired_changes(sizes: np.ndarray, Z: np.ndarray, sign: float, confidence: float,
                    pairs: Sequence[tuple[float, float]]) -> list[dict[str, Any]]:
    """For each ``(smaller, larger)`` pair of sizes, the paired change ``larger - smaller`` over the
    gain-oriented resamples ``Z`` (a size's columns averaged): ``change`` and its interval ``low``,
    ``high`` in metric units, and ``significant`` when it is below 0 at the one-sided level
    ``(1 - confidence) / len(pairs)`` (Bonferroni over the pairs)."""
    alpha = (1.0 - confidence) / max(1, len(pairs))
    means = {size: Z[:, np.flatnonzero(sizes == size)].mean(axis=1) for pair in pairs for size in pair}
    out = []
    for smaller, larger in pairs:
        diff = means[larger] - means[smaller]
        low, upper = float(np.quantile(diff, alpha)), float(np.quantile(diff, 1.0 - alpha))
        bounds = sorted((sign * low, sign * upper))
        out.append({"smaller": float(smaller), "larger": float(larger), "change": sign * float(np.mean(diff)),
                    "low": bounds[0], "high": bounds[1], "significant": upper < 0.0})
    return out


def _significant_decreases(sizes: np.ndarray, Z: np.ndarray, sign: float, confidence: float) -> list[dict[str, Any]]:
    """Pairs (smaller size, larger size) whose gain-oriented difference is significantly below 0.

    Each pair's one-sided bound is at level ``(1 - confidence) / pairs`` (Bonferroni), so a
    monotone curve is flagged in at most ``1 - confidence`` of runs whatever its number of sizes.
    """
    order = np.unique(sizes)
    pairs = [(a, b) for i, a in enumerate(order) for b in order[i + 1:]]
    return [json_safe({key: entry[key] for key in ("smaller", "larger", "change", "low", "high")})
            for entry in _paired_changes(sizes, Z, sign, confidence, pairs) if entry["significant"]]


def _below_base(sizes: np.ndarray, Z: np.ndarray, sign: float, confidence: float) -> list[dict[str, Any]]:
    """Each finetuned size against n = 0 on the gain-oriented resamples ``Z``: the paired change and
    whether it is significantly below 0 (one-sided, Bonferroni over the finetuned sizes)."""
    if not (sizes == 0).any():
        return []
    pairs = [(0.0, size) for size in np.unique(sizes) if size > 0]
    return [json_safe({"size": entry["larger"], "change": entry["change"], "low": entry["low"], "high": entry["high"],
                       "significant": entry["significant"]})
            for entry in _paired_changes(sizes, Z, sign, confidence, pairs)]


