"""How noisy is one probe fit, how many probe seeds are enough, and which metric answers best?

Reads a finished (or partly finished) run directory. By default it uses the probe-seed predictions
the run saved (``predictions/<label>.probe-seeds.npy``, one row per ``--probe-seeds`` fit); with
``--refit N`` it refits every checkpoint's probe with N seeds on its cached embeddings instead.
It reports, per metric:

* ``seed sd (1)``: the spread of one fit's score across probe seeds;
* ``seed sd (k)``: the spread of the score of k fits' averaged predictions (random k-subsets of
  the seeds), for k = 1, 2, 3, 5;
* ``rows sd``: the bootstrap spread over held-out rows, for scale;
* ``effect / seed sd``: the curve's range over checkpoints (max - min of the averaged-seed
  score) divided by the single-fit seed spread: how many "probe-seed sds" the curve spans. The
  answer metric should be the one whose curve stands out most from the probe's own noise.

    python benchmarks/probe_seeds.py runs/airbnb            # the run's own probe seeds
    python benchmarks/probe_seeds.py runs/airbnb --refit 10  # 10 fresh fits per checkpoint

Prints one table per metric and the summary the README quotes.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import time
from pathlib import Path

import numpy as np

from hf_finetune_curve.config import CurveConfig
from hf_finetune_curve.curve.uncertainty import bootstrap_replicates
from hf_finetune_curve.data.corpus import load_corpus
from hf_finetune_curve.run_dir import RunDirectory
from hf_finetune_curve.score.probe import METRICS, fit_and_score, regression_scores

KS = (1, 2, 3, 5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--refit", type=int, default=0, help="refit with N probe seeds (0: the saved predictions)")
    parser.add_argument("--labels", help="comma-separated checkpoints (default: every finished one)")
    args = parser.parse_args()
    run = RunDirectory(args.run_dir)
    config = CurveConfig.load(run.path)
    corpus = load_corpus(config.data, config.text_column, config.target_column, config.max_rows)
    splits = run.read_splits()
    rows = splits.probe_rows
    position = {row: i for i, row in enumerate(rows)}
    train = np.array([position[r] for r in splits.train_indices])
    test = np.array([position[r] for r in splits.test_indices])
    y_train, y_test = corpus.targets[splits.train_indices], corpus.targets[splits.test_indices]
    labels = args.labels.split(",") if args.labels else [p.label for p in run.read_points()]
    print(f"{args.run_dir}: {len(train)} probe-train / {len(test)} test rows, "
          f"{'refitting ' + str(args.refit) if args.refit else 'saved'} probe seeds, checkpoints {', '.join(labels)}")
    keys = [key for key, _, _ in METRICS]
    per_label: dict[str, dict[str, dict[str, float]]] = {}
    started = time.perf_counter()
    for label in labels:
        if args.refit:
            cached = run.cached_embeddings(label, len(rows))
            if cached is None:
                print(f"{label}: no cached embeddings, skipped")
                continue
            embeddings = np.load(cached)
            preds = fit_and_score(embeddings[train], y_train, embeddings[test], y_test,
                                  dataclasses.replace(config.probe, seed=config.seed),
                                  n_seeds=args.refit).seed_predictions
        else:
            preds = run.read_seed_predictions(label)
            if preds is None or len(preds) < 2:
                print(f"{label}: fewer than 2 saved probe seeds, skipped (use --refit)")
                continue
        n_seeds = len(preds)
        averaged = regression_scores(y_test, preds.mean(axis=0))
        stats: dict[str, dict[str, float]] = {key: {} for key in keys}
        single = [regression_scores(y_test, p) for p in preds]
        rng = np.random.default_rng(0)
        for k in KS:
            if k > n_seeds:
                for key in keys:
                    stats[key][f"seed sd ({k})"] = float("nan")
                continue
            subsets = list(itertools.combinations(range(n_seeds), k))
            chosen = [subsets[i] for i in rng.choice(len(subsets), size=min(60, len(subsets)), replace=False)]
            scores = [regression_scores(y_test, preds[list(c)].mean(axis=0)) for c in chosen]
            for key in keys:
                stats[key][f"seed sd ({k})"] = float(np.std([s[key] for s in scores], ddof=1))
        reps = bootstrap_replicates(y_test, preds.mean(axis=0), n_resamples=500, seed=config.seed)
        for key in keys:
            stats[key]["single mean"] = float(np.mean([s[key] for s in single]))
            stats[key]["averaged"] = float(averaged[key])
            stats[key]["rows sd"] = float(np.std(reps[key], ddof=1))
        per_label[label] = stats
        print(f"{label}: done ({time.perf_counter() - started:.0f} s)")
    for key, name, _ in METRICS:
        print(f"\n{name} ({key})")
        header = ["label", "1 fit (mean)", "all fits avg"] + [f"seed sd ({k})" for k in KS] + ["rows sd"]
        print(" | ".join(f"{h:>13}" for h in header))
        for label, stats in per_label.items():
            s = stats[key]
            cells = [label, f"{s['single mean']:.4f}", f"{s['averaged']:.4f}"] + \
                    [f"{s[f'seed sd ({k})']:.4f}" for k in KS] + [f"{s['rows sd']:.4f}"]
            print(" | ".join(f"{c:>13}" for c in cells))
    print("\nsummary (means over checkpoints)")
    print(f"{'metric':>10} | {'seed sd (1)':>11} | {'seed sd (3)':>11} | {'rows sd':>8} | {'seed/rows (1)':>13} | "
          f"{'curve range':>11} | {'range / seed sd (1)':>19}")
    for key in keys:
        sd1 = np.mean([s[key]["seed sd (1)"] for s in per_label.values()])
        sd3 = np.mean([s[key]["seed sd (3)"] for s in per_label.values()])
        rows_sd = np.mean([s[key]["rows sd"] for s in per_label.values()])
        averaged = [s[key]["averaged"] for s in per_label.values()]
        spread = max(averaged) - min(averaged)
        print(f"{key:>10} | {sd1:>11.4f} | {sd3:>11.4f} | {rows_sd:>8.4f} | {sd1 / rows_sd:>13.2f} | "
              f"{spread:>11.4f} | {spread / sd1:>19.1f}")
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
