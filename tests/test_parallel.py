"""`hf-curve run --workers 2`: the seeds of a curve in two processes give what one process gives."""

import json

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file

from hf_finetune_curve.cli import main
from hf_finetune_curve.data.sample_data import generate_listings, write_jsonl
from hf_finetune_curve.errors import RunDirectoryLockedError
from hf_finetune_curve.io_utils import exclusive_lock
from hf_finetune_curve.pipeline.parallel import Track, plan_tracks

FAST = ["--probe-trees", "30", "--max-seq-length", "32", "--batch-size", "16", "--no-progress", "--sizes", "0,40",
        "--seeds", "2"]


def _args(corpus, model_dir, out, *extra):
    return ["run", "--data", str(corpus), "--model", str(model_dir), "--output-dir", str(out), *FAST, *extra]


def test_two_workers_give_the_serial_curve(tiny_model_dir, tmp_path, capsys):
    corpus = tmp_path / "listings.jsonl"
    write_jsonl(generate_listings(160, seed=4), corpus)
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    assert main(_args(corpus, tiny_model_dir, serial)) == 0
    assert main(_args(corpus, tiny_model_dir, parallel, "--workers", "2")) == 0
    # Each seed was a worker of its own, with its own log.
    assert sorted(p.name for p in (parallel / "logs").glob("worker-*.log")) == ["worker-seed-42-mlm.log",
                                                                                "worker-seed-43-mlm.log"]
    # Every number of the curve (its intervals over the seeds included) but the timings.
    curves = [pd.read_csv(run / "curve.csv") for run in (parallel, serial)]
    curves = [curve[[c for c in curve.columns if not c.endswith("_seconds")]] for curve in curves]
    assert len(curves[0].columns) > 20
    pd.testing.assert_frame_equal(curves[0], curves[1], check_exact=True)
    for folder in ("", "seeds/seed-43/"):
        point_serial = json.loads((serial / folder / "points" / "f40.json").read_text())
        point_parallel = json.loads((parallel / folder / "points" / "f40.json").read_text())
        for key in ("r2", "r2_log", "mae", "median_ae", "finetune_steps", "finetune_tokens_seen", "final_mlm_loss"):
            assert point_parallel[key] == point_serial[key], (folder, key)
        weights_serial = load_file(next((serial / folder / "checkpoints" / "f40").glob("*.safetensors")))
        weights_parallel = load_file(next((parallel / folder / "checkpoints" / "f40").glob("*.safetensors")))
        for name, value in weights_serial.items():
            np.testing.assert_array_equal(weights_parallel[name], value, err_msg=f"{folder}{name}")
    # A rerun reuses everything, whichever way it runs.
    capsys.readouterr()
    assert main(_args(corpus, tiny_model_dir, parallel)) == 0
    assert "already finished, skipping" in capsys.readouterr().err


def test_tracks_keep_a_continuation_with_its_start_and_each_worker_locks_its_own(tmp_path):
    from hf_finetune_curve import CurveConfig

    tracks = plan_tracks(CurveConfig(seeds=1, objectives="mlm-simcse,tsdae,mlm"))
    assert tracks == [Track(42, ("mlm", "mlm-simcse")), Track(42, ("tsdae",))]  # a start runs before its continuation
    assert Track.decode(tracks[0].encode()) == tracks[0]
    with exclusive_lock(tmp_path / ".lock-seed-42-tsdae"):
        with pytest.raises(RunDirectoryLockedError):
            with exclusive_lock(tmp_path / ".lock-seed-42-tsdae"):
                pass
        with exclusive_lock(tmp_path / ".lock-seed-43-tsdae"):  # another track's lock is free
            pass
