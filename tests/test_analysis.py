import numpy as np

from hf_finetune_curve.curve.analysis import analyze_curve, answer_lines
from hf_finetune_curve.curve.points import CurvePoint, format_table
from hf_finetune_curve.data.subsets import size_label
from hf_finetune_curve.run_dir import RunDirectory
from hf_finetune_curve.score.probe import regression_scores


def _curve(sizes, seed=0, n_test=3000):
    """Predictions whose error shrinks along a saturating curve in finetune size."""
    rng = np.random.default_rng(seed)
    y = rng.lognormal(10, 0.6, size=n_test)
    shared = rng.normal(size=n_test)
    points, predictions = [], {}
    for size in sizes:
        noise = 0.35 + 0.25 * np.exp(-size / 3000)  # error std falls from 0.60 to 0.35
        pred = y * np.exp(noise * shared)
        label = size_label(size)
        scores = regression_scores(y, pred)
        points.append(CurvePoint(finetune_size=size, label=label, r2=scores["r2"], mae=scores["mae"],
                                 median_ae=scores["median_ae"], n_test=n_test, n_probe_train=0))
        predictions[label] = pred
    return points, y, predictions


def test_saturating_curve_gets_an_answer_with_intervals(tmp_path):
    points, y, predictions = _curve([0, 500, 1000, 2000, 4000, 8000, 16000])
    summary = analyze_curve(points, y, predictions, n_resamples=300, seed=0, answer_metric="r2")
    assert summary["answer"]["available"]
    n90 = summary["answer"]["n_for_90"]
    assert n90["n_needed"] is not None and n90["low"] <= n90["n_needed"]
    assert 2000 < n90["n_needed"] < 16000  # true value for exp(-n/3000) in R² terms lies in here
    assert summary["answer"]["backtest"]["available"]
    last = points[-1].extras
    assert last["intervals"]["r2"]["low"] <= points[-1].r2 <= last["intervals"]["r2"]["high"]
    assert last["delta_vs_f0"]["r2"]["better"] is True
    assert last["delta_vs_f0"]["mae"]["better"] is True
    lines = answer_lines(summary)
    assert any(line.startswith("N for 90% of the attainable R² gain:") for line in lines)
    RunDirectory(tmp_path).write_curve(points, summary)
    assert "r2_low" in (tmp_path / "curve.csv").read_text().splitlines()[0]
    assert RunDirectory(tmp_path).read_curve().summary["answer"]["n_for_90"]["n_needed"] == n90["n_needed"]
    assert "R² 95% CI" in format_table(points)


def test_three_sizes_warn_and_give_no_point_estimate():
    points, y, predictions = _curve([0, 1000, 8000])
    summary = analyze_curve(points, y, predictions, n_resamples=200)
    assert any("not identifiable" in warning for warning in summary["warnings"])
    answer = summary["answer"]
    assert not answer.get("available") or answer["n_for_90"]["n_needed"] is None
    assert any(line.startswith("warning:") for line in answer_lines(summary))


def test_identical_checkpoints_give_a_delta_interval_containing_zero():
    points, y, predictions = _curve([0, 0])
    points[1] = CurvePoint(**{**points[1].to_dict(), "finetune_size": 10, "label": "f10"})
    predictions["f10"] = predictions["f0"].copy()
    analyze_curve(points, y, predictions, n_resamples=200)
    delta = points[1].extras["delta_vs_f0"]["r2"]
    assert delta["low"] <= 0 <= delta["high"] and delta["better"] is None


def test_answer_reads_the_answer_metric_and_names_the_next_size():
    points, y, predictions = _curve([0, 250, 500, 1000, 2000])  # still rising at 2,000 (scale 3,000)
    summary = analyze_curve(points, y, predictions, n_resamples=300, seed=0, pool_size=9000)
    answer = summary["answer"]
    assert answer["metric"] == "r2_log" and answer["selection"] == "aic_known_noise"
    assert summary["uncertainty"]["levels"] == ["rows"]  # one probe fit, one finetune seed per point
    next_size = answer["next_size"]
    assert next_size["available"] and set(next_size["candidates"]) and max(map(int, next_size["candidates"])) <= 9000
    lines = answer_lines(summary)
    assert "Intervals resample rows (not probe seeds or finetune seeds: one of each, so their noise is not measured)." in lines
    assert any(line.startswith("Fitted R² (log price) curve:") for line in lines)
    if next_size["size"] is not None:
        assert any(line.startswith(f"Next size to measure: {next_size['size']:,.0f}") for line in lines)
    else:  # the interval is already narrow: no what-if narrows it materially, and the line says so
        assert any(line.startswith("Next size: none suggested (no candidate size is expected to narrow")
                   for line in lines)


def test_answer_falls_back_to_r2_when_log_r2_is_undefined():
    points, y, predictions = _curve([0, 250, 500, 1000, 2000])
    predictions["f250"] = predictions["f250"].copy()
    predictions["f250"][0] = -1.0  # a raw-price probe can predict below 0: no log R² there
    summary = analyze_curve(points, y, predictions, n_resamples=200, seed=0)
    assert summary["answer"]["metric"] == "r2" and "r2_log" not in summary["fit"]
    assert any("answer uses r2 instead" in warning for warning in summary["warnings"])


def test_a_curve_below_the_factory_model_is_answered_as_hurts():
    """Every finetuned size worse than f0 (the 120k GPU reference run): the report says finetuning hurts,
    and prints no gain per 10k texts and no extrapolation from a flat line that sits between the points."""
    points, y, predictions = _curve([0, 500, 1000, 2000, 4000])
    rng = np.random.default_rng(3)
    for point in points[1:]:  # each finetuned size: f0's error plus its own extra error
        pred = predictions["f0"] * np.exp(0.25 * rng.normal(size=len(y)))
        predictions[point.label] = pred
        point.r2 = regression_scores(y, pred)["r2"]
    summary = analyze_curve(points, y, predictions, n_resamples=300, seed=0, pool_size=4000)
    answer = summary["answer"]
    assert answer["hurts"] is True and len(answer["below_base"]) == 4
    assert answer["next_size"]["size"] is None and answer["next_size"]["hurts"]
    lines = answer_lines(summary)
    verdict = next(line for line in lines if line.startswith("Verdict on"))
    assert "hurts: worse than f0 at every measured size (500, 1,000, 2,000, 4,000)" in verdict
    assert "from 500 to 4,000 it" in verdict and "Noise behind it: rows." in verdict  # the trend between sizes
    assert answer["verdict"]["call"] == "hurts" and answer["verdict"]["provisional"] is True
    assert any(line.startswith("The verdict is provisional") and "--seeds 3" in line for line in lines)
    assert not any("no amount of this data is enough" in line for line in lines)
    assert not any(line.startswith(("Marginal", "Extrapolated")) for line in lines)
    assert not any("flat line fits best" in line for line in lines)
