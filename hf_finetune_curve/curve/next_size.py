"""Which finetune size to measure next: a what-if refit per candidate size."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..io_utils import json_safe
from .diagnostics import _fmt
from .fit import CurveFit, fit_curve
from .solver import SATURATING, _percentile_interval

# A candidate must narrow the interval below this share of its current width to be suggested.
_MATERIAL = 0.9


def _log_width(entry: dict[str, Any]) -> float:
    """Width of an N-needed interval on the log scale (N is a scale: 2x too many is as bad as half)."""
    low, high = entry.get("low"), entry.get("high")
    if entry.get("n_needed") is None or low is None or high is None or low <= 0:
        return math.inf
    return math.log(high / low)


def _candidate_sizes(sizes: Sequence[float], max_size: float | None) -> list[float]:
    positive = sorted({float(s) for s in sizes if s > 0})
    candidates = [positive[0] / 2.0] if positive else []
    candidates += [math.sqrt(a * b) for a, b in zip(positive, positive[1:]) if b / a > 1.3]
    largest = positive[-1] if positive else 0.0
    candidates += [largest * 2.0, largest * 4.0]
    if max_size is not None and max_size > largest * 1.1:
        candidates.append(float(max_size))
    rounded = sorted({float(_round_size(c)) for c in candidates})
    return [c for c in rounded if c > 0 and c not in positive and (max_size is None or c <= max_size)]


def _round_size(n: float) -> int:
    """Two significant digits: sizes people type (1,400 not 1,414)."""
    if n < 10:
        return max(1, int(round(n)))
    digits = int(math.floor(math.log10(n))) - 1
    return int(round(n / 10**digits) * 10**digits)


def suggest_next_size(fit: CurveFit, max_size: float | None = None, fraction: float = 0.9) -> dict[str, Any]:
    """Which finetune size to measure next to narrow the N-for-``fraction`` interval the most.

    Needs a fit with ``point_resamples``. When the curve has saturated within its noise (the gain
    still left above the largest size is, at its upper bound, smaller than that point's bootstrap
    spread) there is nothing to add and ``saturated`` is True. Otherwise every candidate (half the
    smallest size, the geometric midpoints of measured sizes, 2x and 4x the largest, and
    ``max_size``, all capped by ``max_size``) is tried as a what-if: a new point on the current fit
    with independent noise of the size measured at its n (the finetuned sizes' bootstrap sds
    interpolated on log n), refitted with the offset ``n0`` held fixed; the candidate with the
    narrowest expected interval (log scale) wins. A non-saturating fit, or one whose interval is
    unbounded above, has no finite interval to narrow: the suggestion is then the largest candidate,
    the only kind of point that can bound it.

    Returns a JSON-friendly dict: ``available``, ``saturated``, ``size`` (None when nothing is
    suggested), ``reason``, ``current`` and ``expected`` (interval widths as high/low ratios) and
    ``candidates`` (size -> expected ratio).
    """
    if fit._point_resamples is None:
        return {"available": False, "reason": "needs the points' bootstrap replicates"}
    sizes = np.asarray(fit.sizes, dtype=np.float64)
    values = np.asarray(fit.values, dtype=np.float64)
    resamples = fit._point_resamples
    largest = float(sizes.max())
    current_entry = fit.answer((fraction,))[0]
    current = _log_width(current_entry)
    result: dict[str, Any] = {"available": True, "saturated": False, "size": None, "fraction": fraction,
                              "current": math.exp(current) if math.isfinite(current) else None,
                              "expected": None, "candidates": {}}
    if fit.hurts:
        result.update(hurts=True, reason=(
            "every measured size scores significantly worse than the factory model: more data of this recipe is "
            "not what the curve asks for; keep the factory model, or measure another recipe (--objective, --lora, "
            "a lower --learning-rate)"))
        return json_safe(result)
    # Saturated: the gain left past the largest size is within that point's own noise.
    at_largest = np.flatnonzero(sizes == largest)
    spread = float(np.std(resamples[:, at_largest].mean(axis=1), ddof=1))
    if fit.family == "constant" or (fit.family in SATURATING and fit._boot is not None):
        if fit.family == "constant":
            remaining_high = 0.0
        else:
            far = _percentile_interval(_remaining(fit, largest), fit.confidence)[1]
            remaining_high = float(far)
        if math.isfinite(remaining_high) and remaining_high <= spread:
            result.update(saturated=True, reason=(
                f"the curve has saturated within its interval: at most {remaining_high:.4g} of the metric is left "
                f"above {_fmt(largest)} (upper bound), less than that point's own spread ({spread:.4g}); more "
                "sizes will not change the answer"
                if fit.family != "constant" else
                "the curve is flat within its interval: no gain from finetuning to narrow down"))
            return json_safe(result)
    candidates = _candidate_sizes(sizes, max_size)
    if not candidates:
        result["reason"] = "no size left to add: the pool is exhausted"
        return json_safe(result)
    if fit.family not in SATURATING or not math.isfinite(current):
        size = max(candidates)
        if fit.family in SATURATING:
            # The point fit saturates, but its N interval has no upper end: some refits find no saturation.
            why = (f"the N-for-{int(fraction * 100)}% interval is unbounded above (some refits of the {fit.family} "
                   f"curve find no saturation by {_fmt(largest)})")
        else:
            why = f"the gain has not saturated by {_fmt(largest)} ({fit.family} fits best)"
        result.update(size=size, reason=(
            f"{why}, so only a larger size can bound it: measure {_fmt(size)}" if size > largest else
            f"{why}, and no larger size fits in the pool"))
        return json_safe(result)
    kwargs = dict(fit._fit_kwargs)
    kwargs["n_boot"] = min(int(kwargs.get("n_boot", 200)), resamples.shape[0])
    # n0 held fixed, as the back-test holds it: a candidate below the smallest size must not move the offset
    # (which would change the curve family's shape, not just add a point).
    kwargs["offset"] = fit.offset
    spreads = _expected_spread(sizes, resamples)
    rng = np.random.default_rng([int(fit._seed), 104729])
    for candidate in candidates:
        # The what-if point gets its own noise, of the size measured at its n (interpolated on log n), drawn
        # independently of the measured points: a copy of a neighbour's deviations would make the two perfectly
        # correlated and credit the candidate with a precision no real measurement has.
        new_column = float(fit.predict(candidate)) + rng.normal(0.0, spreads(candidate), resamples.shape[0])
        what_if = fit_curve(np.r_[sizes, candidate], np.r_[values, float(fit.predict(candidate))],
                            point_resamples=np.column_stack([resamples, new_column]), **kwargs)
        width = _log_width(what_if.answer((fraction,))[0])
        result["candidates"][str(int(candidate))] = math.exp(width) if math.isfinite(width) else None
    finite = {int(c): r for c, r in result["candidates"].items() if r is not None}
    if not finite:
        result.update(size=max(candidates), reason=(
            f"no candidate is expected to bound the N-for-{int(fraction * 100)}% interval; the largest "
            f"({_fmt(max(candidates))}) is the most informative"))
        return json_safe(result)
    best = min(finite, key=finite.get)
    if finite[best] < _MATERIAL * result["current"]:
        result.update(size=best, expected=finite[best], reason=(
            f"measuring {_fmt(best)} is expected to narrow the N-for-{int(fraction * 100)}% interval from "
            f"{result['current']:.1f}x to {finite[best]:.1f}x (high/low)"))
    else:
        # One what-if draw per candidate: a few percent is within its own noise, not a reason to train a size.
        result.update(reason=(
            f"no candidate size is expected to narrow the N-for-{int(fraction * 100)}% interval "
            f"({result['current']:.1f}x high/low now) by more than {1 - _MATERIAL:.0%} (best: {_fmt(best)}, "
            f"{finite[best]:.1f}x); more precise points (--seeds, --probe-seeds, more test rows) narrow it more"))
    return json_safe(result)


def _expected_spread(sizes: np.ndarray, resamples: np.ndarray):
    """The bootstrap sd a point at size ``n`` is expected to have: the measured finetuned sizes' sds,
    interpolated on log n (the nearest one's beyond them)."""
    positive = np.unique(sizes[sizes > 0])
    sds = np.array([float(np.std(resamples[:, sizes == size].mean(axis=1), ddof=1)) for size in positive])
    return lambda n: float(np.interp(math.log(n), np.log(positive), sds))


def _remaining(fit: CurveFit, size: float) -> np.ndarray:
    """Per bootstrap refit: the improvement still to come above ``size`` (asymptote minus value there)."""
    z_at = fit._boot_z(np.array([size]))[:, 0]
    with np.errstate(invalid="ignore"):
        asymptote = fit._boot.predict_z(np.array([1e18]))[:, 0]
    return asymptote - z_at


__all__ = ["suggest_next_size"]
