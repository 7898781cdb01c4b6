"""End-to-end null calibration: prices shuffled among rows, so no embedding can carry price information.

One real ``hf-curve run`` on the tiny model (five sizes, branching MLM, XGBoost probe) trains the
checkpoints and prints its report; then 20 more null runs, each with its own seed (a new shuffle of the
prices, a new test split and the probe's own seed), re-score those real checkpoints' embeddings with the
real probe and take the verdict from the real analysis (:func:`analyze_curve`, :func:`answer_lines`, what
``hf-curve report`` prints). Training 20 more sets of checkpoints would take ~35 s each on two CPU cores;
with shuffled prices the checkpoints' training noise cannot carry price information anyway, so reusing
them changes nothing the verdict is about. At most 5% of the 21 runs may call a gain or "hurts".
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from hf_finetune_curve.cli import main
from hf_finetune_curve.data.sample_data import generate_listings, write_jsonl

SIZES = [0, 10, 20, 40, 80]
ROWS = 200


@pytest.fixture(scope="module")
def null_run(tmp_path_factory, tiny_model_dir):
    folder = tmp_path_factory.mktemp("null")
    rows = generate_listings(ROWS, seed=5)
    prices = [row["price"] for row in rows]
    np.random.default_rng(0).shuffle(prices)
    for row, price in zip(rows, prices):
        row["price"] = price
    write_jsonl(rows, folder / "shuffled.jsonl")
    out = folder / "run"
    code = main(["run", "--data", str(folder / "shuffled.jsonl"), "--model", str(tiny_model_dir),
                 "--sizes", ",".join(map(str, SIZES)), "--output-dir", str(out), "--no-tfidf-baseline",
                 "--probe-trees", "20", "--bootstrap-resamples", "100", "--max-seq-length", "32",
                 "--batch-size", "16", "--min-steps", "2", "--no-progress"])
    assert code == 0
    return out, rows


def test_shuffled_prices_are_called_flat_in_at_least_95_percent_of_runs(null_run, capsys):
    from sentence_transformers import SentenceTransformer

    from hf_finetune_curve.config import DEFAULT_PROBE_SEEDS
    from hf_finetune_curve.curve.analysis import analyze_curve, answer_lines
    from hf_finetune_curve.curve.points import CurvePoint
    from hf_finetune_curve.score.probe import ProbeConfig, fit_and_score

    out, rows = null_run
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    report = capsys.readouterr().out
    verdicts = [json.loads((out / "curve.json").read_text())["answer"]["verdict"]["call"]]
    assert f"Verdict on R² (log price): {verdicts[0]}:" in report
    assert "The verdict is provisional" in report and "--seeds 3" in report

    texts = [row["text"] for row in rows]
    labels = [f"f{size}" for size in SIZES]
    models = {"f0": SentenceTransformer(str(json.loads((out / "config.json").read_text())["config"]["model"]))}
    models.update({label: SentenceTransformer(str(out / "checkpoints" / label)) for label in labels[1:]})
    embeddings = {label: model.encode(texts, batch_size=64) for label, model in models.items()}
    prices = np.array([row["price"] for row in rows], dtype=float)
    for seed in range(1, 21):
        rng = np.random.default_rng(seed)
        shuffled = rng.permutation(prices)
        order = rng.permutation(ROWS)
        test, train = order[:40], order[40:]
        points, predictions = [], {}
        for size, label in zip(SIZES, labels):
            # The run's own probe: DEFAULT_PROBE_SEEDS fits averaged, every seed's predictions kept (a level
            # of noise the intervals resample).
            result = fit_and_score(embeddings[label][train], shuffled[train], embeddings[label][test], shuffled[test],
                                   ProbeConfig(n_estimators=20, seed=seed), n_seeds=DEFAULT_PROBE_SEEDS)
            predictions[label] = result.seed_predictions
            points.append(CurvePoint(size, label, r2=result.scores["r2"], mae=result.scores["mae"],
                                     median_ae=result.scores["median_ae"], n_test=40, n_probe_train=160,
                                     probe_seeds=DEFAULT_PROBE_SEEDS))
        summary = analyze_curve(points, shuffled[test], predictions, n_resamples=100, seed=seed)
        verdict = summary["answer"]["verdict"]["call"]
        verdicts.append(verdict)
        if verdict == "flat":
            assert any(line.startswith("Verdict on R² (log price): flat:") for line in answer_lines(summary))
    called = sum(verdict in ("gain", "hurts") for verdict in verdicts)
    assert len(verdicts) == 21 and called <= 0.05 * len(verdicts), verdicts
    assert verdicts.count("flat") >= len(verdicts) - 1, verdicts
    print("null verdicts:", verdicts)
