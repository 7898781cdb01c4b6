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
identify (AICc's small-sample penalty is infinite for 4 parameters with 6 points). Normalising
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

Selection: AICc, ``m*log(SSE/m) + 2k + 2k(k+1)/(m-k-1)`` with ``k`` the curve parameters (the
convention of lmfit/statsmodels), which with 5-8 points strongly prefers fewer parameters; every
family's SSE, AICc, Akaike weight and 90% answer is reported, and the share of bootstrap refits
that pick the same family is reported as ``selection_stability``.

Band: with ``point_resamples`` (per-size bootstrap replicates of the metric from
:func:`hf_finetune_curve.curve.uncertainty.bootstrap_replicates`, shape ``(n_boot, n_sizes)``) every
row is refitted; without it, a residual bootstrap of the selected fit (residuals centred and
inflated by ``sqrt(m / (m - k))`` times the Student-t / normal quantile ratio for ``m - k``
degrees of freedom, which restores t-interval coverage with 6-8 points). Every family is refitted
to every replicate and, by default, each replicate uses the family its own AICc picks (bootstrap
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

FAMILIES: tuple[str, ...] = ("power", "exponential", "loglinear", "constant")
DEFAULT_FAMILIES: tuple[str, ...] = FAMILIES
SATURATING: frozenset[str] = frozenset({"power", "exponential"})
N_PARAMS: dict[str, int] = {"power": 3, "exponential": 3, "loglinear": 2, "constant": 1}
# Fewer distinct sizes than this and the N-needed answer is withheld.
MIN_SIZES_FOR_ANSWER = 5

_POWER_EXPONENT_BOUNDS = (0.02, 5.0)
_COARSE = 161
_FINE = 41


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def json_safe(value: Any) -> Any:
    """Recursively turn numpy scalars/arrays into plain Python, NaN/inf into None."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_safe(v) for v in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def _fmt(n: float) -> str:
    if not math.isfinite(n):
        return "unbounded"
    if abs(n) >= 1e7:
        return f"{n:.2e}"
    return f"{n:,.0f}"


def _percentile_interval(samples: np.ndarray, confidence: float) -> tuple[Any, Any]:
    """Percentile interval along axis 0; 'lower'/'higher' quantiles so +-inf samples stay exact."""
    samples = np.asarray(samples, dtype=np.float64)
    alpha = (1.0 - confidence) / 2.0
    with np.errstate(invalid="ignore"):
        low = np.quantile(samples, alpha, axis=0, method="lower")
        high = np.quantile(samples, 1.0 - alpha, axis=0, method="higher")
    return low, high


def _basis(family: str, n: np.ndarray, theta: np.ndarray, n0: float) -> np.ndarray:
    """``x(n)`` with ``z = a - g * x``; broadcasting over ``n`` and ``theta``."""
    if family == "power":
        return np.exp(-theta * np.log1p(n / n0))
    if family == "exponential":
        return np.exp(-n / theta)
    if family == "loglinear":
        return -np.log1p(n / n0) + 0.0 * theta
    if family == "constant":
        return np.zeros(np.broadcast_shapes(np.shape(n), np.shape(theta)))
    raise ValueError(f"Unknown family {family!r}; expected one of {FAMILIES}.")


def _linear_fit(X: np.ndarray, Z: np.ndarray, P: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least squares of ``z = a - g*x`` with ``g >= 0`` along the last axis (broadcasting).

    With a precision matrix ``P`` (the inverse covariance of the points' noise) this is generalised
    least squares and ``sse`` is the chi-square ``r' P r``. Returns ``(sse, a, g)`` with the
    broadcast leading shape.
    """
    if P is None:
        xm = X.mean(axis=-1, keepdims=True)
        zm = Z.mean(axis=-1, keepdims=True)
        xc = X - xm
        zc = Z - zm
        sxx = np.sum(xc * xc, axis=-1)
        sxz = np.sum(xc * zc, axis=-1)
        szz = np.sum(zc * zc, axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.where(sxx > 1e-300, -sxz / sxx, 0.0)
        g = np.maximum(g, 0.0)
        sse = np.maximum(szz + 2.0 * g * sxz + g * g * sxx, 0.0)
        a = zm[..., 0] + g * xm[..., 0]
        return sse, a, g
    # z = a * u + g * v with u = 1, v = -x; normal equations in the metric P.
    uP = P.sum(axis=0)
    puu = float(uP.sum())
    PX, PZ = X @ P, Z @ P
    puv = -np.sum(X * uP, axis=-1)
    pvv = np.sum(X * PX, axis=-1)
    puz = np.sum(Z * uP, axis=-1)
    pvz = -np.sum(X * PZ, axis=-1)
    pzz = np.sum(Z * PZ, axis=-1)
    det = puu * pvv - puv * puv
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(det > 1e-300 * max(puu, 1.0), (puu * pvz - puv * puz) / det, 0.0)
        a_free = (pvv * puz - puv * pvz) / det
    constrained = g <= 0.0
    g = np.where(constrained, 0.0, g)
    a = np.where(constrained, puz / puu, a_free)
    sse = pzz - 2 * a * puz - 2 * g * pvz + a * a * puu + 2 * a * g * puv + g * g * pvv
    return np.maximum(sse, 0.0), a, g


# Shrinkage of the points' covariance toward its diagonal. Every point is scored on the same rows,
# so the bootstrap covariance is close to singular (nearly all its mass on "all points move
# together") and unshrunk, the fit would chase differences the resamples call exact. 5% keeps a
# difference's sd at >= ~0.3 of a point's, below the ~0.5-0.75 measured on real runs.
_COVARIANCE_SHRINKAGE = 0.01


def _precision(resamples: np.ndarray) -> np.ndarray:
    """Inverse of the points' bootstrap covariance, shrunk toward its diagonal."""
    cov = np.atleast_2d(np.cov(resamples, rowvar=False))
    diagonal = np.diag(np.maximum(np.diag(cov), 1e-300))
    shrunk = (1.0 - _COVARIANCE_SHRINKAGE) * cov + _COVARIANCE_SHRINKAGE * diagonal
    values, vectors = np.linalg.eigh((shrunk + shrunk.T) / 2.0)
    values = np.maximum(values, float(values.max()) * 1e-9)
    return (vectors / values) @ vectors.T


@dataclass
class _Fits:
    """Per-replicate fits of one family: arrays of shape (R,)."""

    a: np.ndarray
    g: np.ndarray
    theta: np.ndarray
    sse: np.ndarray


class _Problem:
    """The data-independent setup of a fit: sizes, offset, parameter bounds."""

    def __init__(self, sizes: np.ndarray, n0: float, precision: np.ndarray | None = None) -> None:
        self.sizes = sizes
        self.n0 = float(n0)
        self.P = precision
        positive = sizes[sizes > 0]
        smallest = float(positive.min())
        largest = float(sizes.max())
        self.theta_bounds = {
            "power": _POWER_EXPONENT_BOUNDS,
            "exponential": (smallest / 20.0, largest * 20.0),
        }

    def grid(self, family: str) -> np.ndarray:
        lo, hi = self.theta_bounds[family]
        return np.linspace(math.log(lo), math.log(hi), _COARSE)

    def fit(self, family: str, Z: np.ndarray) -> _Fits:
        """Vectorised profile fit of ``family`` to each row of ``Z`` (shape (R, m))."""
        n = self.sizes
        R = Z.shape[0]
        if family in ("loglinear", "constant"):
            X = _basis(family, n, np.zeros(1), self.n0)[None, :]
            sse, a, g = _linear_fit(X, Z, self.P)
            if family == "constant":
                if self.P is None:
                    a = Z.mean(axis=1)
                    sse = np.sum((Z - a[:, None]) ** 2, axis=1)
                else:
                    uP = self.P.sum(axis=0)
                    a = (Z @ uP) / float(uP.sum())
                    resid = Z - a[:, None]
                    sse = np.sum(resid * (resid @ self.P), axis=1)
                g = np.zeros(R)
            return _Fits(a=a, g=g, theta=np.full(R, np.nan), sse=sse)

        tg = self.grid(family)
        X = _basis(family, n[None, :], np.exp(tg)[:, None], self.n0)  # (G, m)
        sse, _, _ = _linear_fit(X[None, :, :], Z[:, None, :], self.P)  # (R, G)
        j = np.argmin(sse, axis=1)
        G = tg.size
        t_lo = tg[np.clip(j - 1, 0, G - 1)]
        t_hi = tg[np.clip(j + 1, 0, G - 1)]
        tf = t_lo[:, None] + (t_hi - t_lo)[:, None] * np.linspace(0.0, 1.0, _FINE)[None, :]  # (R, F)
        Xf = _basis(family, n[None, None, :], np.exp(tf)[:, :, None], self.n0)  # (R, F, m)
        sse_f, a_f, g_f = _linear_fit(Xf, Z[:, None, :], self.P)
        rows = np.arange(R)
        k = np.argmin(sse_f, axis=1)
        best_t, best_sse = tf[rows, k], sse_f[rows, k]
        best_a, best_g = a_f[rows, k], g_f[rows, k]
        # One parabolic step on the fine grid.
        kk = np.clip(k, 1, _FINE - 2)
        s0, s1, s2 = sse_f[rows, kk - 1], sse_f[rows, kk], sse_f[rows, kk + 1]
        h = tf[:, 1] - tf[:, 0]
        denom = s0 - 2.0 * s1 + s2
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(denom > 0, 0.5 * h * (s0 - s2) / denom, 0.0)
        step = np.clip(np.nan_to_num(step), -h, h)
        lo, hi = tg[0], tg[-1]
        tp = np.clip(tf[rows, kk] + step, lo, hi)
        Xp = _basis(family, n[None, :], np.exp(tp)[:, None], self.n0)
        sse_p, a_p, g_p = _linear_fit(Xp, Z, self.P)
        better = sse_p < best_sse
        best_t = np.where(better, tp, best_t)
        best_sse = np.where(better, sse_p, best_sse)
        best_a = np.where(better, a_p, best_a)
        best_g = np.where(better, g_p, best_g)
        return _Fits(a=best_a, g=best_g, theta=np.exp(best_t), sse=best_sse)

    def polish(self, family: str, z: np.ndarray, start: _Fits) -> _Fits:
        """Refine a single fit with scipy's bounded least squares, restarting from profile minima."""
        if family not in SATURATING:
            return start
        from scipy.optimize import least_squares

        n = self.sizes
        lo, hi = (math.log(b) for b in self.theta_bounds[family])
        tg = self.grid(family)
        X = _basis(family, n[None, :], np.exp(tg)[:, None], self.n0)
        prof, prof_a, prof_g = _linear_fit(X, z[None, :], self.P)
        # Restarts: the profile's best local minima (at most 3) plus the refined profile fit.
        interior = np.r_[True, prof[1:] < prof[:-1]] & np.r_[prof[:-1] < prof[1:], True]
        candidates = np.flatnonzero(interior)
        candidates = candidates[np.argsort(prof[candidates])][:3]
        starts = [(float(start.a[0]), float(start.g[0]), math.log(float(start.theta[0])))]
        starts += [(float(prof_a[c]), float(prof_g[c]), float(tg[c])) for c in candidates]
        scale = max(float(np.ptp(z)), float(np.abs(z).max()) * 1e-6, 1e-12)

        # Whitened residuals: their sum of squares is the chi-square r' P r (P = C C').
        whiten = np.linalg.cholesky(self.P).T if self.P is not None else None

        def residuals(p: np.ndarray) -> np.ndarray:
            r = p[0] - p[1] * _basis(family, n, math.exp(p[2]), self.n0) - z
            return r if whiten is None else whiten @ r

        best = (float(start.sse[0]), starts[0])
        for a0, g0, t0 in starts:
            x0 = np.array([a0, max(g0, scale * 1e-9), min(max(t0, lo + 1e-9), hi - 1e-9)])
            try:
                res = least_squares(
                    residuals,
                    x0,
                    bounds=([-np.inf, 0.0, lo], [np.inf, np.inf, hi]),
                    x_scale=np.array([scale, scale, 1.0]),
                    method="trf",
                )
            except (ValueError, FloatingPointError):  # pragma: no cover - defensive
                continue
            sse = float(np.sum(res.fun**2))
            if np.isfinite(sse) and sse < best[0] * (1 - 1e-12):
                best = (sse, tuple(res.x))
        sse, (a, g, t) = best
        return _Fits(
            a=np.array([a]), g=np.array([max(g, 0.0)]), theta=np.array([math.exp(t)]), sse=np.array([sse])
        )


def _residual_inflation(m: int, k: int, confidence: float) -> float:
    """Scale for centred residuals in the residual bootstrap.

    ``sqrt(m / (m - k))`` undoes the shrinkage of fitted residuals; the ratio of Student-t to
    normal quantiles (``m - k`` degrees of freedom) accounts for estimating the noise from a
    handful of residuals, so the percentile band has about the coverage of a t-interval rather
    than the ~88% a plain residual bootstrap reaches with 7 points and 3 parameters.
    """
    if m <= k:
        return 1.0
    from scipy import stats

    q = 0.5 + confidence / 2.0
    return math.sqrt(m / (m - k)) * float(stats.t.ppf(q, m - k) / stats.norm.ppf(q))


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


def _aicc(sse: np.ndarray, m: int, k: int, scale: float) -> np.ndarray:
    if m - k - 1 <= 0:
        return np.full(np.shape(sse), np.inf)
    floor = m * (1e-9 * scale) ** 2
    return m * np.log(np.maximum(sse, floor) / m) + 2 * k + 2 * k * (k + 1) / (m - k - 1)


def _predict_z(family: str, fits: _Fits, n: np.ndarray, n0: float) -> np.ndarray:
    """Predictions of shape (R, len(n)) in gain orientation."""
    n = np.asarray(n, dtype=np.float64).reshape(-1)
    theta = np.where(np.isnan(fits.theta), 1.0, fits.theta)
    x = _basis(family, n[None, :], theta[:, None], n0)
    return fits.a[:, None] - fits.g[:, None] * x


def _n_needed(family: str, fits: _Fits, fraction: float, n0: float) -> np.ndarray | None:
    """N reaching ``fraction`` of the attainable gain (inf where the gain is 0); None if undefined."""
    if family == "power":
        out = n0 * np.expm1(-math.log1p(-fraction) / fits.theta)
    elif family == "exponential":
        out = fits.theta * -math.log1p(-fraction)
    else:
        return None
    return np.where(fits.g > 0, out, np.inf)


def _gain(family: str, fits: _Fits) -> np.ndarray:
    if family in SATURATING:
        return fits.g
    if family == "constant":
        return np.zeros_like(fits.a)
    return np.full_like(fits.a, np.inf)


class _Ensemble:
    """Bootstrap refits: every family's fit to every replicate, and which family each replicate uses.

    With selection uncertainty on, replicate ``r`` uses the family its own AICc picks (bootstrap
    model averaging, Buckland et al. 1997), so the intervals include the chance that the data
    would have picked another family; otherwise every replicate uses the selected family.
    """

    def __init__(self, fits: dict[str, _Fits], winners: np.ndarray, n0: float) -> None:
        self.fits = fits
        self.winners = winners  # (R,) array of family names
        self.n0 = n0

    def _combine(self, per_family) -> np.ndarray:
        out = None
        for fam in np.unique(self.winners):
            rows = self.winners == fam
            values = per_family(str(fam), self.fits[str(fam)])
            if out is None:
                out = np.full((self.winners.size,) + values.shape[1:], np.nan)
            out[rows] = values[rows]
        return out

    def predict_z(self, n: Any) -> np.ndarray:
        return self._combine(lambda fam, fits: _predict_z(fam, fits, n, self.n0))

    def n_needed(self, fraction: float) -> np.ndarray:
        def per_family(fam: str, fits: _Fits) -> np.ndarray:
            out = _n_needed(fam, fits, fraction, self.n0)
            return np.full(fits.a.shape, np.inf) if out is None else out

        return self._combine(per_family)

    def gain(self) -> np.ndarray:
        return self._combine(_gain)


# --------------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class CurveFit:
    """A fitted metric-vs-finetune-size curve, its bootstrap band and the answers it supports.

    Attributes:
        family: the AICc-selected family (see the module docstring for the formulas).
        params: the family's parameters in the metric's own units: ``asymptote`` and
            ``value_at_0`` are metric values, ``gain`` (attainable improvement, >= 0) and
            ``gain_per_e_fold`` are improvements (positive = better whatever the direction),
            ``exponent``/``scale``/``offset`` are shape parameters.
        higher_is_better: the metric's direction.
        sizes, values: the data fitted (values in metric units).
        offset: ``n0`` of the power and log-linear families.
        aic_table: one row per family: ``family``, ``n_params``, ``sse``, ``aicc``, ``delta_aicc``,
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

        Returns ``available``, ``held_out_size``, ``observed``, ``predicted``, ``miss``
        (observed - predicted, metric units), ``low``/``high`` (observation interval of the
        refit), ``within_interval``, ``family`` (of the refit) and the refit's ``n_needed_90``.
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
            low, high = sub.predict_interval(largest, kind="observation")
            observed = float(values[sizes == largest].mean())
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
) -> CurveFit:
    """Fit every family to metric-vs-size, select by AICc, and bootstrap the chosen fit.

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
            own AICc selects, so intervals include model-selection uncertainty (a replicate that
            picks a non-saturating family makes the N-needed upper bound unbounded); when False
            every replicate keeps the selected family (intervals conditional on the family).

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
    overdispersion = 1.0
    if known_noise:
        # Points that scatter around the most flexible fit more than their bootstrap noise allows
        # (run-to-run noise the replicates do not hold): scale the chi-squares down (QAIC).
        richest = max(fams, key=lambda f: N_PARAMS[f])
        dof = m - N_PARAMS[richest]
        if dof > 0:
            overdispersion = max(1.0, float(fits[richest].sse[0]) / dof)

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
        if identifiable and overdispersion > 4.0:
            warnings.append(
                f"the points scatter around the fit {math.sqrt(overdispersion):.1f}x more than their bootstrap "
                "noise: run-to-run finetuning noise the replicates do not hold is likely, so the band is too "
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
    largest = float(sizes_a.max())
    below_base = _below_base(sizes_a, sign * resamples, sign, confidence) if resamples is not None else []
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
        if chosen in SATURATING:
            lo, hi = problem.theta_bounds[chosen]
            theta = float(fits[chosen].theta[0])
            name = "exponent" if chosen == "power" else "scale"
            if theta <= lo * 1.02 or theta >= hi / 1.02:
                warnings.append(
                    f"the {chosen} fit's {name} ({theta:.3g}) sits at its bound [{lo:.3g}, {hi:.3g}]: "
                    "the data do not pin the curve's shape"
                )
            n90 = float(_n_needed(chosen, fits[chosen], 0.9, n0)[0])  # type: ignore[index]
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
        decreases = _significant_decreases(sizes_a, sign * resamples, sign, confidence)
        monotone = not decreases
        if decreases:
            worst = max(decreases, key=lambda d: abs(d["change"]))
            warnings.append(
                f"the curve is not monotone: {_fmt(worst['larger'])} is significantly worse than {_fmt(worst['smaller'])} "
                f"(change {worst['change']:+.4g}, interval {worst['low']:+.4g} to {worst['high']:+.4g}); a saturating "
                "fit smooths this over, so read N-needed with care (LCDB 1.1 finds 14-15% of real learning curves "
                "non-monotone)"
            )

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
    with the noise of its nearest measured size (that column's replicate deviations, so its
    correlation with the other points is kept), refitted; the candidate with the narrowest
    expected interval (log scale) wins. A non-saturating or flat fit has no interval to narrow:
    the suggestion is then the largest candidate, the only kind of point that can show saturation.

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
        result.update(size=size, reason=(
            f"the gain has not saturated by {_fmt(largest)} ({fit.family} fits best), so only a larger size can "
            f"show where it does: measure {_fmt(size)}" if size > largest else
            f"no larger size fits in the pool; the {fit.family} fit leaves N-needed open"))
        return json_safe(result)
    positive = sizes[sizes > 0]
    kwargs = dict(fit._fit_kwargs)
    kwargs["n_boot"] = min(int(kwargs.get("n_boot", 200)), resamples.shape[0])
    for candidate in candidates:
        nearest = positive[np.argmin(np.abs(np.log(positive) - math.log(candidate)))]
        column = resamples[:, np.flatnonzero(sizes == nearest)].mean(axis=1)
        new_column = float(fit.predict(candidate)) + (column - column.mean())
        what_if = fit_curve(np.r_[sizes, candidate], np.r_[values, float(fit.predict(candidate))],
                            point_resamples=np.column_stack([resamples, new_column]), **kwargs)
        width = _log_width(what_if.answer((fraction,))[0])
        result["candidates"][str(int(candidate))] = math.exp(width) if math.isfinite(width) else None
    finite = {int(c): r for c, r in result["candidates"].items() if r is not None}
    if not finite:
        result.update(size=max(candidates), reason="no candidate bounds the interval; the largest is the most informative")
        return json_safe(result)
    best = min(finite, key=finite.get)
    result.update(size=best, expected=finite[best], reason=(
        f"measuring {_fmt(best)} is expected to narrow the N-for-{int(fraction * 100)}% interval from "
        f"{result['current']:.1f}x to {finite[best]:.1f}x (high/low)"))
    return json_safe(result)


def _remaining(fit: CurveFit, size: float) -> np.ndarray:
    """Per bootstrap refit: the improvement still to come above ``size`` (asymptote minus value there)."""
    z_at = fit._boot_z(np.array([size]))[:, 0]
    with np.errstate(invalid="ignore"):
        asymptote = fit._boot.predict_z(np.array([1e18]))[:, 0]
    return asymptote - z_at


__all__ = [
    "DEFAULT_FAMILIES",
    "FAMILIES",
    "MIN_SIZES_FOR_ANSWER",
    "CurveFit",
    "fit_curve",
    "suggest_next_size",
]
