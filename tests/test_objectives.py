"""MLM, TSDAE and SimCSE curves: each objective trains, saves, reloads, never draws beyond its subset;
a several-objective run has every curve on a shared f0, and compares them paired."""

import json

import numpy as np
import pandas as pd
import pytest
from sentence_transformers import SentenceTransformer

from hf_finetune_curve import CurveConfig, FinetuneConfig, ProbeConfig, run_curve
from hf_finetune_curve.cli import main
from hf_finetune_curve.config import ConfigError
from hf_finetune_curve.data.sample_data import generate_listings, write_jsonl
from hf_finetune_curve.train.checkpoint import save_checkpoint
from hf_finetune_curve.train.objectives import Objective, delete_words, parse_objectives, split_sentences, text_units
from hf_finetune_curve.train.sentence_objectives import finetune_objective_independent, plan_objective

TEXTS = [f"This {1960 + i} Porsche 911 is finished in red over black leather. It has {i * 1000} miles. "
         f"Offered with a clean title and service records." for i in range(48)]
CONFIG = FinetuneConfig(batch_size=4, min_steps=6, warmup_steps=2, min_cooldown_steps=2, max_seq_length=32,
                        head_warmup_steps=0)
FAST = ["--probe-trees", "30", "--max-seq-length", "32", "--batch-size", "16", "--no-progress",
        "--bootstrap-resamples", "200"]


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "listings.jsonl"
    write_jsonl(generate_listings(160, seed=5), path)
    return path


def test_deletion_noise_is_a_pure_function_deleting_about_the_ratio():
    text = " ".join(f"w{i}" for i in range(400))
    damaged = delete_words(text, 0.6, [1, 2, 3])
    assert damaged == delete_words(text, 0.6, [1, 2, 3])
    assert damaged != delete_words(text, 0.6, [1, 2, 4])
    kept = damaged.split()
    assert 0.3 < len(kept) / 400 < 0.5
    assert kept == [w for w in text.split() if w in set(kept)]  # order kept, nothing invented
    assert delete_words("one", 0.99, [0]) == "one"  # at least one word survives


def test_sentences_split_at_sentence_ends_and_units_map_to_their_text():
    assert split_sentences("A red car. It has 5 miles! Is it clean? yes it is.") == \
        ["A red car.", "It has 5 miles!", "Is it clean? yes it is."]
    units, source = text_units(["One two three. Four five six.", "Seven eight nine."], "sentences")
    assert units == ["One two three.", "Four five six.", "Seven eight nine."]
    assert source.tolist() == [0, 0, 1]


def test_objectives_parse_and_name_their_files_and_repos():
    assert parse_objectives("mlm,tsdae,simcse") == [Objective.MLM, Objective.TSDAE, Objective.SIMCSE]
    with pytest.raises(ConfigError, match="one of"):
        parse_objectives("mlm,bert")
    with pytest.raises(ConfigError, match="twice"):
        CurveConfig(objectives="mlm,mlm")
    assert Objective.MLM.file_label("f50k") == "f50k" and Objective.TSDAE.file_label("f50k") == "tsdae/f50k"
    assert Objective.TSDAE.file_label("f0") == "f0"  # the base model is every objective's f0
    assert Objective.MLM.repo_suffix("f50k") == "f50k" and Objective.SIMCSE.repo_suffix("f50k") == "simcse-f50k"


def test_the_objective_is_part_of_the_result_key_and_mlm_keeps_its_old_key():
    mlm = CurveConfig()
    assert CurveConfig(objective="mlm").result_key("x") == mlm.result_key("x")
    # An MLM run refuses the sentence objectives' options (they would change nothing)...
    with pytest.raises(ConfigError, match="--text-unit is an option of"):
        CurveConfig(finetune=FinetuneConfig(text_unit="whole"))
    # ...and any other objective (or set of objectives) never reuses its results.
    keys = {CurveConfig(objective="tsdae").result_key("x"), CurveConfig(objective="simcse").result_key("x"),
            CurveConfig(objectives="mlm,tsdae").result_key("x"), mlm.result_key("x"),
            CurveConfig(objective="tsdae", finetune=FinetuneConfig(text_unit="whole")).result_key("x")}
    assert len(keys) == 5


@pytest.mark.parametrize("objective", [Objective.TSDAE, Objective.SIMCSE])
@pytest.mark.parametrize("unit", ["whole", "sentences"])
def test_each_objective_trains_saves_reloads_and_stays_in_its_subset(tiny_model, tmp_path, objective, unit):
    import dataclasses

    config = dataclasses.replace(CONFIG, text_unit=unit)
    sizes = [8, 24]
    results, audit = {}, {}
    summary = finetune_objective_independent(tiny_model, TEXTS, sizes, config, objective, seed=3, device="cpu",
                                             work_dir=tmp_path / "work", on_point=results.setdefault,
                                             show_progress=False, audit=audit)
    plan, units, _ = plan_objective(tiny_model, TEXTS, sizes, config, 3)
    assert summary["objective"] == objective.value and sorted(results) == sizes
    base = tiny_model.encode(TEXTS[:6])
    for size, result in results.items():
        # Never text n+1 (or beyond) for f<n>: every drawn unit comes from pool[:n], and the subset was used.
        drawn = np.asarray(audit[f"{objective.value}:{size}"])
        assert plan.unit_text[drawn].max() == result.max_text_index <= size - 1
        assert result.max_text_index >= size - 2
        # The MLM point's recipe, stepped exactly (steps and learning-rate integral).
        assert result.optimizer_steps == result.recipe.steps == plan.recipes[size].steps
        assert result.lr_integral == pytest.approx(result.recipe.lr_integral(), rel=1e-6)
        assert result.final_lr == pytest.approx(0.0, abs=1e-12)
        assert np.isfinite(result.final_loss)
        # It trained (the embeddings moved), the base model did not, and the max length is the base's.
        assert np.abs(result.model.encode(TEXTS[:6]) - base).max() > 1e-4
        assert result.model.max_seq_length == tiny_model.max_seq_length
        # Saved, it reloads as a SentenceTransformer equal to the trained model.
        target = tmp_path / objective.value / f"f{size}"
        save_checkpoint(result.model, target, TEXTS[:6])
        reloaded = SentenceTransformer(str(target), device="cpu")
        np.testing.assert_allclose(reloaded.encode(TEXTS[:6]), result.model.encode(TEXTS[:6]), atol=1e-5)
    np.testing.assert_allclose(tiny_model.encode(TEXTS[:6]), base, atol=0)
    assert not (tmp_path / "work").exists()


def test_word_embeddings_stay_frozen_by_default_and_tsdae_starts_from_the_base_weights(tiny_model, tmp_path):
    results = {}
    finetune_objective_independent(tiny_model, TEXTS, [16], CONFIG, Objective.TSDAE, seed=0, device="cpu",
                                   work_dir=tmp_path / "w", on_point=results.setdefault, show_progress=False)
    trained = results[16].model[0].auto_model
    base = tiny_model[0].auto_model
    assert torch_equal(trained.get_input_embeddings().weight, base.get_input_embeddings().weight)
    assert not torch_equal(trained.encoder.layer[0].attention.self.query.weight,
                           base.encoder.layer[0].attention.self.query.weight)


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a.detach().cpu(), b.detach().cpu()))


def test_a_two_objective_run_has_both_curves_on_a_shared_f0(corpus_file, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", "--data", str(corpus_file), "--model", str(tiny_model_dir), "--sizes", "0,40,all",
                 "--objectives", "mlm,tsdae", "--output-dir", str(out), "--seeds", "2", *FAST])
    assert code == 0
    printed = capsys.readouterr().out
    curve = pd.read_csv(out / "curve.csv")
    assert set(curve["objective"]) == {"mlm", "tsdae"}
    for objective, rows in curve.groupby("objective"):
        assert rows["label"].tolist() == ["f0", "f40", "f128"], objective
        assert np.isfinite(rows["r2"]).all()
    f0 = curve[curve["label"] == "f0"].set_index("objective")
    assert f0.loc["mlm", "r2"] == f0.loc["tsdae", "r2"] and f0.loc["mlm", "mae"] == f0.loc["tsdae", "mae"]
    # Paths: MLM keeps the mission's names, TSDAE lives under its own folder; f0 is not copied.
    for seed_dir in (out, out / "seeds" / "seed-43"):
        assert (seed_dir / "checkpoints" / "f40" / "modules.json").exists()
        assert (seed_dir / "checkpoints" / "tsdae" / "f40" / "modules.json").exists()
        assert not (seed_dir / "checkpoints" / "f0").exists() and not (seed_dir / "checkpoints" / "tsdae" / "f0").exists()
    stats = json.loads((out / "checkpoints" / "tsdae" / "f40" / "finetune_stats.json").read_text())
    assert stats["objective"] == "tsdae" and stats["schedule"] == "independent"
    mlm_stats = json.loads((out / "checkpoints" / "f40" / "finetune_stats.json").read_text())
    assert mlm_stats["objective"] == "mlm" and mlm_stats["finetune_steps"] == stats["finetune_steps"]
    SentenceTransformer(str(out / "checkpoints" / "tsdae" / "f128"), device="cpu").encode(["a red car"])
    # The two curves differ (a different objective, not a copy), and both carry intervals.
    tsdae_r2 = curve[(curve["objective"] == "tsdae") & (curve["label"] == "f40")]["r2"].item()
    mlm_r2 = curve[(curve["objective"] == "mlm") & (curve["label"] == "f40")]["r2"].item()
    assert tsdae_r2 != mlm_r2
    assert curve["r2_low"].notna().all()
    summary = json.loads((out / "curve.json").read_text())
    assert set(summary["objectives"]) == {"mlm", "tsdae"}
    pairs = summary["comparison"]["pairs"]
    assert [(p["a"], p["b"], p["label"]) for p in pairs] == [("mlm", "tsdae", "f40"), ("mlm", "tsdae", "f128")]
    delta = pairs[0]["deltas"]["r2"]
    # Seed means (2 finetune seeds), compared on one hierarchical bootstrap of every objective's points.
    seed_mean = curve.set_index(["objective", "label"])["r2_seed_mean"]
    assert delta["delta"] == pytest.approx(seed_mean["tsdae", "f40"] - seed_mean["mlm", "f40"])
    assert delta["low"] <= delta["delta"] <= delta["high"]
    assert summary["comparison"]["levels"] == ["rows", "probe seeds", "finetune seeds"]
    assert summary["comparison"]["best"]["r2"]["available"]
    assert "TSDAE − MLM at f40: ΔR²" in printed and "Best R²" in printed
    assert "How much data is enough? (TSDAE)" in printed
    # A rerun skips everything (every objective's points are found) and the report prints both curves.
    code = main(["run", "--data", str(corpus_file), "--model", str(tiny_model_dir), "--sizes", "0,40,all",
                 "--objectives", "mlm,tsdae", "--output-dir", str(out), "--seeds", "2", *FAST])
    assert code == 0
    rerun = capsys.readouterr()
    assert "training" not in rerun.err.lower() or "independent run" not in rerun.err
    assert main(["report", str(out)]) == 0
    report = capsys.readouterr().out
    assert "tsdae" in report and "TSDAE − MLM at f128" in report
    # Changing the objectives is a different run: refused without --overwrite.
    code = main(["run", "--data", str(corpus_file), "--model", str(tiny_model_dir), "--sizes", "0,40,all",
                 "--objectives", "mlm,simcse", "--output-dir", str(out), "--seeds", "2", *FAST])
    assert code == 2
    assert "objectives" in capsys.readouterr().err


def test_a_single_sentence_objective_run(corpus_file, tiny_model_dir, tmp_path):
    config = CurveConfig(data=str(corpus_file), model=str(tiny_model_dir), sizes="0,40", objective="simcse",
                         output_dir=str(tmp_path / "simcse"), bootstrap_resamples=200, tfidf_baseline=False,
                         finetune=FinetuneConfig(max_seq_length=32), probe=ProbeConfig(n_estimators=30))
    result = run_curve(config, show_progress=False)
    assert [(p.objective, p.label) for p in result.points] == [("simcse", "f0"), ("simcse", "f40")]
    assert (tmp_path / "simcse" / "checkpoints" / "simcse" / "f40" / "modules.json").exists()
    assert (tmp_path / "simcse" / "points" / "simcse" / "f40.json").exists()
    assert (tmp_path / "simcse" / "points" / "f0.json").exists()
    assert "simcse" in result.table() or "SimCSE" in (result.analysis.get("title") or "")


def test_callbacks_and_report_to_reach_the_sentence_trainer(tiny_model, tmp_path):
    from transformers import TrainerCallback

    class Counter(TrainerCallback):
        steps = 0

        def on_step_end(self, args, state, control, **kwargs):
            Counter.steps += 1

    import dataclasses

    config = dataclasses.replace(CONFIG, report_to="tensorboard")
    results = {}
    finetune_objective_independent(tiny_model, TEXTS, [8, 16], config, Objective.SIMCSE, seed=0, device="cpu",
                                   work_dir=tmp_path / "work", on_point=results.setdefault, callbacks=[Counter()],
                                   show_progress=False, log_dir=tmp_path / "logs")
    assert Counter.steps == sum(r.optimizer_steps for r in results.values())
    assert list((tmp_path / "logs").glob("f*/*/events.out.tfevents.*"))  # TensorBoard logs kept per point


def test_the_plot_draws_one_curve_per_objective_with_intervals(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from hf_finetune_curve.curve.plot import plot_curve
    from hf_finetune_curve.curve.points import CurvePoint

    def point(objective, size, r2):
        values = {"r2": r2, "r2_log": r2, "mae": 10 - r2, "median_ae": 5 - r2}
        return CurvePoint(finetune_size=size, label=f"f{size}", n_test=50, n_probe_train=200, objective=objective,
                          extras={"intervals": {m: {"low": v - 0.1, "high": v + 0.1} for m, v in values.items()}},
                          **values)

    points = [point("mlm", 0, 0.3), point("mlm", 100, 0.35), point("mlm", 400, 0.4),
              point("tsdae", 0, 0.3), point("tsdae", 100, 0.32), point("tsdae", 400, 0.31)]
    saved = {}
    original = Figure.savefig

    def capture(self, *args, **kwargs):
        saved["figure"] = self
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", capture)
    plot_curve(points, tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 10_000
    for axis in saved["figure"].axes:
        lines = {line.get_label(): line for line in axis.get_lines()}
        assert list(lines["MLM"].get_xdata()) == [0, 100, 400] and list(lines["TSDAE"].get_xdata()) == [0, 100, 400]
        assert lines["MLM"].get_color() != lines["TSDAE"].get_color()
        assert len(axis.containers) == 2  # an interval bar set per objective
    r2_axis = saved["figure"].axes[0]
    assert list({line.get_label(): line for line in r2_axis.get_lines()}["TSDAE"].get_ydata()) == [0.3, 0.32, 0.31]


def test_an_interrupted_objectives_run_resumes_where_it_stopped(corpus_file, tiny_model_dir, tmp_path, caplog):
    import logging

    config = CurveConfig(data=str(corpus_file), model=str(tiny_model_dir), sizes="0,40", objectives="mlm,simcse",
                         output_dir=str(tmp_path / "run"), bootstrap_resamples=200, tfidf_baseline=False,
                         finetune=FinetuneConfig(max_seq_length=32), probe=ProbeConfig(n_estimators=30))

    def stop_at_the_second_objective(point):
        if point.objective == "simcse":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_curve(config, show_progress=False, on_point=stop_at_the_second_objective)
    assert (tmp_path / "run" / "points" / "f40.json").exists()
    assert not (tmp_path / "run" / "points" / "simcse").exists()
    with caplog.at_level(logging.INFO, logger="hf_finetune_curve"):
        result = run_curve(config, show_progress=False)
    assert "f0 already finished" in caplog.text and "f40 already finished" in caplog.text  # MLM not redone
    assert "SimCSE f40: independent run" in caplog.text
    assert [(p.objective, p.label) for p in result.points] == [("mlm", "f0"), ("mlm", "f40"), ("simcse", "f0"),
                                                                 ("simcse", "f40")]
