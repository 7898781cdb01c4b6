"""Embed stage: embed the corpus with a checkpoint, cached on disk so nothing is embedded twice.

Example:
    >>> from hf_finetune_curve.embed import embed_texts
    >>> vectors = embed_texts(model, texts, cache_path="runs/bat/embeddings/f10k-1a2b.npy")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .io_utils import atomic_path

logger = logging.getLogger(__name__)


@dataclass
class EmbeddingResult:
    embeddings: np.ndarray
    seconds: float
    from_cache: bool


def embedding_cache_key(checkpoint_id: str, corpus_fingerprint: str, max_seq_length: int | None) -> str:
    """Key of an embedding cache file: which checkpoint, which corpus, which truncation length."""
    blob = f"{checkpoint_id}|{corpus_fingerprint}|{max_seq_length}"
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def embed_texts(
    model,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    cache_path: str | Path | None = None,
    show_progress: bool = True,
) -> EmbeddingResult:
    """Embed ``texts`` with ``model`` (float32, one row per text, in order).

    With ``cache_path``, a cache file of the right shape is read instead of embedding, and a fresh
    result is written there atomically.
    """
    if cache_path is not None:
        cache = Path(cache_path)
        if cache.exists():
            cached = np.load(cache, mmap_mode=None)
            if cached.ndim == 2 and cached.shape[0] == len(texts):
                logger.info("Embeddings from cache %s", cache)
                return EmbeddingResult(cached.astype(np.float32, copy=False), 0.0, True)
            logger.warning("Ignoring cache %s: shape %s does not match %d texts", cache, cached.shape, len(texts))
    started = time.perf_counter()
    embeddings = model.encode(
        list(texts),
        batch_size=int(batch_size),
        convert_to_numpy=True,
        show_progress_bar=show_progress,
    ).astype(np.float32, copy=False)
    seconds = time.perf_counter() - started
    if cache_path is not None:
        with atomic_path(cache_path) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, embeddings)
    return EmbeddingResult(embeddings, seconds, False)
