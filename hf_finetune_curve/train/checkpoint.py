"""Checkpoint stage: save a finetuned SentenceTransformer and prove the saved copy embeds the same.

Example:
    >>> from hf_finetune_curve.train.checkpoint import save_checkpoint
    >>> save_checkpoint(model, "runs/bat/checkpoints/f10k", sample_texts)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import CheckpointVerificationError

logger = logging.getLogger(__name__)

MAX_ABS_DIFF = 1e-5


def embedding_difference(model_a, model_b, texts: Sequence[str], batch_size: int = 32) -> float:
    """Largest absolute difference between the two models' embeddings of ``texts``."""
    first = model_a.encode(list(texts), batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
    second = model_b.encode(list(texts), batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
    if first.shape != second.shape:
        return float("inf")
    return float(np.max(np.abs(first.astype(np.float64) - second.astype(np.float64))))


def verify_saved_model(model, path: str | Path, sample_texts: Sequence[str], tolerance: float = MAX_ABS_DIFF) -> float:
    """Load ``path`` and compare its embeddings with ``model``'s on ``sample_texts``.

    Raises:
        CheckpointVerificationError: the largest difference exceeds ``tolerance``.
    """
    from sentence_transformers import SentenceTransformer

    loaded = SentenceTransformer(str(path), device=str(model.device))
    was_training = model.training
    model.eval()
    try:
        difference = embedding_difference(model, loaded, sample_texts)
    finally:
        model.train(was_training)
    if not difference <= tolerance:
        raise CheckpointVerificationError(
            f"The checkpoint saved at {path} does not embed like the trained model: max abs difference "
            f"{difference:.3g} on {len(sample_texts)} sample texts (allowed {tolerance:g})."
        )
    return difference


def save_checkpoint(model, path: str | Path, sample_texts: Sequence[str], tolerance: float = MAX_ABS_DIFF,
                    extra_json: dict[str, dict] | None = None) -> float:
    """Save ``model`` to ``path`` so that ``SentenceTransformer(path)`` loads it, then verify it.

    The model (and ``extra_json``: file name -> content, e.g. the training statistics) is written
    to a temporary sibling folder, verified, and renamed into place in one step, so ``path``
    either does not exist or holds a verified checkpoint with all its files. Returns the max abs
    difference.
    """
    target = Path(path)
    staging = target.with_name(f".{target.name}.partial")
    if staging.exists():
        shutil.rmtree(staging)
    staging.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(staging))
    for name, content in (extra_json or {}).items():
        (staging / name).write_text(json.dumps(content, indent=2, default=str), encoding="utf-8")
    try:
        difference = verify_saved_model(model, staging, sample_texts, tolerance)
    except Exception:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
    logger.info("Saved %s (saved == trained: max abs diff %.2g)", target, difference)
    return difference
