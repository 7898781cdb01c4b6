"""What a fitted curve says beyond its parameters: paired checks of the points and their wording.

Each check reads the gain-oriented bootstrap replicates of the points (every point on the same
resamples, so a difference of two columns is a paired difference): whether a larger size is
significantly worse than a smaller one (not monotone), whether every finetuned size is below the
factory model (hurts), the trend between sizes, and the plain-language warnings of a fit.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from ..io_utils import json_safe
from .solver import SATURATING

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


#: ``(smaller size, larger size, probabilities) -> quantiles of metric(larger) - metric(smaller)`` (metric units):
#: a paired test supplied by the caller (the seed-level test of
#: :meth:`~hf_finetune_curve.curve.uncertainty.HierarchicalBootstrap.quantiles`), used instead of the resamples.
PairedQuantiles = Callable[[float, float, Sequence[float]], np.ndarray]


def _paired_changes(sizes: np.ndarray, Z: np.ndarray, sign: float, confidence: float,
                    pairs: Sequence[tuple[float, float]], z: np.ndarray | None = None,
                    quantiles: PairedQuantiles | None = None) -> list[dict[str, Any]]:
    """For each ``(smaller, larger)`` pair of sizes, the paired change ``larger - smaller``: ``change`` (the
    point estimate, from the fitted values ``z``; the resamples' mean without them), its interval ``low``,
    ``high`` in metric units at the one-sided level ``(1 - confidence) / len(pairs)`` each side (Bonferroni
    over the pairs), ``significant`` when the change is significantly below 0 at that level, and ``better``
    / ``worse`` when it is significantly above / below 0 at half that level (so, with no change at any size,
    "better at some size" or "worse at some size" is called in at most ``1 - confidence`` of runs). The quantiles come from ``quantiles`` when given (a
    seed-level test), else from the gain-oriented resamples ``Z`` (a size's columns averaged)."""
    alpha = (1.0 - confidence) / max(1, len(pairs))
    means = {size: Z[:, np.flatnonzero(sizes == size)].mean(axis=1) for pair in pairs for size in pair}
    out = []
    for smaller, larger in pairs:
        probabilities = [alpha / 2.0, alpha, 1.0 - alpha, 1.0 - alpha / 2.0]
        if quantiles is not None:
            metric_q = np.asarray(quantiles(float(smaller), float(larger), [1.0 - p for p in probabilities]
                                            if sign < 0 else probabilities), dtype=np.float64)
            gain_q = sign * metric_q
        else:
            gain_q = np.quantile(means[larger] - means[smaller], probabilities)
        gain_half, gain_low, gain_high, gain_half_high = (float(v) for v in gain_q)
        if z is not None:
            change = sign * float(z[sizes == larger].mean() - z[sizes == smaller].mean())
        else:
            change = sign * float(np.mean(means[larger] - means[smaller]))
        bounds = sorted((sign * gain_low, sign * gain_high))
        out.append({"smaller": float(smaller), "larger": float(larger), "change": change,
                    "low": bounds[0], "high": bounds[1], "significant": bool(gain_high < 0.0),
                    "better": bool(gain_half > 0.0), "worse": bool(gain_half_high < 0.0)})
    return out


def _significant_decreases(sizes: np.ndarray, Z: np.ndarray, sign: float, confidence: float, z: np.ndarray | None = None,
                           quantiles: PairedQuantiles | None = None) -> list[dict[str, Any]]:
    """Pairs (smaller size, larger size) whose gain-oriented difference is significantly below 0.

    Each pair's one-sided bound is at level ``(1 - confidence) / pairs`` (Bonferroni), so a
    monotone curve is flagged in at most ``1 - confidence`` of runs whatever its number of sizes.
    """
    order = np.unique(sizes)
    pairs = [(a, b) for i, a in enumerate(order) for b in order[i + 1:]]
    return [json_safe({key: entry[key] for key in ("smaller", "larger", "change", "low", "high")})
            for entry in _paired_changes(sizes, Z, sign, confidence, pairs, z, quantiles) if entry["significant"]]


def _below_base(sizes: np.ndarray, Z: np.ndarray, sign: float, confidence: float, z: np.ndarray | None = None,
                quantiles: PairedQuantiles | None = None) -> list[dict[str, Any]]:
    """Each finetuned size against n = 0: the paired change, whether it is significantly below 0 (one-sided,
    Bonferroni over the finetuned sizes) and whether it is significantly above 0 (at half that level)."""
    if not (sizes == 0).any():
        return []
    pairs = [(0.0, size) for size in np.unique(sizes) if size > 0]
    return [json_safe({"size": entry["larger"], "change": entry["change"], "low": entry["low"], "high": entry["high"],
                       "significant": entry["significant"], "better": entry["better"],
                       "worse": entry["worse"]})
            for entry in _paired_changes(sizes, Z, sign, confidence, pairs, z, quantiles)]


def fit_diagnostics(sizes_a: np.ndarray, z: np.ndarray, sign: float, resamples: np.ndarray | None, confidence: float,
                    paired_quantiles: PairedQuantiles | None, warnings: list[str], *, identifiable: bool, chosen: str,
                    n0: float, theta: float, theta_bounds: tuple[float, float] | None, n90: float,
                    stability: float | None, aic_table: list[dict[str, Any]]) -> tuple[list, bool, bool | None, list]:
    """The paired checks of a fit and its plain-language warnings (appended to ``warnings``, most important
    first). ``z``: the values in gain orientation; ``resamples``: the points' replicates in metric units.

    Returns ``(below_base, hurts, monotone, decreases)`` as :class:`~hf_finetune_curve.curve.fit.CurveFit`
    holds them.
    """
    largest = float(sizes_a.max())
    below_base = (_below_base(sizes_a, sign * resamples, sign, confidence, z, paired_quantiles)
                  if resamples is not None else [])
    hurts = bool(below_base) and all(entry["significant"] for entry in below_base)
    if not (sizes_a == 0).any():
        warnings.append(
            "no n=0 (factory model) point: the attainable gain is measured from the curve's extrapolated value at 0"
        )
    if identifiable:
        if chosen == "loglinear":
            warnings.append(
                f"the log-linear (non-saturating) family fits best: the gain has not saturated by the largest "
                f"size ({_fmt(largest)}); N for 90% of the gain is beyond the data (not reported)"
            )
        elif chosen == "constant" and not hurts:
            warnings.append("no detectable gain from finetuning: a flat line fits best (within noise)")
        slope, t_stat = _trend(sizes_a, z, n0)
        if resamples is not None:
            # The same noise as everything else: the slope refitted on every resample, not a t from
            # the residuals of a handful of points that all share their test rows.
            x = np.log1p(sizes_a / n0)
            xc = x - x.mean()
            slopes = (sign * resamples - (sign * resamples).mean(axis=1, keepdims=True)) @ xc / float(xc @ xc)
            upper = float(np.quantile(slopes, 0.5 + confidence / 2.0))
            if upper < 0.0:
                warnings.append(
                    f"the metric gets worse as the finetune size grows (log-linear slope {sign * slope:.3g} per e-fold "
                    f"of data, bootstrap interval excludes 0): finetuning appears to hurt this probe"
                )
        elif t_stat < -2.0:
            warnings.append(
                f"the metric gets worse as the finetune size grows (log-linear slope {sign * slope:.3g} per e-fold "
                f"of data, t = {t_stat:.1f}): finetuning appears to hurt this probe"
            )
        if chosen in SATURATING and theta_bounds is not None:
            lo, hi = theta_bounds
            name = "exponent" if chosen == "power" else "scale"
            if theta <= lo * 1.02 or theta >= hi / 1.02:
                warnings.append(
                    f"the {chosen} fit's {name} ({theta:.3g}) sits at its bound [{lo:.3g}, {hi:.3g}]: "
                    "the data do not pin the curve's shape"
                )
            if math.isfinite(n90) and n90 > largest:
                warnings.append(
                    f"N for 90% of the gain ({_fmt(n90)}) is beyond the largest measured size ({_fmt(largest)}): "
                    "it is an extrapolation"
                )
        if stability is not None and stability < 0.7:
            others = [
                f"{row['family']}: {_fmt(row['n_needed_90'])}"
                for row in aic_table
                if row["n_needed_90"] is not None and row["family"] in SATURATING
            ]
            warnings.append(
                f"the family choice is unstable (the {chosen} family wins only {stability:.0%} of bootstrap refits); "
                "N-needed depends on it" + (f" (N for 90% by family: {', '.join(others)})" if others else "")
            )

    if hurts:
        worst = max(below_base, key=lambda entry: abs(entry["change"]))
        # First: it is the answer, and it contradicts what a fitted line's level would suggest.
        warnings.insert(0, (
            f"finetuning hurts: every finetuned size scores significantly worse than the factory model (n = 0), "
            f"by up to {worst['change']:+.4g} at {_fmt(worst['size'])} (interval {worst['low']:+.4g} to "
            f"{worst['high']:+.4g}); the fitted line's level and extrapolation do not describe these points"))

    monotone, decreases = None, []
    if resamples is not None:
        decreases = _significant_decreases(sizes_a, sign * resamples, sign, confidence, z, paired_quantiles)
        monotone = not decreases
        if decreases:
            worst = max(decreases, key=lambda d: abs(d["change"]))
            warnings.append(
                f"the curve is not monotone: {_fmt(worst['larger'])} is significantly worse than {_fmt(worst['smaller'])} "
                f"(change {worst['change']:+.4g}, interval {worst['low']:+.4g} to {worst['high']:+.4g}); a saturating "
                "fit smooths this over, so read N-needed with care (LCDB 1.1 finds 14-15% of real learning curves "
                "non-monotone)"
            )

    return below_base, hurts, monotone, decreases
