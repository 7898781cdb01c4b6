"""A bag-of-words baseline scored with the same probe as the curve.

"Does finetuning help?" has a sharper twin: "does the embedding model beat a bag of words at
all?". :func:`tfidf_baseline` answers it on the curve's own split: TF-IDF (word 1-2-grams,
sublinear tf, fitted on the train texts only) reduced with TruncatedSVD (latent semantic
analysis), then the very same :func:`hf_finetune_curve.score.probe.fit_and_score` the curve uses, so
its scores sit next to the curve's points like for like.

Why SVD rather than XGBoost on the sparse TF-IDF columns: measured on 2 shared CPU cores with the
default probe (400 trees, depth 6, log target) on 8,000 train / 1,982 test real listing texts
(``../shared/data/airbnb_usd.jsonl.gz``), XGBoost on the raw 20,000 sparse columns took 417 s
and scored MAE 67.5 / median AE 32.1; on 256 SVD dimensions the probe took 166 s (+13 s SVD) and
scored MAE 66.4 / median AE 30.3; 128 dimensions took 146 s (+7 s) for MAE 67.1 / median AE
31.6. (The machine was shared, so read the ratios, not the seconds.) 256 dimensions is the
default: 2.3x faster than sparse and no worse. The probe also only takes dense arrays. When the
vocabulary is no larger than ``n_components`` (tiny corpora) the dense TF-IDF matrix is used as is.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> words = np.array(["villa", "pool", "ocean", "room", "shared", "cozy", "basic", "view"])
    >>> texts = [" ".join(rng.choice(words, 6)) for _ in range(300)]
    >>> prices = np.array([50 + 100 * t.count("villa") + 5 * t.count("cozy") for t in texts], float)
    >>> from hf_finetune_curve.score.probe import ProbeConfig
    >>> result = tfidf_baseline(texts[:200], prices[:200], texts[200:], prices[200:],
    ...                         probe_config=ProbeConfig(n_estimators=50, n_jobs=1))
    >>> result.scores["r2"] > 0.5
    True
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .probe import ProbeConfig, ProbeResult, fit_and_score, validate_targets

DEFAULT_MAX_FEATURES = 20_000
DEFAULT_N_COMPONENTS = 256


@dataclass
class BaselineResult(ProbeResult):
    """A :class:`~hf_finetune_curve.score.probe.ProbeResult` plus the fitted text featuriser.

    Attributes:
        name: ``"tfidf-svd"`` (or ``"tfidf"`` when the vocabulary was too small to reduce).
        vectorizer: the fitted ``TfidfVectorizer``.
        svd: the fitted ``TruncatedSVD`` or ``None``.
        n_terms: vocabulary size after ``max_features`` / ``min_df``.
        n_components: dimensions fed to the probe.
        seconds: wall time of ``tfidf``, ``svd`` and ``probe``.
    """

    name: str = "tfidf-svd"
    vectorizer: Any = None
    svd: Any = None
    n_terms: int = 0
    n_components: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """The probe's input features for new texts."""
        matrix = self.vectorizer.transform(_check_texts(texts, "texts"))
        features = self.svd.transform(matrix) if self.svd is not None else matrix.toarray()
        return np.asarray(features, dtype=np.float32)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Predicted prices for new texts."""
        return self.probe.predict(self.transform(texts))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (no model objects)."""
        return {
            "name": self.name,
            "scores": {k: (int(v) if k == "n" else float(v)) for k, v in self.scores.items()},
            "n_terms": int(self.n_terms),
            "n_components": int(self.n_components),
            "seconds": {k: float(v) for k, v in self.seconds.items()},
        }


def _check_texts(texts: Any, name: str) -> list[str]:
    if isinstance(texts, str):
        raise ValueError(f"{name} must be a sequence of strings, not a single string.")
    items = list(texts)
    for index, text in enumerate(items):
        if not isinstance(text, str):
            raise ValueError(f"{name}[{index}] is {type(text).__name__}, expected str.")
    if not items:
        raise ValueError(f"{name} is empty; expected at least one text.")
    return items


def tfidf_baseline(
    train_texts: Sequence[str],
    train_targets: Sequence[float],
    test_texts: Sequence[str],
    test_targets: Sequence[float],
    probe_config: ProbeConfig | None = None,
    max_features: int = DEFAULT_MAX_FEATURES,
    *,
    n_components: int = DEFAULT_N_COMPONENTS,
    ngram_range: tuple[int, int] = (1, 2),
    min_df: int | float = 2,
    seed: int = 0,
    probe_seeds: int = 1,
) -> BaselineResult:
    """Score a TF-IDF + TruncatedSVD featuriser with the curve's probe on a train/test split.

    Args:
        train_texts, train_targets: the probe's training split (the vectoriser and the SVD are
            fitted on these texts only, so nothing leaks from the test split).
        test_texts, test_targets: the held-out split to score.
        probe_config: the probe's settings; pass the curve's own for a like-for-like comparison.
        max_features: vocabulary cap (most frequent terms).
        n_components: SVD dimensions (capped at vocabulary size - 1 and train rows - 1).
        ngram_range, min_df: ``TfidfVectorizer`` options. When ``min_df`` prunes every term (tiny
            corpora) it falls back to 1.
        seed: the SVD's random state.
        probe_seeds: probe fits averaged, as for the curve's points (``--probe-seeds``).

    Returns:
        A :class:`BaselineResult` (a ``ProbeResult``: ``probe``, ``predictions``, ``scores``).

    Example:
        >>> result = tfidf_baseline(train_texts, y_train, test_texts, y_test)  # doctest: +SKIP
        >>> result.scores["mae"]  # doctest: +SKIP
    """
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    train = _check_texts(train_texts, "train_texts")
    test = _check_texts(test_texts, "test_texts")
    config = probe_config or ProbeConfig()
    y_train = validate_targets(train_targets, "train_targets", config.target_transform)
    y_test = validate_targets(test_targets, "test_targets")
    if len(train) != len(y_train):
        raise ValueError(f"Got {len(train)} train texts but {len(y_train)} train targets.")
    if len(test) != len(y_test):
        raise ValueError(f"Got {len(test)} test texts but {len(y_test)} test targets.")
    if int(max_features) < 1 or int(n_components) < 1:
        raise ValueError(f"max_features and n_components must be >= 1; got {max_features}, {n_components}.")

    seconds: dict[str, float] = {}
    start = time.perf_counter()

    def vectorizer(min_df_value: int | float) -> TfidfVectorizer:
        return TfidfVectorizer(
            ngram_range=tuple(ngram_range),
            sublinear_tf=True,
            max_features=int(max_features),
            min_df=min_df_value,
            dtype=np.float32,
        )

    vec = vectorizer(min_df)
    try:
        train_matrix = vec.fit_transform(train)
    except ValueError:
        # "After pruning, no terms remain" / "empty vocabulary": retry keeping every term.
        vec = vectorizer(1)
        try:
            train_matrix = vec.fit_transform(train)
        except ValueError as exc:
            raise ValueError(f"The train texts have no usable words for TF-IDF: {exc}") from exc
    test_matrix = vec.transform(test)
    n_terms = int(train_matrix.shape[1])
    seconds["tfidf"] = time.perf_counter() - start

    start = time.perf_counter()
    k = min(int(n_components), n_terms - 1, len(train) - 1)
    svd = None
    if n_terms > int(n_components) and k >= 1:
        svd = TruncatedSVD(n_components=k, random_state=int(seed))
        train_features = svd.fit_transform(train_matrix)
        test_features = svd.transform(test_matrix)
        name = "tfidf-svd"
    else:
        train_features = train_matrix.toarray()
        test_features = test_matrix.toarray()
        k = n_terms
        name = "tfidf"
    seconds["svd"] = time.perf_counter() - start

    start = time.perf_counter()
    result = fit_and_score(
        np.asarray(train_features, dtype=np.float32),
        y_train,
        np.asarray(test_features, dtype=np.float32),
        y_test,
        config,
        n_seeds=probe_seeds,
    )
    seconds["probe"] = time.perf_counter() - start
    return BaselineResult(
        probe=result.probe,
        predictions=result.predictions,
        scores=result.scores,
        seed_predictions=result.seed_predictions,
        name=name,
        vectorizer=vec,
        svd=svd,
        n_terms=n_terms,
        n_components=int(k),
        seconds=seconds,
    )


__all__ = ["BaselineResult", "tfidf_baseline", "DEFAULT_MAX_FEATURES", "DEFAULT_N_COMPONENTS"]
