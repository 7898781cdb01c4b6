"""Both schedules on one Trainer engine: the same recipe per point, resume, callbacks, heads, processes."""

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer
from transformers import TrainerCallback

from hf_finetune_curve import FinetuneConfig
from hf_finetune_curve.data.sample_data import generate_listings
from hf_finetune_curve.train.branching import finetune_branching
from hf_finetune_curve.train.checkpoint import save_checkpoint
from hf_finetune_curve.train.finetune import (
    finetune_independent,
    head_parameters,
    plan_for,
    prepare_mlm,
    warm_up_head,
)
from hf_finetune_curve.train.recipe import lr_factor, plan_curve

TEXTS = [row["text"] for row in generate_listings(200, seed=5)]
SIZES = [16, 32, 64]
CONFIG = FinetuneConfig(batch_size=8, max_seq_length=64, learning_rate=5e-3, warmup_steps=2, min_cooldown_steps=2,
                        cooldown_fraction=0.25, min_steps=0, head_warmup_steps=3)


@pytest.fixture(autouse=True)
def one_thread():
    # Two shared cores here: two torch threads fighting other processes run 10x slower than one.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_model(tiny_model_dir):
    return SentenceTransformer(str(tiny_model_dir), device="cpu")


def _branching(model, state_dir, sizes=SIZES, config=CONFIG, **kwargs):
    results = {}
    kwargs.setdefault("on_branch", lambda n, result: results.setdefault(n, result))
    stats = finetune_branching(model, TEXTS, sizes, config, seed=0, device="cpu", state_dir=state_dir,
                               show_progress=False, **kwargs)
    return stats, results


def _independent(model, work_dir, sizes=SIZES, config=CONFIG, **kwargs):
    results = {}
    plan = finetune_independent(model, TEXTS, sizes, config, seed=0, device="cpu", work_dir=work_dir,
                                on_point=lambda n, result: results.setdefault(n, result), show_progress=False,
                                **kwargs)
    return plan, results


def test_every_point_gets_the_same_recipe_in_both_schedules(tiny_model, tmp_path):
    stats, branched = _branching(tiny_model, tmp_path / "state")
    plan, independent = _independent(tiny_model, tmp_path / "independent")
    assert [stats.plan["points"][str(n)]["branch_start"] for n in SIZES] == [plan.recipes[n].decay_start
                                                                             for n in SIZES]
    for n in SIZES:
        recipe = plan.recipes[n]
        assert recipe.decay_start > 0 and recipe.cooldown_steps >= CONFIG.min_cooldown_steps
        for result in (branched[n], independent[n]):
            assert result.recipe == recipe
            assert result.optimizer_steps == recipe.steps
            # Measured on the scheduler actually stepped: the plan's integral, and a rate of 0 at the end.
            assert result.lr_integral == pytest.approx(recipe.lr_integral(), rel=1e-9)
            assert result.final_lr == 0.0
            assert result.subset_epochs >= 1.0
        assert branched[n].schedule == "branching" and independent[n].schedule == "independent"
        assert branched[n].head == independent[n].head == "warmed up"
    # The recipe itself: warmup in absolute steps, no step at rate 0, the rate reaches 0 after the last step.
    recipe = plan.recipes[SIZES[-1]]
    rates = [recipe.lr_factor(t) for t in range(recipe.steps + 1)]
    assert rates[0] == pytest.approx(1 / (CONFIG.warmup_steps + 1)) and min(rates[:-1]) > 0 and rates[-1] == 0
    assert rates[CONFIG.warmup_steps] == 1.0
    # Branching costs less than training every size from the base model.
    assert stats.plan["branching_steps"] < stats.plan["independent_steps"]
    # Different draws, different models, all finetuned.
    base = tiny_model.encode(TEXTS[:4])
    for n in SIZES:
        assert np.abs(branched[n].model.encode(TEXTS[:4]) - base).max() > 1e-3
        assert np.abs(independent[n].model.encode(TEXTS[:4]) - base).max() > 1e-3


def test_no_point_draws_beyond_its_subset(tiny_model, tmp_path):
    stats, results = _branching(tiny_model, tmp_path / "state", audit=True)
    setup = prepare_mlm(tiny_model, CONFIG, 0)
    plan = plan_for(setup, TEXTS, SIZES, CONFIG, 0)
    seen_branches = 0
    for tag, draws in stats.draws.items():
        kind, size = tag.split(":")
        size = int(size)
        assert draws, tag
        assert max(int(plan.chunk_last_text[chunk]) for _, chunk in draws) < size, tag
        if kind == "branch":
            seen_branches += 1
            # The branch continues the main run's own draws, from its decay start to its last step.
            start = plan.recipes[size].decay_start * plan.chunks_per_step
            assert [chunk for _, chunk in draws] == plan.main_stream[start:plan.recipes[size].steps
                                                                     * plan.chunks_per_step].tolist()
    assert seen_branches == len(SIZES)
    for n in SIZES:
        assert results[n].max_text_index == n - 1
    # The main run up to a point's last step: its subset's chunks (epochs=1; the step budget is the
    # independent run's, so rounding may leave less than one step of them to the next point), and
    # nothing beyond.
    per_step = plan.chunks_per_step
    for k, n in enumerate(SIZES):
        stop = plan.recipes[n].steps * per_step
        drawn = set(plan.main_stream[:stop].tolist())
        assert len(set(range(plan.segment_ends[k])) - drawn) < per_step
        assert max(plan.chunk_last_text[list(drawn)]) == n - 1


def test_head_warmup_trains_only_the_head(tiny_model, tmp_path):
    setup = prepare_mlm(tiny_model, CONFIG, 0)
    plan = plan_for(setup, TEXTS, SIZES, CONFIG, 0)
    trainable_before = {name: p.requires_grad for name, p in setup.trainable.named_parameters()}
    assert not setup.mlm.get_input_embeddings().weight.requires_grad  # frozen by default
    encoder_before = {k: v.clone() for k, v in setup.mlm.base_model.state_dict().items()}
    head_before = {k: v.detach().clone() for k, v in head_parameters(setup).items()}
    state = warm_up_head(setup, plan, CONFIG, seed=0, device="cpu", work_dir=tmp_path / "head", show_progress=False)
    for key, value in setup.mlm.base_model.state_dict().items():
        torch.testing.assert_close(value, encoder_before[key], rtol=0, atol=0)
    assert set(state) == set(head_before)
    assert any((state[k] - head_before[k]).abs().max() > 1e-4 for k in state)
    # Only the smallest subset is drawn.
    assert int(plan.chunk_last_text[plan.head_warmup_stream(CONFIG.head_warmup_steps)].max()) < SIZES[0]
    # Afterwards every parameter is as trainable as before (the encoder again, the embeddings not).
    assert {name: p.requires_grad for name, p in setup.trainable.named_parameters()} == trainable_before
    assert sum(trainable_before.values()) > len(head_before)


def test_a_shipped_mlm_head_is_used(tmp_path):
    from sentence_transformers.models import Pooling, Transformer
    from tiny_models import build_tiny_sentence_transformer
    from transformers import AutoModelForMaskedLM, BertForMaskedLM

    st_dir = build_tiny_sentence_transformer(tmp_path / "st")
    hf_dir = tmp_path / "st-hf"
    torch.manual_seed(3)
    with_head = BertForMaskedLM(AutoModelForMaskedLM.from_pretrained(hf_dir).config)
    with_head.save_pretrained(hf_dir)
    module = Transformer(str(hf_dir), max_seq_length=64)
    model = SentenceTransformer(modules=[module, Pooling(module.get_embedding_dimension(), "mean")], device="cpu")
    setup = prepare_mlm(model, CONFIG, seed=0)
    assert setup.head_shipped
    shipped = with_head.cls.predictions.transform.dense.weight
    torch.testing.assert_close(setup.mlm.cls.predictions.transform.dense.weight, shipped)
    plan, results = _independent(model, tmp_path / "work", sizes=[16])
    assert results[16].head == "shipped"
    # A SentenceTransformer checkpoint without a head gets a new one (and the warmup).
    assert not prepare_mlm(SentenceTransformer(str(st_dir), device="cpu"), CONFIG, seed=0).head_shipped


def test_resume_after_the_first_point_equals_the_uninterrupted_run(tiny_model, tmp_path):
    reference, expected = _branching(tiny_model, tmp_path / "reference")

    class Interrupted(Exception):
        pass

    finished = {}

    def crash_after_first(n, result):
        if n != SIZES[0]:
            raise Interrupted
        finished[n] = result

    with pytest.raises(Interrupted):
        _branching(tiny_model, tmp_path / "state", on_branch=crash_after_first)
    resumed, results = _branching(tiny_model, tmp_path / "state", completed={SIZES[0]})
    assert resumed.skipped == [SIZES[0]] and sorted(results) == SIZES[1:]
    assert resumed.resumed_from_step == reference.plan["points"][str(SIZES[1])]["steps"] - \
        reference.plan["points"][str(SIZES[1])]["cooldown_steps"]
    probe = TEXTS[:6]
    np.testing.assert_allclose(finished[SIZES[0]].model.encode(probe), expected[SIZES[0]].model.encode(probe),
                               atol=1e-6)
    for n in SIZES[1:]:
        np.testing.assert_allclose(results[n].model.encode(probe), expected[n].model.encode(probe), atol=1e-6)
        assert results[n].tokens_seen == expected[n].tokens_seen
        assert results[n].lr_integral == pytest.approx(expected[n].lr_integral)
    assert not (tmp_path / "state").exists()  # checkpoints go once every size is done
    # All done: nothing to train.
    done, nothing = _branching(tiny_model, tmp_path / "state", completed=set(SIZES))
    assert not nothing and done.main_steps_run == 0 and done.branch_steps_run == 0


def test_report_to_and_callbacks_reach_every_trainer_run(tiny_model, tmp_path):
    pytest.importorskip("tensorboard")

    class CountSteps(TrainerCallback):
        def __init__(self):
            self.steps = 0
            self.runs = 0

        def on_train_begin(self, args, state, control, **kwargs):
            self.runs += 1

        def on_step_end(self, args, state, control, **kwargs):
            self.steps += 1

    config = FinetuneConfig(**{**CONFIG.__dict__, "report_to": "tensorboard"})
    counter = CountSteps()
    stats, results = _branching(tiny_model, tmp_path / "checkpoints" / ".state", config=config, callbacks=[counter],
                                log_dir=tmp_path / "logs")
    # head warmup + one main-run leg and one branch per point
    assert counter.runs == 1 + 2 * len(SIZES)
    assert counter.steps == CONFIG.head_warmup_steps + stats.main_steps_run + stats.branch_steps_run
    events = list((tmp_path / "logs").glob("**/events.out.tfevents.*"))
    assert len(events) >= 1 + 2 * len(SIZES)

    counter = CountSteps()
    _independent(tiny_model, tmp_path / "ind", sizes=[16, 32], config=config, callbacks=[counter],
                 log_dir=tmp_path / "ind-logs")
    assert counter.runs == 3
    assert list((tmp_path / "ind-logs").glob("**/events.out.tfevents.*"))


def test_min_steps_lengthens_small_points_inside_their_branch(tiny_model, tmp_path):
    config = FinetuneConfig(**{**CONFIG.__dict__, "min_steps": 12})
    stats, results = _branching(tiny_model, tmp_path / "state", sizes=[8, 16], config=config, audit=True)
    setup = prepare_mlm(tiny_model, config, 0)
    plan = plan_for(setup, TEXTS, [8, 16], config, 0)
    assert plan.data_steps[0] < 12  # 8 texts are fewer than 12 steps of data
    for n in (8, 16):
        assert results[n].optimizer_steps == plan.recipes[n].steps >= 12 and results[n].final_lr == 0.0
        assert results[n].schedule == "branching" and results[n].max_text_index < n
    # f8 cycles its own subset in its branch; the main run still goes straight on to f16's texts.
    assert plan.branch_start(8) == plan.data_steps[0]
    assert plan.main_stream[: plan.data_steps[0] * plan.chunks_per_step].max() < plan.segment_ends[0]
    assert stats.plan["branching_steps"] <= stats.plan["independent_steps"]


def test_lora_branches_merge_into_plain_checkpoints(tiny_model, tmp_path):
    config = FinetuneConfig(**{**CONFIG.__dict__, "lora": True, "lora_r": 4, "lora_target_modules": ["query", "value"],
                               "learning_rate": 1e-2})
    stats, results = _branching(tiny_model, tmp_path / "a", sizes=[16, 32], config=config)
    base = tiny_model.encode(TEXTS[:4])
    for n in (16, 32):
        assert np.abs(results[n].model.encode(TEXTS[:4]) - base).max() > 1e-4
    save_checkpoint(results[32].model, tmp_path / "f32", TEXTS[:4])
    files = {p.name for p in (tmp_path / "f32").iterdir()}
    assert "adapter_config.json" not in files and "modules.json" in files


def test_bad_sizes_are_rejected(tiny_model, tmp_path):
    for sizes in ([0, 8], [16, 8], [8, 8], [len(TEXTS) + 1]):
        with pytest.raises(ValueError):
            _branching(tiny_model, tmp_path / "s", sizes=sizes)


def test_plan_rule_for_min_steps():
    encoded = [[2] + [7] * 30 + [3]] * 100  # 32 tokens a text: one chunk each at length 32
    config = FinetuneConfig(batch_size=4, min_steps=10, warmup_steps=1, min_cooldown_steps=2, cooldown_fraction=0.5)
    plan = plan_curve(encoded, [8, 40, 100], config, seed=0, chunk_length=32)
    assert plan.data_steps == [2, 10, 25]
    assert [plan.recipes[n].steps for n in (8, 40, 100)] == [10, 10, 25]
    assert plan.recipes[100].cooldown_steps == 12  # round(0.5 x 25) > min_cooldown_steps
    assert [plan.branch_start(n) for n in (8, 40, 100)] == [2, 5, 13]
    assert len(plan.independent_stream(8)) == len(plan.branch_stream(8)) == 10 * 4  # cycled to 10 steps
    assert plan.summary()["branching_steps"] == 13 + (10 - 2) + (10 - 5) + (25 - 13)
    assert lr_factor(0, warmup_steps=0) == 1.0


_TORCHRUN_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import torch
    torch.set_num_threads(1)
    from sentence_transformers import SentenceTransformer
    from hf_finetune_curve import FinetuneConfig
    from hf_finetune_curve.data.sample_data import generate_listings
    from hf_finetune_curve.train.branching import finetune_branching
    from hf_finetune_curve.train.finetune import finetune_independent

    texts = [row["text"] for row in generate_listings(100, seed=5)]
    model = SentenceTransformer(sys.argv[1], device="cpu")
    batch = int(sys.argv[3])  # global: split over the processes
    config = FinetuneConfig(batch_size=batch, max_seq_length=32, learning_rate=5e-3, warmup_steps=2,
                            min_cooldown_steps=2, min_steps=0, head_warmup_steps=2)
    out = {}
    finetune_independent(model, texts, [24], config, seed=0, device="cpu", work_dir=sys.argv[2] + ".ind",
                         on_point=lambda n, r: out.setdefault(f"independent:{n}", r), show_progress=False)
    finetune_branching(model, texts, [12, 24], config, seed=0, device="cpu", state_dir=sys.argv[2] + ".state",
                       on_branch=lambda n, r: out.setdefault(f"branching:{n}", r), show_progress=False)
    rank = int(os.environ.get("RANK", "0"))
    with open(f"{sys.argv[2]}.rank{rank}", "w") as handle:
        json.dump({key: {"embeddings": r.model.encode(texts[:4]).tolist(), "steps": r.optimizer_steps,
                         "tokens": r.tokens_seen, "lr_integral": r.lr_integral} for key, r in out.items()}, handle)
""")


def test_both_schedules_under_torchrun_match_one_process(tiny_model_dir, tmp_path):
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    if not Path(torchrun).exists() or not torch.distributed.is_gloo_available():
        pytest.skip("torchrun with the gloo backend is not available")
    # No dropout, so two processes with 4 chunks each must equal one process with 8 (same masks:
    # they depend on the chunk and its draw position, not on the process). The batch is global: both runs are
    # given 8, and each of the two processes computes 4.
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    config_path = model_dir / "config.json"
    hf_config = json.loads(config_path.read_text())
    hf_config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    config_path.write_text(json.dumps(hf_config))
    script = tmp_path / "script.py"
    script.write_text(_TORCHRUN_SCRIPT)
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(script), str(model_dir), str(tmp_path / "single"), "8"], check=True,
                   env=env, timeout=600)
    subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", str(script), str(model_dir),
                    str(tmp_path / "multi"), "8"], check=True, env=env, timeout=600)
    single = json.loads((tmp_path / "single.rank0").read_text())
    ranks = [json.loads((tmp_path / f"multi.rank{r}").read_text()) for r in (0, 1)]
    assert sorted(single) == sorted(ranks[0]) == ["branching:12", "branching:24", "independent:24"]
    for key, expected in single.items():
        for rank in ranks:
            assert rank[key]["steps"] == expected["steps"] and rank[key]["tokens"] == expected["tokens"]
            assert rank[key]["lr_integral"] == pytest.approx(expected["lr_integral"])
            np.testing.assert_allclose(rank[key]["embeddings"], expected["embeddings"], atol=2e-5)
