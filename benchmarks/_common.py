"""Shared helpers of the benchmark scripts (not part of the package)."""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path
from typing import Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from hf_finetune_curve.config import DEFAULT_MODEL  # noqa: E402  (after the environment above)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data" / "airbnb_usd.jsonl.gz"


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", default=str(SHARED_DATA) if SHARED_DATA.exists() else None,
                        help="corpus file (default: ../shared/data/airbnb_usd.jsonl.gz if present, else the "
                             "embedded synthetic corpus)")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--device", default="auto", help="cpu, cuda, auto")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice; 1 is faster on a busy shared box)")
    parser.add_argument("--seed", type=int, default=42)
    return parser


def setup(args) -> str:
    import torch

    from hf_finetune_curve.train.finetune import resolve_device

    if args.threads:
        torch.set_num_threads(int(args.threads))
    return resolve_device(args.device)


def environment_line(device: str) -> str:
    import torch

    load = "n/a"
    if hasattr(os, "getloadavg"):
        one, five, _ = os.getloadavg()
        load = f"{one:.1f} (1 min) / {five:.1f} (5 min) on {os.cpu_count()} cores"
    gpu = ""
    if device.startswith("cuda") and torch.cuda.is_available():
        gpu = f", GPU {torch.cuda.get_device_name()}"
    return (f"device {device}{gpu}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"python {platform.python_version()}, load {load}")


def load_texts(data: str | None, max_rows: int | None):
    from hf_finetune_curve.data.corpus import load_corpus

    return load_corpus(data, max_rows=max_rows)


def sample_texts(args):
    """The corpus (``--data``) and ``--texts`` of its texts in a seeded random order (``--seed``)."""
    import numpy as np

    corpus = load_texts(args.data, None)
    order = np.random.default_rng(args.seed).permutation(len(corpus))[: args.texts]
    return corpus, [corpus.texts[i] for i in order]


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def fmt(value: object) -> str:
        if isinstance(value, float):
            if value != value:
                return "nan"
            if abs(value) >= 1000:
                return f"{value:,.0f}"
            if abs(value) >= 10:
                return f"{value:.1f}"
            return f"{value:.3f}"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.rjust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    return "\n".join(lines)


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.synchronize()


def quiet() -> None:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except Exception:  # pragma: no cover
        pass


sys.path.insert(0, str(Path(__file__).resolve().parent))
