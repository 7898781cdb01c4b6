# Copyright 2026 The hf-finetune-curve authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""Price regression: how well do embeddings predict a price? Scored by the hf-finetune-curve XGBoost probe."""

# Offline note (evaluate issues #473 and #567): `evaluate.load` parses this file's import lines and
# fetches every relative import (`from .x import y`) and every import tagged with a `From:` comment,
# even when the metric is loaded from a local folder. This file therefore only has plain library
# imports: loading it never needs the network. Keep it that way.
import math

import datasets
import numpy as np

import evaluate
from hf_finetune_curve import (
    ProbeConfig,
    fit_and_score,
    regression_scores,
    validate_embeddings,
    validate_targets,
)


_CITATION = """\
@software{hf_finetune_curve,
  title = {hf-finetune-curve: how much domain data is enough to MLM-finetune an embedding model?},
  year = {2026},
  note = {price_regression evaluate metric}
}
@inproceedings{chen2016xgboost,
  title = {{XGBoost}: A Scalable Tree Boosting System},
  author = {Chen, Tianqi and Guestrin, Carlos},
  booktitle = {Proceedings of the 22nd ACM SIGKDD International Conference on Knowledge Discovery and Data Mining},
  pages = {785--794},
  year = {2016}
}
"""

_DESCRIPTION = """\
Price regression scores how much price information a set of text embeddings carries. In the default
"embeddings" configuration the predictions are embedding vectors and the references are prices: the
metric fits the hf-finetune-curve XGBoost probe (log-price target by default) with shuffled, seeded
K-fold cross-validation and reports R^2, mean absolute error and median absolute error of the held-out
prices, averaged over the folds. With an explicit train/test split it gives exactly the numbers of
hf_finetune_curve.fit_and_score on that split, i.e. the numbers of a point of the finetuning curve.
In the "scalar" configuration the predictions are already predicted prices, and the metric returns
R^2, MAE and median absolute error, identical to scikit-learn's r2_score, mean_absolute_error and
median_absolute_error.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: "embeddings" configuration (default): embedding vectors, an array-like of shape
        (n_rows, n_dims) of finite numbers, stored as float32. "scalar" configuration: predicted
        prices, an array-like of shape (n_rows,).
    references: true prices, an array-like of shape (n_rows,) of finite numbers, stored as float64.
        They must be > 0 with target_transform="log".
    n_folds ("embeddings" only, default 5): number of K-fold cross-validation folds (shuffled).
        Needs at least 2 rows per fold.
    seed ("embeddings" only, default 0): seeds the fold shuffling and XGBoost; the same inputs and
        seed give the same result.
    target_transform ("embeddings" only, default "log"): "log" fits log(price) and predicts exp() of
        the fit; "none" fits raw prices (use it for targets that can be zero or negative).
    xgb_params ("embeddings" only, optional dict): probe settings. Keys that are ProbeConfig fields
        (n_estimators, learning_rate, max_depth, subsample, colsample_bytree, min_child_weight,
        reg_lambda, seed, n_jobs, device) set those fields; any other key is passed unchanged to
        xgboost.XGBRegressor.
    probe_config ("embeddings" only, optional): a hf_finetune_curve.ProbeConfig (or a dict of
        its fields) to start from, e.g. the probe settings of a curve run; xgb_params, seed and
        target_transform given explicitly override it.
    train_indices, test_indices ("embeddings" only, optional): an explicit split instead of K-fold:
        row indices of the train and test rows (give one of them and the other is the remaining
        rows). The result then equals fit_and_score on that split.
    test_mask ("embeddings" only, optional): an explicit split as a boolean array of length n_rows,
        True for test rows.

Returns:
    "embeddings" configuration with K-fold cross-validation:
        r2, mae, median_ae: means over the folds (mae and median_ae in price units);
        r2_std, mae_std, median_ae_std: standard deviations across the folds (numpy's std, ddof=0);
        fold_r2, fold_mae, fold_median_ae: the per-fold scores, in fold order;
        n_rows, n_folds.
    "embeddings" configuration with an explicit split:
        r2, mae, median_ae: scores on the test rows; n_rows, n_train, n_test.
    "scalar" configuration:
        r2, mae, median_ae (as scikit-learn computes them), n_rows.

Examples:

    >>> import numpy as np
    >>> from hf_finetune_curve.metrics import metric_path

    Predicted prices ("scalar" configuration):

    >>> price_regression = evaluate.load(metric_path(), "scalar")
    >>> results = price_regression.compute(predictions=[110.0, 95.0, 180.0, 240.0], references=[100.0, 90.0, 200.0, 250.0])
    >>> print({k: round(v, 4) for k, v in results.items()})
    {'r2': 0.9657, 'r2_log': 0.9676, 'mae': 11.25, 'median_ae': 10.0, 'n_rows': 4}

    Embedding vectors (default "embeddings" configuration, 5-fold cross-validation):

    >>> rng = np.random.default_rng(0)
    >>> embeddings = rng.normal(size=(300, 16)).astype("float32")
    >>> prices = np.exp(4.0 + embeddings[:, 0] - 0.5 * embeddings[:, 1])
    >>> price_regression = evaluate.load(metric_path())
    >>> # Toy data: 16 dimensions, 2 carry the price, so every tree sees all columns (the default
    >>> # colsample_bytree=0.5 suits 384-d sentence embeddings, where the signal is spread out).
    >>> toy = {"n_estimators": 100, "colsample_bytree": 1.0}
    >>> results = price_regression.compute(predictions=embeddings, references=prices, xgb_params=toy)
    >>> results["n_folds"], results["n_rows"], results["r2"] > 0.6
    (5, 300, True)

    An explicit split gives the same numbers as hf_finetune_curve.fit_and_score:

    >>> results = price_regression.compute(
    ...     predictions=embeddings, references=prices, test_indices=list(range(240, 300)), xgb_params=toy
    ... )
    >>> sorted(results)
    ['mae', 'median_ae', 'n_rows', 'n_test', 'n_train', 'r2', 'r2_log']
"""

EMBEDDINGS = "embeddings"
SCALAR = "scalar"
CONFIGS = (EMBEDDINGS, SCALAR)
DEFAULT_N_FOLDS = 5
# List offsets in the Arrow cache are int32: write at most this many floats per Arrow table.
_MAX_ARROW_LIST_VALUES = 2**31 - 1
_EMBEDDING_OPTIONS = (
    "n_folds",
    "seed",
    "target_transform",
    "xgb_params",
    "probe_config",
    "train_indices",
    "test_indices",
    "test_mask",
)
_EMBEDDINGS_NAME = "predictions (embedding vectors)"
_PRICES_NAME = "references (prices)"


def _describe(obj):
    """A short description of an input for error messages, without printing the whole array."""
    shape = getattr(obj, "shape", None)
    if shape is not None:
        return f"{type(obj).__name__} of shape {tuple(shape)}"
    try:
        return f"{type(obj).__name__} of length {len(obj)}"
    except TypeError:
        return type(obj).__name__


def embedding_matrix(predictions, name=_EMBEDDINGS_NAME):
    """Return ``predictions`` as a C-contiguous 2-D float32 array, copying only when needed.

    Raises ValueError for ragged rows, 1-D input (prices passed to the "embeddings" configuration),
    more than 2 dimensions, no dimensions, or non-numeric values. Does not check for NaN/inf.
    """
    if not isinstance(predictions, np.ndarray) and hasattr(predictions, "__array__"):
        predictions = np.asarray(predictions)  # a CPU tensor, a pandas frame, ...
    if isinstance(predictions, np.ndarray) and predictions.dtype != object:
        array = predictions
    else:
        rows = predictions if isinstance(predictions, np.ndarray) else list(predictions)
        if len(rows) and all(not np.isscalar(row) and np.ndim(row) == 1 for row in rows[:1]):
            lengths = sorted({len(row) for row in rows})
            if len(lengths) > 1:
                raise ValueError(
                    f"{name} must all have the same dimension; got rows of {len(lengths)} different lengths "
                    f"{lengths[:5]}{' ...' if len(lengths) > 5 else ''}. Expected one fixed-size embedding per row."
                )
        try:
            array = np.asarray(rows, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{name} must be numeric embedding vectors (rows x dimensions); could not convert them to "
                f"float32: {exc}"
            ) from None
    if array.ndim == 1:
        raise ValueError(
            f"{name} must be a 2-D array (rows x dimensions); got a 1-D {_describe(predictions)}. "
            "To score predicted prices, load the 'scalar' configuration: evaluate.load(path, 'scalar')."
        )
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (rows x dimensions); got an array of shape {array.shape}.")
    if array.shape[1] == 0:
        raise ValueError(f"{name} have 0 dimensions (shape {array.shape}); expected at least one dimension.")
    if array.dtype.kind not in "fiub":
        raise ValueError(f"{name} must be numeric; got dtype {array.dtype}.")
    return np.ascontiguousarray(array, dtype=np.float32)


def price_vector(references, name=_PRICES_NAME, scalar_config=False):
    """Return ``references`` as a 1-D float64 array (no NaN/inf check)."""
    try:
        array = np.asarray(references, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        hint = " For embedding vectors use the default 'embeddings' configuration." if scalar_config else ""
        raise ValueError(
            f"{name} must be numbers, one per row; could not convert {_describe(references)} to float: {exc}.{hint}"
        ) from None
    if array.ndim != 1:
        hint = " For embedding vectors use the default 'embeddings' configuration." if scalar_config and array.ndim == 2 else ""
        raise ValueError(
            f"{name} must be a 1-D sequence of numbers (one per row); got shape {array.shape}.{hint}"
        )
    return array


def _arrow_chunks(column):
    """The chunks of an Arrow column, or None when ``column`` is not Arrow data."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        return list(column.chunks)
    if isinstance(column, pa.Array):
        return [column]
    return None


def _arrow_embeddings(column, name=_EMBEDDINGS_NAME):
    """An Arrow list<float> column as a (n_rows, n_dims) float32 array: one copy, no Python objects."""
    chunks = _arrow_chunks(column)
    if chunks is None:
        return embedding_matrix(column, name)
    blocks, dims = [], set()
    for chunk in chunks:
        if chunk.null_count:
            raise ValueError(f"{name} contain missing rows (None); expected one embedding vector per row.")
        lengths = np.diff(chunk.offsets.to_numpy())
        dims.update(np.unique(lengths).tolist())
        values = chunk.flatten()
        if values.null_count:
            raise ValueError(f"{name} contain missing values (None); expected finite numbers.")
        blocks.append((values, len(chunk)))
    if len(dims) > 1:
        lengths = sorted(dims)
        raise ValueError(
            f"{name} must all have the same dimension; got rows of {len(lengths)} different lengths "
            f"{lengths[:5]}{' ...' if len(lengths) > 5 else ''}. Expected one fixed-size embedding per row."
        )
    n_dims = dims.pop() if dims else 0
    if n_dims == 0:
        raise ValueError(f"{name} have 0 dimensions; expected at least one dimension.")
    parts = [values.to_numpy(zero_copy_only=False).reshape(n_rows, n_dims) for values, n_rows in blocks]
    array = parts[0] if len(parts) == 1 else np.concatenate(parts)
    return np.ascontiguousarray(array, dtype=np.float32)


def _arrow_numbers(column, name):
    """An Arrow numeric column as a float64 array (exact for float64 storage)."""
    chunks = _arrow_chunks(column)
    if chunks is None:
        return column
    if any(chunk.null_count for chunk in chunks):
        raise ValueError(f"{name} contain missing values (None); expected finite numbers.")
    parts = [chunk.to_numpy(zero_copy_only=False) for chunk in chunks]
    if not parts:
        return np.zeros(0, dtype=np.float64)
    return np.concatenate(parts).astype(np.float64, copy=False)


def _check_same_length(n_predictions, n_references, what):
    if n_predictions != n_references:
        raise ValueError(
            f"Got {n_predictions} predictions but {n_references} references; expected one {what} per row "
            "(equal lengths)."
        )


def _probe_config(target_transform, seed, xgb_params, probe_config):
    """Build the ProbeConfig: probe_config (if any), then seed/target_transform, then xgb_params."""
    if probe_config is None:
        values = {}
    elif isinstance(probe_config, ProbeConfig):
        values = {name: getattr(probe_config, name) for name in ProbeConfig.__dataclass_fields__}
    elif isinstance(probe_config, dict):
        values = dict(probe_config)
    else:
        raise ValueError(f"probe_config must be a ProbeConfig or a dict of its fields; got {type(probe_config).__name__}.")
    values["xgb_params"] = dict(values.get("xgb_params") or {})
    if target_transform is not None:
        values["target_transform"] = target_transform
    if seed is not None:
        values["seed"] = seed
    if xgb_params is not None:
        if not isinstance(xgb_params, dict):
            raise ValueError(f"xgb_params must be a dict; got {type(xgb_params).__name__}.")
        fields = set(ProbeConfig.__dataclass_fields__) - {"xgb_params", "target_transform"}
        for key, value in xgb_params.items():
            if key in ("xgb_params", "target_transform"):
                raise ValueError(f"Pass {key!r} as its own compute() argument, not inside xgb_params.")
            if key in fields:
                values[key] = value
            else:
                values["xgb_params"][key] = value
    return ProbeConfig.from_dict(values)


def _as_indices(values, n_rows, name):
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of row indices; got shape {array.shape}.")
    if array.size and array.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integer row indices; got dtype {array.dtype}.")
    array = array.astype(np.int64, copy=False)
    if array.size and (array.min() < 0 or array.max() >= n_rows):
        bad = int(array[(array < 0) | (array >= n_rows)][0])
        raise ValueError(f"{name} must be row indices in [0, {n_rows}); got {bad}.")
    return array


def _explicit_split(n_rows, train_indices, test_indices, test_mask):
    """Train/test row indices from train_indices/test_indices or test_mask."""
    if test_mask is not None:
        if train_indices is not None or test_indices is not None:
            raise ValueError("Give either test_mask or train_indices/test_indices, not both.")
        mask = np.asarray(test_mask)
        if mask.dtype != bool:
            raise ValueError(f"test_mask must be booleans (True for test rows); got dtype {mask.dtype}.")
        if mask.shape != (n_rows,):
            raise ValueError(f"test_mask must have one entry per row ({n_rows}); got shape {mask.shape}.")
        train, test = np.flatnonzero(~mask), np.flatnonzero(mask)
    else:
        train = None if train_indices is None else _as_indices(train_indices, n_rows, "train_indices")
        test = None if test_indices is None else _as_indices(test_indices, n_rows, "test_indices")
        if train is None:
            train = np.setdiff1d(np.arange(n_rows), test)
        elif test is None:
            test = np.setdiff1d(np.arange(n_rows), train)
        else:
            overlap = np.intersect1d(train, test)
            if overlap.size:
                raise ValueError(
                    f"train_indices and test_indices share {overlap.size} row(s) (first: {int(overlap[0])}); "
                    "a held-out score needs disjoint train and test rows."
                )
    if len(train) < 2 or len(test) < 2:
        raise ValueError(
            f"The explicit split has {len(train)} train and {len(test)} test rows; expected at least 2 of each."
        )
    return train, test


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class PriceRegression(evaluate.Metric):
    """Price regression metric: XGBoost probe on embeddings ("embeddings") or scores of predicted prices ("scalar")."""

    #: Write embedding batches to evaluate's Arrow cache as one zero-copy Arrow table rather than through
    #: evaluate's generic row-by-row encoding (10-30x faster, a quarter of the peak memory or less; see the
    #: README). Set to False on an instance to use evaluate's generic path.
    fast_arrow_path = True

    def _info(self):
        config = self._config()
        if config == EMBEDDINGS:
            features = datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float32")),
                    "references": datasets.Value("float64"),
                }
            )
        else:
            features = datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("float64")}
            )
        info = evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=features,
            reference_urls=[
                "https://xgboost.readthedocs.io/en/stable/python/python_api.html#xgboost.XGBRegressor",
                "https://scikit-learn.org/stable/modules/model_evaluation.html#regression-metrics",
            ],
        )
        # _compute gets the stored columns as Arrow arrays and converts them itself: one float32
        # (n_rows, n_dims) array for the embeddings, float64 for prices. The default (Python lists) would
        # be n_rows x n_dims Python floats (gigabytes for 100k x 384), and datasets' "numpy" format casts
        # float64 prices to float32. MetricInfo only accepts a format with scalar features, hence set here.
        info.format = "arrow"
        return info

    def _config(self):
        name = self.config_name
        if name in (None, "default"):
            return EMBEDDINGS
        if name not in CONFIGS:
            raise ValueError(
                f"Unknown price_regression configuration {name!r}; expected one of {list(CONFIGS)} "
                f"(default {EMBEDDINGS!r}): evaluate.load(path, 'scalar') for predicted prices."
            )
        return name

    def compute(self, *, predictions=None, references=None, **kwargs):
        """Compute the metric on the given predictions/references, or on what add()/add_batch() stored."""
        if predictions is None and references is None and getattr(self, "writer", True) is None:
            # evaluate itself fails with an AttributeError here when keep_in_memory=True.
            raise ValueError(
                "Nothing to compute: pass predictions and references to compute(), or call add_batch()/add() first."
            )
        return super().compute(predictions=predictions, references=references, **kwargs)

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add a batch of predictions and references (checked here, so bad input fails with a clear message).

        In the "embeddings" configuration a batch is written to evaluate's Arrow cache as one Arrow table.
        """
        if kwargs:
            return super().add_batch(predictions=predictions, references=references, **kwargs)
        if self._config() == SCALAR:
            if predictions is not None and references is not None:
                predicted = price_vector(predictions, "predictions (predicted prices)", scalar_config=True)
                actual = price_vector(references, "references (true prices)")
                _check_same_length(len(predicted), len(actual), "price")
                predictions, references = predicted, actual
            return super().add_batch(predictions=predictions, references=references)

        if predictions is None or references is None:
            raise ValueError(
                "The 'embeddings' configuration needs both predictions (embedding vectors, rows x dimensions) "
                "and references (prices)."
            )
        X = embedding_matrix(predictions)
        y = price_vector(references)
        _check_same_length(len(X), len(y), "price")
        if len(X) == 0:
            raise ValueError("Got an empty batch (0 rows); expected at least one embedding and price.")
        validate_embeddings(X, _EMBEDDINGS_NAME)
        validate_targets(y, _PRICES_NAME)
        if self.fast_arrow_path and self._can_write_arrow():
            self._write_arrow(X, y)
            return None
        return super().add_batch(predictions=X, references=y)

    def _can_write_arrow(self):
        # Relies on evaluate's writer attributes (unchanged from evaluate 0.1 to 0.4.6); if a future version
        # renames them, add_batch falls back to evaluate's generic path.
        return (
            hasattr(self, "_init_writer")
            and hasattr(self, "_infer_feature_from_batch")
            and "writer" in vars(self)
            and "selected_feature_format" in vars(self)
        )

    def _write_arrow(self, X, y):
        import pyarrow as pa

        if self.writer is None:
            self.selected_feature_format = self._infer_feature_from_batch(
                {"predictions": X[:1].tolist(), "references": y[:1].tolist()}
            )
            self._init_writer()
        n_rows, n_dims = X.shape
        rows_per_table = max(1, _MAX_ARROW_LIST_VALUES // n_dims)
        for start in range(0, n_rows, rows_per_table):
            block = X[start : start + rows_per_table]
            values = pa.array(block.reshape(-1), type=pa.float32())  # zero-copy view of the float32 buffer
            offsets = pa.array(np.arange(0, block.size + 1, n_dims, dtype=np.int32))
            table = pa.table(
                {
                    "predictions": pa.ListArray.from_arrays(offsets, values),
                    "references": pa.array(y[start : start + rows_per_table], type=pa.float64()),
                }
            )
            self.writer.write_table(table)

    def _compute(self, predictions, references, **options):
        if self._config() == SCALAR:
            if options:
                raise ValueError(
                    f"The 'scalar' configuration takes no options; got {sorted(options)}. "
                    f"Options {list(_EMBEDDING_OPTIONS)} belong to the 'embeddings' configuration."
                )
            return _scalar_scores(predictions, references)
        unknown = sorted(set(options) - set(_EMBEDDING_OPTIONS))
        if unknown:
            raise ValueError(f"Unknown option(s) {unknown} for price_regression; expected some of {list(_EMBEDDING_OPTIONS)}.")
        return _embedding_scores(predictions, references, **options)


def _scalar_scores(predictions, references):
    predicted = validate_targets(_arrow_numbers(predictions, "predictions"), "predictions (predicted prices)")
    actual = validate_targets(_arrow_numbers(references, "references"), "references (true prices)")
    _check_same_length(len(predicted), len(actual), "price")
    if len(actual) < 2:
        raise ValueError(f"Need at least 2 rows to score; got {len(actual)}.")
    scores = regression_scores(actual, predicted)
    return {"r2": scores["r2"], "r2_log": scores["r2_log"], "mae": scores["mae"], "median_ae": scores["median_ae"],
            "n_rows": scores["n"]}


def _embedding_scores(
    predictions,
    references,
    n_folds=None,
    seed=None,
    target_transform=None,
    xgb_params=None,
    probe_config=None,
    train_indices=None,
    test_indices=None,
    test_mask=None,
):
    config = _probe_config(target_transform, seed, xgb_params, probe_config)
    X = validate_embeddings(_arrow_embeddings(predictions), _EMBEDDINGS_NAME)
    y = validate_targets(_arrow_numbers(references, _PRICES_NAME), _PRICES_NAME, config.target_transform)
    _check_same_length(len(X), len(y), "price")
    n_rows = len(y)
    if np.ptp(y) == 0:
        raise ValueError(
            f"{_PRICES_NAME} are constant ({float(y[0])!r} for all {n_rows} rows); the probe needs prices that vary."
        )

    explicit = train_indices is not None or test_indices is not None or test_mask is not None
    if explicit:
        if n_folds is not None:
            raise ValueError("Give either n_folds (K-fold cross-validation) or an explicit split, not both.")
        train, test = _explicit_split(n_rows, train_indices, test_indices, test_mask)
        result = fit_and_score(X[train], y[train], X[test], y[test], config)
        return {
            "r2": result.scores["r2"],
            "r2_log": result.scores["r2_log"],
            "mae": result.scores["mae"],
            "median_ae": result.scores["median_ae"],
            "n_rows": n_rows,
            "n_train": int(len(train)),
            "n_test": int(len(test)),
        }

    n_folds = DEFAULT_N_FOLDS if n_folds is None else n_folds
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise ValueError(f"n_folds must be an integer >= 2; got {n_folds!r}.")
    n_folds = int(n_folds)
    if n_rows < 2 * n_folds:
        raise ValueError(
            f"Got {n_rows} rows for n_folds={n_folds}: K-fold cross-validation needs at least 2 rows per fold "
            f"({2 * n_folds} rows). Pass more rows or a smaller n_folds."
        )
    from sklearn.model_selection import KFold

    folds = KFold(n_splits=n_folds, shuffle=True, random_state=int(config.seed))
    per_fold = {"r2": [], "r2_log": [], "mae": [], "median_ae": []}
    for index, (train, test) in enumerate(folds.split(X)):
        try:
            result = fit_and_score(X[train], y[train], X[test], y[test], config)
        except ValueError as exc:
            raise ValueError(f"Fold {index + 1} of {n_folds}: {exc}") from exc
        for key in per_fold:
            per_fold[key].append(float(result.scores[key]))
    scores = {}
    for key, values in per_fold.items():
        scores[key] = float(np.mean(values))
    for key, values in per_fold.items():
        scores[f"{key}_std"] = float(np.std(values))
    for key, values in per_fold.items():
        scores[f"fold_{key}"] = values
    scores["n_rows"] = n_rows
    scores["n_folds"] = n_folds
    if not all(math.isfinite(scores[key]) for key in ("r2", "mae", "median_ae")):
        raise ValueError(f"Probe scores are not finite: {scores}.")
    return scores
