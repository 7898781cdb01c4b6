"""Fit saturating curves to metric-vs-finetune-size and answer "how much data gets most of the gain?".

Families (written in the *gain orientation* ``z = metric`` when higher is better, ``z = -metric``
when lower is better, so every family rises with more data; ``g >= 0`` is the attainable gain):

``power``        ``z(n) = a - g * ((n + n0) / n0) ** -c``   saturating, asymptote ``a``, slow tail
``exponential``  ``z(n) = a - g * exp(-n / s)``             saturating, asymptote ``a``, fast tail
``loglinear``    ``z(n) = a + g * log(1 + n / n0)``         never saturates (for comparison)
``constant``     ``z(n) = a``                               finetuning does not help measurably

How n = 0 (the factory model) is used: the power and log-linear families are written on
``n + n0``, with the offset ``n0`` *fixed* (default: the smallest positive size measured), not
fitted. A fitted offset would be a fourth nonlinear parameter, which six to eight sizes cannot
identify (AICc's small-sample penalty is infinite for 4 parameters with 5 points). Normalising
by ``n0`` makes ``z(0) = a - g`` for both saturating families, so ``g`` *is* the attainable gain
(asymptote minus the factory model's value) and the exponent ``c`` / scale ``s`` carry the shape.
The fraction-``f`` answer is then closed-form: ``N_f = n0 * ((1 - f) ** (-1 / c) - 1)`` (power)
and ``N_f = s * log(1 / (1 - f))`` (exponential).

Fitting: for a fixed ``c`` (or ``s``) the model is linear in ``(a, g)``, so the sum of squares is
profiled on a log grid of the nonlinear parameter (161 points, then a 41-point local grid and a
parabolic step; ``g >= 0`` enforced in closed form), which finds the global minimum within the
bounds; the main fit is then polished with :func:`scipy.optimize.least_squares` (bounded, one
restart from each of the best local minima of the profile). Bootstrap refits use the vectorised
profile alone (hundreds of refits in milliseconds).

Selection: with ``point_resamples`` (how the pipeline always fits) the points' noise is measured,
covariance included, so every family is fitted by generalised least squares on that covariance and
compared by AIC with known noise, ``chi-square + 2k`` (``selection="aic_known_noise"``). The
chi-squares are divided by an overdispersion factor (QAIC: the richest family's chi-square per
degree of freedom, at least 1) only when it rests on at least ``MIN_OVERDISPERSION_DOF`` = 3
degrees of freedom (6+ sizes); with 5 sizes it has 2 and is reported in a warning, not used.
Without resamples: AICc, ``m*log(SSE/m) + 2k + 2k(k+1)/(m-k-1)`` (``selection="aicc"``), which
with 5-8 points strongly prefers fewer parameters. Every family's SSE, criterion, Akaike weight and
90% answer is reported, and the share of bootstrap refits that pick the same family is reported as
``selection_stability``. The bootstrap covariance is shrunk 1% toward its diagonal before it is
inverted (:mod:`~hf_finetune_curve.curve.solver`), which keeps a difference of two perfectly
correlated points at >= ~0.14 of a point's sd.

Verdicts (below the factory model, not monotone) are paired tests of two sizes
(:mod:`~hf_finetune_curve.curve.diagnostics`); the back-test is paired too (refit ``r`` against
resample ``r`` of the held-out size). The next-size what-if is :mod:`~hf_finetune_curve.curve.next_size`.

Band: with ``point_resamples`` (per-size bootstrap replicates of the metric from
:func:`hf_finetune_curve.curve.uncertainty.bootstrap_replicates`, shape ``(n_boot, n_sizes)``) every
row is refitted; without it, a residual bootstrap of the selected fit (residuals centred and
inflated by ``sqrt(m / (m - k))`` times the Student-t / normal quantile ratio for ``m - k``
degrees of freedom, which restores t-interval coverage with 6-8 points). Every family is refitted
to every replicate and, by default, each replicate uses the family its own criterion picks (bootstrap
model averaging), so intervals carry model-selection uncertainty too: if some refits find no
saturation, the N-needed upper bound is reported as unbounded (``None``). Intervals are
percentile intervals of the refits' quantities. On simulated power-law curves (7 sizes,
0-50k) the 95% interval for N-for-90% covers the truth in ~93-97% of noise draws.

Example:
    >>> import numpy as np
    >>> sizes = np.array([0, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000])
    >>> truth = 0.72 - 0.12 * ((sizes + 1_000) / 1_000) ** -0.7
    >>> noise = np.random.default_rng(0).normal(0, 0.002, sizes.size)
    >>> fit = fit_curve(sizes, truth + noise, n_boot=100)
    >>> fit.family
    'power'
    >>> ans = fit.answer((0.9,))[0]
    >>> ans["low"] <= ans["n_needed"] <= ans["high"]
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from ..io_utils import json_safe

# Degrees of freedom (sizes minus 3) below which the overdispersion estimate is reported but not used.
MIN_OVERDISPERSION_DOF = 3
from .diagnostics import HURTS_REASON, PairedQuantiles, _fmt, fit_diagnostics
from .solver import (DEFAULT_FAMILIES, FAMILIES, MIN_SIZES_FOR_ANSWER, N_PARAMS, SATURATING, _aicc, _Ensemble, _Fits,
                     _gain, _n_needed, _percentile_interval, _precision, _predict_z, _Problem, _residual_inflation)

# --------------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class CurveFit:
    """A fitted metric-vs-finetune-size curve, its bootstrap band and the answers it supports.

    Attributes:
        family: the selected family (AIC with known noise, or AICc without resamples; see the module
            docstring for the formulas).
        params: the family's parameters in the metric's own units: ``asymptote`` and
            ``value_at_0`` are metric values, ``gain`` (attainable improvement, >= 0) and
            ``gain_per_e_fold`` are improvements (positive = better whatever the direction),
            ``exponent``/``scale``/``offset`` are shape parameters.
        higher_is_better: the metric's direction.
        sizes, values: the data fitted (values in metric units).
        offset: ``n0`` of the power and log-linear families.
        aic_table: one row per family: ``family``, ``n_params``, ``sse``, ``criterion``, ``delta``,
            ``weight`` (Akaike weight), ``params``, ``n_needed_90`` (that family's answer), ``selected``.
        selection_stability: share of bootstrap refits whose criterion picks ``family`` as well.
        selection: ``"aic_known_noise"`` (generalised least squares on the points' bootstrap
            covariance, chi-square + 2k) with ``point_resamples``, else ``"aicc"``.
        monotone: False when a larger size is significantly worse than a smaller one (paired over
            the point resamples, Bonferroni over all pairs), None without resamples.
        decreases: those pairs: ``smaller``, ``larger``, ``change`` (metric units), ``low``, ``high``.
        below_base: every finetuned size compared with n = 0 (paired over the point resamples,
            one-sided, Bonferroni over the sizes): ``size``, ``change`` (metric units), ``low``, ``high``,
            ``significant`` (significantly worse than n = 0). Empty without resamples or without n = 0.
        hurts: True when *every* finetuned size is significantly worse than n = 0: finetuning with
            this recipe makes the metric worse at every size measured, so there is no gain to reach.
        band_method: ``"point_resamples"`` or ``"residual"``.
        warnings: plain-language caveats, most important first.
    """

    family: str
    params: dict[str, float]
    higher_is_better: bool
    sizes: list[float]
    values: list[float]
    offset: float
    confidence: float
    aic_table: list[dict[str, Any]]
    selection_stability: float | None
    band_method: str
    n_boot: int
    identifiable: bool
    selection: str = "aicc"
    monotone: bool | None = None
    decreases: list[dict[str, Any]] = field(default_factory=list)
    below_base: list[dict[str, Any]] = field(default_factory=list)
    hurts: bool = False
    warnings: list[str] = field(default_factory=list)
    _fit: _Fits = field(default=None, repr=False)  # type: ignore[assignment]
    _boot: _Ensemble = field(default=None, repr=False)  # type: ignore[assignment]
    _sigma_obs: float = field(default=0.0, repr=False)
    _fit_kwargs: dict[str, Any] = field(default_factory=dict, repr=False)
    _point_resamples: np.ndarray | None = field(default=None, repr=False)
    _seed: int = field(default=0, repr=False)
    _backtest: dict[str, Any] | None = field(default=None, repr=False)

    # ---- predictions ---------------------------------------------------------------------
    @property
    def _sign(self) -> float:
        return 1.0 if self.higher_is_better else -1.0

    @property
    def largest_size(self) -> float:
        return float(max(self.sizes))

    def predict(self, n: Any) -> np.ndarray:
        """The fitted metric at size(s) ``n`` (metric units), shaped like ``n``.

        Example:
            >>> fit = fit_curve([0, 1e3, 2e3, 5e3, 1e4, 2e4], [.5, .6, .64, .68, .7, .71], n_boot=50)
            >>> float(fit.predict(0)) < float(fit.predict(20_000))
            True
        """
        shape = np.shape(n)
        z = _predict_z(self.family, self._fit, np.asarray(n, dtype=np.float64), self.offset)[0]
        return (self._sign * z).reshape(shape)

    def _boot_z(self, n: Any) -> np.ndarray:
        return self._boot.predict_z(np.asarray(n, dtype=np.float64))

    def predict_interval(self, n: Any, kind: str = "mean") -> tuple[np.ndarray, np.ndarray]:
        """Bootstrap band ``(low, high)`` of the metric at ``n`` (metric units, ``low <= high``).

        ``kind="mean"`` is the band of the fitted curve itself; ``kind="observation"`` adds the
        scatter of a single measured point around the curve (use it to judge a new measurement).
        """
        if kind not in ("mean", "observation"):
            raise ValueError(f"kind must be 'mean' or 'observation', got {kind!r}.")
        shape = np.shape(n)
        reps = self._boot_z(n)
        if kind == "observation" and self._sigma_obs > 0:
            rng = np.random.default_rng(self._seed + 7919)
            reps = reps + rng.normal(0.0, self._sigma_obs, size=reps.shape)
        low, high = _percentile_interval(self._sign * reps, self.confidence)
        return np.asarray(low).reshape(shape), np.asarray(high).reshape(shape)

    # ---- answers -------------------------------------------------------------------------
    def _withheld_reason(self) -> str | None:
        distinct = len(set(self.sizes))
        if self.hurts:
            return HURTS_REASON
        if not self.identifiable:
            return (
                f"the fit is not identifiable with {distinct} sizes; measure at least "
                f"{MIN_SIZES_FOR_ANSWER} finetune sizes (including 0) before estimating N"
            )
        if self.family == "loglinear":
            return (
                f"the log-linear (non-saturating) family fits best: the gain has not saturated by "
                f"the largest size ({_fmt(self.largest_size)}), so the N for this fraction of the "
                "gain lies beyond the data and cannot be estimated; measure larger sizes"
            )
        if self.family == "constant":
            return "no detectable gain from finetuning: the metric is flat within noise, so there is no gain to reach"
        return None

    def attainable_gain(self) -> dict[str, Any]:
        """Asymptote minus the value at n = 0, as an improvement (>= 0), with its interval."""
        point = float(_gain(self.family, self._fit)[0])
        low, high = _percentile_interval(self._boot.gain(), self.confidence)
        return json_safe({"gain": point, "low": low, "high": high, "asymptote": self.params.get("asymptote")})

    def answer(self, fractions: Iterable[float] = (0.9, 0.95)) -> list[dict[str, Any]]:
        """For each fraction f: the finetune size N reaching f of the attainable gain, with interval.

        Each entry: ``fraction``, ``n_needed`` (None when withheld), ``low``, ``high`` (None when
        unbounded or withheld), ``beyond_data`` (N above the largest measured size),
        ``reason`` (why ``n_needed`` is None) and ``note``.
        """
        out = []
        reason = self._withheld_reason()
        for fraction in fractions:
            fraction = float(fraction)
            if not 0.0 < fraction < 1.0:
                raise ValueError(f"fractions must be in (0, 1), got {fraction}.")
            entry: dict[str, Any] = {
                "fraction": fraction,
                "n_needed": None,
                "low": None,
                "high": None,
                "beyond_data": None,
                "reason": reason,
                "note": None,
            }
            if reason is None:
                point = float(_n_needed(self.family, self._fit, fraction, self.offset)[0])  # type: ignore[index]
                reps = self._boot.n_needed(fraction)
                low, high = _percentile_interval(reps, self.confidence)
                notes = []
                if not math.isfinite(point):
                    entry["reason"] = "the fitted gain is zero, so no finite N reaches a fraction of it"
                    point = float("nan")
                else:
                    entry["beyond_data"] = bool(point > self.largest_size)
                    if point > self.largest_size:
                        notes.append(
                            f"extrapolated: {_fmt(point)} is beyond the largest measured size "
                            f"({_fmt(self.largest_size)})"
                        )
                if not math.isfinite(float(high)):
                    notes.append("the upper bound is unbounded (some refits find no gain or no saturation)")
                entry.update(n_needed=point, low=low, high=high, note="; ".join(notes) or None)
            out.append(json_safe(entry))
        return out

    def marginal_gain_per(self, step: float = 10_000) -> dict[str, Any]:
        """Improvement from ``step`` more examples at the largest measured size, with interval.

        ``improvement`` is positive when more data helps (whatever the metric's direction);
        ``metric_change`` is the same change in the metric's own sign.
        """
        n = self.largest_size
        z = _predict_z(self.family, self._fit, np.array([n, n + step]), self.offset)[0]
        reps = self._boot_z(np.array([n, n + step]))
        low, high = _percentile_interval(reps[:, 1] - reps[:, 0], self.confidence)
        improvement = float(z[1] - z[0])
        return json_safe(
            {
                "at_size": n,
                "step": float(step),
                "improvement": improvement,
                "low": low,
                "high": high,
                "metric_change": self._sign * improvement,
            }
        )

    def extrapolate(self, factor: float = 2.0) -> dict[str, Any]:
        """The metric predicted at ``factor`` times the largest size, and the improvement over it."""
        n = self.largest_size
        target = n * float(factor)
        z = _predict_z(self.family, self._fit, np.array([n, target]), self.offset)[0]
        reps = self._boot_z(np.array([n, target]))
        low, high = _percentile_interval(self._sign * reps[:, 1], self.confidence)
        imp_low, imp_high = _percentile_interval(reps[:, 1] - reps[:, 0], self.confidence)
        return json_safe(
            {
                "size": target,
                "factor": float(factor),
                "predicted": self._sign * float(z[1]),
                "low": low,
                "high": high,
                "improvement_over_largest": float(z[1] - z[0]),
                "improvement_low": imp_low,
                "improvement_high": imp_high,
                "note": "extrapolation beyond the measured sizes; trust it only as far as the backtest does",
            }
        )

    def backtest(self) -> dict[str, Any]:
        """Refit without the largest size, predict it, and check the miss against the interval.

        With point resamples the check is paired (``method="paired"``): refit ``r`` is fitted to resample
        ``r`` of the other sizes and compared with resample ``r`` of the held-out size, so ``low``/``high``
        is the predicted value plus the centred spread of those paired misses: the observation falls outside
        it when the miss is larger than the noise the two do not share. Without resamples the refit's
        observation band is used (``method="residual"``).

        Returns ``available``, ``held_out_size``, ``observed``, ``predicted``, ``miss``
        (observed - predicted, metric units), ``low``/``high``, ``within_interval``, ``method``,
        ``family`` (of the refit) and the refit's ``n_needed_90``.
        """
        if self._backtest is not None:
            return self._backtest
        sizes = np.asarray(self.sizes, dtype=np.float64)
        values = np.asarray(self.values, dtype=np.float64)
        largest = sizes.max()
        keep = sizes < largest
        distinct = np.unique(sizes[keep])
        if distinct.size < 3 or not (distinct > 0).any():
            result: dict[str, Any] = {
                "available": False,
                "reason": f"only {distinct.size} sizes remain without the largest; a backtest needs 3 or more",
            }
        else:
            resamples = self._point_resamples[:, keep] if self._point_resamples is not None else None
            kwargs = dict(self._fit_kwargs)
            if kwargs.get("offset") is None:
                kwargs["offset"] = self.offset  # keep the curve's own n0 so the refit is comparable
            sub = fit_curve(sizes[keep], values[keep], point_resamples=resamples, **kwargs)
            predicted = float(sub.predict(largest))
            observed = float(values[sizes == largest].mean())
            if resamples is not None:
                # Paired: refit r (on resample r of the other sizes) predicts the held-out size, and resample r
                # of that size is what it observes. Both see the same held-out rows and seeds, so the noise they
                # share cancels in the miss instead of widening the interval twice over.
                predicted_r = self._sign * sub._boot_z(np.array([largest]))[:, 0]
                observed_r = self._point_resamples[: predicted_r.size][:, sizes == largest].mean(axis=1)
                misses = observed_r - predicted_r
                low, high = _percentile_interval(predicted + (misses - misses.mean()), self.confidence)
                method = "paired"
            else:
                low, high = sub.predict_interval(largest, kind="observation")
                method = "residual"
            result = json_safe(
                {
                    "available": True,
                    "held_out_size": largest,
                    "observed": observed,
                    "predicted": predicted,
                    "miss": observed - predicted,
                    "low": float(low),
                    "high": float(high),
                    "within_interval": bool(low <= observed <= high),
                    "method": method,
                    "family": sub.family,
                    "n_needed_90": sub.answer((0.9,))[0]["n_needed"],
                }
            )
        self._backtest = result
        return result

    def to_dict(self, include_backtest: bool = True) -> dict[str, Any]:
        """Everything as plain JSON types (no numpy, ``None`` instead of NaN/inf)."""
        out = {
            "family": self.family,
            "params": self.params,
            "higher_is_better": self.higher_is_better,
            "sizes": self.sizes,
            "values": self.values,
            "offset": self.offset,
            "confidence": self.confidence,
            "identifiable": self.identifiable,
            "selection": self.selection,
            "monotone": self.monotone,
            "decreases": self.decreases,
            "below_base": self.below_base,
            "hurts": self.hurts,
            "band_method": self.band_method,
            "n_boot": self.n_boot,
            "selection_stability": self.selection_stability,
            "aic_table": self.aic_table,
            "attainable_gain": self.attainable_gain(),
            "answer": self.answer(),
            "marginal_gain_per_10k": self.marginal_gain_per(10_000),
            "extrapolate_2x": self.extrapolate(2.0),
            "backtest": self.backtest() if include_backtest else None,
            "warnings": list(self.warnings),
        }
        return json_safe(out)


# --------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------


def _params_dict(family: str, fits: _Fits, sign: float, n0: float) -> dict[str, float]:
    a, g, theta = float(fits.a[0]), float(fits.g[0]), float(fits.theta[0])
    if family == "power":
        return {"asymptote": sign * a, "gain": g, "value_at_0": sign * (a - g), "exponent": theta, "offset": n0}
    if family == "exponential":
        return {"asymptote": sign * a, "gain": g, "value_at_0": sign * (a - g), "scale": theta}
    if family == "loglinear":
        return {"value_at_0": sign * a, "gain_per_e_fold": g, "offset": n0}
    return {"value": sign * a}


def _validate(
    sizes: Any, values: Any, point_resamples: Any, families: Sequence[str], confidence: float, n_boot: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, tuple[str, ...]]:
    sizes_a = np.asarray(sizes, dtype=np.float64).reshape(-1)
    values_a = np.asarray(values, dtype=np.float64).reshape(-1)
    if sizes_a.shape != values_a.shape:
        raise ValueError(f"sizes has {sizes_a.size} entries but values has {values_a.size}; expected one value per size.")
    if not (np.isfinite(sizes_a).all() and np.isfinite(values_a).all()):
        raise ValueError("sizes and values must be finite numbers (no NaN or inf).")
    if (sizes_a < 0).any():
        raise ValueError(f"sizes must be >= 0; got {sizes_a.min()}.")
    if np.unique(sizes_a).size < 2 or sizes_a.size < 3 or not (sizes_a > 0).any():
        raise ValueError(
            f"Need at least 3 points at 2 or more distinct sizes (one of them > 0) to fit a curve; got sizes {sizes_a.tolist()}."
        )
    fams = tuple(families)
    unknown = [f for f in fams if f not in FAMILIES]
    if not fams or unknown:
        raise ValueError(f"families must be a non-empty subset of {FAMILIES}; got unknown {unknown}.")
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}.")
    if int(n_boot) < 20:
        raise ValueError(f"n_boot must be >= 20 for a usable band, got {n_boot}.")
    resamples = None
    if point_resamples is not None:
        resamples = np.asarray(point_resamples, dtype=np.float64)
        if resamples.ndim != 2 or resamples.shape[1] != sizes_a.size:
            raise ValueError(
                f"point_resamples must have shape (n_boot, {sizes_a.size}) (one column per size); got {resamples.shape}."
            )
        resamples = resamples[np.isfinite(resamples).all(axis=1)]
        if resamples.shape[0] < 20:
            raise ValueError(f"point_resamples needs at least 20 finite rows; got {resamples.shape[0]}.")
    return sizes_a, values_a, resamples, fams



def fit_curve(
    sizes: Sequence[float],
    values: Sequence[float],
    *,
    higher_is_better: bool = True,
    point_resamples: np.ndarray | None = None,
    families: Sequence[str] = DEFAULT_FAMILIES,
    n_boot: int = 200,
    seed: int = 0,
    confidence: float = 0.95,
    offset: float | None = None,
    selection_uncertainty: bool = True,
    paired_quantiles: PairedQuantiles | None = None,
) -> CurveFit:
    """Fit every family to metric-vs-size, select by AIC (known noise) or AICc, and bootstrap the chosen fit.

    Args:
        sizes: finetune sizes (examples); 0 is the factory model. Repeated sizes (several seeds)
            are allowed and fitted as separate points.
        values: the metric at each size.
        higher_is_better: True for r2, False for mae / median_ae.
        point_resamples: optional ``(n_boot, len(sizes))`` bootstrap replicates of each point's
            metric (same resample indices for every checkpoint); each row is refitted to build
            the band. Without it, a residual bootstrap with ``n_boot`` replicates is used.
        families: which of ``FAMILIES`` compete.
        n_boot: bootstrap refits: residual-bootstrap replicates, or the first ``n_boot`` rows of
            ``point_resamples`` (all of whose rows estimate the points' covariance).
        seed: seed of the residual bootstrap and of the observation noise in bands.
        confidence: nominal coverage of every interval.
        offset: ``n0`` of the power and log-linear families; default the smallest positive size.
        selection_uncertainty: when True (default) each bootstrap replicate uses the family its
            own criterion selects, so intervals include model-selection uncertainty (a replicate that
            picks a non-saturating family makes the N-needed upper bound unbounded); when False
            every replicate keeps the selected family (intervals conditional on the family).
        paired_quantiles: optional paired test of two sizes (see
            :data:`~hf_finetune_curve.curve.diagnostics.PairedQuantiles`) for the verdicts (below the factory
            model, not monotone); default the percentiles of ``point_resamples``.

    Returns:
        A :class:`CurveFit`. With fewer than ``MIN_SIZES_FOR_ANSWER`` distinct sizes it carries
        a warning and ``answer()`` returns no N.

    Example:
        >>> fit = fit_curve([0, 10_000, 20_000], [0.50, 0.58, 0.60], n_boot=50)
        >>> fit.answer()[0]["n_needed"] is None, fit.warnings[0].startswith("the fit is not identifiable")
        (True, True)
    """
    sizes_a, values_a, resamples, fams = _validate(sizes, values, point_resamples, families, confidence, n_boot)
    confidence = float(confidence)
    sign = 1.0 if higher_is_better else -1.0
    z = sign * values_a
    m = z.size
    distinct = int(np.unique(sizes_a).size)
    identifiable = distinct >= MIN_SIZES_FOR_ANSWER
    smallest_positive = float(sizes_a[sizes_a > 0].min())
    n0 = float(offset) if offset is not None else smallest_positive
    if not n0 > 0:
        raise ValueError(f"offset must be > 0, got {offset}.")
    # With bootstrap replicates the points' noise is measured, covariance included (every point is
    # scored on the same rows and seeds, so differences are far more precise than the points): the
    # fit is generalised least squares and the families are compared by AIC with that known noise,
    # chi-square + 2k. AICc instead estimates the noise from the residuals of 5-7 points and pays
    # for it with a penalty (~30 for 3 parameters at 5 sizes) that no saturating curve can beat.
    known_noise = resamples is not None
    precision = _precision(sign * resamples) if known_noise else None
    problem = _Problem(sizes_a, n0, precision)
    scale = max(float(np.ptp(z)), float(np.abs(z).max()) * 1e-6, 1e-12)

    # ---- point fits and selection ---------------------------------------------------------
    fits: dict[str, _Fits] = {}
    for fam in fams:
        fit = problem.fit(fam, z[None, :])
        fits[fam] = problem.polish(fam, z, fit)
    overdispersion, raw_overdispersion, dof = 1.0, 1.0, 0
    if known_noise:
        # Points that scatter around the most flexible fit more than their bootstrap noise allows
        # (run-to-run noise the replicates do not hold): scale the chi-squares down (QAIC). The estimate
        # is a chi-square over m - 3 degrees of freedom: with 2 (5 sizes) its 95% range under no
        # overdispersion at all is 0.03-3.7, so below MIN_OVERDISPERSION_DOF it is reported, not used.
        richest = max(fams, key=lambda f: N_PARAMS[f])
        dof = m - N_PARAMS[richest]
        if dof > 0:
            raw_overdispersion = max(1.0, float(fits[richest].sse[0]) / dof)
            if dof >= MIN_OVERDISPERSION_DOF:
                overdispersion = raw_overdispersion

    def criterion(sse: np.ndarray, k: int) -> np.ndarray:
        if known_noise:
            return np.asarray(sse) / overdispersion + 2.0 * k
        return _aicc(sse, m, k, scale)

    aicc: dict[str, float] = {fam: float(criterion(fits[fam].sse, N_PARAMS[fam])[0]) for fam in fams}
    finite = {f: v for f, v in aicc.items() if math.isfinite(v)}
    warnings: list[str] = []
    if not identifiable:
        warnings.append(
            f"the fit is not identifiable with {distinct} sizes: the curve families cannot be told apart "
            f"and N-needed is not reported; measure at least {MIN_SIZES_FOR_ANSWER} sizes (including 0)"
        )
        # AICc cannot rank the families here: describe the data with the simplest non-flat family
        # that has fewer parameters than points (log-linear, when requested), ties broken by SSE.
        usable = [f for f in fams if m > N_PARAMS[f]] or list(fams)
        chosen = min(usable, key=lambda f: (f == "constant", N_PARAMS[f], float(fits[f].sse[0])))
    else:
        chosen = min(finite, key=finite.get) if finite else fams[0]

    # ---- bootstrap -----------------------------------------------------------------------
    k = N_PARAMS[chosen]
    fitted = _predict_z(chosen, fits[chosen], sizes_a, n0)[0]
    residuals = z - fitted
    sigma_fit = math.sqrt(float(np.sum(residuals**2)) / (m - k)) if m > k else 0.0
    rng = np.random.default_rng(seed)
    if resamples is not None:
        Z = sign * resamples[: int(n_boot)]
        band_method = "point_resamples"
        sigma_boot = float(np.sqrt(np.mean(np.var(resamples, axis=0, ddof=1))))
        sigma_obs = max(sigma_fit, sigma_boot)
        if identifiable and raw_overdispersion > 4.0:
            few = (f" (an estimate on {dof} degrees of freedom, too few to rescale the fit with: it is reported, "
                   "not used)" if dof < MIN_OVERDISPERSION_DOF else "")
            warnings.append(
                f"the points scatter around the fit {math.sqrt(raw_overdispersion):.1f}x more than their bootstrap "
                f"noise{few}: run-to-run finetuning noise the replicates do not hold is likely, so the band is too "
                "narrow; repeat with --seeds to measure it"
            )
    else:
        band_method = "residual"
        centred = residuals - residuals.mean()
        inflate = _residual_inflation(m, k, confidence)
        draws = rng.integers(0, m, size=(int(n_boot), m))
        Z = fitted[None, :] + inflate * centred[draws]
        sigma_obs = sigma_fit
    boot_fits = {fam: problem.fit(fam, Z) for fam in fams}
    winners = np.full(Z.shape[0], chosen, dtype=object)
    stability = None
    if len(fams) > 1 and identifiable:
        table = np.stack([criterion(boot_fits[f].sse, N_PARAMS[f]) for f in fams], axis=1)
        picked = np.array(fams, dtype=object)[np.argmin(table, axis=1)]
        stability = float(np.mean(picked == chosen))
        if selection_uncertainty:
            winners = picked
    boot = _Ensemble(boot_fits, winners, n0)

    # ---- table ---------------------------------------------------------------------------
    best = min(finite.values()) if finite else float("nan")
    weights_raw = {f: math.exp(-0.5 * (v - best)) for f, v in finite.items()}
    total = sum(weights_raw.values()) or 1.0
    aic_table = []
    for fam in fams:
        n90 = _n_needed(fam, fits[fam], 0.9, n0)
        aic_table.append(
            json_safe(
                {
                    "family": fam,
                    "n_params": N_PARAMS[fam],
                    "sse": float(fits[fam].sse[0]),
                    "criterion": aicc[fam],
                    "delta": aicc[fam] - best if fam in finite else None,
                    "weight": weights_raw.get(fam, 0.0) / total if fam in finite else None,
                    "params": _params_dict(fam, fits[fam], sign, n0),
                    "n_needed_90": float(n90[0]) if n90 is not None else None,
                    "selected": fam == chosen,
                }
            )
        )

    # ---- warnings ------------------------------------------------------------------------
    theta = float(fits[chosen].theta[0])
    n90 = float(_n_needed(chosen, fits[chosen], 0.9, n0)[0]) if chosen in SATURATING else math.nan  # type: ignore[index]
    below_base, hurts, monotone, decreases = fit_diagnostics(
        sizes_a, z, sign, resamples, confidence, paired_quantiles, warnings, identifiable=identifiable,
        chosen=chosen, n0=n0, theta=theta, theta_bounds=problem.theta_bounds.get(chosen), n90=n90,
        stability=stability, aic_table=aic_table)

    return CurveFit(
        family=chosen,
        params=json_safe(_params_dict(chosen, fits[chosen], sign, n0)),
        higher_is_better=bool(higher_is_better),
        sizes=[float(s) for s in sizes_a],
        values=[float(v) for v in values_a],
        offset=n0,
        confidence=confidence,
        aic_table=aic_table,
        selection_stability=stability,
        band_method=band_method,
        n_boot=int(Z.shape[0]),
        identifiable=identifiable,
        selection="aic_known_noise" if known_noise else "aicc",
        monotone=monotone,
        decreases=decreases,
        below_base=below_base,
        hurts=hurts,
        warnings=warnings,
        _fit=fits[chosen],
        _boot=boot,
        _sigma_obs=float(sigma_obs),
        _fit_kwargs=dict(
            higher_is_better=bool(higher_is_better),
            families=fams,
            n_boot=int(n_boot),
            seed=int(seed),
            confidence=confidence,
            offset=offset,
            selection_uncertainty=bool(selection_uncertainty),
        ),
        _point_resamples=resamples,
        _seed=int(seed),
    )




__all__ = [
    "DEFAULT_FAMILIES",
    "FAMILIES",
    "MIN_SIZES_FOR_ANSWER",
    "SATURATING",
    "CurveFit",
    "fit_curve",
]
