"""The TF-IDF bag-of-words baseline (hf_finetune_curve.score.baselines)."""

from __future__ import annotations

import doctest
import json
import math

import numpy as np
import pytest

from hf_finetune_curve.score import baselines
from hf_finetune_curve.score.baselines import BaselineResult, tfidf_baseline
from hf_finetune_curve.score.probe import ProbeConfig, ProbeResult, regression_scores

# One thread: on a busy 2-core machine XGBoost with 2 threads was several times slower.
FAST = ProbeConfig(n_estimators=60, max_depth=4, n_jobs=1)

PRICE_WORDS = {"penthouse": 400.0, "villa": 250.0, "ocean": 120.0, "pool": 80.0, "shared": -40.0, "hostel": -50.0}
FILLER = [f"w{i}" for i in range(20)]


def _corpus(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Listing-like texts whose price is driven by a few words plus multiplicative noise."""
    rng = np.random.default_rng(seed)
    keys = list(PRICE_WORDS)
    texts, prices = [], []
    for _ in range(n):
        chosen = rng.choice(keys, size=rng.integers(0, 3), replace=False).tolist()
        words = chosen + rng.choice(FILLER, size=4).tolist()
        rng.shuffle(words)
        texts.append(" ".join(words))
        price = 100.0 + sum(PRICE_WORDS[w] for w in chosen)
        prices.append(max(price, 20.0) * rng.lognormal(0.0, 0.1))
    return texts, np.array(prices)


def test_doctests() -> None:
    result = doctest.testmod(baselines, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_tfidf_baseline_beats_a_constant_predictor() -> None:
    train_texts, train_y = _corpus(600, seed=0)
    test_texts, test_y = _corpus(200, seed=1)
    result = tfidf_baseline(train_texts, train_y, test_texts, test_y, probe_config=FAST, n_components=32)
    assert isinstance(result, BaselineResult) and isinstance(result, ProbeResult)
    assert result.name == "tfidf-svd" and result.svd is not None
    assert result.n_components == 32 and result.n_terms > 32
    for key in ("r2", "mae", "median_ae"):
        assert math.isfinite(result.scores[key])
    assert result.scores["n"] == 200
    constant = regression_scores(test_y, np.full(test_y.shape, np.median(train_y)))
    assert result.scores["mae"] < 0.7 * constant["mae"]
    assert result.scores["median_ae"] < constant["median_ae"]
    assert result.scores["r2"] > 0.4 > constant["r2"]
    # The stored predictions are the probe's on the test texts, and the pipeline reproduces them.
    assert result.predictions.shape == (200,)
    assert np.allclose(result.predict(test_texts), result.predictions)
    assert result.transform(test_texts[:3]).shape == (3, 32)
    summary = result.to_dict()
    json.dumps(summary, allow_nan=False)
    assert set(summary["seconds"]) == {"tfidf", "svd", "probe"}


def test_min_df_falls_back_when_it_would_prune_every_term() -> None:
    # Every word occurs once: min_df=2 would leave no vocabulary at all.
    train = [f"alpha{i} beta{i}" for i in range(40)]
    y = np.random.default_rng(2).lognormal(5.0, 0.3, 40)
    result = tfidf_baseline(train, y, train[:10], y[:10], probe_config=FAST, min_df=2, n_components=16)
    assert result.name == "tfidf-svd" and result.n_components == 16
    assert result.n_terms == 120  # 80 unigrams + 40 bigrams
    assert all(math.isfinite(result.scores[k]) for k in ("r2", "mae", "median_ae"))


def test_small_vocabulary_uses_dense_tfidf() -> None:
    train = ["villa pool" if i % 2 else "shared room" for i in range(40)]
    y = np.array([300.0 if i % 2 else 60.0 for i in range(40)]) * np.random.default_rng(3).lognormal(0, 0.05, 40)
    result = tfidf_baseline(train, y, train[:10], y[:10], probe_config=FAST)
    assert result.name == "tfidf" and result.svd is None
    assert result.n_components == result.n_terms == 6
    assert result.transform(["villa pool"]).shape == (1, 6)
    assert result.scores["r2"] > 0.9


def test_no_leakage_vectoriser_sees_only_train_texts() -> None:
    train_texts, train_y = _corpus(200, seed=3)
    result = tfidf_baseline(
        train_texts, train_y, ["zzzunseen words only"] * 5, np.full(5, 100.0), probe_config=FAST, n_components=16
    )
    assert "zzzunseen" not in result.vectorizer.vocabulary_


def test_input_validation() -> None:
    texts, y = _corpus(30, seed=4)
    with pytest.raises(ValueError):
        tfidf_baseline(texts, y[:-1], texts, y, probe_config=FAST)
    with pytest.raises(ValueError):
        tfidf_baseline(texts, y, texts[:5], y, probe_config=FAST)
    with pytest.raises(ValueError):
        tfidf_baseline("one string", [1.0], texts, y, probe_config=FAST)
    with pytest.raises(ValueError):
        tfidf_baseline(texts[:-1] + [3], y, texts, y, probe_config=FAST)
    with pytest.raises(ValueError):
        tfidf_baseline(texts, -y, texts, y, probe_config=FAST)  # log target needs prices > 0
