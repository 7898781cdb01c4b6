"""The recipes that keep the embedding (mlm-distill, mlm-simcse) and the supervised ceiling: each trains
through the Trainer, saves a checkpoint SentenceTransformer loads, and refuses bad input before any work."""

import json

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

from hf_finetune_curve import CurveConfig, FinetuneConfig, run_curve
from hf_finetune_curve.cli import main
from hf_finetune_curve.config import DEFAULT_DISTILL_WEIGHT, ConfigError
from hf_finetune_curve.data.sample_data import generate_listings, write_jsonl
from hf_finetune_curve.train.finetune import finetune_independent, prepare_mlm
from hf_finetune_curve.train.objectives import Objective
from hf_finetune_curve.train.sentence_objectives import (finetune_objective_independent, fit_linear_head,
                                                         plan_objective, standardized_log_targets)

TEXTS = [f"This {1960 + i} Porsche 911 is finished in red over black leather. It has {i * 1000} miles. "
         f"Offered with a clean title and service records." for i in range(64)]
# Prices unrelated to the text: only training on them can put them into the embedding.
PRICES = np.exp(np.random.default_rng(7).normal(10, 1, len(TEXTS)))
CONFIG = FinetuneConfig(batch_size=4, min_steps=6, warmup_steps=2, min_cooldown_steps=2, max_seq_length=32,
                        head_warmup_steps=0)
FAST = ["--probe-trees", "30", "--max-seq-length", "32", "--batch-size", "16", "--no-progress",
        "--bootstrap-resamples", "200"]


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "listings.jsonl"
    write_jsonl(generate_listings(200, seed=11), path)
    return path


def test_each_objective_resolves_its_own_rate_and_only_mlm_distill_distills():
    config = FinetuneConfig()
    assert config.for_objective("mlm").distill_weight == 0.0
    assert config.for_objective("mlm-distill").distill_weight == DEFAULT_DISTILL_WEIGHT
    assert FinetuneConfig(distill_weight=3.0).for_objective(Objective.MLM_DISTILL).distill_weight == 3.0
    for objective in Objective:
        resolved = config.for_objective(objective)
        assert resolved.learning_rate == config.effective_learning_rate(objective) > 0
    assert FinetuneConfig(learning_rate=7e-6).for_objective("supervised").learning_rate == 7e-6
    assert FinetuneConfig(lora=True).for_objective("mlm-distill").learning_rate == 1e-3


def test_bad_recipe_input_is_refused_before_any_work_naming_the_flag():
    with pytest.raises(ConfigError, match="one of"):
        CurveConfig(objectives="mlm,bert-simcse")
    with pytest.raises(ConfigError, match="--distill-weight is an option of mlm-distill"):
        CurveConfig(objectives="mlm,simcse", finetune=FinetuneConfig(distill_weight=2.0))
    with pytest.raises(ConfigError, match="--simcse-batch-size"):
        CurveConfig(objective="tsdae", finetune=FinetuneConfig(simcse_batch_size=32))
    with pytest.raises(ConfigError, match="--tsdae-deletion-ratio"):
        CurveConfig(objectives="mlm,supervised", finetune=FinetuneConfig(tsdae_deletion_ratio=0.3))
    with pytest.raises(ConfigError, match="--include-test-in-finetune"):
        CurveConfig(objective="supervised", include_test_in_finetune=True)
    with pytest.raises(ConfigError, match="distill_weight"):
        FinetuneConfig(distill_weight=float("nan"))
    # Options an objective of the run does use are accepted.
    CurveConfig(objectives="mlm-distill,mlm-simcse", finetune=FinetuneConfig(distill_weight=2.0, simcse_batch_size=8))


def test_mlm_simcse_brings_mlm_in_and_keys_differ_by_objective():
    assert CurveConfig(objective="mlm-simcse").resolved_objectives() == [Objective.MLM, Objective.MLM_SIMCSE]
    assert CurveConfig(objectives="simcse,mlm-simcse,mlm").resolved_objectives() == \
        [Objective.SIMCSE, Objective.MLM, Objective.MLM_SIMCSE]
    keys = {CurveConfig(objective=o.value).result_key("x") for o in Objective}
    assert len(keys) == len(Objective)
    # An MLM-only run's key ignores the other objectives' options.
    assert CurveConfig().result_key("x") == CurveConfig(objective="mlm").result_key("x")


def test_the_distillation_term_is_zero_at_the_start_and_grows_as_the_encoder_drifts(tiny_model):
    setup = prepare_mlm(tiny_model, CONFIG.for_objective("mlm-distill"), seed=0)
    assert setup.trainable._teacher, "mlm-distill must build its teacher"
    assert not any(name.startswith("_teacher") for name, _ in setup.trainable.named_parameters())
    setup.mlm.eval()  # no dropout: the student is then exactly the teacher
    ids = torch.randint(5, 60, (3, 12))
    mask = torch.ones_like(ids)
    hidden = setup.mlm.base_model(input_ids=ids, attention_mask=mask)[0]
    assert float(setup.trainable.distillation(hidden, ids, mask).detach()) == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():
        for param in setup.mlm.base_model.encoder.parameters():
            param.add_(torch.randn_like(param) * 0.5)
    hidden = setup.mlm.base_model(input_ids=ids, attention_mask=mask)[0]
    assert float(setup.trainable.distillation(hidden, ids, mask).detach()) > 1e-3
    # Plain MLM carries no teacher.
    assert not prepare_mlm(tiny_model, CONFIG.for_objective("mlm"), seed=0).trainable._teacher


def test_mlm_distill_stays_closer_to_the_factory_embedding_than_mlm(tiny_model, tmp_path):
    """The same steps, data and masks; the term keeps the pooled embedding where the teacher has it."""
    config = FinetuneConfig(batch_size=4, min_steps=30, warmup_steps=2, min_cooldown_steps=2, max_seq_length=32,
                            head_warmup_steps=0, learning_rate=3e-3)
    base = tiny_model.encode(TEXTS[:16], convert_to_numpy=True)
    drift = {}
    for objective in ("mlm", "mlm-distill"):
        resolved = config.for_objective(objective)
        if objective == "mlm-distill":
            resolved.distill_weight = 50.0
        models = {}
        finetune_independent(tiny_model, TEXTS, [32], resolved, seed=3, device="cpu", show_progress=False,
                             work_dir=tmp_path / objective, on_point=lambda n, result: models.setdefault(n, result.model))
        moved = models[32].encode(TEXTS[:16], convert_to_numpy=True)
        drift[objective] = float(np.mean(1 - np.sum(base * moved, axis=1)))
    assert drift["mlm"] > 0
    assert drift["mlm-distill"] < 0.5 * drift["mlm"], drift


def test_the_linear_head_starts_where_ridge_puts_it_and_labels_are_standardised():
    labels = standardized_log_targets(PRICES)
    assert labels.mean() == pytest.approx(0, abs=1e-9) and labels.std() == pytest.approx(1)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(100, 4))
    weight, bias = fit_linear_head(X, X[:, 1] * 2 + 1)
    assert weight[1] == pytest.approx(2, abs=0.05) and bias == pytest.approx(1, abs=0.05)


def test_supervised_points_train_on_their_subsets_prices_and_learn_them(tiny_model, tmp_path):
    config = FinetuneConfig(batch_size=8, min_steps=40, warmup_steps=2, min_cooldown_steps=2, max_seq_length=32,
                            learning_rate=1e-3).for_objective("supervised")
    plan, units, _ = plan_objective(tiny_model, TEXTS, [32, 64], config, seed=0, objective=Objective.SUPERVISED)
    assert units == TEXTS  # whole texts: a price belongs to a text
    models, audit = {}, {}
    finetune_objective_independent(tiny_model, TEXTS, [32, 64], config, Objective.SUPERVISED, seed=0,
                                   device="cpu", work_dir=tmp_path / "work", show_progress=False, audit=audit,
                                   pool_targets=PRICES, on_point=lambda n, r: models.setdefault(n, r))
    assert max(audit["supervised:32"]) < 32  # never a row outside its subset
    result = models[64]
    assert result.head == "ridge-initialised regression head" and result.optimizer_steps == plan.recipes[64].steps
    saved = tmp_path / "supervised-f64"
    result.model.save(str(saved))
    reloaded = SentenceTransformer(str(saved), device="cpu")
    assert reloaded.get_sentence_embedding_dimension() == tiny_model.get_sentence_embedding_dimension()
    labels = standardized_log_targets(PRICES)
    # The subset's (random) prices are now far easier to read linearly from the embedding than from the factory one.
    before = _linear_fit_r2(tiny_model.encode(TEXTS, convert_to_numpy=True), labels)
    after = _linear_fit_r2(reloaded.encode(TEXTS, convert_to_numpy=True), labels)
    assert after > before + 0.1, (before, after)
    with pytest.raises(ValueError, match="pool_targets"):
        finetune_objective_independent(tiny_model, TEXTS, [32], config, Objective.SUPERVISED, seed=0, device="cpu",
                                       work_dir=tmp_path / "w2", show_progress=False, on_point=lambda n, r: None)


def _linear_fit_r2(X: np.ndarray, y: np.ndarray) -> float:
    design = np.c_[X, np.ones(len(X))]
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ coef
    return float(1 - residual.var() / y.var())


def test_a_run_of_every_new_recipe_shares_f0_records_its_stages_and_pushable_checkpoints(corpus_file,
                                                                                      tiny_model_dir, tmp_path,
                                                                                      capsys):
    out = tmp_path / "run"
    code = main(["run", "--data", str(corpus_file), "--model", str(tiny_model_dir), "--sizes", "0,40,80",
                 "--objectives", "mlm-simcse,mlm-distill,supervised", "--output-dir", str(out), "--min-steps", "4",
                 "--warmup-steps", "1", "--min-cooldown-steps", "1", "--head-warmup-steps", "2",
                 "--simcse-batch-size", "8", *FAST])
    assert code == 0
    printed = capsys.readouterr().out
    curve = json.loads((out / "curve.json").read_text())
    objectives = {p["objective"] for p in curve["points"]}
    assert objectives == {"mlm", "mlm-simcse", "mlm-distill", "supervised"}
    assert set(curve["objectives"]) == objectives
    for objective in ("mlm-simcse", "mlm-distill", "supervised"):
        folder = out / "checkpoints" / objective / "f80"
        assert SentenceTransformer(str(folder), device="cpu").encode(["a red coupe"]).shape[0] == 1
    stats = json.loads((out / "checkpoints" / "mlm-simcse" / "f80" / "finetune_stats.json").read_text())
    mlm_stats = json.loads((out / "checkpoints" / "f80" / "finetune_stats.json").read_text())
    assert set(stats["stages"]) == {"mlm", "simcse"}
    assert stats["stages"]["mlm"]["finetune_steps"] == mlm_stats["finetune_steps"]
    assert stats["finetune_steps"] == stats["stages"]["mlm"]["finetune_steps"] + stats["stages"]["simcse"]["finetune_steps"]
    assert stats["finetune_tokens_seen"] == sum(stage["finetune_tokens_seen"] for stage in stats["stages"].values())
    distill = json.loads((out / "checkpoints" / "mlm-distill" / "f80" / "finetune_stats.json").read_text())
    assert distill["distill_weight"] == DEFAULT_DISTILL_WEIGHT and "distill_weight" not in mlm_stats
    supervised = json.loads((out / "checkpoints" / "supervised" / "f80" / "finetune_stats.json").read_text())
    assert supervised["text_unit"] == "whole" and supervised["learning_rate"] > 0
    plan = json.loads((out / "training_plan.mlm-simcse.json").read_text())
    assert plan["chunks_per_step"] == 8  # --simcse-batch-size
    assert "MLM→SimCSE" in printed or "mlm-simcse" in printed


def test_supervised_refuses_subsets_too_small_to_fit(corpus_file, tiny_model_dir, tmp_path):
    with pytest.raises(ConfigError, match="--sizes"):
        run_curve(CurveConfig(data=str(corpus_file), model=str(tiny_model_dir), sizes="0,10,80",
                              objective="supervised", output_dir=str(tmp_path / "r")), show_progress=False)
