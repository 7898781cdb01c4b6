"""Choose each objective's free knobs on a validation split, never on the held-out test rows.

The tool's own split of the corpus (``--max-rows``, ``--seed``, ``--test-fraction`` as the run that
will use the choice) puts its held-out test rows aside first. Only the probe-training rows go into a
*validation corpus*, which the tool splits again: its "held-out" rows are a validation split carved
from the probe-training rows. On that corpus, at one size (``--size``), every arm trains and is scored
with the curve's own probe:

* each objective of ``--objectives`` at each peak rate of ``--rates``
  (``--objective-learning-rate OBJECTIVE=RATE``; mlm-simcse's SimCSE stage is swept, its MLM stage
  keeps MLM's rate);
* mlm-distill at each weight of ``--distill-weights`` (at its default rate).

It prints validation log R² and R² per arm, the paired Δ vs f0 with its interval, and the choice
(the best validation log R², the answer metric), and writes ``<out>/choices.json``. Each arm is a
resumable run under ``<out>``, so an interrupted check goes on where it stopped.

    python benchmarks/choose_recipe.py --max-rows 2000 --size 640
    python benchmarks/choose_recipe.py --data ../shared/data/airbnb_usd.jsonl.gz --max-rows 2000 \\
        --objectives simcse,supervised --rates 1e-5,3e-5,1e-4 --distill-weights 1,10,100
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from _common import base_parser, environment_line, quiet, setup, table


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--max-rows", type=int, default=2000)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--size", default="0.5", help="the one finetune size of every arm (count or pool fraction)")
    parser.add_argument("--objectives", default="simcse,mlm-simcse,supervised")
    parser.add_argument("--rates", default="1e-5,3e-5,1e-4")
    parser.add_argument("--distill-weights", default="1,10,100", help="'' skips the mlm-distill sweep")
    parser.add_argument("--probe-seeds", type=int, default=1)
    parser.add_argument("--out", default="runs/choose-recipe")
    args = parser.parse_args()
    device = setup(args)
    quiet()

    from hf_finetune_curve import CurveConfig, FinetuneConfig, run_curve
    from hf_finetune_curve.data.corpus import load_corpus
    from hf_finetune_curve.data.sample_data import write_jsonl
    from hf_finetune_curve.data.subsets import make_splits

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    corpus = load_corpus(args.data, max_rows=args.max_rows)
    splits = make_splits(len(corpus), args.test_fraction, args.seed, False)
    validation = out / "validation.jsonl"
    write_jsonl([{"text": corpus.texts[i], "price": float(corpus.targets[i])} for i in splits.train_indices],
                validation)
    print(f"{corpus.report.source}: {len(corpus)} rows; the run's {len(splits.test_indices)} test rows set aside; "
          f"validation corpus = its {len(splits.train_indices)} probe-training rows")
    print(environment_line(device))

    objectives = [o for o in args.objectives.split(",") if o]
    arms: list[tuple[str, str, dict]] = []
    for rate in [float(r) for r in args.rates.split(",") if r]:
        arms.append((",".join(objectives), f"rate {rate:g}",
                     dict(objective_learning_rates={o: rate for o in objectives})))
    for weight in [float(w) for w in args.distill_weights.split(",") if w]:
        arms.append(("mlm-distill", f"weight {weight:g}", dict(distill_weight=weight)))

    rows, results, rows_delta = [], {}, []
    for arm_objectives, arm, finetune in arms:
        started = time.perf_counter()
        config = CurveConfig(data=str(validation), sizes=f"0,{args.size}", objectives=arm_objectives,
                             seed=args.seed, test_fraction=args.test_fraction, device=args.device,
                             probe_seeds=args.probe_seeds, tfidf_baseline=False,
                             output_dir=str(out / arm_objectives.replace(",", "+") / arm.replace(" ", "-")),
                             finetune=FinetuneConfig(**finetune))
        result = run_curve(config, show_progress=False)
        seconds = time.perf_counter() - started
        for point in result.points:
            if point.finetune_size == 0 or (point.objective == "mlm" and "mlm" not in objectives):
                continue
            delta = (point.extras.get("delta_vs_f0") or {}).get("r2_log")
            results.setdefault(point.objective, []).append(
                {"arm": arm, **finetune, "output_dir": config.output_dir, "label": point.label, "r2_log": point.r2_log, "r2": point.r2, "delta_r2_log": delta,
                 "steps": point.finetune_steps, "train_seconds": point.train_seconds})
            rows.append([point.objective, arm, point.label, point.r2_log, point.r2,
                         _fmt_delta(delta), point.finetune_steps, point.train_seconds, seconds])
        f0 = next(p for p in result.points if p.finetune_size == 0)
        rows.append(["f0", arm, "f0", f0.r2_log, f0.r2, "", 0, 0.0, seconds])
        print(table(["objective", "arm", "point", "val log R²", "val R²", "Δlog R² vs f0 [95%]", "steps", "train s",
                     "arm s"], rows[-(len(result.points)):]), flush=True)

    choices = {objective: max(entries, key=lambda e: e["r2_log"]) for objective, entries in results.items()}
    # Paired on the same validation rows: is the best arm distinguishable from the others?
    from hf_finetune_curve.curve.uncertainty import hierarchical_bootstrap
    from hf_finetune_curve.run_dir import RunDirectory

    for objective, entries in results.items():
        predictions, y_val = {}, None
        for entry in entries:
            directory = RunDirectory(entry["output_dir"])
            y_val = directory.read_y_test()
            predictions[entry["arm"]] = directory.read_seed_predictions(entry["label"], objective)
        boot = hierarchical_bootstrap(y_val, predictions, n_resamples=1000, seed=args.seed)
        best = choices[objective]["arm"]
        for entry in entries:
            if entry["arm"] != best:
                delta = boot.delta("r2_log", entry["arm"], best).to_dict()
                entry["best_minus_this"] = delta
                rows_delta.append([objective, best, entry["arm"], _fmt_delta(delta)])
    print("\nAll arms (validation split carved from the probe-training rows):")
    print(table(["objective", "arm", "point", "val log R²", "val R²", "Δlog R² vs f0 [95%]", "steps", "train s",
                 "arm s"], rows))
    print("\nBest arm minus each other arm, paired on the validation rows (Δ log R² [95%]):")
    print(table(["objective", "best", "other", "Δ log R²"], rows_delta))
    print("\nChoice (highest validation log R²):")
    for objective, choice in choices.items():
        print(f"  {objective}: {choice['arm']} (val log R² {choice['r2_log']:.4f}, Δ vs f0 "
              f"{_fmt_delta(choice['delta_r2_log'])})")
    (out / "choices.json").write_text(json.dumps({"data": corpus.report.source, "max_rows": args.max_rows,
                                                  "seed": args.seed, "size": args.size, "results": results,
                                                  "choices": choices}, indent=2, default=str))


def _fmt_delta(delta: dict | None) -> str:
    if not delta:
        return "-"
    return f"{delta['delta']:+.3f} [{delta['low']:+.3f}, {delta['high']:+.3f}]"


if __name__ == "__main__":
    main()
