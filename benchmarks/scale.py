"""The reference case at full size: time, throughput and peak memory per pipeline stage.

Generates N synthetic listings with the embedded generator (the 120k of the reference case by
default), runs each stage in its own process (so each stage's peak RSS is its own) and prints per
stage: wall time, throughput, peak RSS and the RSS it added over the imports. Then it projects the
whole curve (sizes 0,10k,20k,50k,all of --project-rows, branching schedule, default recipe) from
the measured rates: training steps from the plan x seconds per step, embedding (--probe-rows per
checkpoint) and probe fits.

    python benchmarks/scale.py --rows 120000 --stages load,tokenize,pack        # memory at full size
    python benchmarks/scale.py --rows 6000 --stages load,tokenize,pack,train,embed,probe
    python benchmarks/scale.py --rows 6000 --device cuda --stages train,embed,probe
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import base_parser, environment_line, quiet, setup, table

STAGES = ("load", "tokenize", "pack", "train", "embed", "probe")


def _rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_rss_mib() -> float:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return _rss_mib()


def _sizes(n_pool: int) -> list[int]:
    return sorted({s for s in (10_000, 20_000, 50_000) if s < n_pool} | {n_pool})


def run_stage(stage: str, args) -> dict:
    """One stage in this (child) process; returns its measurements."""
    quiet()
    device = setup(args)
    import numpy as np

    from hf_finetune_curve.config import CurveConfig, FinetuneConfig
    from hf_finetune_curve.data.corpus import load_corpus
    from hf_finetune_curve.data.subsets import make_splits

    baseline = _current_rss_mib()
    started = time.perf_counter()
    corpus = load_corpus(args.data_file)
    result: dict = {"stage": stage, "rows": len(corpus)}
    if stage == "load":
        result.update(seconds=time.perf_counter() - started, items=len(corpus), unit="rows")
    splits = make_splits(len(corpus), 0.2, 42, probe_rows=CurveConfig().probe_rows)
    pool = [corpus.texts[i] for i in splits.pool_order]
    if stage in ("tokenize", "pack", "train"):
        from hf_finetune_curve.train.finetune import chunk_length_for, tokenize_texts
        from hf_finetune_curve.train.models import load_sentence_transformer
        from hf_finetune_curve.train.recipe import plan_curve

        model, _ = load_sentence_transformer(args.model, device=device)
        baseline = _current_rss_mib() if stage != "load" else baseline
        started = time.perf_counter()
        encoded = tokenize_texts(pool, model.tokenizer)
        result["tokens_per_text"] = float(encoded.offsets[-1]) / max(1, len(pool))
        if stage == "tokenize":
            result.update(seconds=time.perf_counter() - started, items=int(encoded.offsets[-1]), unit="tokens")
        config = FinetuneConfig()
        if stage in ("pack", "train"):
            started = time.perf_counter()
            plan = plan_curve(encoded, _sizes(len(pool)), config, seed=42, chunk_length=chunk_length_for(model, 128))
            summary = plan.summary()
            result["plan"] = {"sizes": summary["sizes"], "branching_steps": summary["branching_steps"],
                              "independent_steps": summary["independent_steps"], "chunks": len(plan.chunks)}
            if stage == "pack":
                result.update(seconds=time.perf_counter() - started, items=len(plan.chunks), unit="chunks")
        if stage == "train":
            from hf_finetune_curve.train.finetune import prepare_mlm, run_stream

            setup_ = prepare_mlm(model, config, 42)
            steps = int(args.train_steps)
            stream = plan.independent_stream(plan.sizes[0])[: steps * plan.chunks_per_step]
            work = tempfile.mkdtemp(prefix="scale-train-")
            run_stream(setup_, plan, stream[: plan.chunks_per_step], lambda step: 1.0, max_steps=1, config=config,
                       seed=42, device=device, output_dir=work, show_progress=False)  # warm-up
            run = run_stream(setup_, plan, stream, lambda step: 1.0, max_steps=steps, config=config, seed=42,
                             device=device, output_dir=work, show_progress=False)
            result.update(seconds=run.seconds, items=steps, unit="steps", tokens=plan.tokens(stream))
    if stage == "embed":
        from hf_finetune_curve.score.embed import embed_texts
        from hf_finetune_curve.train.models import load_sentence_transformer

        model, _ = load_sentence_transformer(args.model, device=device)
        texts = [corpus.texts[i] for i in splits.probe_rows[: int(args.embed_texts)]]
        embed_texts(model, texts[:64], batch_size=64, show_progress=False)  # warm-up
        baseline = _current_rss_mib()
        embedded = embed_texts(model, texts, batch_size=args.embed_batch_size, show_progress=False)
        result.update(seconds=embedded.seconds, items=len(texts), unit="texts")
    if stage == "probe":
        from hf_finetune_curve.score.probe import ProbeConfig, fit_and_score

        rows = len(splits.probe_rows)
        rng = np.random.default_rng(0)
        embeddings = rng.normal(size=(rows, 384)).astype(np.float32)  # a probe's cost depends on the shape
        targets = np.exp(9 + embeddings[:, 0] + 0.1 * rng.normal(size=rows))
        n_train = len(splits.train_indices)
        baseline = _current_rss_mib()
        started = time.perf_counter()
        fit_and_score(embeddings[:n_train], targets[:n_train], embeddings[n_train:], targets[n_train:],
                      ProbeConfig(device="cpu" if device == "cpu" else "cuda"))
        result.update(seconds=time.perf_counter() - started, items=rows, unit="rows")
    result.update(peak_rss_mib=_rss_mib(), added_rss_mib=_rss_mib() - baseline)
    return result


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=120_000, help="synthetic listings to generate")
    parser.add_argument("--stages", default="load,tokenize,pack", help=f"comma-separated, of {','.join(STAGES)}")
    parser.add_argument("--project-rows", type=int, default=120_000, help="corpus size the projection is for")
    parser.add_argument("--train-steps", type=int, default=6)
    parser.add_argument("--embed-texts", type=int, default=512)
    parser.add_argument("--embed-batch-size", type=int, default=64)
    parser.add_argument("--child", help=argparse_hidden())
    parser.add_argument("--data-file", help=argparse_hidden())
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_stage(args.child, args)))
        return
    quiet()
    device = setup(args)
    from hf_finetune_curve.data.sample_data import generate_listings, write_jsonl

    folder = Path(tempfile.mkdtemp(prefix="scale-"))
    data_file = folder / "listings.jsonl.gz"
    started = time.perf_counter()
    write_jsonl(generate_listings(args.rows, seed=7), data_file)
    generate_seconds = time.perf_counter() - started
    print(f"# scale: {args.model}, {args.rows:,} synthetic listings ({data_file.stat().st_size / 2**20:.1f} MiB "
          f"gzipped, generated in {generate_seconds:.0f} s)")
    print(f"# {environment_line(device)}")
    results = []
    for stage in args.stages.split(","):
        command = [sys.executable, __file__, "--child", stage, "--data-file", str(data_file), "--model", args.model,
                   "--device", args.device, "--train-steps", str(args.train_steps), "--embed-texts",
                   str(args.embed_texts), "--embed-batch-size", str(args.embed_batch_size)]
        if args.threads:
            command += ["--threads", str(args.threads)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        result = json.loads(output)
        results.append(result)
        print(f"#   {stage}: {result['seconds']:.1f} s, peak RSS {result['peak_rss_mib']:,.0f} MiB", flush=True)
    rows = [[r["stage"], f"{r['rows']:,}", r["seconds"], f"{r['items'] / r['seconds']:,.1f} {r['unit']}/s",
             r["peak_rss_mib"], r["added_rss_mib"]] for r in results]
    print()
    print(table(["stage", "corpus rows", "seconds", "throughput", "peak RSS MiB", "added by the stage MiB"], rows))

    by_stage = {r["stage"]: r for r in results}
    if {"train", "embed", "probe"} <= set(by_stage):
        from hf_finetune_curve.config import CurveConfig

        steps = _projected_steps(args.project_rows, by_stage["train"]["tokens_per_text"])
        seconds_per_step = by_stage["train"]["seconds"] / by_stage["train"]["items"]
        probe_rows = min(args.project_rows, CurveConfig().probe_rows or args.project_rows)
        checkpoints = 5  # f0, 10k, 20k, 50k, all
        embed = checkpoints * probe_rows / (by_stage["embed"]["items"] / by_stage["embed"]["seconds"])
        probe = checkpoints * by_stage["probe"]["seconds"] * probe_rows / by_stage["probe"]["items"]
        train = steps * seconds_per_step
        print()
        print(f"Projected whole curve, {args.project_rows:,} rows, sizes 0,10k,20k,50k,all (branching, default recipe, "
              f"probe on {probe_rows:,} rows):")
        print(table(["part", "seconds", "share"], [
            ["MLM training", train, train / (train + embed + probe)],
            ["embedding", embed, embed / (train + embed + probe)],
            ["probe fits", probe, probe / (train + embed + probe)],
            ["total", train + embed + probe, 1.0]]))


def _projected_steps(rows: int, tokens_per_text: float) -> int:
    """Optimizer steps of the whole curve (branching) for a pool of ``rows`` x 0.8 texts of the
    measured mean length, from the plan itself (sizes 10k, 20k, 50k, all)."""
    import numpy as np

    from hf_finetune_curve.config import FinetuneConfig
    from hf_finetune_curve.train.recipe import TokenizedTexts, plan_curve

    pool = int(rows * 0.8)
    length = max(2, int(round(tokens_per_text)))
    fake = TokenizedTexts(ids=np.zeros(pool * length, dtype=np.int32),
                          offsets=np.arange(0, pool * length + 1, length, dtype=np.int64))
    return int(plan_curve(fake, _sizes(pool), FinetuneConfig(), seed=0, chunk_length=128).summary()["branching_steps"])


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
