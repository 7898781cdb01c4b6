"""A second probe (``--probes xgboost,ridge``): the ridge probe itself, the flag, the result key, the run
directory's probe views, and a tiny run that adds the ridge probe to a finished run without retraining."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from hf_finetune_curve import CurveConfig, FinetuneConfig, ProbeConfig, run_curve
from hf_finetune_curve.cli import main
from hf_finetune_curve.curve.points import CurvePoint
from hf_finetune_curve.data.sample_data import generate_listings, write_jsonl
from hf_finetune_curve.space.samples import run_samples
from hf_finetune_curve.errors import ConfigError, RunDirectoryConflictError
from hf_finetune_curve.run_dir import RunDirectory
from hf_finetune_curve.score.probe import (RIDGE_ALPHAS, PriceProbe, ProbeKind, RidgeProbe, fit_and_score, load_probe,
                                           regression_scores)

FAST = ["--probe-trees", "30", "--max-seq-length", "32", "--batch-size", "16", "--schedule", "independent",
        "--no-progress"]


# ---------------------------------------------------------------------------------------------------------------
# The ridge probe
# ---------------------------------------------------------------------------------------------------------------
def _linear_prices(rng, rows, dims=20, noise=0.05):
    X = rng.normal(size=(rows, dims))
    weights = rng.normal(scale=0.3, size=dims)
    return X, np.exp(5 + X @ weights + rng.normal(scale=noise, size=rows))


def test_ridge_probe_recovers_a_linear_signal_and_round_trips_as_json(tmp_path):
    X, y = _linear_prices(np.random.default_rng(0), 300)
    probe = RidgeProbe().fit(X[:240], y[:240])
    predicted = probe.predict(X[240:])
    assert regression_scores(y[240:], predicted)["r2_log"] > 0.95
    assert probe.alpha_ in RIDGE_ALPHAS

    path = tmp_path / "probes" / "f0.json"
    probe.save(path)
    payload = json.loads(path.read_text())  # plain JSON, no pickle
    assert len(payload["coef"]) == len(payload["mean"]) == len(payload["scale"]) == 20
    assert payload["alpha"] == probe.alpha_ and payload["config"]["target_transform"] == "log"
    for loaded in (RidgeProbe.load(path), load_probe(path)):
        assert isinstance(loaded, RidgeProbe) and loaded.alpha_ == probe.alpha_
        np.testing.assert_array_equal(loaded.predict(X[240:]), predicted)  # identical, not just close
    with pytest.raises(ValueError, match="dimensions"):
        probe.predict(X[:5, :3])
    with pytest.raises(RuntimeError, match="not fitted"):
        RidgeProbe().predict(X)

    # An XGBoost probe file is still read as one.
    xgb_path = tmp_path / "probes" / "xgb.json"
    PriceProbe(ProbeConfig(n_estimators=5)).fit(X[:240], y[:240]).save(xgb_path)
    assert isinstance(load_probe(xgb_path), PriceProbe)


def test_ridge_alpha_is_chosen_by_cross_validation_on_the_training_rows():
    rng = np.random.default_rng(1)
    X, y = _linear_prices(rng, 400, noise=0.01)
    strong = RidgeProbe().fit(X, y)
    noise_only = RidgeProbe().fit(X, np.exp(5 + rng.normal(size=400)))
    # A clean signal wants little shrinkage; targets unrelated to the embeddings want a lot (400 rows).
    assert strong.alpha_ < 10 and noise_only.alpha_ >= 1000

    # The same training rows give the same probe whatever the held-out rows are: they never choose alpha.
    X_test, y_test = _linear_prices(rng, 50)
    first = fit_and_score(X[:200], y[:200], X_test, y_test, kind="ridge")
    second = fit_and_score(X[:200], y[:200], X_test[::-1], y_test[::-1] * 3, kind="ridge")
    assert first.alpha == second.alpha == RidgeProbe().fit(X[:200], y[:200]).alpha_


def test_fit_and_score_fits_ridge_once_whatever_the_probe_seeds():
    X, y = _linear_prices(np.random.default_rng(2), 200)
    result = fit_and_score(X[:150], y[:150], X[150:], y[150:], ProbeConfig(seed=7), n_seeds=3, kind="ridge")
    assert result.kind is ProbeKind.RIDGE and isinstance(result.probe, RidgeProbe)
    assert result.seed_predictions.shape == (1, 50) and result.alpha == result.probe.alpha_
    np.testing.assert_array_equal(result.predictions, result.seed_predictions[0])
    assert result.scores["r2_log"] > 0.9
    xgb = fit_and_score(X[:150], y[:150], X[150:], y[150:], ProbeConfig(n_estimators=10), n_seeds=2)
    assert xgb.kind is ProbeKind.XGBOOST and xgb.seed_predictions.shape == (2, 50) and xgb.alpha is None
    # target_transform none fits raw prices (and may predict below 0).
    raw = fit_and_score(X[:150], y[:150], X[150:], y[150:], ProbeConfig(target_transform="none"), kind="ridge")
    assert raw.probe.config.target_transform == "none" and math.isfinite(raw.scores["r2"])


# ---------------------------------------------------------------------------------------------------------------
# The flag and the result key
# ---------------------------------------------------------------------------------------------------------------
def test_unknown_probe_is_a_config_error_naming_the_flag_before_any_work(tmp_path, capsys):
    with pytest.raises(ConfigError, match="--probes") as caught:
        CurveConfig(probes="xgboost,lasso")
    assert "'lasso'" in str(caught.value) and "xgboost, ridge" in str(caught.value)
    with pytest.raises(ConfigError, match="--probes"):
        CurveConfig(probes=" , ")
    assert CurveConfig(probes=" Ridge,xgboost,ridge").probes == "ridge,xgboost"  # canonical, a repeat dropped
    assert CurveConfig(probes=["xgboost", ProbeKind.RIDGE]).resolved_probes() == [ProbeKind.XGBOOST, ProbeKind.RIDGE]

    out = tmp_path / "never"
    assert main(["run", "--probes", "xgboost,lasso", "--output-dir", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--probes" in err and "lasso" in err and "ridge" in err
    assert not out.exists()  # refused before anything was loaded, trained or written
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "--probes LIST" in capsys.readouterr().out  # the flag comes from the config field


def test_a_secondary_probe_keeps_the_result_key_and_a_new_primary_changes_it():
    key = CurveConfig().result_key("corpus")
    assert CurveConfig(probes="xgboost,ridge").result_key("corpus") == key
    ridge_first = CurveConfig(probes="ridge").result_key("corpus")
    assert ridge_first != key
    assert CurveConfig(probes="ridge,xgboost").result_key("corpus") == ridge_first


# ---------------------------------------------------------------------------------------------------------------
# The run directory
# ---------------------------------------------------------------------------------------------------------------
def _point(size, probe="xgboost", **extras):
    return CurvePoint(size, f"f{size}", r2=0.5, mae=10.0, median_ae=8.0, n_test=40, n_probe_train=160, probe=probe,
                      extras=extras)


def test_probe_views_curve_csv_and_curve_json(tmp_path):
    run = RunDirectory(tmp_path)
    view = run.probe_view("ridge")
    assert view == RunDirectory(tmp_path / "probe-ridge")
    assert run.relative(view.point_path("f200", "tsdae")) == "probe-ridge/points/tsdae/f200.json"
    assert run.replicate(43).probe_view(ProbeKind.RIDGE).path == tmp_path / "seeds" / "seed-43" / "probe-ridge"
    with pytest.raises(ConfigError, match="--probes"):
        run.probe_view("lasso")

    view.write_point(_point(200, "ridge", ridge_alpha=10.0))
    assert view.read_points()[0].probe == "ridge" and run.read_points() == []
    point = _point(0).to_dict()
    del point["probe"]  # a point written before the field existed
    assert CurvePoint.from_dict(point).probe == "xgboost"

    run.write_curve([_point(0), _point(200)], {"title": "t", "probes": {"ridge": {"answer": {"available": False}}}},
                    probe_points={"ridge": [_point(200, "ridge", ridge_alpha=10.0), _point(0, "ridge", ridge_alpha=3.0)]})
    csv = pd.read_csv(run.curve_csv_path)
    assert list(zip(csv["probe"], csv["label"])) == [("xgboost", "f0"), ("xgboost", "f200"), ("ridge", "f0"),
                                                     ("ridge", "f200")]
    assert csv["ridge_alpha"].tolist()[2:] == [3.0, 10.0]
    curve = run.read_curve()
    assert [p.probe for p in curve.points] == ["xgboost", "xgboost"]  # curve.json's points: the primary probe's
    assert curve.summary["probes"]["ridge"]["answer"] == {"available": False}
    assert [(p.probe, p.label) for p in curve.probe_points["ridge"]] == [("ridge", "f0"), ("ridge", "f200")]

    run.write_config({"config": {}})
    run.remove_outputs()  # --overwrite
    assert not view.path.exists()


# ---------------------------------------------------------------------------------------------------------------
# A tiny run
# ---------------------------------------------------------------------------------------------------------------
def test_adding_ridge_to_a_finished_run_scores_its_checkpoints_without_retraining(tiny_model_dir, tmp_path, capsys):
    data = tmp_path / "listings.jsonl"
    write_jsonl(generate_listings(200, seed=11), data)
    out = tmp_path / "run"
    common = ["--data", str(data), "--model", str(tiny_model_dir), "--output-dir", str(out), *FAST]
    assert main(["run", "--sizes", "0,40", *common]) == 0
    run = RunDirectory(out)
    assert not run.probe_view("ridge").path.exists()
    weights = run.checkpoint_dir("f40") / "model.safetensors"
    trained = weights.stat().st_mtime_ns
    points_before = {label: run.point_path(label).stat().st_mtime_ns for label in ("f0", "f40")}
    key = run.read_config()["result_key"]
    capsys.readouterr()

    # The same run with a second probe and a new size: f0 and f40 are only probed, f80 is trained.
    assert main(["run", "--sizes", "0,40,80", "--probes", "xgboost,ridge", *common]) == 0
    printed = capsys.readouterr()
    assert weights.stat().st_mtime_ns == trained  # no retraining
    assert {label: run.point_path(label).stat().st_mtime_ns for label in points_before} == points_before
    assert run.read_config()["result_key"] == key
    assert "scoring with the ridge probe" in printed.err
    assert "Probe: ridge" in printed.out and "Do the probes agree?" in printed.out

    view = run.probe_view("ridge")
    y_test = run.read_y_test()
    for label in ("f0", "f40", "f80"):
        (point,) = [p for p in view.read_points() if p.label == label]
        assert point.probe == "ridge" and point.probe_seeds == 1 and point.extras["ridge_alpha"] in RIDGE_ALPHAS
        assert view.read_seed_predictions(label).shape == (1, len(y_test))
        assert point.r2 == pytest.approx(regression_scores(y_test, view.read_predictions(label))["r2"], abs=1e-12)
        assert isinstance(load_probe(run.resolve(point.probe_path)), RidgeProbe)
        assert point.probe_path == f"probe-ridge/probes/{label}.json"
    assert [p.finetune_tokens_seen > 0 for p in view.read_points()] == [False, True, True]

    csv = pd.read_csv(run.curve_csv_path)
    assert csv.groupby("probe")["label"].apply(list).to_dict() == {"xgboost": ["f0", "f40", "f80"],
                                                                   "ridge": ["f0", "f40", "f80"]}
    assert csv[["r2", "r2_low", "delta_r2_vs_f0"]].iloc[[4, 5]].map(math.isfinite).all().all()
    payload = json.loads(run.curve_json_path.read_text())
    assert [p["probe"] for p in payload["points"]] == ["xgboost"] * 3
    assert payload["probes_measured"] == ["xgboost", "ridge"] and "baselines" in payload
    ridge = payload["probes"]["ridge"]
    assert {"uncertainty", "fit", "answer", "warnings", "points"} <= set(ridge) and "baselines" not in ridge
    assert ridge["uncertainty"]["levels"] == ["rows"]  # one deterministic fit: no probe-seed level
    assert ridge["uncertainty"]["probe"] == "ridge" and payload["uncertainty"]["probe"] == "xgboost"
    assert [p["label"] for p in ridge["points"]] == ["f0", "f40", "f80"]
    assert all("delta_vs_f0" in p["extras"] for p in ridge["points"][1:])
    agreement = payload["probe_agreement"]
    assert agreement["probes"] == ["xgboost", "ridge"] and agreement["metric"] == "r2_log"
    section = agreement["objectives"]["mlm"]
    assert set(section["verdicts"]) == {"xgboost", "ridge"}
    assert [row["label"] for row in section["sizes"]] == ["f40", "f80"]
    for row in section["sizes"]:
        assert set(row["verdicts"].values()) <= {"gain", "loss", "flat"}
        assert row["agree"] == (row["verdicts"]["xgboost"] == row["verdicts"]["ridge"])
    assert agreement["agree"] == (section["agree"] and all(row["agree"] for row in section["sizes"]))

    # The report prints every probe, and a rerun redoes nothing.
    assert main(["report", str(out)]) == 0
    report = capsys.readouterr().out
    assert "Probe: xgboost (primary" in report and "Probe: ridge" in report and "Do the probes agree?" in report
    ridge_points = {p.name: p.stat().st_mtime_ns for p in (view.path / "points").iterdir()}
    result = run_curve(CurveConfig(data=str(data), model=str(tiny_model_dir), output_dir=str(out), sizes="0,40,80",
                                   schedule="independent", probes="xgboost,ridge",
                                   finetune=FinetuneConfig(max_seq_length=32, batch_size=16),
                                   probe=ProbeConfig(n_estimators=30)), show_progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in (view.path / "points").iterdir()} == ridge_points
    assert [p.label for p in result.probe_points["ridge"]] == ["f0", "f40", "f80"]

    # Another primary probe would change what every point means: refused, naming it.
    with pytest.raises(RunDirectoryConflictError, match="primary probe"):
        run_curve(CurveConfig(data=str(data), model=str(tiny_model_dir), output_dir=str(out), sizes="0,40,80",
                              schedule="independent", probes="ridge,xgboost",
                              finetune=FinetuneConfig(max_seq_length=32, batch_size=16),
                              probe=ProbeConfig(n_estimators=30)), show_progress=False)


def test_ridge_as_the_primary_probe_scores_the_curve(tiny_model_dir, tmp_path, capsys):
    data = tmp_path / "listings.jsonl"
    write_jsonl(generate_listings(160, seed=5), data)
    out = tmp_path / "ridge-run"
    assert main(["run", "--data", str(data), "--model", str(tiny_model_dir), "--output-dir", str(out),
                 "--sizes", "0,40", "--probes", "ridge", *FAST]) == 0
    printed = capsys.readouterr().out
    run = RunDirectory(out)
    assert not any(path.name.startswith("probe-") for path in out.iterdir())  # one probe: no views
    payload = json.loads(run.curve_json_path.read_text())
    assert [(p["probe"], p["probe_seeds"]) for p in payload["points"]] == [("ridge", 1), ("ridge", 1)]
    assert "probes" not in payload and "probe_agreement" not in payload
    assert isinstance(run.read_probe("f40"), RidgeProbe) and run.read_seed_predictions("f40").shape[0] == 1
    # A ridge fit has no seed: the answer does not call its noise unmeasured.
    assert "Intervals resample rows (not finetune seeds" in printed and "Probe: " not in printed
    assert run_samples(run).labels == ["f0", "f40"]  # the Space's samples read the ridge points
