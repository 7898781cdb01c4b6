"""Embed-stage throughput: ``hf_finetune_curve.score.embed.embed_texts`` vs plain ``SentenceTransformer.encode``.

Same model, texts, batch size and device, alternating rounds in one process; also checks that
both give the same vectors.

    python benchmarks/embed_throughput.py --texts 256 --rounds 2 --threads 1
    python benchmarks/embed_throughput.py --device cuda --texts 20000 --rounds 3 --batch-size 256
    python benchmarks/embed_throughput.py --texts 512 --rounds 2 --threads 2 --batch-sizes 64,128,256,512

``--batch-sizes`` measures the batch sizes instead: per size, ``encode`` and ``embed_texts`` with the run's
token cache (the probe rows' ids computed once per run; the cached call is what every checkpoint after
the first pays), fp32 throughout.
"""

from __future__ import annotations

import statistics
import time

from _common import base_parser, environment_line, quiet, sample_texts, setup, sync, table


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batch-sizes", default=None, help="comma-separated batch sizes to compare, e.g. 64,128,256,512")
    args = parser.parse_args()
    quiet()
    device = setup(args)

    import numpy as np

    from hf_finetune_curve.score.embed import embed_texts
    from hf_finetune_curve.train.models import load_sentence_transformer

    corpus, texts = sample_texts(args)
    model, _ = load_sentence_transformer(args.model, device=device)
    tokens = sum(min(len(ids), model.max_seq_length)
                 for ids in model.tokenizer(texts, add_special_tokens=True)["input_ids"])
    print(f"# embed_throughput: {args.model} on {corpus.report.source}: {len(texts)} texts, {tokens:,} tokens "
          f"(after truncation at {model.max_seq_length}), batch {args.batch_size}")
    print(f"# {environment_line(device)}")

    def run_tool():
        sync(device)
        started = time.perf_counter()
        vectors = embed_texts(model, texts, batch_size=args.batch_size, show_progress=False).embeddings
        sync(device)
        return vectors, time.perf_counter() - started

    def run_plain():
        sync(device)
        started = time.perf_counter()
        vectors = model.encode(texts, batch_size=args.batch_size, convert_to_numpy=True, show_progress_bar=False)
        sync(device)
        return vectors, time.perf_counter() - started

    if args.batch_sizes:
        compare_batch_sizes(model, texts, tokens, [int(b) for b in args.batch_sizes.split(",")], args.rounds, device)
        return
    run_plain()  # warm-up (kernels, allocator), not timed
    seconds: dict[str, list[float]] = {"embed_texts": [], "encode": []}
    vectors = {}
    for round_ in range(args.rounds):
        for name, fn in (("embed_texts", run_tool), ("encode", run_plain)):
            vectors[name], elapsed = fn()
            seconds[name].append(elapsed)
            print(f"#   round {round_ + 1} {name}: {len(texts) / elapsed:,.1f} texts/s", flush=True)
    difference = float(np.max(np.abs(vectors["embed_texts"].astype(np.float64) - vectors["encode"])))
    rows = []
    for name in ("embed_texts", "encode"):
        median = statistics.median(seconds[name])
        rows.append([name, len(texts), median, len(texts) / median, tokens / median])
    print()
    print(f"Embed throughput (median of {args.rounds} alternating rounds)")
    print(table(["function", "texts", "seconds", "texts/s", "tokens/s"], rows))
    ratio = statistics.median(seconds["encode"]) / statistics.median(seconds["embed_texts"])
    print(f"\nembed_texts / encode speed: {ratio:.2f}x; max abs difference of the vectors {difference:.2g}")


def compare_batch_sizes(model, texts, tokens: int, sizes: list[int], rounds: int, device: str) -> None:
    """Texts/s of ``encode`` and of ``embed_texts`` with cached token ids, per batch size (median of rounds)."""
    from hf_finetune_curve.score.embed import TokenCache, embed_texts

    model.encode(texts[:64], batch_size=64, show_progress_bar=False)  # warm-up, not timed
    rows = []
    for size in sizes:
        cache = TokenCache()
        embed_texts(model, texts, batch_size=size, show_progress=False, tokens=cache)  # fills the cache
        timings: dict[str, list[float]] = {"encode": [], "cached ids": []}
        for _ in range(rounds):
            for name in timings:
                sync(device)
                started = time.perf_counter()
                if name == "encode":
                    model.encode(texts, batch_size=size, convert_to_numpy=True, show_progress_bar=False)
                else:
                    embed_texts(model, texts, batch_size=size, show_progress=False, tokens=cache)
                sync(device)
                timings[name].append(time.perf_counter() - started)
        encode, cached = statistics.median(timings["encode"]), statistics.median(timings["cached ids"])
        rows.append([size, len(texts) / encode, len(texts) / cached, tokens / cached])
        print(f"#   batch {size}: encode {len(texts) / encode:,.1f} texts/s, cached ids {len(texts) / cached:,.1f}",
              flush=True)
    print(f"\nEmbed throughput by batch size (median of {rounds} alternating rounds, fp32)")
    print(table(["batch size", "encode texts/s", "cached ids texts/s", "cached ids tokens/s"], rows))


if __name__ == "__main__":
    main()
