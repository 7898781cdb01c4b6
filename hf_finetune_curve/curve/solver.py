"""The curve solver: the families' formulas, the profiled least-squares fit and the bootstrap refits.

Families are written in the *gain orientation* (``z = metric`` when higher is better, ``z = -metric``
otherwise) as ``z = a - g * x(n; theta)``: for a fixed shape ``theta`` the model is linear in
``(a, g)``, so the sum of squares is profiled on a log grid of ``theta`` (161 points, then a 41-point
local grid and a parabolic step; ``g >= 0`` in closed form) and the single fit is polished with
:func:`scipy.optimize.least_squares`. With a precision matrix (the points' bootstrap covariance,
inverted) every fit is generalised least squares and its ``sse`` is the chi-square ``r' P r``.

:mod:`hf_finetune_curve.curve.fit` builds on this; nothing here knows about warnings or wording.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

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
# together") and unshrunk, the fit would chase differences the resamples call exact. 1% keeps a
# difference of two perfectly correlated points at >= sqrt(2 * 0.01) ~ 0.14 of a point's sd, below the
# ~0.5-0.75 measured on real runs (so it only bites where the resamples claim near-exact differences).
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


