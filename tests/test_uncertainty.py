"""Bootstrap intervals, paired deltas and seed aggregation (hf_finetune_curve.curve.uncertainty)."""

from __future__ import annotations

import doctest
import json
import math
import time

import numpy as np
import pytest

from hf_finetune_curve.curve import uncertainty
from hf_finetune_curve.curve.uncertainty import (
    Interval,
    aggregate_seeds,
    bootstrap_replicates,
    bootstrap_scores,
    paired_bootstrap_delta,
    resample_indices,
)
from hf_finetune_curve.score.probe import regression_scores


def _prices(n: int, seed: int = 0, noise: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.lognormal(5.0, 0.6, size=n)
    return y, y * rng.lognormal(0.0, noise, size=n)


def test_doctests() -> None:
    result = doctest.testmod(uncertainty, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_resample_indices_is_deterministic_prefix_consistent_and_in_range() -> None:
    idx = resample_indices(100, 70, seed=3)
    assert idx.shape == (70, 100)
    assert idx.min() >= 0 and idx.max() < 100
    assert np.array_equal(idx, resample_indices(100, 70, seed=3))
    # Resample i does not depend on how many resamples were asked for.
    assert np.array_equal(resample_indices(100, 200, seed=3)[:70], idx)
    assert not np.array_equal(idx, resample_indices(100, 70, seed=4))
    # Rows are real resamples with replacement, not permutations.
    assert any(len(np.unique(row)) < 100 for row in idx)
    with pytest.raises(ValueError):
        resample_indices(1, 10, 0)
    with pytest.raises(ValueError):
        resample_indices(10, 0, 0)


def test_replicates_match_reference_scores_on_the_shared_indices() -> None:
    y, pred = _prices(300, seed=1)
    reps = bootstrap_replicates(y, pred, n_resamples=40, seed=5)
    idx = resample_indices(300, 40, seed=5)
    for row in (0, 17, 39):
        ref = regression_scores(y[idx[row]], pred[idx[row]])
        for metric in ("r2", "mae", "median_ae"):
            assert reps[metric][row] == pytest.approx(ref[metric], rel=1e-10, abs=1e-12)


def test_bootstrap_intervals_contain_estimate_and_shrink_with_more_rows() -> None:
    y_small, p_small = _prices(250, seed=2)
    y_big, p_big = _prices(4000, seed=2)
    small = bootstrap_scores(y_small, p_small, n_resamples=400, seed=0)
    big = bootstrap_scores(y_big, p_big, n_resamples=400, seed=0)
    ref = regression_scores(y_big, p_big)
    for metric in ("r2", "mae", "median_ae"):
        for result in (small, big):
            iv = result[metric]
            assert isinstance(iv, Interval)
            assert iv.low < iv.estimate < iv.high
            assert iv.n_resamples == 400 and iv.confidence == 0.95
        assert big[metric].estimate == pytest.approx(ref[metric])
        # 16x the rows: about a quarter of the width; allow generous slack.
        assert big[metric].width < 0.5 * small[metric].width
    narrow = bootstrap_scores(y_big, p_big, n_resamples=400, confidence=0.5)["mae"]
    assert narrow.width < big["mae"].width
    assert json.loads(json.dumps(big["r2"].to_dict()))["estimate"] == pytest.approx(ref["r2"])


def test_bootstrap_is_vectorised_fast_enough() -> None:
    y, pred = _prices(5000, seed=3)
    start = time.perf_counter()
    bootstrap_scores(y, pred, n_resamples=1000, seed=0)
    elapsed = time.perf_counter() - start
    # ~0.3 s on 2 cores; the bound leaves room for a busy machine.
    assert elapsed < 6.0


def test_paired_identical_predictions_give_zero_delta_and_no_verdict() -> None:
    y, pred = _prices(1000, seed=4)
    deltas = paired_bootstrap_delta(y, pred, pred.copy(), n_resamples=300)
    for metric, d in deltas.items():
        assert d.delta == 0.0
        assert d.low <= 0.0 <= d.high
        assert d.better is None
        assert d.p_value == 1.0
        assert json.dumps(d.to_dict())


def test_paired_clearly_better_predictor_is_detected_both_ways() -> None:
    rng = np.random.default_rng(5)
    y = rng.lognormal(5.0, 0.6, size=1500)
    worse = y * rng.lognormal(0.0, 0.5, size=y.size)
    better = y * rng.lognormal(0.0, 0.15, size=y.size)
    deltas = paired_bootstrap_delta(y, worse, better, n_resamples=500, seed=1)
    assert deltas["r2"].delta > 0 and deltas["r2"].low > 0
    assert deltas["mae"].delta < 0 and deltas["mae"].high < 0
    assert deltas["median_ae"].high < 0
    for d in deltas.values():
        assert d.better is True
        assert not (d.low <= 0.0 <= d.high)
        assert d.p_value < 0.01
    reverse = paired_bootstrap_delta(y, better, worse, n_resamples=500, seed=1)
    for metric, d in reverse.items():
        assert d.better is False
        assert d.delta == pytest.approx(-deltas[metric].delta)


def test_paired_delta_uses_the_same_resamples_for_both_predictors() -> None:
    rng = np.random.default_rng(6)
    y = rng.lognormal(5.0, 0.6, size=400)
    a = y * rng.lognormal(0.0, 0.3, size=y.size)
    b = 0.5 * a + 0.5 * y * rng.lognormal(0.0, 0.3, size=y.size)  # correlated with a, like two checkpoints
    reps_a = bootstrap_replicates(y, a, n_resamples=200, seed=9)
    reps_b = bootstrap_replicates(y, b, n_resamples=200, seed=9)
    deltas = paired_bootstrap_delta(y, a, b, n_resamples=200, seed=9)
    for metric in ("r2", "mae", "median_ae"):
        diffs = reps_b[metric] - reps_a[metric]
        low, high = np.quantile(diffs, [0.025, 0.975])
        assert deltas[metric].low == pytest.approx(low)
        assert deltas[metric].high == pytest.approx(high)
    # Pairing makes the delta interval much tighter than the two marginal widths suggest.
    ia = bootstrap_scores(y, a, n_resamples=200, seed=9)["mae"]
    assert deltas["mae"].high - deltas["mae"].low < ia.width + bootstrap_scores(y, b, n_resamples=200, seed=9)["mae"].width


def test_constant_truth_in_a_resample_follows_sklearn_convention() -> None:
    y = np.array([5.0, 5.0, 5.0, 5.0])
    reps = bootstrap_replicates(y, y, n_resamples=10)
    assert np.all(reps["r2"] == 1.0)
    reps = bootstrap_replicates(y, y + 1, n_resamples=10)
    assert np.all(reps["r2"] == 0.0)


def test_input_validation() -> None:
    with pytest.raises(ValueError):
        bootstrap_scores([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError):
        bootstrap_scores([1.0, np.nan, 3.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError):
        bootstrap_scores([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], confidence=1.5)
    with pytest.raises(ValueError):
        paired_bootstrap_delta([1.0, 2.0], [1.0, 2.0], [1.0])


def test_aggregate_seeds_t_interval() -> None:
    from scipy import stats

    values = [0.61, 0.64, 0.60, 0.63]
    agg = aggregate_seeds(values)
    mean, sd = np.mean(values), np.std(values, ddof=1)
    half = stats.t.ppf(0.975, 3) * sd / math.sqrt(4)
    assert agg["n"] == 4
    assert agg["mean"] == pytest.approx(mean)
    assert agg["std"] == pytest.approx(sd)
    assert agg["low"] == pytest.approx(mean - half)
    assert agg["high"] == pytest.approx(mean + half)
    assert aggregate_seeds(values, confidence=0.8)["high"] < agg["high"]
    json.dumps(agg, allow_nan=False)
    single = aggregate_seeds([0.5])
    assert single["mean"] == 0.5 and single["std"] is None and single["low"] is None
    json.dumps(single, allow_nan=False)
    with pytest.raises(ValueError):
        aggregate_seeds([])
    with pytest.raises(ValueError):
        aggregate_seeds([0.5, float("nan")])


# ---- coverage of the hierarchical bootstrap ---------------------------------------------------
# A simulated curve with known truth: held-out targets y, a factory-floor model (one "finetune
# seed") and a finetuned one (3 finetune seeds), each probed with 5 probe seeds. Predictions are
# y plus a row difficulty both models share, a model/finetune-seed error whose size varies from
# seed to seed, and a probe-seed error whose size varies from probe seed to probe seed. The
# population R² of every seed combination is known in closed form, so the expected score of the
# estimator (averaged over seeds) is the truth an interval must cover.
_N, _K, _S = 300, 5, 3
_SHARED, _BASE_ERR, _TUNED_ERR, _PROBE_ERR, _SEED_SD = 0.2, 0.3, 0.2, 0.3, 0.1


def _true_r2(probe_seeds: int, finetuned: bool) -> float:
    # E[(c * exp(N(0, sd)))^2] = c^2 exp(2 sd^2); averaging k probe seeds divides their variance by k.
    probe = _PROBE_ERR * np.exp(2 * _SEED_SD**2) / probe_seeds
    model = _TUNED_ERR * np.exp(2 * _SEED_SD**2) if finetuned else _BASE_ERR
    return 1.0 - _SHARED - model - probe


def _simulated_curve(rng: np.random.Generator):
    y, shared = rng.normal(size=_N), rng.normal(size=_N)
    base = y + np.sqrt(_SHARED) * shared + np.sqrt(_BASE_ERR) * rng.normal(size=_N)
    base = base + np.sqrt(_PROBE_ERR) * np.exp(rng.normal(0, _SEED_SD, (1, _K, 1))) * rng.normal(size=(1, _K, _N))
    seed_scale = np.sqrt(_TUNED_ERR) * np.exp(rng.normal(0, _SEED_SD, (_S, 1, 1)))
    tuned = y + np.sqrt(_SHARED) * shared + seed_scale * rng.normal(size=(_S, 1, _N))
    tuned = tuned + np.sqrt(_PROBE_ERR) * np.exp(rng.normal(0, _SEED_SD, (_S, _K, 1))) * rng.normal(size=(_S, _K, _N))
    return y, base, tuned


def test_hierarchical_intervals_cover_the_truth_where_rows_only_intervals_do_not():
    from hf_finetune_curve.curve.uncertainty import hierarchical_bootstrap

    truth_point, truth_delta = _true_r2(_K, True), _true_r2(_K, True) - _true_r2(_K, False)
    # Today's rows-only interval scores one probe fit of one finetune seed: its truth is that estimator's.
    single_point, single_delta = _true_r2(1, True), _true_r2(1, True) - _true_r2(1, False)
    covered = {"point": 0, "delta": 0, "rows_point": 0, "rows_delta": 0}
    repetitions = 100
    for rep in range(repetitions):
        y, base, tuned = _simulated_curve(np.random.default_rng(1000 + rep))
        boot = hierarchical_bootstrap(y, {"f0": base, "f300": tuned}, n_resamples=400, seed=rep)
        covered["point"] += boot.interval("r2", "f300").contains(truth_point)
        delta = boot.delta("r2", "f0", "f300")
        covered["delta"] += delta.low <= truth_delta <= delta.high
        covered["rows_point"] += bootstrap_scores(y, tuned[0, 0], n_resamples=400, seed=rep)["r2"].contains(single_point)
        rows_delta = paired_bootstrap_delta(y, base[0, 0], tuned[0, 0], n_resamples=400, seed=rep)["r2"]
        covered["rows_delta"] += rows_delta.low <= single_delta <= rows_delta.high
    rates = {key: value / repetitions for key, value in covered.items()}
    # Measured: hierarchical 1.00 (point) / 0.99 (delta), conservative; rows-only 0.84 / 0.80.
    assert rates["point"] >= 0.90 and rates["delta"] >= 0.90, rates
    assert rates["rows_delta"] < 0.90, rates


def test_hierarchical_bootstrap_with_one_seed_per_level_is_the_rows_bootstrap():
    from hf_finetune_curve.curve.uncertainty import hierarchical_bootstrap

    rng = np.random.default_rng(3)
    y = rng.lognormal(4, 0.6, 200)
    pred = y * rng.lognormal(0, 0.4, 200)
    boot = hierarchical_bootstrap(y, {"f0": pred}, n_resamples=150, seed=9)
    rows = bootstrap_replicates(y, pred, n_resamples=150, seed=9)
    assert boot.levels() == ["rows"]
    for metric in ("r2", "r2_log", "mae", "median_ae"):
        np.testing.assert_allclose(boot.replicates[metric][:, 0], rows[metric], rtol=1e-12)


def test_hierarchical_bootstrap_names_the_bad_shape():
    from hf_finetune_curve.curve.uncertainty import hierarchical_bootstrap

    with pytest.raises(ValueError, match=r"predictions\['f100'\] has shape \(2, 3, 7\)"):
        hierarchical_bootstrap(np.arange(1.0, 11.0), {"f100": np.ones((2, 3, 7))}, n_resamples=10)
