"""Bootstrap uncertainty for probe scores: intervals, paired deltas, and seed aggregation.

Every curve point is scored on the same held-out rows, so the honest question "is checkpoint B
better than checkpoint A?" is a *paired* one: resample the test rows once and score both
checkpoints on each resample. :func:`resample_indices` makes the resamples a pure function of
``(n_rows, n_resamples, seed)``, so checkpoints scored separately with the same seed still share
identical resamples, and their replicates can be stacked into the ``(n_resamples, n_sizes)``
matrix that :func:`hf_finetune_curve.curve_fit.fit_curve` takes as ``point_resamples``.

Metrics are the probe's: ``r2`` (higher is better), ``mae`` and ``median_ae`` (lower is better),
computed exactly as :func:`hf_finetune_curve.probe.regression_scores` does.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = rng.lognormal(5, 0.5, size=2000)
    >>> pred_a = y * rng.lognormal(0, 0.4, size=2000)
    >>> pred_b = y * rng.lognormal(0, 0.2, size=2000)
    >>> intervals = bootstrap_scores(y, pred_b, n_resamples=500)
    >>> iv = intervals["mae"]; iv.low <= iv.estimate <= iv.high
    True
    >>> deltas = paired_bootstrap_delta(y, pred_a, pred_b, n_resamples=500)
    >>> deltas["mae"].better, deltas["r2"].better
    (True, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from .probe import METRICS as _METRICS
from .probe import regression_scores

METRICS: tuple[str, ...] = tuple(key for key, _, _ in _METRICS)
HIGHER_IS_BETTER: dict[str, bool] = {key: higher for key, _, higher in _METRICS}

# Resamples are generated in fixed blocks, each from its own child seed, so resample i is the same
# whatever n_resamples is (a prefix of a longer run equals a shorter run) and the metric code can
# work one block at a time without materialising an (n_resamples, n_rows) matrix for big test sets.
_BLOCK = 32
# Above this many index cells per block the block is split further while scoring (memory bound).
_MAX_CELLS = 4_000_000


def _finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided percentile-bootstrap interval.

    Attributes:
        estimate: the metric on the full test set (not the bootstrap mean).
        low, high: the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of the
            bootstrap replicates.
        confidence: the interval's nominal coverage, e.g. 0.95.
        n_resamples: how many bootstrap resamples the interval rests on.

    Example:
        >>> Interval(0.5, 0.4, 0.6).to_dict()["low"]
        0.4
    """

    estimate: float
    low: float
    high: float
    confidence: float = 0.95
    n_resamples: int = 0

    @property
    def width(self) -> float:
        return float(self.high - self.low)

    def contains(self, value: float) -> bool:
        return bool(self.low <= value <= self.high)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: plain floats, ``None`` instead of NaN/inf."""
        return {
            "estimate": _finite_or_none(self.estimate),
            "low": _finite_or_none(self.low),
            "high": _finite_or_none(self.high),
            "confidence": float(self.confidence),
            "n_resamples": int(self.n_resamples),
        }


@dataclass(frozen=True)
class PairedDelta:
    """The difference ``metric(b) - metric(a)`` on shared bootstrap resamples.

    Attributes:
        metric: ``"r2"``, ``"mae"`` or ``"median_ae"``.
        delta: ``metric(b) - metric(a)`` on the full test set.
        low, high: percentile-bootstrap interval of the delta.
        p_value: two-sided bootstrap p-value for "no difference":
            ``min(1, 2 * (min(#{delta* <= 0}, #{delta* >= 0}) + 1) / (n_resamples + 1))``.
        better: ``True`` when the interval excludes 0 on b's side (b has higher r2 / lower
            error), ``False`` when it excludes 0 on a's side, ``None`` when it contains 0.
        higher_is_better: the metric's direction.
        estimate_a, estimate_b: the two full-test-set scores.
    """

    metric: str
    delta: float
    low: float
    high: float
    p_value: float
    better: bool | None
    higher_is_better: bool
    estimate_a: float
    estimate_b: float
    confidence: float = 0.95
    n_resamples: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: plain floats and bools, ``None`` instead of NaN/inf."""
        return {
            "metric": self.metric,
            "delta": _finite_or_none(self.delta),
            "low": _finite_or_none(self.low),
            "high": _finite_or_none(self.high),
            "p_value": _finite_or_none(self.p_value),
            "better": self.better,
            "higher_is_better": bool(self.higher_is_better),
            "estimate_a": _finite_or_none(self.estimate_a),
            "estimate_b": _finite_or_none(self.estimate_b),
            "confidence": float(self.confidence),
            "n_resamples": int(self.n_resamples),
        }


def _check_resample_args(n_rows: int, n_resamples: int) -> None:
    if int(n_rows) < 2:
        raise ValueError(f"Need at least 2 test rows to bootstrap; got {n_rows}.")
    if int(n_resamples) < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}.")


def _index_dtype(n_rows: int) -> type:
    return np.int32 if n_rows < 2**31 - 1 else np.int64


def _iter_index_blocks(n_rows: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Yield consecutive blocks of resample rows; their concatenation is ``resample_indices``."""
    n_rows, n_resamples = int(n_rows), int(n_resamples)
    dtype = _index_dtype(n_rows)
    for block, start in enumerate(range(0, n_resamples, _BLOCK)):
        count = min(_BLOCK, n_resamples - start)
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), block]))
        yield rng.integers(0, n_rows, size=(_BLOCK, n_rows), dtype=dtype)[:count]


def resample_indices(n_rows: int, n_resamples: int, seed: int = 0) -> np.ndarray:
    """Row indices of ``n_resamples`` bootstrap resamples of ``n_rows`` test rows.

    A pure function of its arguments: two calls with the same arguments give identical
    matrices, so checkpoints scored one at a time share their resamples. Resample ``i`` does not
    depend on ``n_resamples`` (a shorter run is a prefix of a longer one).

    Returns:
        An integer array of shape ``(n_resamples, n_rows)``; row ``i`` is resample ``i``.

    Example:
        >>> idx = resample_indices(5, 3, seed=1)
        >>> idx.shape, bool((idx == resample_indices(5, 3, seed=1)).all())
        ((3, 5), True)
        >>> bool((resample_indices(5, 10, seed=1)[:3] == idx).all())
        True
    """
    _check_resample_args(n_rows, n_resamples)
    return np.concatenate(list(_iter_index_blocks(n_rows, n_resamples, seed)), axis=0)


def _metrics_on_indices(y_true: np.ndarray, y_pred: np.ndarray, idx: np.ndarray) -> dict[str, np.ndarray]:
    """Vectorised ``regression_scores`` on each row of ``idx`` (shape (k, n_rows))."""
    yt, yp = y_true[idx], y_pred[idx]
    abs_err = np.abs(yt - yp)
    positive = np.all(yt > 0) and np.all(yp > 0)
    return {
        "r2": _r2_rows(yt, yp),
        # log_r2 of each resample; NaN unless every value is positive, as in regression_scores.
        "r2_log": _r2_rows(np.log(yt), np.log(yp)) if positive else np.full(len(yt), np.nan),
        "mae": abs_err.mean(axis=1),
        "median_ae": np.median(abs_err, axis=1),
    }


def _r2_rows(yt: np.ndarray, yp: np.ndarray) -> np.ndarray:
    """R² of each row of ``yp`` against the same row of ``yt``."""
    err = yt - yp
    ss_res = np.einsum("ij,ij->i", err, err)
    centred = yt - yt.mean(axis=1, keepdims=True)
    ss_tot = np.einsum("ij,ij->i", centred, centred)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = 1.0 - ss_res / ss_tot
    # scikit-learn's convention for a constant y_true, as in regression_scores.
    constant = ss_tot == 0.0
    if constant.any():
        r2[constant] = np.where(ss_res[constant] == 0.0, 1.0, 0.0)
    return r2


def _replicates(
    y_true: np.ndarray,
    predictions: Sequence[np.ndarray],
    n_resamples: int,
    seed: int,
) -> list[dict[str, np.ndarray]]:
    n_rows = len(y_true)
    out: list[dict[str, list[np.ndarray]]] = [{m: [] for m in METRICS} for _ in predictions]
    rows_per_chunk = max(1, _MAX_CELLS // n_rows)
    for block in _iter_index_blocks(n_rows, n_resamples, seed):
        for start in range(0, len(block), rows_per_chunk):
            idx = block[start : start + rows_per_chunk]
            for store, pred in zip(out, predictions):
                values = _metrics_on_indices(y_true, pred, idx)
                for metric in METRICS:
                    store[metric].append(values[metric])
    return [{m: np.concatenate(store[m]) for m in METRICS} for store in out]


def _as_arrays(y_true: Any, *preds: Any) -> tuple[np.ndarray, ...]:
    arrays = [np.asarray(y_true, dtype=np.float64)]
    for pred in preds:
        arrays.append(np.asarray(pred, dtype=np.float64))
    for name, array in zip(("y_true",) + tuple(f"predictions {i}" for i in range(len(preds))), arrays):
        if array.ndim != 1:
            raise ValueError(f"{name} must be 1-D; got shape {array.shape}.")
        if not np.isfinite(array).all():
            raise ValueError(f"{name} contains NaN or inf; expected finite numbers.")
        if array.shape != arrays[0].shape:
            raise ValueError(f"{name} has shape {array.shape} but y_true has {arrays[0].shape}.")
    return tuple(arrays)


def _check_confidence(confidence: float) -> float:
    confidence = float(confidence)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}.")
    return confidence


def bootstrap_replicates(
    y_true: Sequence[float],
    y_pred: Sequence[float],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """The metric on each bootstrap resample: ``{"r2", "mae", "median_ae"} -> (n_resamples,)``.

    Scoring every checkpoint of a curve with the same ``seed`` and stacking a metric's arrays
    column-wise gives the ``point_resamples`` matrix for :func:`~hf_finetune_curve.curve_fit.fit_curve`.

    Example:
        >>> reps = bootstrap_replicates([1.0, 2, 3, 4], [1.1, 2, 2.9, 4.2], n_resamples=7)
        >>> reps["mae"].shape
        (7,)
    """
    y_true_a, y_pred_a = _as_arrays(y_true, y_pred)
    _check_resample_args(len(y_true_a), n_resamples)
    return _replicates(y_true_a, [y_pred_a], int(n_resamples), int(seed))[0]


def _quantiles(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = 1.0 - confidence
    low, high = np.quantile(samples, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def bootstrap_scores(
    y_true: Sequence[float],
    y_pred: Sequence[float],
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Interval]:
    """Percentile-bootstrap intervals for r2, mae and median_ae over the test rows.

    The estimate is :func:`~hf_finetune_curve.probe.regression_scores` on all rows; the interval
    comes from rescoring ``n_resamples`` resamples of the rows (drawn by
    :func:`resample_indices` with ``seed``). 1,000 resamples of 5,000 rows take well under a
    second.

    Example:
        >>> import numpy as np
        >>> y = np.arange(1.0, 101.0); pred = y + np.sin(y) * 5
        >>> iv = bootstrap_scores(y, pred, n_resamples=200)["r2"]
        >>> iv.low <= iv.estimate <= iv.high <= 1.0
        True
    """
    confidence = _check_confidence(confidence)
    y_true_a, y_pred_a = _as_arrays(y_true, y_pred)
    _check_resample_args(len(y_true_a), n_resamples)
    estimates = regression_scores(y_true_a, y_pred_a)
    reps = _replicates(y_true_a, [y_pred_a], int(n_resamples), int(seed))[0]
    result = {}
    for metric in METRICS:
        low, high = _quantiles(reps[metric], confidence)
        result[metric] = Interval(
            estimate=float(estimates[metric]),
            low=low,
            high=high,
            confidence=confidence,
            n_resamples=int(n_resamples),
        )
    return result


def paired_bootstrap_delta(
    y_true: Sequence[float],
    pred_a: Sequence[float],
    pred_b: Sequence[float],
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, PairedDelta]:
    """Paired bootstrap of ``metric(b) - metric(a)`` for r2, mae and median_ae.

    Both predictors are scored on the *same* resamples of the test rows, so the shared
    difficulty of the rows cancels and the interval is much tighter than comparing two
    independent intervals. ``better`` reads the interval in the metric's direction (r2: higher
    is better; mae, median_ae: lower is better).

    Example:
        >>> import numpy as np
        >>> y = np.linspace(1, 10, 500); pred = y + np.cos(7 * y)
        >>> d = paired_bootstrap_delta(y, pred, pred, n_resamples=200)["mae"]
        >>> d.delta, d.better, d.p_value
        (0.0, None, 1.0)
    """
    confidence = _check_confidence(confidence)
    y_true_a, a, b = _as_arrays(y_true, pred_a, pred_b)
    _check_resample_args(len(y_true_a), n_resamples)
    est_a = regression_scores(y_true_a, a)
    est_b = regression_scores(y_true_a, b)
    reps_a, reps_b = _replicates(y_true_a, [a, b], int(n_resamples), int(seed))
    result = {}
    for metric in METRICS:
        deltas = reps_b[metric] - reps_a[metric]
        low, high = _quantiles(deltas, confidence)
        n_le = int(np.count_nonzero(deltas <= 0.0))
        n_ge = int(np.count_nonzero(deltas >= 0.0))
        p_value = min(1.0, 2.0 * (min(n_le, n_ge) + 1) / (len(deltas) + 1))
        if not np.isfinite(deltas).all():  # r2_log of non-positive values: undefined, not significant
            p_value, low, high = float("nan"), float("nan"), float("nan")
        higher = HIGHER_IS_BETTER[metric]
        if low > 0.0:
            better: bool | None = higher
        elif high < 0.0:
            better = not higher
        else:
            better = None
        result[metric] = PairedDelta(
            metric=metric,
            delta=float(est_b[metric] - est_a[metric]),
            low=low,
            high=high,
            p_value=float(p_value),
            better=better,
            higher_is_better=higher,
            estimate_a=float(est_a[metric]),
            estimate_b=float(est_b[metric]),
            confidence=confidence,
            n_resamples=int(n_resamples),
        )
    return result


def aggregate_seeds(values: Sequence[float], confidence: float = 0.95) -> dict[str, Any]:
    """Mean, standard deviation and Student-t interval of a metric over repeated runs (``--seeds N``).

    Returns a JSON-friendly dict: ``n``, ``mean``, ``std`` (sample, ddof=1), ``sem``, ``low``,
    ``high``, ``confidence`` and ``values``. With one value, ``std``, ``sem``, ``low`` and ``high``
    are ``None`` (one run says nothing about run-to-run spread).

    Example:
        >>> agg = aggregate_seeds([0.61, 0.63, 0.62])
        >>> round(agg["mean"], 3), agg["low"] < 0.62 < agg["high"]
        (0.62, True)
    """
    from scipy import stats

    confidence = _check_confidence(confidence)
    array = np.asarray(list(values), dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError("aggregate_seeds needs a non-empty 1-D sequence of numbers.")
    if not np.isfinite(array).all():
        raise ValueError(f"aggregate_seeds got NaN or inf among {array.tolist()}; expected finite numbers.")
    n = int(array.size)
    mean = float(array.mean())
    out: dict[str, Any] = {
        "n": n,
        "mean": mean,
        "std": None,
        "sem": None,
        "low": None,
        "high": None,
        "confidence": confidence,
        "values": [float(v) for v in array],
    }
    if n >= 2:
        std = float(array.std(ddof=1))
        sem = std / math.sqrt(n)
        half = float(stats.t.ppf(0.5 + confidence / 2.0, df=n - 1)) * sem
        out.update(std=std, sem=sem, low=mean - half, high=mean + half)
    return out


__all__ = [
    "HIGHER_IS_BETTER",
    "METRICS",
    "Interval",
    "PairedDelta",
    "aggregate_seeds",
    "bootstrap_replicates",
    "bootstrap_scores",
    "paired_bootstrap_delta",
    "resample_indices",
]
