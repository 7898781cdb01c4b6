"""Embed stage: embed the corpus with a checkpoint, cached on disk so nothing is embedded twice.

Example:
    >>> from hf_finetune_curve.score.embed import embed_texts
    >>> vectors = embed_texts(model, texts, cache_path="runs/bat/embeddings/f10k-1a2b.npy")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError
from ..io_utils import atomic_path

logger = logging.getLogger(__name__)


@dataclass
class EmbeddingResult:
    embeddings: np.ndarray
    seconds: float
    from_cache: bool


@dataclass
class TruncationReport:
    """How many texts are longer than the embedding model reads (``max_length`` tokens, special tokens
    included), and by how much: what truncation throws away before any probe sees the text."""

    max_length: int
    texts: int
    truncated: int
    tokens_median: float
    tokens_p90: float
    tokens_max: int
    # Over the truncated texts only: tokens beyond max_length (0 when none is truncated).
    over_median: float
    over_p90: float
    tokens_lost_share: float  # of all the corpus's tokens, the share truncation drops

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        share = self.truncated / self.texts if self.texts else 0.0
        text = (f"{self.truncated} of {self.texts} texts ({share:.1%}) exceed the embedding model's "
                f"{self.max_length} tokens (lengths: median {self.tokens_median:.0f}, p90 {self.tokens_p90:.0f}, "
                f"max {self.tokens_max})")
        if self.truncated:
            text += (f"; the truncated ones run {self.over_median:.0f} tokens over at the median, "
                     f"{self.over_p90:.0f} at p90: {self.tokens_lost_share:.1%} of all tokens are never read")
        return text


def token_lengths(tokenizer, texts: Sequence[str], batch_size: int = 2048) -> np.ndarray:
    """Every text's length in tokens, special tokens included, without truncation."""
    lengths = np.empty(len(texts), dtype=np.int64)
    for start in range(0, len(texts), batch_size):
        encoded = tokenizer(list(texts[start:start + batch_size]), add_special_tokens=True, truncation=False,
                            return_attention_mask=False, verbose=False)["input_ids"]
        lengths[start:start + len(encoded)] = [len(ids) for ids in encoded]
    return lengths


def token_length_report(model, texts: Sequence[str], max_length: int | None = None) -> TruncationReport:
    """:class:`TruncationReport` of ``texts`` for ``model`` (a SentenceTransformer) reading ``max_length``
    tokens (default: the model's ``max_seq_length``)."""
    limit = int(max_length or model.max_seq_length)
    lengths = token_lengths(model.tokenizer, texts)
    over = lengths[lengths > limit] - limit
    total = int(lengths.sum())
    return TruncationReport(
        max_length=limit, texts=int(len(lengths)), truncated=int(len(over)),
        tokens_median=float(np.median(lengths)) if len(lengths) else 0.0,
        tokens_p90=float(np.percentile(lengths, 90)) if len(lengths) else 0.0,
        tokens_max=int(lengths.max()) if len(lengths) else 0,
        over_median=float(np.median(over)) if len(over) else 0.0,
        over_p90=float(np.percentile(over, 90)) if len(over) else 0.0,
        tokens_lost_share=float(over.sum() / total) if total else 0.0,
    )


def log_truncation(model, corpus, max_length: int | None, run=None) -> TruncationReport:
    """Measure, log and (with ``run``, a RunDirectory) record in data_report.json how many of ``corpus``'s texts
    ``model`` cuts short at ``max_length`` tokens (default its own ``max_seq_length``)."""
    report = token_length_report(model, corpus.texts, check_max_length(model, max_length))
    # A warning when it matters (5% of the texts or more): the probe then scores only the texts' beginnings.
    (logger.warning if report.truncated >= 0.05 * max(report.texts, 1) else logger.info)(
        "Embedding length: %s", report.summary())
    corpus.report.truncation = report.to_dict()
    if run is not None:
        run.write_data_report(corpus.report)
    return report


def embedding_cache_key(checkpoint_id: str, corpus_fingerprint: str, max_seq_length: int | None) -> str:
    """Key of an embedding cache file: which checkpoint, which corpus, which truncation length."""
    blob = f"{checkpoint_id}|{corpus_fingerprint}|{max_seq_length}"
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def check_max_length(model, max_length: int | None) -> int:
    """The number of tokens ``model`` reads per text: ``max_length``, or the model's own ``max_seq_length``.

    Raises:
        ConfigError: ``max_length`` below 8, or beyond the positions the encoder has (its
            ``max_position_embeddings``): those tokens would have no position to go to.
    """
    if max_length is None:
        return int(model.max_seq_length)
    positions = _max_positions(model)
    if int(max_length) < 8 or (positions is not None and int(max_length) > positions):
        bound = f"in [8, {positions}] (the encoder's max_position_embeddings)" if positions else ">= 8"
        raise ConfigError(f"embed_max_length (--embed-max-length) must be {bound}; got {max_length!r}.")
    return int(max_length)


def _max_positions(model) -> int | None:
    first = model[0] if len(model) else None
    config = getattr(getattr(first, "auto_model", None), "config", None)
    positions = getattr(config, "max_position_embeddings", None)
    return int(positions) if isinstance(positions, int) else None


class TokenCache:
    """The token ids of one list of texts, computed once and reused by every checkpoint of a run.

    Finetuning changes an encoder's weights, never its tokenizer, so every checkpoint of a run would
    tokenise the probe's rows into the same ids; at 20k rows that was done again for each one. The cache
    holds them in length-sorted batches (each padded only to its own longest text, as
    ``SentenceTransformer.encode`` pads) and is keyed by the texts, the tokenizer and the length read:
    a checkpoint with another tokenizer, or another ``max_length``, is tokenised afresh.
    """

    def __init__(self) -> None:
        self._key: str | None = None
        self._order: np.ndarray | None = None
        self._batches: list[dict[str, Any]] = []
        self.tokenizations = 0  # how often texts were tokenised (the tests count it)

    def batches(self, model, texts: Sequence[str], max_length: int, batch_size: int
                ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """(order, batches): ``batches[k]`` holds the model inputs of ``texts[order[k*batch_size:...]]``."""
        key = _token_key(model, texts, max_length, batch_size)
        if key != self._key:
            lengths = token_lengths(model.tokenizer, texts)
            order = np.argsort(-np.minimum(lengths, max_length), kind="stable")
            original = model.max_seq_length
            model.max_seq_length = max_length  # what the model's own preprocessing truncates to
            # ``preprocess`` since sentence-transformers 5 (``tokenize`` before, deprecated after).
            preprocess = getattr(model, "preprocess", None) or model.tokenize
            try:
                batches = [preprocess([texts[i] for i in order[start:start + batch_size]])
                           for start in range(0, len(texts), batch_size)]
            finally:
                model.max_seq_length = original
            self._key, self._order, self._batches = key, order, batches
            self.tokenizations += 1
        return self._order, self._batches


def _token_key(model, texts: Sequence[str], max_length: int, batch_size: int) -> str:
    digest = hashlib.sha256()
    tokenizer = model.tokenizer
    backend = getattr(tokenizer, "backend_tokenizer", None)
    digest.update((backend.to_str() if backend is not None else repr(sorted(tokenizer.get_vocab().items()))).encode())
    digest.update(f"|{type(model[0]).__name__}|{max_length}|{batch_size}|{len(texts)}|".encode())
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()


def _encode_tokenized(model, texts: Sequence[str], tokens: TokenCache, max_length: int, batch_size: int,
                      show_progress: bool) -> np.ndarray:
    """``model.encode(texts)`` from the cached token ids: the model's forward pass on each batch."""
    import torch
    from sentence_transformers.util import batch_to_device

    order, batches = tokens.batches(model, texts, max_length, batch_size)
    vectors: np.ndarray | None = None
    model.eval()
    iterator = batches
    if show_progress:
        from tqdm.auto import tqdm

        iterator = tqdm(batches, desc="Batches")
    start = 0
    with torch.inference_mode():
        for features in iterator:
            output = model(batch_to_device(dict(features), model.device))["sentence_embedding"]
            block = output.float().cpu().numpy()
            if vectors is None:
                vectors = np.empty((len(texts), block.shape[1]), dtype=np.float32)
            vectors[order[start:start + len(block)]] = block
            start += len(block)
    return vectors if vectors is not None else np.empty((0, 0), dtype=np.float32)


def embed_texts(
    model,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    cache_path: str | Path | None = None,
    show_progress: bool = True,
    distributed: bool = False,
    max_length: int | None = None,
    tokens: TokenCache | None = None,
) -> EmbeddingResult | None:
    """Embed ``texts`` with ``model`` (float32, one row per text, in order).

    With ``cache_path``, a cache file of the right shape is read instead of embedding, and a fresh
    result is written there atomically. With ``distributed`` under ``torchrun`` / ``accelerate
    launch`` (a process group is up), every process must call this: each embeds every
    world_size-th text, rank 0 gathers them in order, writes the cache and returns the result;
    the other ranks return None.

    ``max_length``: tokens read per text (default: the model's ``max_seq_length``; see
    :func:`check_max_length`). ``tokens``: a :class:`TokenCache` shared by the calls that embed the same
    texts (every checkpoint of a run), so they are tokenised once; the vectors equal ``model.encode``'s.
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
    length = check_max_length(model, max_length)
    if tokens is None and length == model.max_seq_length:
        vectors = model.encode(shard, batch_size=int(batch_size), convert_to_numpy=True,
                               show_progress_bar=show_progress and rank == 0).astype(np.float32, copy=False)
    else:
        vectors = _encode_tokenized(model, shard, tokens if tokens is not None else TokenCache(), length,
                                    int(batch_size), show_progress and rank == 0)
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
