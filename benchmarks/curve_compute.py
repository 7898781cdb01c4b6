"""Whole-curve finetuning cost and per-point quality: branching vs independent schedule.

Same corpus, split, sizes, model and FinetuneConfig for both schedules. Prints optimizer steps,
tokens processed, training wall time and their ratio to the largest independent point, then
R² / MAE / MedAE of the price probe per size, with the probe's own run-to-run spread (the probe
refitted with several XGBoost seeds on the same embeddings) so a quality gap can be judged.

    python benchmarks/curve_compute.py --sizes 50,100,200 --max-rows 500 --threads 1
    python benchmarks/curve_compute.py --device cuda --sizes 1k,2k,4k,8k --max-rows 10000
"""

from __future__ import annotations

import dataclasses
import json
import time

from _common import base_parser, environment_line, load_texts, quiet, setup, sync, table


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,100,200", help="finetune sizes (>0), as for hf-curve --sizes")
    parser.add_argument("--max-rows", type=int, default=500)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument("--lora", action="store_true")
    parser.add_argument("--cooldown-fraction", type=float, default=0.15)
    parser.add_argument("--probe-seeds", type=int, default=3, help="probe refits per point for the spread")
    parser.add_argument("--finetune-seeds", type=int, default=1,
                        help="also finetune the largest independent point with this many seeds (its spread)")
    parser.add_argument("--plan-grids", default="1k,2k,4k,all;200,400,800;0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,all",
                        help="';'-separated size grids whose planned cost (no training) is shown on the whole "
                             "corpus; '' to skip")
    parser.add_argument("--embed-batch-size", type=int, default=64)
    parser.add_argument("--json", default=None, help="also write the numbers to this file")
    args = parser.parse_args()
    quiet()
    device = setup(args)

    import numpy as np

    from hf_finetune_curve.branching import finetune_branching
    from hf_finetune_curve.config import FinetuneConfig
    from hf_finetune_curve.embed import embed_texts
    from hf_finetune_curve.finetune import finetune_sentence_transformer
    from hf_finetune_curve.models import load_sentence_transformer
    from hf_finetune_curve.probe import ProbeConfig, fit_and_score
    from hf_finetune_curve.subsets import make_splits, parse_sizes

    corpus = load_texts(args.data, args.max_rows)
    splits = make_splits(len(corpus), 0.2, args.seed)
    sizes = [s for s in parse_sizes(args.sizes, len(splits.pool_order)) if s > 0]
    pool = [corpus.texts[i] for i in splits.pool_order]
    base, _ = load_sentence_transformer(args.model, device=device)
    config = FinetuneConfig(epochs=args.epochs, batch_size=args.batch_size, max_seq_length=args.max_seq_length,
                            learning_rate=args.learning_rate, lora=args.lora)
    print(f"# curve_compute: {args.model} on {corpus.report.source}: {len(corpus)} rows "
          f"({len(splits.train_indices)} probe-train / {len(splits.test_indices)} test), sizes {sizes}")
    print(f"# {environment_line(device)}")
    print(f"# finetune: {dataclasses.asdict(config)}")

    targets = corpus.targets
    threads = args.threads or None

    def score(model) -> dict:
        embedded = embed_texts(model, corpus.texts, batch_size=args.embed_batch_size, show_progress=False)
        x = embedded.embeddings
        runs = []
        for probe_seed in range(args.probe_seeds):
            result = fit_and_score(x[splits.train_indices], targets[splits.train_indices],
                                   x[splits.test_indices], targets[splits.test_indices],
                                   ProbeConfig(seed=args.seed + probe_seed, n_jobs=threads))
            runs.append(result.scores)
        r2 = np.array([r["r2"] for r in runs])
        return {"r2": float(runs[0]["r2"]), "mae": float(runs[0]["mae"]), "median_ae": float(runs[0]["median_ae"]),
                "r2_mean": float(r2.mean()), "r2_std": float(r2.std(ddof=1)) if len(r2) > 1 else 0.0}

    quality: dict[str, dict[int, dict]] = {"independent": {}, "branching": {}}
    quality["base"] = {0: score(base)}

    # Independent: every size from the base model.
    independent = {"steps": 0, "tokens": 0, "seconds": 0.0, "per_size": {}}
    for size in sizes:
        sync(device)
        started = time.perf_counter()
        result = finetune_sentence_transformer(base, pool[:size], config, seed=args.seed, device=device,
                                               show_progress=False)
        sync(device)
        seconds = time.perf_counter() - started
        independent["steps"] += result.optimizer_steps
        independent["tokens"] += result.tokens_seen
        independent["seconds"] += seconds
        independent["per_size"][size] = {"steps": result.optimizer_steps, "tokens": result.tokens_seen,
                                         "seconds": seconds, "loss": result.final_loss}
        quality["independent"][size] = score(result.model)
        print(f"#   independent f{size}: {result.optimizer_steps} steps, {seconds:.1f} s, "
              f"R² {quality['independent'][size]['r2']:.4f}", flush=True)

    # Branching: one main run, a cooldown branch per size. Time spent scoring is excluded.
    branch_results = {}
    outside = {"seconds": 0.0}

    def on_branch(size, result):
        entered = time.perf_counter()
        branch_results[size] = result
        quality["branching"][size] = score(result.model)
        print(f"#   branching f{size}: {result.optimizer_steps} steps to here "
              f"({result.cooldown_steps} cooldown), R² {quality['branching'][size]['r2']:.4f}", flush=True)
        outside["seconds"] += time.perf_counter() - entered

    import tempfile

    with tempfile.TemporaryDirectory(prefix="curve-compute-state-") as state_dir:
        sync(device)
        started = time.perf_counter()
        stats = finetune_branching(base, pool, sizes, config, seed=args.seed, device=device, state_dir=state_dir,
                                   on_branch=on_branch, cooldown_fraction=args.cooldown_fraction,
                                   show_progress=False)
        sync(device)
        branching_seconds = time.perf_counter() - started - outside["seconds"]
    overhead = {key: round(value, 2) for key, value in stats.seconds.items() if key != "on_branch"}
    branching_steps = stats.plan["main_steps"] + stats.plan["cooldown_steps"]
    branching_tokens = stats.plan["total_tokens"]

    largest = independent["per_size"][sizes[-1]]
    rows = [
        ["independent", independent["steps"], independent["tokens"], independent["seconds"],
         independent["steps"] / largest["steps"], independent["tokens"] / largest["tokens"],
         independent["seconds"] / largest["seconds"]],
        ["branching", branching_steps, branching_tokens, branching_seconds,
         branching_steps / largest["steps"], branching_tokens / largest["tokens"],
         branching_seconds / largest["seconds"]],
        [f"largest point alone (f{sizes[-1]})", largest["steps"], largest["tokens"], largest["seconds"], 1.0, 1.0, 1.0],
    ]
    print()
    print("Whole-curve finetuning cost (ratio = curve / independent run of the largest size; target <= 1.25)")
    print(table(["schedule", "optimizer steps", "tokens", "train s", "steps ratio", "tokens ratio", "time ratio"],
                rows))
    print(f"branching time by phase (s): {overhead}")
    print()
    print(f"Per-point quality (probe seeds: {args.probe_seeds}; R² mean ± sd over probe seeds shows the "
          "probe's own spread; R²/MAE/MedAE from the first seed)")
    base_q = quality["base"][0]
    quality_rows = [["f0 (base)", base_q["r2"], "", f"{base_q['r2_mean']:.4f} ± {base_q['r2_std']:.4f}", "",
                     base_q["mae"], "", base_q["median_ae"], ""]]
    for size in sizes:
        ind, br = quality["independent"][size], quality["branching"][size]
        quality_rows.append([
            f"f{size}", ind["r2"], br["r2"], f"{ind['r2_mean']:.4f} ± {ind['r2_std']:.4f}",
            f"{br['r2_mean']:.4f} ± {br['r2_std']:.4f}", ind["mae"], br["mae"], ind["median_ae"], br["median_ae"],
        ])
    print(table(["size", "R² indep", "R² branch", "R² indep (seeds)", "R² branch (seeds)", "MAE indep",
                 "MAE branch", "MedAE indep", "MedAE branch"], quality_rows))
    if args.finetune_seeds > 1:
        r2s = [quality["independent"][sizes[-1]]["r2"]]
        for extra in range(1, args.finetune_seeds):
            result = finetune_sentence_transformer(base, pool[: sizes[-1]], config, seed=args.seed + extra,
                                                   device=device, show_progress=False)
            r2s.append(score(result.model)["r2"])
        print(f"independent f{sizes[-1]} finetuned with {args.finetune_seeds} seeds: R² "
              f"{', '.join(f'{r:.4f}' for r in r2s)} (mean {np.mean(r2s):.4f} ± {np.std(r2s, ddof=1):.4f})")
    print()
    print("Per-point training (branching: tokens = main run up to n + cooldown)")
    point_rows = []
    for size in sizes:
        ind, br, point = independent["per_size"][size], branch_results[size], stats.points[size]
        point_rows.append([f"f{size}", ind["steps"], br.optimizer_steps, ind["tokens"], br.tokens_seen,
                           br.cooldown_steps, "inline" if point.inline_decay else "branch", ind["loss"],
                           br.final_loss])
    print(table(["size", "steps indep", "steps branch", "tokens indep", "tokens branch", "cooldown steps",
                 "cooldown", "mean loss indep", "mean loss branch"], point_rows))
    if args.plan_grids:
        from hf_finetune_curve.branching import plan_branching
        from hf_finetune_curve.finetune import chunk_length_for

        full = load_texts(args.data, None)
        full_splits = make_splits(len(full), 0.2, args.seed)
        full_pool = [full.texts[i] for i in full_splits.pool_order]
        plan_rows = []
        for grid in args.plan_grids.split(";"):
            grid_sizes = [s for s in parse_sizes(grid, len(full_pool)) if s > 0]
            plan = plan_branching(base.tokenizer, full_pool, grid_sizes, config, seed=args.seed,
                                  chunk_length=chunk_length_for(base, config.max_seq_length),
                                  cooldown_fraction=args.cooldown_fraction).summary()
            plan_rows.append([",".join(str(s) for s in grid_sizes), plan["main_steps"], plan["cooldown_steps"],
                              plan["total_tokens"], plan["compute_ratio"], plan["independent_ratio"],
                              "inline" if plan["inline_last"] else "branch"])
        print()
        print(f"Planned cost on the whole pool ({len(full_pool)} texts, batch {config.batch_size}, no training): "
              "tokens ratio vs the largest independent point")
        print(table(["sizes", "main steps", "cooldown steps", "tokens", "branching ratio", "independent ratio",
                     "largest point"], plan_rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"sizes": sizes, "independent": independent, "branching": {
                "steps": branching_steps, "tokens": branching_tokens, "seconds": branching_seconds,
                "plan": stats.plan}, "quality": {k: {str(s): v for s, v in q.items()} for k, q in quality.items()}},
                handle, indent=2)


if __name__ == "__main__":
    main()
