"""The tool's MLM step alone, timed in wall and CPU seconds: one line per run, for before/after comparisons.

Runs ``finetune_sentence_transformer`` (packed chunks, sparse head, the curve's Trainer) on the first
``--texts`` texts of a fixed shuffle, one pass, no head warmup, ``--repeat`` times in this process, and
prints per run: steps, tokens, wall seconds, process CPU seconds (workers included) and tokens per wall and
per CPU second. CPU seconds move much less than wall seconds when other jobs share the cores, so on a
shared machine compare them, and alternate the codes being compared:

    PYTHONPATH=/work/main python benchmarks/step_speed.py --texts 96 --threads 2   # the code before
    PYTHONPATH=$PWD       python benchmarks/step_speed.py --texts 96 --threads 2   # after
    python benchmarks/step_speed.py --texts 96 --trainer-arg torch_compile=true    # one speed argument on top

``--trainer-arg`` takes the same ``KEY=VALUE`` as ``hf-curve run`` (only the speed-only ones leave a
run's results unchanged).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

from _common import base_parser, environment_line, quiet, sample_texts, setup


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=96)
    parser.add_argument("--repeat", type=int, default=2, help="runs in this process (the first also warms up)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--trainer-arg", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--label", default=os.environ.get("PYTHONPATH", "?"), help="a name for this code in the output")
    args = parser.parse_args()
    quiet()
    device = setup(args)

    from hf_finetune_curve.config import FinetuneConfig
    from hf_finetune_curve.train.finetune import finetune_sentence_transformer
    from hf_finetune_curve.train.models import load_sentence_transformer

    corpus, texts = sample_texts(args)
    base, _ = load_sentence_transformer(args.model, device=device)
    trainer_kwargs = dict(item.split("=", 1) for item in args.trainer_arg)
    config = FinetuneConfig(epochs=1, batch_size=args.batch_size, max_seq_length=args.max_seq_length, min_steps=0,
                            head_warmup_steps=0, trainer_kwargs={k: _value(v) for k, v in trainer_kwargs.items()})
    print(f"# step_speed [{args.label}] {args.texts} texts, batch {args.batch_size}, max length {args.max_seq_length}, "
          f"trainer args {config.trainer_kwargs or '{}'}; {environment_line(device)}", flush=True)
    for run in range(args.repeat):
        cpu, wall = _cpu_seconds(), time.perf_counter()
        result = finetune_sentence_transformer(base, texts, config, seed=args.seed, device=device,
                                               show_progress=False)
        wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
        load = os.getloadavg()[0]
        print(f"run {run + 1} [{args.label}]: {result.optimizer_steps} steps, {result.tokens_seen:,} tokens, "
              f"train {result.train_seconds:.2f} s, wall {wall:.2f} s, cpu {cpu:.2f} s, "
              f"{result.tokens_seen / result.train_seconds:,.0f} tok/s, {result.tokens_seen / cpu:,.0f} tok/cpu-s, "
              f"{1000 * result.train_seconds / result.optimizer_steps:.0f} ms/step, final loss {result.final_loss:.4f}, "
              f"load {load:.1f}", flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
