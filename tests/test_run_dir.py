"""The run directory: typed round trips of every file kind, the curve.json format version, atomic writes,
objective prefixes, and a real run fully described by :class:`RunDirectory`."""

import json
from pathlib import Path

import numpy as np
import pytest

from hf_finetune_curve.cli import main
from hf_finetune_curve.curve.points import CurvePoint
from hf_finetune_curve.data.corpus import DataReport
from hf_finetune_curve.data.sample_data import generate_listings, write_jsonl
from hf_finetune_curve.data.subsets import make_splits
from hf_finetune_curve.errors import FinetuneCurveError, NotARunDirectoryError, RunDirectoryFormatError
from hf_finetune_curve.config import CurveConfig
from hf_finetune_curve.run_dir import CURVE_FORMAT_VERSION, RunDirectory, RunRecord
from hf_finetune_curve.space.samples import run_samples

FAST = ["--probe-trees", "20", "--max-seq-length", "32", "--batch-size", "16", "--no-progress", "--min-steps", "2",
        "--head-warmup-steps", "2", "--warmup-steps", "1", "--min-cooldown-steps", "1",
        "--bootstrap-resamples", "100"]


def _point(size: int, r2: float = 0.5, **extras) -> CurvePoint:
    return CurvePoint(size, f"f{size}", r2=r2, mae=1000.0, median_ae=800.0, n_test=40, n_probe_train=160,
                      r2_log=0.6, finetune_steps=size // 10, schedule="branching", extras=dict(extras))


def _leftovers(folder: Path) -> list[str]:
    """Temporary files an atomic write would leave behind had it not cleaned up."""
    return [p.name for p in folder.rglob("*") if p.name.endswith(".tmp")]


# ---------------------------------------------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------------------------------------------
def test_config_data_report_and_splits_round_trip(tmp_path):
    run = RunDirectory(tmp_path / "run")
    assert not run.is_run and run.read_config() is None and run.read_data_report() is None
    record = {"config": {"model": "m", "data": "d.jsonl", "sizes": "0,20"}, "result_key": "abc", "labels": ["f0"]}
    run.write_config(record)
    assert run.is_run and run.read_config() == record
    assert CurveConfig.load(run.path).sizes == "0,20"  # config.load reads the run's config.json

    report = DataReport(source="d.jsonl", text_column="text", target_column="price", rows_read=10, rows_kept=9,
                        dropped={"empty_text": 1}, dropped_examples={"empty_text": [3]}, fingerprint="f" * 16)
    run.write_data_report(report)
    assert run.read_data_report() == report

    splits = make_splits(100, 0.2, seed=1)
    run.write_splits(splits)
    back = run.read_splits()
    for name in ("test_indices", "train_indices", "pool_order"):
        np.testing.assert_array_equal(getattr(back, name), getattr(splits, name))


def test_points_predictions_and_probe_round_trip(tmp_path):
    from hf_finetune_curve.score.probe import ProbeConfig, fit_and_score

    run = RunDirectory(tmp_path)
    assert run.read_points() == []
    points = [_point(200, 0.55, intervals={"r2": {"low": 0.5, "high": 0.6}}), _point(0)]
    for point in points:
        run.write_point(point)
    assert run.read_points() == sorted(points, key=lambda p: p.finetune_size)

    seeds = np.arange(6, dtype=np.float64).reshape(3, 2)
    run.write_predictions("f200", seeds.mean(axis=0), seeds)
    np.testing.assert_array_equal(run.read_predictions("f200"), seeds.mean(axis=0))
    np.testing.assert_array_equal(run.read_seed_predictions("f200"), seeds)
    # A run scored before probe seeds were saved has only the mean: one row.
    run.seed_predictions_path("f200").unlink()
    np.testing.assert_array_equal(run.read_seed_predictions("f200"), seeds.mean(axis=0)[None, :])
    assert run.read_predictions("f400") is None and run.read_seed_predictions("f400") is None
    run.write_y_test(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(run.read_y_test(), [1.0, 2.0])

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 4)), np.exp(rng.normal(10, 0.5, size=60))
    result = fit_and_score(X[:40], y[:40], X[40:], y[40:], ProbeConfig(n_estimators=5))
    assert run.read_probe("f200") is None
    run.write_probe("f200", result.probe)
    np.testing.assert_allclose(run.read_probe("f200").predict(X[40:]), result.probe.predict(X[40:]))
    assert run.relative(run.probe_path("f200")) == "probes/f200.json"


def test_curve_round_trip_carries_points_summary_and_version(tmp_path):
    run = RunDirectory(tmp_path)
    assert run.read_curve() is None
    run.write_point(_point(0))
    assert [p.label for p in run.curve_points()] == ["f0"]  # no curve.json yet: the finished sizes
    points = [_point(0), _point(200, 0.6, intervals={"r2": {"low": 0.5, "high": 0.7}})]
    summary = {"title": "t", "answer": {"available": False}, "warnings": ["few sizes"]}
    run.write_curve(points, summary)
    payload = json.loads(run.curve_json_path.read_text())
    assert payload["format_version"] == CURVE_FORMAT_VERSION
    curve = run.read_curve()
    assert curve.points == points and curve.summary == summary and curve.format_version == CURVE_FORMAT_VERSION
    assert curve.to_dict() == {"points": [p.to_dict() for p in points], **summary}
    assert run.read_curve().summary == summary and run.curve_points() == points
    assert "r2_low" in run.curve_csv_path.read_text().splitlines()[0]
    assert not run.curve_png_path.exists()  # the run directory writes data; the pipeline draws curve.png


def test_plans_baseline_checkpoint_stats_samples_and_embedding_cache_round_trip(tmp_path):
    import pyarrow as pa

    run = RunDirectory(tmp_path)
    run.write_training_plan({"points": {"200": {"steps": 40}}})
    run.write_branching_summary({"main_steps": 40})
    assert json.loads(run.training_plan_path.read_text()) == {"points": {"200": {"steps": 40}}}
    assert json.loads(run.branching_path.read_text()) == {"main_steps": 40}

    run.write_tfidf_baseline("key-1", {"r2": 0.3})
    assert run.read_tfidf_baseline("key-1") == {"r2": 0.3}
    assert run.read_tfidf_baseline("key-2") is None  # computed for another configuration: not reused

    assert not run.has_checkpoint("f200") and run.read_checkpoint_stats("f200") is None
    run.checkpoint_dir("f200").mkdir(parents=True)
    (run.checkpoint_dir("f200") / "modules.json").write_text("[]")
    run.checkpoint_stats_path("f200").write_text(json.dumps({"finetune_steps": 40}))
    assert run.has_checkpoint("f200") and run.read_checkpoint_stats("f200") == {"finetune_steps": 40}

    assert run_samples(run) is None
    vectors = np.arange(6, dtype=np.float32)
    table = pa.table({"row": pa.array([1, 2], type=pa.int64()),
                      "emb:f0": pa.FixedSizeListArray.from_arrays(pa.array(vectors), 3)})
    assert run.write_samples_table(table) == run.samples_path
    samples = run_samples(run)
    assert samples.labels == ["f0"]
    np.testing.assert_array_equal(samples.embeddings["f0"], vectors.reshape(2, 3))

    assert run.embedding_cache_files("f200") == [] and run.cached_embeddings("f200") is None
    cached = run.embedding_cache_path("f200", "0123456789abcdef")
    cached.parent.mkdir(parents=True)
    np.save(cached, np.zeros((5, 3), dtype=np.float32))
    assert run.embedding_cache_files("f200") == [cached]
    assert run.cached_embeddings("f200", n_rows=5) == cached and run.cached_embeddings("f200", n_rows=6) is None
    assert run.cached_embeddings("f20") is None  # f20 is not a prefix match of f200's files


def test_objectives_prefix_their_points_and_share_f0(tmp_path):
    class Objective(str):  # what the objectives branch passes: a str-valued enum member works the same
        value = "tsdae"

    run = RunDirectory(tmp_path)
    for objective in ("tsdae", Objective("tsdae")):
        assert run.relative(run.checkpoint_dir("f200", objective)) == "checkpoints/tsdae/f200"
        assert run.relative(run.point_path("f200", objective)) == "points/tsdae/f200.json"
        assert run.relative(run.probe_path("f200", objective)) == "probes/tsdae/f200.json"
        assert run.relative(run.predictions_path("f200", objective)) == "predictions/tsdae/f200.npy"
        assert run.relative(run.seed_predictions_path("f200", objective)) == "predictions/tsdae/f200.probe-seeds.npy"
        assert run.relative(run.independent_work_dir(objective)) == "checkpoints/.tsdae"
        assert run.relative(run.point_path("f0", objective)) == "points/f0.json"
    assert run.relative(run.checkpoint_dir("f200")) == "checkpoints/f200"
    assert run.relative(run.independent_work_dir()) == "checkpoints/.independent"

    run.write_point(_point(0))
    run.write_point(_point(200))
    run.write_point(_point(200, 0.7), objective="tsdae")
    assert [p.label for p in run.read_points()] == ["f0", "f200"]
    assert [(p.label, p.r2) for p in run.read_points("tsdae")] == [("f200", 0.7)]

    cached = run.embedding_cache_path("f200", "0123456789abcdef", objective="tsdae")
    assert run.relative(cached) == "embeddings/tsdae/f200-0123456789abcdef.npy"
    cached.parent.mkdir(parents=True)
    np.save(cached, np.zeros((2, 3)))
    assert run.cached_embeddings("f200", objective="tsdae") == cached and run.cached_embeddings("f200") is None


def test_objectives_training_plans_curve_order_and_point_keys(tmp_path):
    """What the merge with the objectives added: a plan per objective (removed by --overwrite), curve.csv /
    curve.json listing one objective after another, and point keys (``tsdae/f200``) parsed back."""
    import dataclasses

    from hf_finetune_curve.run_dir import file_label, parse_file_label

    run = RunDirectory(tmp_path)
    run.write_training_plan({"points": {"200": {"steps": 4}}}, "tsdae")
    assert run.relative(run.objective_training_plan_path("tsdae")) == "training_plan.tsdae.json"
    assert run.objective_training_plan_path() == run.training_plan_path
    assert json.loads(run.objective_training_plan_path("tsdae").read_text()) == {"points": {"200": {"steps": 4}}}
    assert not run.training_plan_path.exists()

    tsdae = [dataclasses.replace(_point(size, 0.6), objective="tsdae") for size in (200, 20)]
    run.write_curve([_point(200), *tsdae, _point(0), _point(20)])
    rows = [(p.objective, p.label) for p in run.read_curve().points]
    assert rows == [("mlm", "f0"), ("mlm", "f20"), ("mlm", "f200"), ("tsdae", "f20"), ("tsdae", "f200")]
    csv_rows = (tmp_path / "curve.csv").read_text().splitlines()[1:]
    assert [row.split(",")[1] for row in csv_rows] == ["f0", "f20", "f200", "f20", "f200"]

    for label, objective in (("f200", "tsdae"), ("f200", "mlm"), ("f0", "mlm")):
        assert parse_file_label(file_label(label, objective)) == (label, objective)
    assert run.checkpoint_dir(*parse_file_label("tsdae/f200")) == run.checkpoint_dir("f200", "tsdae")

    run.write_config({"config": {}})
    run.remove_outputs()
    assert not run.objective_training_plan_path("tsdae").exists() and not run.curve_json_path.exists()


def test_run_record_reads_an_unfinished_run_and_refuses_to_call_it_finished(tmp_path):
    """One record of a run for the cards, `hf-curve push` and the Space: the points finished so far before
    curve.json exists, curve.json's once it does, and `require_finished` naming what is missing."""
    with pytest.raises(NotARunDirectoryError):
        RunRecord.read(tmp_path)
    run = RunDirectory(tmp_path)
    run.write_config({"config": {"model": "org/base", "objectives": ["mlm", "tsdae"]}, "labels": ["f0", "f200"],
                      "model": {"model_id": "org/base", "source": "hub"}, "corpus": {"source": "embedded:cars"}})
    run.write_point(_point(0))
    run.write_point(_point(200))
    record = RunRecord.read(tmp_path)
    assert record.curve == {} and [p["label"] for p in record.points] == ["f0", "f200"]
    assert record.base_model_id == "org/base" and record.base_is_hub and record.is_synthetic
    with pytest.raises(NotARunDirectoryError, match="has no curve.json yet"):
        record.require_finished()

    run.write_curve([_point(0), _point(200)])  # MLM finished; TSDAE's f200 is still missing
    record = RunRecord.read(tmp_path)
    assert record.unfinished_points == [] and record.finetuned_labels == ["f200"]
    with pytest.raises(FinetuneCurveError, match="not finished: no result yet for tsdae/f200"):
        record.require_finished(FinetuneCurveError)
    run.write_curve([_point(0), _point(200), CurvePoint(200, "f200", r2=0.7, mae=1.0, median_ae=1.0, n_test=40,
                                                       n_probe_train=160, objective="tsdae")])
    finished = RunRecord.read(tmp_path).require_finished()
    assert [p["label"] for p in finished.points] == ["f0", "f200", "tsdae/f200"]
    assert finished.point("tsdae/f200")["size_label"] == "f200"


def test_replicates_and_outputs(tmp_path):
    run = RunDirectory(tmp_path)
    assert run.replicate_seeds() == []
    run.replicate(43).write_point(_point(200))
    run.replicate(44).write_point(_point(200))
    assert run.replicate_seeds() == [43, 44]
    assert run.replicate(43) == RunDirectory(tmp_path / "seeds" / "seed-43")
    assert run.read_points() == []  # a replicate's points are its own

    with pytest.raises(NotARunDirectoryError, match="not a run directory") as caught:
        run.require_run()
    assert isinstance(caught.value, FileNotFoundError) and isinstance(caught.value, FinetuneCurveError)

    run.write_config({"config": {}})
    (tmp_path / "notes.txt").write_text("mine")
    with run.lock():
        pass
    run.remove_outputs()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "notes.txt"]
    (tmp_path / "notes.txt").unlink()
    run.write_config({"config": {}})
    assert run.holds_nothing_to_resume()
    run.write_point(_point(0))
    assert not run.holds_nothing_to_resume()


# ---------------------------------------------------------------------------------------------------------------
# The format version and atomicity
# ---------------------------------------------------------------------------------------------------------------
def test_a_newer_curve_json_is_refused_naming_the_file_and_both_versions(tmp_path, capsys):
    run = RunDirectory(tmp_path)
    run.write_config({"config": {"model": "m"}, "corpus": {"source": "d", "rows": 1}, "split": {"test_rows": 1}})
    run.write_curve([_point(0)], {"title": "t"})
    payload = json.loads(run.curve_json_path.read_text())
    payload["format_version"] = CURVE_FORMAT_VERSION + 1
    run.curve_json_path.write_text(json.dumps(payload))
    with pytest.raises(RunDirectoryFormatError) as caught:
        run.read_curve()
    message = str(caught.value)
    assert str(run.curve_json_path) in message
    assert f"format_version {CURVE_FORMAT_VERSION + 1}" in message and f"format_version {CURVE_FORMAT_VERSION}" in message
    # Every reader goes through it: the report command says the same, as an error, not a traceback.
    assert main(["report", str(tmp_path)]) == 2
    assert "format_version" in capsys.readouterr().err

    # A curve.json written before the field existed is version 1.
    del payload["format_version"]
    run.curve_json_path.write_text(json.dumps(payload))
    assert run.read_curve().format_version == 1


def test_a_failed_write_leaves_the_old_file(tmp_path):
    run = RunDirectory(tmp_path)
    old = _point(200, 0.5)
    run.write_point(old)
    before = run.point_path("f200").read_bytes()
    with pytest.raises(TypeError):
        run.write_point(_point(200, 0.9, unserialisable=object()))
    assert run.point_path("f200").read_bytes() == before and run.read_points() == [old]

    run.write_config({"result_key": "a"})
    with pytest.raises(TypeError):
        run.write_config({"result_key": object()})
    assert run.read_config() == {"result_key": "a"}

    run.write_curve([old], {"title": "kept"})
    with pytest.raises(TypeError):
        run.write_curve([old], {"title": "lost", "bad": object()})
    assert run.read_curve().summary == {"title": "kept"}
    assert _leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------------------------------
# A real run, fully described
# ---------------------------------------------------------------------------------------------------------------
def test_every_file_a_run_writes_is_reachable_through_the_run_directory(tiny_model_dir, tmp_path):
    data = tmp_path / "listings.jsonl"
    write_jsonl(generate_listings(120, seed=3), data)
    out = tmp_path / "run"
    assert main(["run", "--data", str(data), "--model", str(tiny_model_dir), "--output-dir", str(out), "--sizes",
                 "0,20", "--seeds", "2", *FAST]) == 0
    run = RunDirectory(out)
    labels = run.read_config()["labels"]
    assert labels == ["f0", "f20"] and run.replicate_seeds() == [43]
    info = RunRecord.read(out).info  # the run record the pipeline wrote, read back typed
    assert info.labels == labels and info.finetune_sizes == [0, 20] and info.to_dict() == run.read_config()

    files = {run.config_path, run.data_report_path, run.splits_path, run.curve_csv_path, run.curve_json_path,
             run.curve_png_path, run.samples_path, run.lock_path, run.y_test_path, run.tfidf_baseline_path}
    folders = set()
    for label in labels:
        files |= set(run.embedding_cache_files(label))
    for directory, its_labels in ((run, labels), (run.replicate(43), labels[1:])):
        files |= {directory.training_plan_path, directory.branching_path}
        folders.add(directory.logs_dir)
        for label in its_labels:
            files |= {directory.point_path(label), directory.probe_path(label), directory.predictions_path(label),
                      directory.seed_predictions_path(label)}
            if label != "f0":  # f0 is the base model itself, not copied
                assert directory.has_checkpoint(label) and directory.read_checkpoint_stats(label)
                folders.add(directory.checkpoint_dir(label))
    written = {path for path in out.rglob("*") if path.is_file()}
    unexplained = {path for path in written
                   if path not in files and not any(folder in path.parents for folder in folders)}
    assert unexplained == set(), f"written but not reachable through RunDirectory: {sorted(map(str, unexplained))}"
    missing = {path for path in files if not path.is_file()}
    assert missing == set(), f"accessors that name files the run did not write: {sorted(map(str, missing))}"

    # And the typed readers agree with what the run reported.
    curve = run.read_curve()
    assert [p.label for p in curve.points] == labels and curve.summary["result_key"] == run.read_config()["result_key"]
    assert [p.label for p in run.replicate(43).read_points()] == ["f20"]
    assert run_samples(run).labels == labels
    assert run.read_seed_predictions("f20").shape[1] == len(run.read_y_test())
    assert curve.points[1].checkpoint == run.relative(run.checkpoint_dir("f20"))
    assert curve.points[1].probe_path == run.relative(run.probe_path("f20"))
