"""MLM finetune throughput: the tool's step (packed chunks + sparse MLM head) vs a plain Trainer script.

The baseline is what one writes from the transformers docs: each text truncated to the max length,
``DataCollatorForLanguageModeling`` padding each batch dynamically, and a ``*ForMaskedLM`` forward
that computes vocabulary logits at every position. Both train the same model (same encoder
weights and the same new head), on the same texts, with the same batch size, learning rate,
hardware and Trainer; they run alternately in one process. Useful tokens are the non-pad tokens a
run learns from (the baseline loses the truncated tails). FLOPs are estimated as
6 x non-embedding params x positions + attention (12 x layers x hidden x seq²) + the MLM head
(6 x (hidden² + hidden x vocab) per position it runs on), counting padded positions that were
computed; "useful" GFLOP/s counts only what the tool's way needs for the same tokens.

    python benchmarks/mlm_throughput.py --texts 96 --rounds 2 --threads 1
    python benchmarks/mlm_throughput.py --device cuda --texts 4000 --rounds 3
"""

from __future__ import annotations

import math
import statistics
import time

from _common import base_parser, environment_line, quiet, sample_texts, setup, sync, table


class _RecordingCollator:
    """Wraps a collator and records the shape and masked count of every batch it builds."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.shapes: list[tuple[int, int]] = []
        self.masked = 0
        self.real = 0

    def __call__(self, examples):
        batch = self.inner(examples)
        self.shapes.append(tuple(batch["input_ids"].shape))
        self.masked += int((batch["labels"] != -100).sum())
        self.real += int(batch["attention_mask"].sum())
        return batch


def _model_dims(mlm) -> dict[str, int]:
    config = mlm.config
    base = mlm.base_model
    embedding_params = sum(p.numel() for p in base.embeddings.parameters())
    encoder_params = sum(p.numel() for p in base.parameters()) - embedding_params
    return {"params": encoder_params, "layers": int(config.num_hidden_layers), "hidden": int(config.hidden_size),
            "vocab": int(config.vocab_size)}


def _flops(dims, positions: float, squared: float, head_positions: float) -> float:
    encoder = 6.0 * dims["params"] * positions + 12.0 * dims["layers"] * dims["hidden"] * squared
    head = 6.0 * (dims["hidden"] ** 2 + dims["hidden"] * dims["vocab"]) * head_positions
    return encoder + head


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=96, help="texts per run")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (tool, baseline) x rounds")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-seq-length", type=int, default=128)
    args = parser.parse_args()
    quiet()
    device = setup(args)

    import numpy as np
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments, set_seed

    from hf_finetune_curve.config import FinetuneConfig
    from hf_finetune_curve.train.finetune import (build_mlm_model, chunk_length_for, finetune_sentence_transformer,
                                            pack_into_chunks)
    from hf_finetune_curve.train.models import load_sentence_transformer
    from hf_finetune_curve.train.trainer import use_bf16

    corpus, texts = sample_texts(args)
    base, _ = load_sentence_transformer(args.model, device=device)
    tokenizer = base.tokenizer
    # One pass, no head-only phase, no minimum: the same work as the baseline.
    config = FinetuneConfig(epochs=1, batch_size=args.batch_size, max_seq_length=args.max_seq_length, min_steps=0,
                            head_warmup_steps=0)
    chunk_length = chunk_length_for(base, args.max_seq_length)
    chunks = pack_into_chunks(texts, tokenizer, chunk_length)
    lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=True, truncation=False)["input_ids"]]
    dims = _model_dims(build_mlm_model(base)[0])
    print(f"# mlm_throughput: {args.model} on {corpus.report.source}: {len(texts)} texts, {sum(lengths):,} tokens "
          f"(median {int(np.median(lengths))}, p90 {int(np.percentile(lengths, 90))}), batch {args.batch_size}, "
          f"max length {chunk_length}")
    print(f"# {environment_line(device)}")
    print(f"# encoder non-embedding params {dims['params']:,}, layers {dims['layers']}, hidden {dims['hidden']}, "
          f"vocab {dims['vocab']:,}")

    def run_tool() -> dict:
        sync(device)
        result = finetune_sentence_transformer(base, texts, config, seed=args.seed, device=device,
                                               show_progress=False)
        tokens = result.tokens_seen
        positions = math.ceil(len(chunks) / args.batch_size) * args.batch_size * chunk_length
        positions = min(positions, len(chunks) * chunk_length)
        squared = len(chunks) * chunk_length ** 2
        masked = config.mlm_probability * (tokens - 2 * len(texts))  # [CLS]/[SEP] are never masked
        flops = _flops(dims, positions, squared, masked)
        return {"tokens": tokens, "seconds": result.train_seconds, "flops": flops, "positions": positions,
                "steps": result.optimizer_steps}

    def run_baseline() -> dict:
        set_seed(args.seed)
        mlm, _ = build_mlm_model(base)
        encoded = tokenizer(texts, add_special_tokens=True, truncation=True, max_length=chunk_length)["input_ids"]
        dataset = [{"input_ids": ids} for ids in encoded]
        collator = _RecordingCollator(DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.2))
        training_args = TrainingArguments(
            output_dir="/tmp/mlm-throughput-baseline", per_device_train_batch_size=args.batch_size,
            learning_rate=config.effective_learning_rate(), num_train_epochs=1, warmup_steps=0,
            weight_decay=config.weight_decay, save_strategy="no", report_to="none", seed=args.seed,
            use_cpu=device == "cpu", bf16=use_bf16(device), disable_tqdm=True, dataloader_num_workers=0,
            logging_steps=1000,
        )
        trainer = Trainer(model=mlm, args=training_args, data_collator=collator, train_dataset=dataset)
        sync(device)
        started = time.perf_counter()
        trainer.train()
        sync(device)
        seconds = time.perf_counter() - started
        positions = sum(b * s for b, s in collator.shapes)
        squared = sum(b * s * s for b, s in collator.shapes)
        flops = _flops(dims, positions, squared, positions)
        return {"tokens": collator.real, "seconds": seconds, "flops": flops, "positions": positions,
                "steps": trainer.state.global_step}

    runs: dict[str, list[dict]] = {"tool": [], "baseline": []}
    for round_ in range(args.rounds):
        for name, fn in (("tool", run_tool), ("baseline", run_baseline)):
            run = fn()
            runs[name].append(run)
            print(f"#   round {round_ + 1} {name}: {run['tokens']:,} tokens in {run['seconds']:.2f} s "
                  f"({run['tokens'] / run['seconds']:,.0f} tok/s, {run['steps']} steps)", flush=True)

    def summary(name: str) -> dict:
        rates = [r["tokens"] / r["seconds"] for r in runs[name]]
        gflops = [r["flops"] / r["seconds"] / 1e9 for r in runs[name]]
        first = runs[name][0]
        return {"rate": statistics.median(rates), "gflops": statistics.median(gflops), "tokens": first["tokens"],
                "positions": first["positions"], "seconds": statistics.median(r["seconds"] for r in runs[name]),
                "steps": first["steps"], "rates": rates}

    tool, baseline = summary("tool"), summary("baseline")
    useful_flops_per_token = runs["tool"][0]["flops"] / runs["tool"][0]["tokens"]
    rows = []
    for name, s in (("tool: packed + sparse head", tool), ("baseline: padded + full logits", baseline)):
        rows.append([name, s["tokens"], s["positions"], s["tokens"] / s["positions"], s["steps"], s["seconds"],
                     s["rate"], s["gflops"], useful_flops_per_token * s["rate"] / 1e9])
    print()
    print(f"MLM finetune throughput (median of {args.rounds} alternating rounds; useful = non-pad tokens learnt from)")
    print(table(["run", "useful tokens", "positions computed", "non-pad share", "steps", "train s",
                 "useful tok/s", "GFLOP/s executed", "useful GFLOP/s"], rows))
    print(f"\nuseful tokens/s ratio tool / baseline: {tool['rate'] / baseline['rate']:.2f}x (target >= 1.5x); "
          f"per round: {', '.join(f'{a / b:.2f}x' for a, b in zip(tool['rates'], baseline['rates']))}")


if __name__ == "__main__":
    main()
