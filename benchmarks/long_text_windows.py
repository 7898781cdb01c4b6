"""Long texts at f0: the base model truncated at its 256 tokens, at 512 (``--embed-max-length 512``), and read
whole in windows whose embeddings are averaged: does reading more of a long text help the probe?

The windowed embedding lives here, not in the package, until a measurement says it helps (docs/reference-case.md).

    python -m hf_finetune_curve.data.sample_data /tmp/long.jsonl.gz --rows 200 --style long
    OMP_NUM_THREADS=2 python benchmarks/long_text_windows.py --data /tmp/long.jsonl.gz --rows 200 --threads 2
"""

from __future__ import annotations

import time

import numpy as np
from _common import base_parser, environment_line, quiet, setup, table


def embed_windows(model, texts, window: int, stride: int, batch_size: int) -> np.ndarray:
    """Each text cut into windows of ``window`` tokens (special tokens included) overlapping by ``stride``,
    every window embedded by ``model``'s own modules, the windows' embeddings averaged per text and, when the
    model normalises, normalised again."""
    import torch
    from sentence_transformers.models import Normalize
    from sentence_transformers.util import batch_to_device

    encoded = model.tokenizer(list(texts), truncation=True, max_length=window, stride=stride,
                              return_overflowing_tokens=True, padding=False)
    owners = np.asarray(encoded["overflow_to_sample_mapping"])
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded]
    sums = None
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(owners), batch_size):
            batch = {k: encoded[k][start:start + batch_size] for k in keys}
            features = model.tokenizer.pad(batch, return_tensors="pt")
            vectors = model(batch_to_device(dict(features), model.device))["sentence_embedding"].float().cpu().numpy()
            if sums is None:
                sums = np.zeros((len(texts), vectors.shape[1]))
            np.add.at(sums, owners[start:start + batch_size], vectors)
    means = sums / np.bincount(owners, minlength=len(texts))[:, None]
    if any(isinstance(module, Normalize) for module in model):
        means /= np.linalg.norm(means, axis=1, keepdims=True)
    return means.astype(np.float32)


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    quiet()
    device = setup(args)

    from hf_finetune_curve import ProbeConfig, load_corpus, make_splits
    from hf_finetune_curve.curve.uncertainty import paired_bootstrap_delta
    from hf_finetune_curve.score.embed import embed_texts, token_length_report
    from hf_finetune_curve.score.probe import fit_and_score
    from hf_finetune_curve.train.models import load_sentence_transformer

    corpus = load_corpus(args.data, max_rows=args.rows)
    splits = make_splits(len(corpus), args.test_fraction, args.seed)
    model, _ = load_sentence_transformer(args.model, device=device)
    texts, targets = corpus.texts, corpus.targets
    print(f"# long_text_windows: {args.model} on {corpus.report.source}: {len(texts)} rows "
          f"({len(splits.test_indices)} held out), ridge probe on log prices")
    print(f"# {environment_line(device)}")
    print(f"# {token_length_report(model, texts).summary()}")
    variants = {}
    seconds = {}
    for name, embed in (
        ("truncated at 256", lambda: embed_texts(model, texts, batch_size=args.batch_size, show_progress=False)),
        ("truncated at 512", lambda: embed_texts(model, texts, batch_size=args.batch_size, show_progress=False,
                                                 max_length=512)),
        ("windows of 256, stride 32, averaged", lambda: embed_windows(model, texts, 256, 32, args.batch_size)),
    ):
        started = time.perf_counter()
        result = embed()
        seconds[name] = time.perf_counter() - started
        variants[name] = getattr(result, "embeddings", result)
    predictions = {}
    for name, vectors in variants.items():
        fitted = fit_and_score(vectors[splits.train_indices], targets[splits.train_indices],
                               vectors[splits.test_indices], targets[splits.test_indices], ProbeConfig(), kind="ridge")
        predictions[name] = fitted
    y_test = targets[splits.test_indices]
    base = "truncated at 256"
    rows = []
    for name, fitted in predictions.items():
        delta = paired_bootstrap_delta(y_test, predictions[base].predictions, fitted.predictions,
                                       n_resamples=args.resamples, seed=args.seed)
        d = delta["r2_log"]
        rows.append([name, fitted.scores["r2_log"], f"{d.delta:+.3f} [{d.low:+.3f}, {d.high:+.3f}]", seconds[name]])
    print("\nf0 log R² by how much of each text is read (ridge probe; delta vs 256 with a paired bootstrap)")
    print(table(["embedding", "log R²", "vs truncated at 256", "embed seconds"], rows))


if __name__ == "__main__":
    main()
