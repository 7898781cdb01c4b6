"""Branching schedule: one warmup-stable-decay run with a cooldown branch per size."""

import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

from hf_finetune_curve import FinetuneConfig
from hf_finetune_curve.branching import finetune_branching, plan_branching
from hf_finetune_curve.checkpoint import save_checkpoint
from hf_finetune_curve.finetune import chunk_length_for, finetune_sentence_transformer, tokenize_texts
from hf_finetune_curve.sample_data import generate_listings

TEXTS = [row["text"] for row in generate_listings(200, seed=5)]
SIZES = [8, 16, 32]
CONFIG = FinetuneConfig(batch_size=8, max_seq_length=64, learning_rate=5e-3)


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


def _run(model, sizes, state_dir, config=CONFIG, **kwargs):
    results = {}
    kwargs.setdefault("on_branch", lambda n, result: results.setdefault(n, result))
    stats = finetune_branching(model, TEXTS, sizes, config, seed=0, device="cpu", state_dir=state_dir,
                               show_progress=False, **kwargs)
    return stats, results


def test_curve_costs_at_most_125x_its_largest_point(tiny_model):
    tokenizer = tiny_model.tokenizer
    for sizes in ([50, 100, 200], [25, 50, 100, 200], [50, 200]):
        plan = plan_branching(tokenizer, TEXTS, sizes, FinetuneConfig(), seed=0,
                              chunk_length=chunk_length_for(tiny_model, 64))
        summary = plan.summary()
        assert summary["compute_ratio"] <= 1.25, (sizes, summary)
        assert summary["independent_ratio"] > 1.2
        # The main run covers the largest subset once: exactly its tokens.
        lengths = [len(ids) for ids in tokenize_texts(TEXTS[: sizes[-1]], tokenizer)]
        assert summary["main_tokens"] == summary["largest_independent_tokens"] == sum(lengths)


def test_one_checkpoint_per_size_and_no_text_beyond_n(tiny_model, tmp_path):
    saved = {}

    def on_branch(n, result):
        saved[n] = result
        save_checkpoint(result.model, tmp_path / "checkpoints" / f"f{n}", TEXTS[:4])

    stats, _ = _run(tiny_model, SIZES, tmp_path / "state", on_branch=on_branch, audit=True)
    assert sorted(saved) == SIZES
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["f16", "f32", "f8"]
    for n in SIZES:
        reloaded = SentenceTransformer(str(tmp_path / "checkpoints" / f"f{n}"), device="cpu")
        assert [type(m).__name__ for m in reloaded] == ["Transformer", "Pooling", "Normalize"]
    assert not (tmp_path / "state").exists()  # boundary states go once every size is done

    sources = stats.chunk_sources
    lengths = [len(ids) for ids in tokenize_texts(TEXTS[: SIZES[-1]], tiny_model.tokenizer)]
    main_tokens = np.zeros(SIZES[-1], dtype=int)
    for n in SIZES:
        # The main run before boundary n: every text of pool[:n] exactly once (epochs=1), nothing after.
        for chunk in stats.draws[f"main:{n}"]:
            for text, tokens in sources[chunk]:
                assert text < n
                main_tokens[text] += tokens
        np.testing.assert_array_equal(main_tokens[:n], lengths[:n])
        assert main_tokens[n:].sum() == 0
        cooldown = stats.draws.get(f"cooldown:{n}", [])
        assert all(text < n for chunk in cooldown for text, _ in sources[chunk])
        point, result = stats.points[n], saved[n]
        assert point.max_text_index == n - 1
        assert result.tokens_seen == sum(lengths[:n]) + point.cooldown_tokens
        assert result.cooldown_tokens == sum(len_ for c in cooldown for len_ in [sum(t for _, t in sources[c])])
        assert result.texts_seen == n and result.schedule == "branching"
        assert math.isfinite(result.final_loss)
    # Cooldowns branch for the smaller sizes; the largest decays inside the main run.
    assert stats.points[8].cooldown_tokens > 0 and stats.points[16].cooldown_tokens > 0
    assert stats.points[32].inline_decay and stats.points[32].cooldown_tokens == 0
    assert stats.main_steps_run == stats.plan["main_steps"]
    # Every branch is its own model, and none of them is the base model.
    base = tiny_model.encode(TEXTS[:4])
    embeddings = {n: saved[n].model.encode(TEXTS[:4]) for n in SIZES}
    for n in SIZES:
        assert np.abs(embeddings[n] - base).max() > 1e-3
    assert np.abs(embeddings[8] - embeddings[16]).max() > 1e-4
    total = stats.plan["main_tokens"] + stats.plan["cooldown_tokens"]
    assert total == sum(lengths) + stats.points[8].cooldown_tokens + stats.points[16].cooldown_tokens


def test_resume_skips_done_sizes_and_reproduces_the_uninterrupted_run(tiny_model, tmp_path):
    reference, ref_results = _run(tiny_model, SIZES, tmp_path / "ref")

    class Interrupted(Exception):
        pass

    def crash_at_16(n, result):
        if n == 16:
            raise Interrupted

    with pytest.raises(Interrupted):
        _run(tiny_model, SIZES, tmp_path / "state", on_branch=crash_at_16)
    # The state at 16 (saved before its branch) is there; the one at 8 was pruned.
    assert [p.name for p in (tmp_path / "state").iterdir()] == [f"boundary-{16:012d}.pt"]

    resumed, results = _run(tiny_model, SIZES, tmp_path / "state", completed={8})
    assert resumed.resumed_from == 16 and resumed.skipped == [8]
    assert sorted(results) == [16, 32]
    steps_to_16 = reference.points[16].main_steps
    assert resumed.main_steps_run == reference.plan["main_steps"] - steps_to_16  # nothing before 16 again
    assert resumed.cooldown_steps_run == reference.points[16].cooldown_steps
    for n in (16, 32):
        np.testing.assert_allclose(results[n].model.encode(TEXTS[:6]), ref_results[n].model.encode(TEXTS[:6]),
                                   atol=1e-5)
        assert results[n].tokens_seen == ref_results[n].tokens_seen
        assert results[n].optimizer_steps == ref_results[n].optimizer_steps

    # All done: nothing to train.
    done, nothing = _run(tiny_model, SIZES, tmp_path / "state", completed=set(SIZES))
    assert not nothing and done.main_steps_run == 0 and done.cooldown_steps_run == 0


def test_branches_do_not_disturb_the_main_run_with_lora(tiny_model, tmp_path):
    config = FinetuneConfig(batch_size=8, max_seq_length=64, lora=True, lora_r=4,
                            lora_target_modules=["query", "value"])
    stats, results = _run(tiny_model, [8, 32], tmp_path / "a", config=config)
    assert sorted(results) == [8, 32]
    base = tiny_model.encode(TEXTS[:4])
    for n in (8, 32):
        assert np.abs(results[n].model.encode(TEXTS[:4]) - base).max() > 1e-4
    save_checkpoint(results[32].model, tmp_path / "f32", TEXTS[:4])
    files = {p.name for p in (tmp_path / "f32").iterdir()}
    assert "adapter_config.json" not in files and "modules.json" in files
    # Without the branch at 8 (already done), the main run reaches the same f32: the branch merged a
    # copy of the adapters and the main run went on from its saved, unmerged state.
    alone, alone_results = _run(tiny_model, [8, 32], tmp_path / "b", config=config, completed={8})
    assert sorted(alone_results) == [32] and alone.cooldown_steps_run == 0
    np.testing.assert_allclose(alone_results[32].model.encode(TEXTS[:4]), results[32].model.encode(TEXTS[:4]),
                               atol=1e-5)


def test_bad_sizes_are_rejected(tiny_model, tmp_path):
    for sizes in ([0, 8], [16, 8], [8, 8], [len(TEXTS) + 1]):
        with pytest.raises(ValueError):
            _run(tiny_model, sizes, tmp_path / "s")


_TORCHRUN_SCRIPT = textwrap.dedent("""
    import json, os, sys
    from sentence_transformers import SentenceTransformer
    from hf_finetune_curve import FinetuneConfig
    from hf_finetune_curve.finetune import finetune_sentence_transformer
    from hf_finetune_curve.sample_data import generate_listings

    texts = [row["text"] for row in generate_listings(60, seed=5)]
    model = SentenceTransformer(sys.argv[1], device="cpu")
    config = FinetuneConfig(batch_size=4, max_seq_length=32, learning_rate=5e-3)
    result = finetune_sentence_transformer(model, texts, config, seed=0, device="cpu", show_progress=False)
    import torch.distributed as dist
    rank = int(os.environ["RANK"])

    from pathlib import Path
    from hf_finetune_curve.branching import finetune_branching
    branches = {}
    state_dir = Path(sys.argv[2] + ".state")
    stats = finetune_branching(model, texts, [16, 32], config, seed=0, device="cpu", state_dir=state_dir,
                               on_branch=lambda n, r: branches.setdefault(n, r), show_progress=False,
                               keep_states=True)
    branching = {
        "sizes": sorted(branches), "plan": stats.plan,
        "main_tokens": {n: stats.points[n].main_tokens for n in branches},
        "embeddings": {n: r.model.encode(texts[:4]).tolist() for n, r in branches.items()},
        "states": sorted(p.name for p in state_dir.iterdir()),
    }
    with open(f"{sys.argv[2]}.rank{rank}", "w") as handle:
        json.dump({
            "world_size": dist.get_world_size() if dist.is_initialized() else 1,
            "modules": [type(module).__name__ for module in result.model],
            "tokens_seen": result.tokens_seen, "steps": result.optimizer_steps, "loss": result.final_loss,
            "embeddings": result.model.encode(texts[:4]).tolist(),
            "branching": branching,
        }, handle)
""")


def test_both_schedules_run_data_parallel_under_torchrun(tiny_model, tiny_model_dir, tmp_path):
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    if not Path(torchrun).exists():
        pytest.skip("torchrun is not installed")
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("torch.distributed with the gloo backend is not available")
    script = tmp_path / "train.py"
    script.write_text(_TORCHRUN_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONWARNINGS="ignore")
    process = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node", "2", str(script), str(tiny_model_dir), str(tmp_path / "out")],
        env=env, capture_output=True, text=True, timeout=240,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"out.rank{rank}").read_text()) for rank in (0, 1)]
    single = finetune_sentence_transformer(tiny_model, [row["text"] for row in generate_listings(60, seed=5)],
                                           FinetuneConfig(batch_size=4, max_seq_length=32, learning_rate=5e-3),
                                           seed=0, device="cpu", show_progress=False)
    first = ranks[0]
    assert first["world_size"] == 2
    assert first["modules"] == [type(module).__name__ for module in single.model]
    assert first["tokens_seen"] == single.tokens_seen
    assert math.isfinite(first["loss"])
    # Twice the global batch: half the steps.
    assert first["steps"] == math.ceil(single.num_chunks / 8)
    embeddings = np.array(first["embeddings"])
    assert np.isfinite(embeddings).all()
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert np.abs(embeddings - tiny_model.encode([row["text"] for row in generate_listings(60, seed=5)][:4])).max() > 1e-3
    # The replicas stay in sync: both processes hold the same model.
    np.testing.assert_allclose(np.array(ranks[1]["embeddings"]), embeddings, atol=1e-6)

    # Branching under torchrun: data-parallel too, the same texts per point, replicas in sync.
    branching = first["branching"]
    assert branching["sizes"] == [16, 32]
    texts = [row["text"] for row in generate_listings(60, seed=5)]
    lengths = [len(ids) for ids in tokenize_texts(texts[:32], tiny_model.tokenizer)]
    assert branching["main_tokens"] == {"16": sum(lengths[:16]), "32": sum(lengths)}
    assert branching["plan"]["compute_ratio"] <= 1.25
    assert branching["states"] == [f"boundary-{16:012d}.pt"]  # written once, by rank 0
    for n in ("16", "32"):
        vectors = np.array(branching["embeddings"][n])
        assert np.isfinite(vectors).all()
        np.testing.assert_allclose(np.array(ranks[1]["branching"]["embeddings"][n]), vectors, atol=1e-6)
