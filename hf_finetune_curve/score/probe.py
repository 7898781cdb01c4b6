"""Downstream probes: a regressor on embeddings, scored on held-out prices.

Two kinds (:class:`ProbeKind`, ``hf-curve run --probes``): ``xgboost`` (:class:`PriceProbe`, the
default: what the embedding carries in any form a tree ensemble can read) and ``ridge``
(:class:`RidgeProbe`: ridge regression on standardised embeddings, what the embedding carries in
its geometry, which is what a nearest-neighbour search or a linear model sees).

The curve scores every checkpoint with :func:`fit_and_score`, and the ``price_regression``
``evaluate`` metric calls the same code, so a curve point and a metric call on the same split
give the same numbers.

Example:
    >>> import numpy as np
    >>> from hf_finetune_curve.score.probe import PriceProbe, ProbeConfig, regression_scores
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 8)); y = np.exp(X[:, 0] + 5)
    >>> probe = PriceProbe(ProbeConfig(n_estimators=50)).fit(X[:150], y[:150])
    >>> scores = regression_scores(y[150:], probe.predict(X[150:]))
    >>> sorted(scores)
    ['mae', 'median_ae', 'n', 'r2', 'r2_log']
    >>> ridge = fit_and_score(X[:150], y[:150], X[150:], y[150:], kind="ridge", n_seeds=3)
    >>> ridge.seed_predictions.shape, ridge.scores["r2_log"] > 0.99  # deterministic: one fit whatever n_seeds
    ((1, 50), True)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np

# ProbeConfig lives beside the other configs, the probe names and metrics in the bottom module; both re-exported.
from ..config import TARGET_TRANSFORMS, ProbeConfig
from ..cores import thread_budget
from ..errors import ConfigError
from ..names import METRICS, PROBE_NAMES, ProbeKind, parse_probe_kind, parse_probes

_META_ATTR = "hf_finetune_curve"


def resolve_xgb_device(device: str) -> str:
    """``auto``: cuda when torch sees a GPU *and* the installed XGBoost was built with CUDA.

    ``xgboost-cpu`` (the small build the ``[cpu]`` extra installs) has no CUDA: on a GPU machine it must
    still fit on the CPU rather than be asked for a device it cannot use.
    """
    if device != "auto":
        return device
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return "cpu"
    if not torch.cuda.is_available():
        return "cpu"
    return "cuda" if _import_xgboost().build_info().get("USE_CUDA", False) else "cpu"


def _import_xgboost():
    try:
        import xgboost
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "The probe needs XGBoost. Install it with `pip install 'hf-finetune-curve[cpu]'` "
            "(xgboost-cpu, small) or `pip install 'hf-finetune-curve[cuda]'` (xgboost with GPU support)."
        ) from exc
    return xgboost


def validate_embeddings(embeddings: Any, name: str = "embeddings") -> np.ndarray:
    """Return ``embeddings`` as a finite 2-D float array, or raise ``ValueError`` saying what is wrong."""
    if isinstance(embeddings, np.ndarray):
        array = embeddings
    else:
        rows = list(embeddings)
        if rows and not np.isscalar(rows[0]):
            lengths = {len(row) for row in rows}
            if len(lengths) > 1:
                raise ValueError(
                    f"{name} must all have the same dimension; got rows of lengths {sorted(lengths)[:5]}."
                )
        array = np.asarray(rows)
    if array.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array (rows x dimensions); got an array of shape {array.shape}."
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {array.shape}); expected at least one row and one dimension.")
    try:
        array = array.astype(np.float32, copy=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric; got dtype {array.dtype}.") from exc
    bad = ~np.isfinite(array)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise ValueError(f"{name} contains NaN or inf (first at row {row}); expected finite values.")
    return array


def validate_targets(targets: Any, name: str = "references", transform: str = "none") -> np.ndarray:
    """Return ``targets`` as a finite 1-D float64 array (positive when ``transform == "log"``)."""
    try:
        array = np.asarray(targets, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numbers; could not convert to float: {exc}.") from exc
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of numbers; got shape {array.shape}.")
    bad = ~np.isfinite(array)
    if bad.any():
        raise ValueError(
            f"{name} contains NaN or inf (first at index {int(np.argmax(bad))}); expected finite numbers."
        )
    if transform == "log" and (array <= 0).any():
        index = int(np.argmax(array <= 0))
        raise ValueError(
            f"{name} must be > 0 for target_transform='log'; index {index} is {float(array[index])!r}. "
            "Use target_transform='none' for targets that can be zero or negative."
        )
    return array


def _forward(targets: np.ndarray, transform: str) -> np.ndarray:
    return np.log(targets) if transform == "log" else targets


def _inverse(values: np.ndarray, transform: str) -> np.ndarray:
    # Clip before exp: a wild tree sum must not overflow to inf and poison the metrics.
    return np.exp(np.clip(values, -700.0, 700.0)) if transform == "log" else values


def _training_rows(embeddings: Any, targets: Any, transform: str, min_rows: int, what: str
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The checks every probe's ``fit`` makes: valid embeddings and targets, one target each, at least
    ``min_rows`` rows (``what`` says why), targets that vary."""
    X = validate_embeddings(embeddings, "embeddings")
    y = validate_targets(targets, "targets", transform)
    if len(X) != len(y):
        raise ValueError(f"Got {len(X)} embeddings but {len(y)} targets; expected one target per embedding.")
    if len(X) < min_rows:
        raise ValueError(f"Need at least {min_rows} rows to fit {what}; got {len(X)}.")
    if np.ptp(y) == 0:
        raise ValueError(f"targets are constant ({float(y[0])!r} for all {len(y)} rows); a regression needs variation.")
    return X, y


def _prediction_rows(embeddings: Any, n_features: int | None) -> np.ndarray:
    """Valid embeddings of the dimension a probe was fitted on."""
    X = validate_embeddings(embeddings, "embeddings")
    if X.shape[1] != n_features:
        raise ValueError(f"embeddings have {X.shape[1]} dimensions but the probe was fitted on {n_features}.")
    return X


class PriceProbe:
    """An XGBoost regressor that maps embeddings to prices, with the target transform built in.

    Follows scikit-learn's estimator shape: ``fit(X, y)`` returns the probe, ``predict(X)``
    returns prices in the target's own units.

    Example:
        >>> import numpy as np
        >>> embeddings = np.random.default_rng(0).normal(size=(60, 4))
        >>> prices = np.exp(5 + embeddings[:, 0])
        >>> probe = PriceProbe(ProbeConfig(n_estimators=10)).fit(embeddings[:50], prices[:50])
        >>> predicted = probe.predict(embeddings[50:])
        >>> predicted.shape, bool((predicted > 0).all())  # prices, in the target's units
        ((10,), True)
    """

    def __init__(self, config: ProbeConfig | None = None) -> None:
        self.config = config or ProbeConfig()
        self.booster_ = None
        self.n_features_in_: int | None = None
        self.device_ = "cpu"  # where the last fit ran (resolved from config.device)

    def _regressor(self):
        xgboost = _import_xgboost()
        cfg = self.config
        params: dict[str, Any] = dict(
            n_estimators=int(cfg.n_estimators),
            learning_rate=float(cfg.learning_rate),
            max_depth=int(cfg.max_depth),
            subsample=float(cfg.subsample),
            colsample_bytree=float(cfg.colsample_bytree),
            min_child_weight=float(cfg.min_child_weight),
            reg_lambda=float(cfg.reg_lambda),
            random_state=int(cfg.seed),
            tree_method="hist",
            device=resolve_xgb_device(cfg.device),
        )
        # Never XGBoost's own default (every core the machine reports): beside a busy core its OpenMP threads wait
        # for one another at every barrier (cores.thread_budget).
        params["n_jobs"] = thread_budget(cfg.n_jobs)
        params.update(cfg.xgb_params)
        self.device_ = str(params["device"])
        return xgboost.XGBRegressor(**params)

    def fit(self, embeddings: Any, targets: Any) -> "PriceProbe":
        X, y = _training_rows(embeddings, targets, self.config.target_transform, 2, "the probe")
        regressor = self._regressor()
        regressor.fit(X, _forward(y, self.config.target_transform))
        self.booster_ = regressor.get_booster()
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, embeddings: Any) -> np.ndarray:
        if self.booster_ is None:
            raise RuntimeError("This PriceProbe is not fitted yet: call fit() or PriceProbe.load() first.")
        X = _prediction_rows(embeddings, self.n_features_in_)
        xgboost = _import_xgboost()
        raw = self.booster_.predict(xgboost.DMatrix(X))
        return _inverse(np.asarray(raw, dtype=np.float64), self.config.target_transform)

    def save(self, path: str | os.PathLike) -> None:
        """Save as XGBoost's own JSON model (no pickle); the probe's settings ride in its attributes."""
        if self.booster_ is None:
            raise RuntimeError("Cannot save an unfitted PriceProbe.")
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        meta = {"config": asdict(self.config), "n_features_in": self.n_features_in_}
        self.booster_.set_attr(**{_META_ATTR: json.dumps(meta)})
        tmp = target.with_name(f".{target.name}.tmp{target.suffix}")
        self.booster_.save_model(str(tmp))
        os.replace(tmp, target)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PriceProbe":
        xgboost = _import_xgboost()
        booster = xgboost.Booster()
        booster.load_model(str(path))
        raw_meta = booster.attr(_META_ATTR)
        if raw_meta is None:
            raise ValueError(f"{path} is an XGBoost model but not a saved PriceProbe (no '{_META_ATTR}' attribute).")
        meta = json.loads(raw_meta)
        probe = cls(ProbeConfig.from_dict(meta["config"]))
        probe.booster_ = booster
        probe.n_features_in_ = int(meta["n_features_in"])
        return probe


# Ridge's penalty grid: from almost no shrinkage to shrinking every standardised dimension to ~0. Fixed, so
# a run's points are chosen from the same candidates, and log-spaced because the right alpha scales with the
# number of rows and dimensions over orders of magnitude.
RIDGE_ALPHAS: tuple[float, ...] = tuple(float(alpha) for alpha in np.logspace(-2, 5, 15))
_RIDGE_FORMAT = "hf_finetune_curve.ridge_probe"


class RidgeProbe:
    """Ridge regression on standardised embeddings, its penalty chosen by cross-validation, mapping
    embeddings to prices with the same target transform as :class:`PriceProbe`.

    ``fit`` standardises each dimension (scikit-learn's ``StandardScaler``) and fits ``RidgeCV`` over
    :data:`RIDGE_ALPHAS`: its efficient leave-one-out cross-validation sees the training rows only, so the
    held-out rows a point is scored on never choose the penalty. The fit is deterministic (no seed).
    Saved as plain JSON (scaler mean and scale, coefficients, intercept, alpha, config), no pickle;
    ``predict`` needs only numpy.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> embeddings = rng.normal(size=(80, 4))
        >>> prices = np.exp(5 + embeddings @ [0.5, -0.3, 0.0, 0.2])
        >>> probe = RidgeProbe().fit(embeddings[:60], prices[:60])
        >>> predicted = probe.predict(embeddings[60:])
        >>> predicted.shape, bool(np.allclose(predicted, prices[60:], rtol=0.05)), probe.alpha_ in RIDGE_ALPHAS
        ((20,), True, True)
    """

    def __init__(self, config: ProbeConfig | None = None, alphas: Sequence[float] = RIDGE_ALPHAS) -> None:
        self.config = config or ProbeConfig()
        self.alphas = tuple(float(alpha) for alpha in alphas)
        if not self.alphas or any(not (math.isfinite(alpha) and alpha > 0) for alpha in self.alphas):
            raise ConfigError(f"ridge alphas must be finite and > 0; got {list(alphas)!r}.")
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None
        self.coef_: np.ndarray | None = None
        self.intercept_: float = 0.0
        self.alpha_: float | None = None
        self.n_features_in_: int | None = None

    def fit(self, embeddings: Any, targets: Any) -> "RidgeProbe":
        from sklearn.linear_model import RidgeCV
        from sklearn.preprocessing import StandardScaler

        X, y = _training_rows(embeddings, targets, self.config.target_transform, 3,
                              "the ridge probe (leave-one-out CV)")
        X = X.astype(np.float64)
        scaler = StandardScaler().fit(X)  # a constant dimension gets scale 1: it stays 0, not NaN
        ridge = RidgeCV(alphas=self.alphas).fit(scaler.transform(X), _forward(y, self.config.target_transform))
        self.mean_, self.scale_ = np.asarray(scaler.mean_, np.float64), np.asarray(scaler.scale_, np.float64)
        self.coef_, self.intercept_ = np.asarray(ridge.coef_, np.float64), float(ridge.intercept_)
        self.alpha_ = float(ridge.alpha_)
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, embeddings: Any) -> np.ndarray:
        if self.coef_ is None:
            raise RuntimeError("This RidgeProbe is not fitted yet: call fit() or RidgeProbe.load() first.")
        X = _prediction_rows(embeddings, self.n_features_in_).astype(np.float64)
        raw = ((X - self.mean_) / self.scale_) @ self.coef_ + self.intercept_
        return _inverse(raw, self.config.target_transform)

    def to_dict(self) -> dict[str, Any]:
        if self.coef_ is None:
            raise RuntimeError("Cannot save an unfitted RidgeProbe.")
        return {"format": _RIDGE_FORMAT, "version": 1, "config": asdict(self.config), "alphas": list(self.alphas),
                "alpha": self.alpha_, "n_features_in": self.n_features_in_, "mean": self.mean_.tolist(),
                "scale": self.scale_.tolist(), "coef": self.coef_.tolist(), "intercept": self.intercept_}

    def save(self, path: str | os.PathLike) -> None:
        """Save as JSON (no pickle); Python's float repr round-trips, so a loaded probe predicts identically."""
        from ..io_utils import write_json_atomic

        write_json_atomic(Path(path), self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "RidgeProbe":
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(payload, dict) or payload.get("format") != _RIDGE_FORMAT:
            raise ValueError(f"{path} is not a saved RidgeProbe (no format {_RIDGE_FORMAT!r}).")
        probe = cls(ProbeConfig.from_dict(payload["config"]), alphas=payload["alphas"])
        probe.alpha_ = float(payload["alpha"])
        probe.n_features_in_ = int(payload["n_features_in"])
        probe.mean_, probe.scale_, probe.coef_ = (np.asarray(payload[key], dtype=np.float64)
                                                  for key in ("mean", "scale", "coef"))
        probe.intercept_ = float(payload["intercept"])
        return probe


AnyProbe = Union[PriceProbe, RidgeProbe]


def load_probe(path: str | os.PathLike) -> AnyProbe:
    """A saved probe of either kind: a :class:`RidgeProbe`'s JSON names its format, anything else is read as
    a :class:`PriceProbe` (XGBoost's own JSON model)."""
    try:
        with open(path, encoding="utf-8") as handle:
            head = handle.read(4096)
    except UnicodeDecodeError:  # XGBoost's binary UBJSON
        head = ""
    return RidgeProbe.load(path) if _RIDGE_FORMAT in head else PriceProbe.load(path)


# Every metric the curve reports: key, display name, higher is better. The one definition.
def regression_scores(y_true: Sequence[float], y_pred: Sequence[float]) -> dict[str, float]:
    """R², mean and median absolute error, identical to scikit-learn's ``r2_score``,
    ``mean_absolute_error`` and ``median_absolute_error``, and ``r2_log``: R² of the log
    predictions against the log targets (NaN unless every target and prediction is positive).

    Raw R² on prices is dominated by the few most expensive rows; ``r2_log`` weighs every row's
    relative error alike.
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has shape {y_true.shape} but y_pred has {y_pred.shape}; expected equal shapes.")
    if len(y_true) < 2:
        raise ValueError(f"Need at least 2 rows to score; got {len(y_true)}.")
    errors = np.abs(y_true - y_pred)
    return {
        "r2": _r2(y_true, y_pred),
        "r2_log": log_r2(y_true, y_pred),
        "mae": float(np.mean(errors)),
        "median_ae": float(np.median(errors)),
        "n": int(len(y_true)),
    }


def log_r2(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """R² of ``log(y_pred)`` against ``log(y_true)``; NaN unless all of both are positive."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if not (np.all(y_true > 0) and np.all(y_pred > 0)):
        return float("nan")
    return _r2(np.log(y_true), np.log(y_pred))


def _r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    ss_res = float(np.sum((y_true - y_pred) ** 2))
    ss_tot = float(np.sum((y_true - y_true.mean()) ** 2))
    if ss_tot == 0.0:
        # scikit-learn's convention for a constant y_true.
        return 1.0 if ss_res == 0.0 else 0.0
    return float(1.0 - ss_res / ss_tot)


# Probe seed k of a checkpoint is seed + k * PROBE_SEED_STRIDE: the first is the run's own seed (as
# with one probe), and the strides keep them apart from the finetune replicates' seeds (seed + 1, ...).
PROBE_SEED_STRIDE = 10_000


def probe_seeds(seed: int, count: int) -> list[int]:
    """The XGBoost seeds of ``count`` probe fits for a run seeded with ``seed``.

    Example:
        >>> probe_seeds(42, 3)
        [42, 10042, 20042]
    """
    if int(count) < 1:
        raise ValueError(f"count must be >= 1, got {count}.")
    return [int(seed) + k * PROBE_SEED_STRIDE for k in range(int(count))]


@dataclass
class ProbeResult:
    """A fitted probe, its held-out predictions and scores.

    With several probe seeds, ``probe`` is the first seed's fit, ``predictions`` the mean of every
    seed's predictions (what ``scores`` score) and ``seed_predictions`` their ``(n_seeds, n_test)``
    matrix. ``alpha``: the penalty cross-validation chose (ridge only).
    """

    probe: AnyProbe
    predictions: np.ndarray
    scores: dict[str, float]
    seed_predictions: np.ndarray | None = None
    kind: ProbeKind = ProbeKind.XGBOOST
    alpha: float | None = None
    device: str = "cpu"  # where the fits ran: XGBoost's CPU and CUDA histograms round differently


PROBE_DEVICE = "probe_device"  # a point's extras key: where its probe was fitted


def mixed_probe_devices(points: Sequence[Any], device: str) -> list[str]:
    """Labels of earlier points (``CurvePoint``-like, with ``extras``) whose probe ran on another device than
    ``device``; points from before the field was recorded are not counted.

    >>> class P:
    ...     def __init__(self, label, device): self.label, self.extras = label, {PROBE_DEVICE: device}
    >>> mixed_probe_devices([P("f0", "cuda"), P("f50", "cpu")], "cpu")
    ['f0']
    """
    return [p.label for p in points if p.extras.get(PROBE_DEVICE) not in (None, device)]


def fit_and_score(
    train_embeddings: Any,
    train_targets: Any,
    test_embeddings: Any,
    test_targets: Any,
    config: ProbeConfig | None = None,
    *,
    n_seeds: int = 1,
    kind: str | ProbeKind = ProbeKind.XGBOOST,
) -> ProbeResult:
    """Fit a probe of ``kind`` on the train split and score it on the test split.

    ``xgboost``: a :class:`PriceProbe`; with ``n_seeds > 1`` it is fitted once per seed of
    :func:`probe_seeds` (starting at ``config.seed``) and the scores are those of the averaged
    predictions: one XGBoost fit's seed moves R² by about as much as the effects a curve measures.
    ``ridge``: a :class:`RidgeProbe`, deterministic, so it is fitted once whatever ``n_seeds`` is
    (``seed_predictions`` has one row).
    """
    config = config or ProbeConfig()
    kind = parse_probe_kind(kind)
    y_test = validate_targets(test_targets, "test targets")
    probes, seed_predictions = [], []
    # A seed would change nothing in a ridge fit: repeating it would only pretend to measure probe noise.
    seeds = probe_seeds(config.seed, n_seeds) if kind is ProbeKind.XGBOOST else [config.seed]
    for seed in seeds:
        fitted = PriceProbe(dataclasses.replace(config, seed=seed)) if kind is ProbeKind.XGBOOST else \
            RidgeProbe(config)
        fitted.fit(train_embeddings, train_targets)
        predictions = fitted.predict(test_embeddings)
        if len(predictions) != len(y_test):
            raise ValueError(f"Got {len(predictions)} test embeddings but {len(y_test)} test targets.")
        probes.append(fitted)
        seed_predictions.append(predictions)
    probe = probes[0]
    stacked = np.stack(seed_predictions)
    predictions = stacked.mean(axis=0)
    scores = regression_scores(y_test, predictions)
    if not all(math.isfinite(scores[key]) for key in ("r2", "mae", "median_ae")):
        raise ValueError(f"Probe scores are not finite: {scores}.")
    return ProbeResult(probe=probe, predictions=predictions, scores=scores, seed_predictions=stacked, kind=kind,
                       alpha=getattr(probe, "alpha_", None), device=getattr(probe, "device_", "cpu"))
