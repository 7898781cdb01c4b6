"""Embed stage: embed the corpus with a checkpoint, cached on disk so nothing is embedded twice.

Example:
    >>> from hf_finetune_curve.score.embed import embed_texts
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

from ..io_utils import atomic_path

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
    distributed: bool = False,
) -> EmbeddingResult | None:
    """Embed ``texts`` with ``model`` (float32, one row per text, in order).

    With ``cache_path``, a cache file of the right shape is read instead of embedding, and a fresh
    result is written there atomically. With ``distributed`` under ``torchrun`` / ``accelerate
    launch`` (a process group is up), every process must call this: each embeds every
    world_size-th text, rank 0 gathers them in order, writes the cache and returns the result;
    the other ranks return None.
    """
    import torch.distributed as dist

    world = dist.get_world_size() if distributed and dist.is_available() and dist.is_initialized() else 1
    rank = dist.get_rank() if world > 1 else 0
    cached = _read_cache(cache_path, len(texts)) if rank == 0 else None
    if world > 1:
        flag = [cached is not None]
        dist.broadcast_object_list(flag, src=0)  # every rank learns whether there is work to share
        if flag[0]:
            return cached if rank == 0 else None
    elif cached is not None:
        return cached
    started = time.perf_counter()
    shard = list(texts[rank::world])
    vectors = model.encode(shard, batch_size=int(batch_size), convert_to_numpy=True,
                           show_progress_bar=show_progress and rank == 0).astype(np.float32, copy=False)
    if world > 1:
        gathered: list | None = [None] * world if rank == 0 else None
        dist.gather_object(vectors, gathered, dst=0)
        if rank != 0:
            return None
        vectors = np.empty((len(texts), gathered[0].shape[1]), dtype=np.float32)
        for part, piece in enumerate(gathered):
            vectors[part::world] = piece
        logger.info("Embedded %d texts on %d processes", len(texts), world)
    seconds = time.perf_counter() - started
    if cache_path is not None:
        with atomic_path(cache_path) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, vectors)
    return EmbeddingResult(vectors, seconds, False)


def _read_cache(cache_path: str | Path | None, n_texts: int) -> EmbeddingResult | None:
    if cache_path is None or not Path(cache_path).exists():
        return None
    cached = np.load(cache_path, mmap_mode=None)
    if cached.ndim == 2 and cached.shape[0] == n_texts:
        logger.info("Embeddings from cache %s", cache_path)
        return EmbeddingResult(cached.astype(np.float32, copy=False), 0.0, True)
    logger.warning("Ignoring cache %s: shape %s does not match %d texts", cache_path, cached.shape, n_texts)
    return None
