"""The tool's protocol against the reference write-up's, one choice at a time: what each adds to R².

The write-up behind the README's reference numbers (factory all-MiniLM-L6-v2 R² 0.52, 0.62 after 50k
finetuning texts, 0.64 after 120k) differs from ``hf-curve run`` in four choices, each of which can raise
the finetuned model's R² without the embedding being better:

(a) wrapper: its finetuned checkpoints were masked-LM models saved in plain transformers format and loaded
    with ``SentenceTransformer(path)``, which builds mean pooling *without* Normalize and reads up to 512
    tokens; the factory model it compared against reads 256 tokens and normalises;
(b) transductive finetuning: the encoder trained on every text it then scored, test rows included;
(c) full-set scoring: the probe predicted every row, its own training rows included (in-sample);
(d) raw R² of a probe fitted on raw prices, instead of log R² of a probe fitted on log prices.

For a corpus this script measures, with the package's own API (``run_curve`` to finetune, ``embed_texts``
to embed, ``fit_and_score`` / ``PriceProbe`` to probe):

* the tool's protocol: held-out rows, log R², the checkpoint as the tool saves it (the base model's 256
  tokens + Normalize), the encoder finetuned on the pool only;
* each choice alone, and all four together (the write-up's protocol: the factory model at f0 through its
  own wrapper, every finetuned point through the plain-transformers wrapper);

at f0 and every finetune size, with 95% intervals from a paired bootstrap over the corpus rows (one
resample of row indices drives every protocol; a protocol scored on the held-out rows uses the resampled
rows that are held out). The probe uses one XGBoost seed (the tool's default probe otherwise); the
intervals cover row sampling, not the probe's seed.

    python -m hf_finetune_curve.data.sample_data /tmp/long.jsonl.gz --rows 1500 --style long
    OMP_NUM_THREADS=2 python benchmarks/seed_protocol.py --data /tmp/long.jsonl.gz --rows 1500 \\
        --sizes 500,all --work-dir /tmp/seed-protocol-long --threads 2
    OMP_NUM_THREADS=2 python benchmarks/seed_protocol.py --rows 1500 --sizes 500,all \\
        --work-dir /tmp/seed-protocol-airbnb --threads 2      # the shared Airbnb listings
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _common import base_parser, environment_line, quiet, setup, table

CHOICES = ("wrapper", "transductive", "full_set", "raw_r2")
LABELS = {"wrapper": "(a) wrapper", "transductive": "(b) transductive", "full_set": "(c) full set",
          "raw_r2": "(d) raw R²", "all": "all four"}


@dataclass
class Scored:
    """One embedding's probe predictions of every corpus row, for a log-price and a raw-price probe."""

    log_predictions: np.ndarray
    raw_predictions: np.ndarray


def plain_transformers_copy(model, folder: Path):
    """What the write-up scored: the checkpoint's encoder saved with ``save_pretrained`` (plain transformers
    format, no modules.json) and loaded back with ``SentenceTransformer(path)``, which builds its default
    wrapper (mean pooling, no Normalize, max_seq_length from the tokenizer's and model's limits)."""
    from sentence_transformers import SentenceTransformer

    from hf_finetune_curve.train.finetune import transformer_module

    module = transformer_module(model)
    module.auto_model.save_pretrained(folder)
    tokenizer = module.tokenizer
    # The write-up's checkpoints carried the tokenizer of an MLM checkpoint (model_max_length 512); the
    # model's own tokenizer is put back, so the tool's wrapper keeps reading its own length afterwards.
    own_length = tokenizer.model_max_length
    tokenizer.model_max_length = int(module.auto_model.config.max_position_embeddings)
    try:
        tokenizer.save_pretrained(folder)
    finally:
        tokenizer.model_max_length = own_length
    return SentenceTransformer(str(folder), device=str(model.device))


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1500, help="first N clean rows of the corpus")
    parser.add_argument("--sizes", default="500,all", help="finetune sizes besides f0 (the run's --sizes)")
    parser.add_argument("--transductive-sizes", default="all",
                        help="sizes the transductive run trains (the write-up's claim is about its largest size); "
                             "the others fall back to the inductive checkpoint, and the table says so")
    parser.add_argument("--probe", default="ridge", choices=("ridge", "xgboost"),
                        help="the probe of every protocol: ridge (the tool's --probes ridge, seconds a fit) or "
                             "xgboost (the tool's default; a minute a fit on a busy 2-core machine)")
    parser.add_argument("--work-dir", required=True, help="where the two runs (inductive, transductive) go")
    parser.add_argument("--inductive-run", default=None,
                        help="a finished `hf-curve run` directory of the same corpus, --rows and seed to take the "
                             "inductive checkpoints (and their cached embeddings) from instead of training; only read")
    parser.add_argument("--labels", default=None, help="only these points of --inductive-run, e.g. f0,f400,f1.6k")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--embed-batch-size", type=int, default=32)
    parser.add_argument("--json", default=None, help="also write every number here")
    args = parser.parse_args()
    quiet()
    device = setup(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("sentence_transformers", "httpx", "hf_finetune_curve.score.embed"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    from hf_finetune_curve import CurveConfig, ProbeConfig, load_corpus, run_curve
    from hf_finetune_curve.curve.uncertainty import resample_indices
    from hf_finetune_curve.data.subsets import size_label
    from hf_finetune_curve.run_dir import RunDirectory
    from hf_finetune_curve.score.embed import embed_texts, token_length_report
    from hf_finetune_curve.score.probe import PriceProbe, RidgeProbe
    from hf_finetune_curve.train.models import load_sentence_transformer
    from sentence_transformers import SentenceTransformer

    started = time.perf_counter()
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    corpus = load_corpus(args.data, max_rows=args.rows)
    texts, targets = corpus.texts, corpus.targets
    n_rows = len(texts)
    threads = int(args.threads or 0) or None
    base = dict(data=args.data, max_rows=args.rows, model=args.model, seed=args.seed, probe_seeds=1,
                tfidf_baseline=False, bootstrap_resamples=100, device=device, embed_batch_size=args.embed_batch_size,
                probes=args.probe, probe=ProbeConfig(n_jobs=threads))
    runs = {
        "inductive": CurveConfig(**base, sizes=f"0,{args.sizes}", output_dir=str(work / "inductive")),
        "transductive": CurveConfig(**base, sizes=args.transductive_sizes, include_test_in_finetune=True,
                                    output_dir=str(work / "transductive")),
    }
    run_dirs = {"inductive": Path(args.inductive_run) if args.inductive_run else work / "inductive",
                "transductive": work / "transductive"}
    if not args.transductive_sizes:
        del runs["transductive"]
    tool_points: dict[str, dict] = {"transductive": {}}
    for name, config in runs.items():
        if name == "inductive" and args.inductive_run:
            saved = RunDirectory(run_dirs[name])
            view = saved.probe_view(args.probe)
            points = (view.read_points() if view.path.is_dir() else []) or saved.read_points()
            tool_points[name] = {p.label: p for p in points}
            continue
        logging.info("run %s: %s", name, config.output_dir)
        result = run_curve(config, show_progress=False)
        tool_points[name] = {p.label: p for p in result.points}
    splits = RunDirectory(run_dirs["inductive"]).read_splits()
    test = np.zeros(n_rows, dtype=bool)
    test[splits.test_indices] = True
    train = ~test
    assert len(splits.probe_rows) == n_rows, "the benchmark scores every row; use --rows below --probe-rows"

    base_model, _ = load_sentence_transformer(args.model, device=device)
    lengths = token_length_report(base_model, texts)
    logging.info("token lengths: %s", lengths.summary())

    def cached_or_embedded(run: RunDirectory, label: str, model) -> np.ndarray:
        files = run.embedding_cache_files(label)
        if files:
            vectors = np.load(files[0])
            if vectors.shape[0] == n_rows:
                return vectors
        return embed_texts(model, texts, batch_size=args.embed_batch_size, show_progress=False).embeddings

    def probe_all_rows(vectors: np.ndarray) -> Scored:
        predictions = {}
        for transform in ("log", "none"):
            config = ProbeConfig(target_transform=transform, seed=args.seed, n_jobs=threads)
            probe = RidgeProbe(config) if args.probe == "ridge" else PriceProbe(config)
            probe.fit(vectors[train], targets[train])
            predictions[transform] = probe.predict(vectors)
        return Scored(predictions["log"], predictions["none"])

    # Every checkpoint: (run, label) -> {"tool": Scored, "plain": Scored}
    sizes_labels = [p.label for p in sorted(tool_points["inductive"].values(), key=lambda p: p.finetune_size)
                    if not args.labels or p.label in args.labels.split(",")]
    scored: dict[tuple[str, str], dict[str, Scored]] = {}
    wrapper_lengths = {}
    # "all" of the transductive run is the whole corpus (its label names more rows than the inductive pool's
    # "all"): it stands beside the inductive run's largest size, the write-up's "trained on every text".
    largest = sizes_labels[-1]
    transductive_labels: dict[str, str] = {}  # an inductive label -> the transductive checkpoint beside it
    transductive_all = max(tool_points["transductive"].values(), key=lambda p: p.finetune_size, default=None)
    for run_name in ("inductive", "transductive"):
        run = RunDirectory(run_dirs[run_name])
        for label in sizes_labels:
            run_label = label
            if run_name == "transductive" and label == largest and label != "f0" and transductive_all is not None \
                    and label not in tool_points[run_name] and "all" in str(args.transductive_sizes).split(","):
                run_label = transductive_all.label
                transductive_labels[label] = run_label
            if run_label not in tool_points[run_name]:  # f0, and the sizes the transductive run skips
                scored[(run_name, label)] = scored[("inductive", label)]
                continue
            model = base_model if label == "f0" else SentenceTransformer(str(run.checkpoint_dir(run_label)),
                                                                           device=device)
            entry = {"tool": probe_all_rows(cached_or_embedded(run, run_label, model))}
            with tempfile.TemporaryDirectory() as folder:
                plain = plain_transformers_copy(model, Path(folder))
                wrapper_lengths = {"tool": model.max_seq_length, "plain": plain.max_seq_length,
                                   "tool_modules": [type(m).__name__ for m in model],
                                   "plain_modules": [type(m).__name__ for m in plain]}
                # Kept in the work folder, so a rerun of the tables does not embed again.
                cache = work / f"plain-{run_name}-{run_label}-{corpus.fingerprint[:12]}.npy"
                vectors = embed_texts(plain, texts, batch_size=args.embed_batch_size, show_progress=False,
                                      cache_path=cache).embeddings
            entry["plain"] = probe_all_rows(vectors)
            scored[(run_name, label)] = entry
            logging.info("%s %s scored (%.0f s so far)", run_name, label, time.perf_counter() - started)

    # A protocol: which checkpoint, wrapper, probe target and rows; every protocol's metric per resample.
    def protocol(label: str, choices: set[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        run_name = "transductive" if "transductive" in choices and label != "f0" else "inductive"
        wrapper = "plain" if "wrapper" in choices and label != "f0" else "tool"  # f0 is the factory model
        scores = scored[(run_name, label)][wrapper]
        raw = "raw_r2" in choices
        predictions = scores.raw_predictions if raw else scores.log_predictions
        rows = np.ones(n_rows, dtype=bool) if "full_set" in choices else test
        return predictions, rows, targets, raw

    def r2(y: np.ndarray, p: np.ndarray, raw: bool) -> float:
        if not raw:
            if not (np.all(p > 0) and np.all(y > 0)):
                return float("nan")
            y, p = np.log(y), np.log(p)
        return float(1.0 - np.sum((y - p) ** 2) / np.sum((y - y.mean()) ** 2))

    resamples = resample_indices(n_rows, args.resamples, seed=args.seed)

    def metric_samples(label: str, choices: set[str]) -> tuple[float, np.ndarray]:
        predictions, rows, y, raw = protocol(label, choices)
        estimate = r2(y[rows], predictions[rows], raw)
        samples = np.empty(len(resamples))
        for i, idx in enumerate(resamples):
            chosen = idx[rows[idx]]
            samples[i] = r2(y[chosen], predictions[chosen], raw)
        return estimate, samples

    def interval(samples: np.ndarray) -> tuple[float, float]:
        lo, hi = np.nanquantile(samples, [0.025, 0.975])
        return float(lo), float(hi)

    protocols = {"tool": set(), **{c: {c} for c in CHOICES}, "all": set(CHOICES)}
    results = {label: {name: metric_samples(label, chosen) for name, chosen in protocols.items()}
               for label in sizes_labels}

    def fmt_delta(estimate: float, samples: np.ndarray) -> str:
        lo, hi = interval(samples)
        return f"{estimate:+.3f} [{lo:+.3f}, {hi:+.3f}]"

    print(f"\n# seed_protocol: {args.model} on {corpus.report.source}: {n_rows} rows "
          f"({int(test.sum())} held out), sizes {', '.join(sizes_labels)}, {time.perf_counter() - started:.0f} s")
    print(f"# {environment_line(device)}")
    print(f"# token lengths: {lengths.summary()}")
    print(f"# wrappers: tool {wrapper_lengths.get('tool')} tokens {wrapper_lengths.get('tool_modules')}; "
          f"plain transformers {wrapper_lengths.get('plain')} tokens {wrapper_lengths.get('plain_modules')}")
    for label, run_label in transductive_labels.items():
        print(f"# (b) at {label} (the pool's all) the transductive column is its {run_label} (every row, test rows "
              "included)")
    skipped = [label for label in sizes_labels[1:]
               if label not in tool_points["transductive"] and label not in transductive_labels]
    if skipped:
        print(f"# (b) transductive trained only {', '.join(sorted(tool_points['transductive']))}: at "
              f"{', '.join(skipped)} its column is 0 by construction")
    print(f"# probe: {args.probe}, one fit per protocol; the intervals cover the rows, not the probe's seed")
    headers = ["point", "tool (log R², held out)", *(f"+ {LABELS[c]}" for c in CHOICES), "all four", "all four (R²)"]
    rows = []
    for label in sizes_labels:
        tool_estimate, tool_samples = results[label]["tool"]
        lo, hi = interval(tool_samples)
        cells = [label, f"{tool_estimate:.3f} [{lo:.3f}, {hi:.3f}]"]
        for name in (*CHOICES, "all"):
            estimate, samples = results[label][name]
            cells.append(fmt_delta(estimate - tool_estimate, samples - tool_samples))
        all_estimate, all_samples = results[label]["all"]
        lo, hi = interval(all_samples)
        cells.append(f"{all_estimate:.3f} [{lo:.3f}, {hi:.3f}]")
        rows.append(cells)
    print("\nWhat each choice adds to R² at each point (95% paired-bootstrap intervals over rows)")
    print(table(headers, rows))
    predictions = scored[("inductive", "f0")]["plain"].log_predictions
    plain_f0 = r2(targets[test], predictions[test], False)
    plain_samples = np.array([r2(targets[c], predictions[c], False) for c in (idx[test[idx]] for idx in resamples)])
    tool_f0, tool_f0_samples = results["f0"]["tool"]
    print(f"Diagnostic: the factory weights themselves through the plain-transformers wrapper (no finetuning): log R² "
          f"{plain_f0:.3f}, {fmt_delta(plain_f0 - tool_f0, plain_samples - tool_f0_samples)} over the factory wrapper")

    gain_rows = []
    for name in ("tool", *CHOICES, "all"):
        f0_estimate, f0_samples = results["f0"][name]
        cells = [LABELS.get(name, "tool protocol"), f"{f0_estimate:.3f}"]
        for label in sizes_labels[1:]:
            estimate, samples = results[label][name]
            cells.append(fmt_delta(estimate - f0_estimate, samples - f0_samples))
        gain_rows.append(cells)
    print("\nThe curve's gain over f0 under each protocol (the write-up's 0.52 -> 0.62 / 0.64 is +0.10 / +0.12)")
    print(table(["protocol", "f0", *(f"{label} - f0" for label in sizes_labels[1:])], gain_rows))

    split_rows = []
    for label in sizes_labels:
        predictions, _, y, _ = protocol(label, {"full_set"})
        split_rows.append([label, r2(y, predictions, False), r2(y[train], predictions[train], False),
                           r2(y[test], predictions[test], False)])
    print("\n(c) in detail: the full-set log R² is a blend of the probe's own training rows (in-sample) and the "
          "held-out rows")
    print(table(["point", "full set", "in-sample rows", "held-out rows"], split_rows))

    check = [[label, tool_points["inductive"][label].r2_log, results[label]["tool"][0]] for label in sizes_labels]
    print(f"\nConsistency: the run's own {tool_points['inductive'][sizes_labels[0]].probe} points vs this script's "
          "tool protocol (equal when the run's probe is this one)")
    print(table(["point", "run_curve", "this script"], check))

    if args.json:
        payload = {"source": corpus.report.source, "rows": n_rows, "test_rows": int(test.sum()),
                   "token_lengths": lengths.to_dict(), "wrappers": wrapper_lengths,
                   "points": {label: {name: {"estimate": est, "interval": interval(s)}
                                      for name, (est, s) in by_name.items()} for label, by_name in results.items()},
                   "seconds": time.perf_counter() - started}
        Path(args.json).write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
