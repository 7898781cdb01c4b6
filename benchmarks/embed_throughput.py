"""Embed-stage throughput: ``hf_finetune_curve.score.embed.embed_texts`` vs plain ``SentenceTransformer.encode``.

Same model, texts, batch size and device, alternating rounds in one process; also checks that
both give the same vectors.

    python benchmarks/embed_throughput.py --texts 256 --rounds 2 --threads 1
    python benchmarks/embed_throughput.py --device cuda --texts 20000 --rounds 3 --batch-size 256
"""

from __future__ import annotations

import statistics
import time

from _common import base_parser, environment_line, load_texts, quiet, setup, sync, table


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    quiet()
    device = setup(args)

    import numpy as np

    from hf_finetune_curve.score.embed import embed_texts
    from hf_finetune_curve.train.models import load_sentence_transformer

    corpus = load_texts(args.data, None)
    order = np.random.default_rng(args.seed).permutation(len(corpus))[: args.texts]
    texts = [corpus.texts[i] for i in order]
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


if __name__ == "__main__":
    main()
