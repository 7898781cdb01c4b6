"""Is the curve a curve of the data, or of the training recipe?

On a real corpus (default: ../shared/data/airbnb_usd.jsonl.gz), with several finetune seeds, trains
every size under four arms, {independent, branching} x {no head warmup, head warmup}, scores each
checkpoint with the curve's XGBoost probe (one probe seed for all, so differences come from
finetuning) and prints per size and arm:

* R² on prices and on log prices, mean ± sd over finetune seeds;
* ΔR² vs f0 with a 95% interval that resamples test rows *and* finetune seeds (paired: f0 and the
  point are scored on the same rows);
* optimizer steps, learning-rate integral (peak-LR steps, measured on the scheduler), passes over
  the subset, training seconds;
* per arm, the whole curve's training time against its largest independent point.

Results are appended to ``<out>/results.jsonl`` as they come, so an interrupted check resumes.

    python benchmarks/recipe_check.py --max-rows 2000 --sizes 250,500,1000 --seeds 3
    python benchmarks/recipe_check.py --out runs/recipe-check --report-only
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from _common import base_parser, environment_line, load_texts, quiet, setup, table

ARMS = [("independent", False), ("independent", True), ("branching", False), ("branching", True)]
# Not in the default set: the same as branching+head with the word embeddings (tied decoder) frozen.
EXTRA_ARMS = [("branching", "frozen-emb")]


def arm_name(schedule: str, head) -> str:
    if head == "frozen-emb":
        return f"{schedule}+head+frozen-emb"
    return f"{schedule}{'+head' if head else ''}"


def r2(y, pred) -> float:
    import numpy as np

    return float(1.0 - np.sum((y - pred) ** 2) / np.sum((y - np.mean(y)) ** 2))


def unseen_row_drift(base, finetuned, texts) -> float:
    """Mean relative change of the word-embedding rows of tokens that ``texts`` never use."""
    import numpy as np

    seen = {t for ids in base.tokenizer(list(texts))["input_ids"] for t in ids}
    before = base[0].auto_model.get_input_embeddings().weight.detach().cpu().numpy()
    after = finetuned[0].auto_model.get_input_embeddings().weight.detach().cpu().numpy()
    unseen = np.setdiff1d(np.arange(len(before)), np.fromiter(seen, dtype=np.int64))
    change = np.linalg.norm(after[unseen] - before[unseen], axis=1) / np.linalg.norm(before[unseen], axis=1)
    return float(change.mean())


def delta_interval(y, base, preds_by_seed, *, log: bool, resamples: int = 1000, seed: int = 0):
    """ΔR² (point - f0), mean over seeds, with a bootstrap over test rows and seeds jointly."""
    return paired_interval(y, [base] * len(preds_by_seed), preds_by_seed, log=log, resamples=resamples, seed=seed)


def paired_interval(y, preds_a, preds_b, *, log: bool, resamples: int = 1000, seed: int = 0):
    """Mean over seeds of R²(b_s) - R²(a_s), with a 95% bootstrap interval resampling test rows and
    seeds jointly (a seed's a and b are kept together: they share the data order)."""
    import numpy as np

    if log:
        y = np.log(y)
        preds_a = [np.log(p) for p in preds_a]
        preds_b = [np.log(p) for p in preds_b]
    point = float(np.mean([r2(y, b) - r2(y, a) for a, b in zip(preds_a, preds_b)]))
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        rows = rng.integers(0, len(y), len(y))
        seeds = rng.integers(0, len(preds_b), len(preds_b))
        draws.append(np.mean([r2(y[rows], preds_b[s][rows]) - r2(y[rows], preds_a[s][rows]) for s in seeds]))
    low, high = np.quantile(draws, [0.025, 0.975])
    return point, float(low), float(high)


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--max-rows", type=int, default=2000, help="first N clean rows of the corpus")
    parser.add_argument("--sizes", default="250,500,1000", help="finetune sizes (f0 is always scored)")
    parser.add_argument("--seeds", type=int, default=3, help="finetune seeds (data order, masking, head)")
    parser.add_argument("--embed-max-length", type=int, default=128, help="tokens per text when embedding")
    parser.add_argument("--arms", default=",".join(arm_name(*a) for a in ARMS))
    parser.add_argument("--learning-rate", type=float, default=None, help="peak learning rate (default: the config's)")
    parser.add_argument("--out", default="runs/recipe-check")
    parser.add_argument("--report-only", action="store_true", help="print the table of what is there")
    args = parser.parse_args()
    quiet()
    device = setup(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.jsonl"
    sizes = [int(s) for s in args.sizes.split(",")]
    arms = [a for a in ARMS + EXTRA_ARMS if arm_name(*a) in args.arms.split(",")]

    import numpy as np

    from hf_finetune_curve.config import FinetuneConfig
    from hf_finetune_curve.data.subsets import make_splits
    from hf_finetune_curve.score.probe import ProbeConfig, fit_and_score

    corpus = load_texts(args.data, args.max_rows)
    splits = make_splits(len(corpus), 0.2, args.seed)
    y_test = corpus.targets[splits.test_indices]
    probe_rows = np.concatenate([splits.train_indices, splits.test_indices])
    probe_texts = [corpus.texts[i] for i in probe_rows]
    n_train = len(splits.train_indices)
    probe_config = ProbeConfig(seed=args.seed)
    header = (f"# recipe_check: {args.model} on {corpus.report.source}: {len(corpus)} rows "
              f"({n_train} probe-train / {len(y_test)} test), pool {len(splits.pool_order)}, sizes {sizes}, "
              f"{args.seeds} finetune seeds, embed max length {args.embed_max_length}")

    done: dict[tuple, dict] = {}
    if results_path.exists():
        for line in results_path.read_text().splitlines():
            row = json.loads(line)
            done[(row["arm"], row["seed"], row["size"])] = row

    def record(row: dict) -> None:
        done[(row["arm"], row["seed"], row["size"])] = row
        with open(results_path, "a") as handle:
            handle.write(json.dumps(row) + "\n")

    if not args.report_only:
        from hf_finetune_curve.train.branching import finetune_branching
        from hf_finetune_curve.train.finetune import finetune_independent
        from hf_finetune_curve.train.models import load_sentence_transformer

        print(header, flush=True)
        print(f"# {environment_line(device)}", flush=True)
        base, _ = load_sentence_transformer(args.model, device=device)

        def score(model) -> tuple[np.ndarray, float]:
            model.max_seq_length = args.embed_max_length
            started = time.perf_counter()
            embeddings = model.encode(probe_texts, batch_size=64, show_progress_bar=False, convert_to_numpy=True)
            embed_seconds = time.perf_counter() - started
            result = fit_and_score(embeddings[:n_train], corpus.targets[splits.train_indices], embeddings[n_train:],
                                   y_test, probe_config)
            return result.predictions, embed_seconds

        if ("f0", 0, 0) not in done:
            predictions, seconds = score(base)
            record({"arm": "f0", "seed": 0, "size": 0, "predictions": predictions.tolist(), "embed_seconds": seconds})
            print(f"f0: R² {r2(y_test, predictions):.4f}  log R² {r2(np.log(y_test), np.log(predictions)):.4f}",
                  flush=True)
        for seed_offset in range(args.seeds):
            seed = args.seed + seed_offset
            pool = [corpus.texts[i] for i in make_splits(len(corpus), 0.2, args.seed, order_seed=seed).pool_order]
            for schedule, head in arms:
                name = arm_name(schedule, head)
                pending = [s for s in sizes if (name, seed, s) not in done]
                if not pending:
                    continue
                config = FinetuneConfig(head_warmup_steps=FinetuneConfig().head_warmup_steps if head else 0,
                                        # arms name what they change: only "frozen-emb" freezes the embeddings
                                        train_word_embeddings=head != "frozen-emb",
                                        learning_rate=args.learning_rate)
                outside = {"seconds": 0.0}

                def on_point(size: int, result, name=name, seed=seed) -> None:
                    started = time.perf_counter()
                    predictions, embed_seconds = score(result.model)
                    drift = unseen_row_drift(base, result.model, pool[:size])
                    row = {"arm": name, "seed": seed, "size": size, "predictions": predictions.tolist(),
                           "steps": result.optimizer_steps, "lr_integral": result.lr_integral,
                           "planned_lr_integral": result.recipe.lr_integral(), "subset_epochs": result.subset_epochs,
                           "train_seconds": result.train_seconds, "tokens": result.tokens_seen,
                           "embed_seconds": embed_seconds, "unseen_row_drift": drift}
                    record(row)
                    outside["seconds"] += time.perf_counter() - started
                    print(f"{name} seed {seed} f{size}: {result.optimizer_steps} steps, LR integral "
                          f"{result.lr_integral:.1f}, R² {r2(y_test, predictions):.4f}, log R² "
                          f"{r2(np.log(y_test), np.log(predictions)):.4f}", flush=True)

                started = time.perf_counter()
                completed = {s for s in sizes if s not in pending}
                if schedule == "branching":
                    finetune_branching(base, pool, sizes, config, seed=seed, device=device,
                                       state_dir=out / f"state-{name}-{seed}", completed=completed,
                                       on_branch=on_point, show_progress=False)
                else:
                    finetune_independent(base, pool, sizes, config, seed=seed, device=device,
                                         work_dir=out / f"work-{name}-{seed}", completed=completed, on_point=on_point,
                                         show_progress=False)
                wall = time.perf_counter() - started - outside["seconds"]
                if not completed:  # a whole curve in one go: its training wall time
                    record({"arm": name, "seed": seed, "size": -1, "curve_train_seconds": wall})
    report(done, sizes, arms, y_test, header)


def report(done: dict, sizes: list[int], arms: list, y_test, header: str) -> None:
    import numpy as np

    print()
    print(header)
    if ("f0", 0, 0) not in done:
        print("no results yet")
        return
    base = np.asarray(done[("f0", 0, 0)]["predictions"])
    log_y = np.log(y_test)
    rows = [["f0", "base", f"{r2(y_test, base):.4f}", f"{r2(log_y, np.log(base)):.4f}", "", "", 0, 0.0, 0.0, 0.0, ""]]
    for size in sizes:
        for schedule, head in arms:
            name = arm_name(schedule, head)
            entries = [row for (arm, _, s), row in sorted(done.items(), key=lambda kv: kv[0][1])
                       if arm == name and s == size]
            if not entries:
                continue
            preds = [np.asarray(e["predictions"]) for e in entries]
            raw = [r2(y_test, p) for p in preds]
            logs = [r2(log_y, np.log(p)) for p in preds]
            d_raw = delta_interval(y_test, base, preds, log=False)
            d_log = delta_interval(y_test, base, preds, log=True)
            sd = (lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else float("nan"))
            rows.append([f"f{size}", name, f"{np.mean(raw):.4f} ± {sd(raw):.4f}", f"{np.mean(logs):.4f} ± {sd(logs):.4f}",
                         f"{d_raw[0]:+.4f} [{d_raw[1]:+.3f}, {d_raw[2]:+.3f}]",
                         f"{d_log[0]:+.4f} [{d_log[1]:+.3f}, {d_log[2]:+.3f}]",
                         int(np.mean([e["steps"] for e in entries])),
                         float(np.mean([e["lr_integral"] for e in entries])),
                         float(np.mean([e["subset_epochs"] for e in entries])),
                         float(np.mean([e["train_seconds"] for e in entries])),
                         (f"{100 * np.mean([e['unseen_row_drift'] for e in entries]):.3f}%"
                          if all("unseen_row_drift" in e for e in entries) else "-")])
    print(table(["size", "arm", "R² (mean ± sd)", "log R² (mean ± sd)", "ΔR² vs f0 [95%]", "Δ log R² vs f0 [95%]",
                 "steps", "LR integral", "passes", "train s", "unseen-row drift"], rows))
    print("(n seeds per cell: the intervals resample test rows and finetune seeds jointly)")
    # Same finetune seed, same data order: does the schedule or the head warmup change a point?
    comparisons = [(arm_name("branching", False), arm_name("independent", False)),
                   (arm_name("branching", True), arm_name("independent", True)),
                   (arm_name("independent", True), arm_name("independent", False)),
                   (arm_name("branching", True), arm_name("branching", False)),
                   (arm_name("branching", "frozen-emb"), arm_name("branching", True))]
    pair_rows = []
    for size in sizes:
        for b_name, a_name in comparisons:
            seeds_b = {seed: row for (arm, seed, s), row in done.items() if arm == b_name and s == size}
            seeds_a = {seed: row for (arm, seed, s), row in done.items() if arm == a_name and s == size}
            common = sorted(set(seeds_a) & set(seeds_b))
            if not common:
                continue
            preds_a = [np.asarray(seeds_a[k]["predictions"]) for k in common]
            preds_b = [np.asarray(seeds_b[k]["predictions"]) for k in common]
            raw = paired_interval(y_test, preds_a, preds_b, log=False)
            logged = paired_interval(y_test, preds_a, preds_b, log=True)
            pair_rows.append([f"f{size}", f"{b_name} - {a_name}", len(common),
                              f"{raw[0]:+.4f} [{raw[1]:+.3f}, {raw[2]:+.3f}]",
                              f"{logged[0]:+.4f} [{logged[1]:+.3f}, {logged[2]:+.3f}]"])
    if pair_rows:
        print()
        print(table(["size", "paired comparison", "seeds", "ΔR² [95%]", "Δ log R² [95%]"], pair_rows))
    curve_rows = []
    for schedule, head in arms:
        name = arm_name(schedule, head)
        walls = [row["curve_train_seconds"] for (arm, _, s), row in done.items() if arm == name and s == -1]
        largest = [row["train_seconds"] for (arm, _, s), row in done.items()
                   if arm == arm_name("independent", head) and s == sizes[-1]]
        if walls and largest:
            curve_rows.append([name, float(np.mean(walls)), float(np.mean(largest)),
                               float(np.mean(walls)) / float(np.mean(largest))])
    if curve_rows:
        print()
        print(table(["arm", "whole-curve train s", "largest independent point s", "compute ratio"], curve_rows))


if __name__ == "__main__":
    main()
