"""Saturating-curve fits and the N-needed answer (hf_finetune_curve.curve.fit)."""

from __future__ import annotations

import doctest
import json
import math

import numpy as np
import pytest

from hf_finetune_curve.curve import fit as curve_fit
from hf_finetune_curve.curve.fit import SATURATING, CurveFit, fit_curve
from hf_finetune_curve.curve.next_size import suggest_next_size

SIZES = np.array([0, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000], dtype=float)
# Power law with asymptote, written as in the module: z = a - g * ((n + n0) / n0) ** -c.
A, G, C, N0 = 0.72, 0.12, 0.7, 1_000.0
TRUE_N90 = N0 * (10 ** (1 / C) - 1)  # ~25.8k, inside the measured range
SIGMA = 0.004  # r2 noise per point, about what 2k test rows give


def _power(n: np.ndarray) -> np.ndarray:
    return A - G * ((n + N0) / N0) ** -C


def _plain(value) -> bool:
    """True when value is made only of JSON-native Python types (no numpy, no NaN/inf)."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    if isinstance(value, float):
        return math.isfinite(value) and type(value) is float
    return value is None or type(value) in (bool, int, str)


def test_doctests() -> None:
    result = doctest.testmod(curve_fit, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("band", ["residual", "point_resamples"])
def test_recovers_true_n90_within_interval_in_most_seeds(band: str) -> None:
    truth = _power(SIZES)
    covered, asymptote_errors = 0, []
    for seed in range(50):
        rng = np.random.default_rng(seed)
        values = truth + rng.normal(0.0, SIGMA, SIZES.size)
        resamples = None
        if band == "point_resamples":
            resamples = values[None, :] + rng.normal(0.0, SIGMA, (200, SIZES.size))
        fit = fit_curve(SIZES, values, point_resamples=resamples, seed=seed)
        assert fit.band_method == band
        answer = fit.answer((0.9,))[0]
        if answer["n_needed"] is not None:
            high = math.inf if answer["high"] is None else answer["high"]
            covered += answer["low"] <= TRUE_N90 <= high
        if "asymptote" in fit.params:
            asymptote_errors.append(abs(fit.params["asymptote"] - A))
    assert covered / 50 >= 0.8
    assert len(asymptote_errors) >= 40
    assert np.median(asymptote_errors) < 0.01
    assert np.quantile(asymptote_errors, 0.9) < 0.03


def test_clean_power_curve_is_recovered_precisely() -> None:
    fit = fit_curve(SIZES, _power(SIZES) + np.random.default_rng(0).normal(0, 1e-4, SIZES.size))
    assert fit.family == "power"
    assert fit.params["asymptote"] == pytest.approx(A, abs=2e-3)
    assert fit.params["gain"] == pytest.approx(G, abs=3e-3)
    assert fit.params["exponent"] == pytest.approx(C, rel=0.05)
    assert fit.params["offset"] == 1_000.0  # n0 defaults to the smallest positive size
    ans90, ans95 = fit.answer((0.9, 0.95))
    assert ans90["n_needed"] == pytest.approx(TRUE_N90, rel=0.02)
    assert ans90["low"] <= TRUE_N90 <= ans90["high"]
    assert ans90["low"] <= ans90["n_needed"] <= ans90["high"]
    assert ans95["n_needed"] > ans90["n_needed"]
    assert ans90["beyond_data"] is False and ans95["beyond_data"] is True
    assert "extrapolated" in ans95["note"]
    table = {row["family"]: row for row in fit.aic_table}
    assert set(table) == set(curve_fit.FAMILIES)
    assert table["power"]["selected"] and table["power"]["delta"] == 0.0
    assert sum(row["weight"] for row in fit.aic_table) == pytest.approx(1.0)
    assert fit.selection_stability is not None and fit.selection_stability > 0.9


def test_three_sizes_warn_and_give_no_point_estimate() -> None:
    fit = fit_curve([0, 10_000, 20_000], [0.50, 0.58, 0.60])
    assert not fit.identifiable
    assert any("not identifiable with 3 sizes" in w for w in fit.warnings)
    for entry in fit.answer((0.9, 0.95)):
        assert entry["n_needed"] is None and entry["low"] is None and entry["high"] is None
        assert "not identifiable" in entry["reason"]
    # The fit still describes the data (not a flat line), and everything serialises.
    assert fit.family != "constant"
    assert float(fit.predict(20_000)) > float(fit.predict(0))
    data = fit.to_dict()
    assert _plain(data)
    assert data["answer"][0]["n_needed"] is None
    assert data["backtest"]["available"] is False


def test_four_sizes_still_withhold_the_answer() -> None:
    fit = fit_curve([0, 10_000, 20_000, 40_000], [0.50, 0.58, 0.60, 0.61])
    assert fit.answer()[0]["n_needed"] is None
    assert any("not identifiable with 4 sizes" in w for w in fit.warnings)


def test_non_saturating_curve_says_so_instead_of_answering() -> None:
    rng = np.random.default_rng(1)
    values = 0.5 + 0.03 * np.log1p(SIZES / 1_000) + rng.normal(0, 0.002, SIZES.size)
    fit = fit_curve(SIZES, values)
    assert fit.family == "loglinear"
    entry = fit.answer((0.9,))[0]
    assert entry["n_needed"] is None
    assert "not saturated" in entry["reason"] and "beyond the data" in entry["reason"]
    assert any("has not saturated" in w for w in fit.warnings)
    assert fit.attainable_gain()["gain"] is None  # unbounded, not a number
    marginal = fit.marginal_gain_per(10_000)
    assert marginal["improvement"] > 0 and marginal["low"] > 0


def test_flat_curve_reports_no_gain() -> None:
    rng = np.random.default_rng(2)
    fit = fit_curve(SIZES, 0.6 + rng.normal(0, 0.003, SIZES.size))
    assert fit.family == "constant"
    assert fit.answer()[0]["n_needed"] is None
    assert "no detectable gain" in fit.answer()[0]["reason"]


def test_metric_that_gets_worse_is_flagged() -> None:
    rng = np.random.default_rng(3)
    values = 0.7 - 0.01 * np.log1p(SIZES / 1_000) + rng.normal(0, 0.002, SIZES.size)
    fit = fit_curve(SIZES, values)
    assert any("gets worse" in w for w in fit.warnings)
    # With bootstrap replicates the slope is judged on them: a decline far inside their noise is not flagged.
    noise = rng.normal(0, 0.03, (300, 1)) + rng.normal(0, 0.002, (300, SIZES.size))
    assert any("gets worse" in w for w in fit_curve(SIZES, values, point_resamples=values + noise).warnings)
    loud = rng.normal(0, 0.03, (300, 1)) + rng.normal(0, 0.03, (300, SIZES.size))
    assert not any("gets worse" in w for w in fit_curve(SIZES, values, point_resamples=values + loud).warnings)


def test_lower_is_better_is_the_mirror_image() -> None:
    rng = np.random.default_rng(4)
    mae = 40.0 + 15.0 * ((SIZES + N0) / N0) ** -C + rng.normal(0, 0.2, SIZES.size)
    low_fit = fit_curve(SIZES, mae, higher_is_better=False, seed=1)
    mirror = fit_curve(SIZES, -mae, higher_is_better=True, seed=1)
    assert low_fit.family == mirror.family == "power"
    assert low_fit.params["asymptote"] == pytest.approx(40.0, abs=1.0)
    assert low_fit.params["asymptote"] == pytest.approx(-mirror.params["asymptote"])
    assert low_fit.params["gain"] == pytest.approx(mirror.params["gain"]) and low_fit.params["gain"] > 0
    assert low_fit.answer() == mirror.answer()
    assert np.allclose(low_fit.predict(SIZES), -mirror.predict(SIZES))
    low, high = low_fit.predict_interval(SIZES)
    assert np.all(low <= high)
    marginal = low_fit.marginal_gain_per(10_000)
    assert marginal["improvement"] > 0 and marginal["metric_change"] < 0  # MAE goes down


def test_bands_backtest_and_extrapolation() -> None:
    rng = np.random.default_rng(5)
    values = _power(SIZES) + rng.normal(0, SIGMA / 2, SIZES.size)
    fit = fit_curve(SIZES, values)
    grid = np.array([0.0, 5_000.0, 50_000.0, 100_000.0])
    point = fit.predict(grid)
    low, high = fit.predict_interval(grid)
    obs_low, obs_high = fit.predict_interval(grid, kind="observation")
    assert point.shape == grid.shape and np.all((low <= point) & (point <= high))
    assert np.all(obs_high - obs_low >= high - low)
    # The band widens beyond the data.
    assert (high - low)[3] > (high - low)[2]
    ext = fit.extrapolate(2.0)
    assert ext["size"] == 100_000.0
    assert ext["low"] <= ext["predicted"] <= ext["high"]
    assert ext["improvement_over_largest"] >= 0
    marginal = fit.marginal_gain_per(10_000)
    assert marginal["at_size"] == 50_000.0
    assert marginal["low"] <= marginal["improvement"] <= marginal["high"]
    bt = fit.backtest()
    assert bt["available"] and bt["held_out_size"] == 50_000.0
    assert bt["within_interval"] is True
    assert abs(bt["miss"]) < 0.01
    assert fit.backtest() is bt  # cached

    # A last point far above the trend is caught by the backtest.
    jumped = values.copy()
    jumped[-1] += 0.08
    bad = fit_curve(SIZES, jumped)
    bt_bad = bad.backtest()
    assert bt_bad["within_interval"] is False and bt_bad["miss"] > 0.05


def test_exponential_truth_is_recognised() -> None:
    rng = np.random.default_rng(6)
    sizes = np.array([0, 2_000, 5_000, 10_000, 20_000, 40_000, 80_000], dtype=float)
    values = 0.70 - 0.10 * np.exp(-sizes / 8_000) + rng.normal(0, 0.001, sizes.size)
    fit = fit_curve(sizes, values)
    assert fit.family == "exponential"
    ans = fit.answer((0.9,))[0]
    true_n90 = 8_000 * math.log(10)
    assert ans["low"] <= true_n90 <= ans["high"]


def test_to_dict_is_json_native_and_repeatable() -> None:
    rng = np.random.default_rng(7)
    values = _power(SIZES) + rng.normal(0, SIGMA, SIZES.size)
    resamples = values[None, :] + rng.normal(0, SIGMA, (100, SIZES.size))
    fit = fit_curve(SIZES, values, point_resamples=resamples, seed=3)
    assert isinstance(fit, CurveFit)
    data = fit.to_dict()
    assert _plain(data), data
    json.dumps(data, allow_nan=False)
    again = fit_curve(SIZES, values, point_resamples=resamples, seed=3).to_dict()
    assert again == data
    assert data["band_method"] == "point_resamples" and data["n_boot"] == 100


def test_offset_and_family_subset_and_conditional_intervals() -> None:
    rng = np.random.default_rng(8)
    values = _power(SIZES) + rng.normal(0, SIGMA, SIZES.size)
    fit = fit_curve(SIZES, values, families=("power",), offset=500.0, selection_uncertainty=False)
    assert fit.family == "power" and fit.offset == 500.0 and fit.params["offset"] == 500.0
    assert [row["family"] for row in fit.aic_table] == ["power"]
    assert fit.selection_stability is None
    assert fit.answer()[0]["high"] is not None


def test_input_validation() -> None:
    with pytest.raises(ValueError):
        fit_curve([0, 1, 2], [0.1, 0.2])
    with pytest.raises(ValueError):
        fit_curve([0, -1, 2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError):
        fit_curve([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError):
        fit_curve([0, 1, 2], [0.1, float("nan"), 0.3])
    with pytest.raises(ValueError):
        fit_curve(SIZES, _power(SIZES), families=("cubic",))
    with pytest.raises(ValueError):
        fit_curve(SIZES, _power(SIZES), point_resamples=np.zeros((50, 3)))
    with pytest.raises(ValueError):
        fit_curve(SIZES, _power(SIZES), n_boot=5)
    fit = fit_curve(SIZES, _power(SIZES) + 1e-3 * np.sin(SIZES))
    with pytest.raises(ValueError):
        fit.answer((1.5,))
    with pytest.raises(ValueError):
        fit.predict_interval(10.0, kind="both")


def _noisy_runs(shape: str, runs: int, seed: int):
    """Simulated 5-size curves with shared (same test rows) and per-point noise, and their replicates."""
    sizes = np.array([0.0, 500, 1000, 2000, 4000])
    if shape == "saturating":
        truth = 0.30 + 0.08 * (1 - np.exp(-sizes / 800))
    elif shape == "loglinear":
        truth = 0.30 + 0.08 * np.log1p(sizes / 500) / np.log1p(8)
    else:
        truth = np.full(5, 0.30)
    rng = np.random.default_rng(seed)
    for _ in range(runs):
        def draw(shape_):
            return rng.normal(0, 0.03, shape_[:-1] + (1,)) + rng.normal(0, 0.006, shape_)
        observed = truth + draw((5,))
        yield sizes, observed, observed + draw((400, 5))


@pytest.mark.parametrize("shape, family_ok, known_noise_min, aicc_max", [
    ("saturating", SATURATING, 0.6, 0.4),  # AICc's 3-parameter penalty at 5 sizes hides saturation
    ("loglinear", {"loglinear"}, 0.7, 1.0),
    ("flat", {"constant"}, 0.9, 1.0),
])
def test_known_noise_selection_recognises_the_shape_at_five_sizes(shape, family_ok, known_noise_min, aicc_max):
    runs = 25
    known = aicc = 0
    for sizes, observed, resamples in _noisy_runs(shape, runs, seed=len(shape)):
        known += fit_curve(sizes, observed, point_resamples=resamples, n_boot=50).family in family_ok
        aicc += fit_curve(sizes, observed, n_boot=50).family in family_ok
    assert known / runs >= known_noise_min, (known, aicc)
    assert aicc / runs <= aicc_max, (known, aicc)


def test_a_significant_drop_is_flagged_as_non_monotone():
    sizes = np.array([0.0, 500, 1000, 2000, 4000])
    rng = np.random.default_rng(5)
    observed = np.array([0.30, 0.36, 0.38, 0.33, 0.385])  # f2000 falls well below f1000
    noise = rng.normal(0, 0.03, (400, 1)) + rng.normal(0, 0.005, (400, 5))
    fit = fit_curve(sizes, observed, point_resamples=observed + noise, n_boot=50)
    assert fit.monotone is False
    assert {(d["smaller"], d["larger"]) for d in fit.decreases} >= {(1000.0, 2000.0)}
    assert any("not monotone" in warning for warning in fit.warnings)
    rising = np.array([0.30, 0.36, 0.38, 0.385, 0.39])
    smooth = fit_curve(sizes, rising, point_resamples=rising + noise, n_boot=50)
    assert smooth.monotone is True and not smooth.decreases


def test_next_size_narrows_the_interval_or_says_saturated():
    sizes = np.array([0.0, 250, 500, 1000, 2000])
    rng = np.random.default_rng(8)
    rising = 0.30 + 0.08 * (1 - np.exp(-sizes / 1500))  # still rising at 2,000
    resamples = rising + rng.normal(0, 0.02, (400, 1)) + rng.normal(0, 0.004, (400, 5))
    fit = fit_curve(sizes, rising, point_resamples=resamples, n_boot=100)
    suggestion = suggest_next_size(fit, max_size=8000)
    assert suggestion["available"] and not suggestion["saturated"]
    assert suggestion["size"] in {int(c) for c in suggestion["candidates"]} or suggestion["size"] == 8000
    if suggestion["expected"] is not None:
        assert suggestion["expected"] <= suggestion["current"]
    flat_top = 0.30 + 0.08 * (1 - np.exp(-sizes / 150))  # saturated by 1,000
    fit = fit_curve(sizes, flat_top, point_resamples=flat_top + rng.normal(0, 0.02, (400, 1))
                    + rng.normal(0, 0.004, (400, 5)), n_boot=100)
    done = suggest_next_size(fit, max_size=8000)
    assert done["saturated"] and done["size"] is None and "saturated" in done["reason"]


def test_every_size_below_the_factory_model_is_called_hurts_not_flat():
    """The 120k reference run on a GPU: f0 0.708 log R², every finetuned size 0.59-0.62. A flat line
    "fits best" there, but the answer is that finetuning makes the probe worse at every size."""
    sizes = np.array([0.0, 10_000, 20_000, 50_000, 96_000])
    observed = np.array([0.708, 0.595, 0.588, 0.609, 0.620])
    rng = np.random.default_rng(11)
    resamples = observed + rng.normal(0, 0.02, (400, 1)) + rng.normal(0, 0.006, (400, 5))
    fit = fit_curve(sizes, observed, point_resamples=resamples, n_boot=50)
    assert fit.hurts is True
    assert [entry["size"] for entry in fit.below_base] == [10_000.0, 20_000.0, 50_000.0, 96_000.0]
    assert all(entry["significant"] and entry["high"] < 0 for entry in fit.below_base)
    assert fit.warnings[0].startswith("finetuning hurts")
    assert not any("flat line fits best" in warning for warning in fit.warnings)
    assert all(entry["n_needed"] is None and entry["reason"].startswith("finetuning hurts")
               for entry in fit.answer())
    suggestion = suggest_next_size(fit, max_size=96_000)
    assert suggestion["size"] is None and suggestion["hurts"] and "factory model" in suggestion["reason"]
    assert json.loads(json.dumps(fit.to_dict()))["hurts"] is True

    # One finetuned size back at f0's level: not every size hurts, so no verdict.
    recovered = observed.copy()
    recovered[-1] = 0.705
    fit = fit_curve(sizes, recovered, point_resamples=recovered + resamples - observed, n_boot=50)
    assert fit.hurts is False and not fit.below_base[-1]["significant"]
    assert not any(warning.startswith("finetuning hurts") for warning in fit.warnings)
