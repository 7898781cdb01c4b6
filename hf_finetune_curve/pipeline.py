"""``run_curve``: data -> subsets -> finetune -> embed -> probe -> curve, resumable.

Example:
    >>> from hf_finetune_curve import CurveConfig, run_curve
    >>> result = run_curve(CurveConfig(sizes="0,200,400"))  # doctest: +SKIP
    >>> print(result.table())  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm.auto import tqdm

from .checkpoint import save_checkpoint
from .config import CurveConfig, library_versions
from .corpus import Corpus, load_corpus
from .curve import CurvePoint, format_table, read_points, write_curve, write_point
from .embed import embed_texts, embedding_cache_key
from .errors import RunDirectoryConflictError
from .finetune import finetune_sentence_transformer, resolve_device
from .io_utils import atomic_path, read_json, write_json_atomic
from .models import load_sentence_transformer
from .probe import fit_and_score
from .subsets import Splits, make_splits, parse_sizes, size_label

logger = logging.getLogger(__name__)

# Everything a run writes; --overwrite removes exactly these.
RUN_OUTPUTS = ("config.json", "data_report.json", "splits.npz", "curve.csv", "curve.json", "curve.png",
               "points", "checkpoints", "embeddings", "probes", "predictions")
_VERIFY_SAMPLE = 16


@dataclass
class CurveResult:
    """A finished (or resumed) run: its directory, config and points."""

    run_dir: Path
    config: CurveConfig
    points: list[CurvePoint]
    corpus: Corpus
    splits: Splits

    def table(self) -> str:
        return format_table(self.points)


def _config_differences(saved: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    differences = []
    for key in sorted(set(saved) | set(current)):
        old, new = saved.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            differences.extend(_config_differences(old, new, f"{prefix}{key}."))
        elif old != new:
            differences.append(f"{prefix}{key}: {old!r} -> {new!r}")
    return differences


def _prepare_run_dir(run_dir: Path, config: CurveConfig, overwrite: bool) -> dict[str, Any] | None:
    config_path = run_dir / "config.json"
    if not config_path.exists():
        return None
    saved = read_json(config_path)
    if saved.get("result_key") == config.result_key():
        return saved
    if not overwrite:
        ignored = {"output_dir", "name", "device", "embed_batch_size"}
        differences = [d for d in _config_differences(saved.get("config", {}), config.to_dict())
                       if d.split(":")[0] not in ignored]
        raise RunDirectoryConflictError(
            f"{run_dir} holds a run with a different configuration ({'; '.join(differences[:6]) or 'unknown'}). "
            "Use another --output-dir, or --overwrite to discard that run."
        )
    logger.warning("Overwriting the run in %s", run_dir)
    for name in RUN_OUTPUTS:
        target = run_dir / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    return None


def run_curve(
    config: CurveConfig | None = None,
    *,
    overwrite: bool = False,
    show_progress: bool = True,
    on_point: Callable[[CurvePoint], None] | None = None,
) -> CurveResult:
    """Measure the finetuning curve that ``config`` describes; resume it if it was interrupted.

    Finished sizes (``points/<label>.json``) are skipped; an interrupted size restarts from
    its beginning; checkpoints already saved and verified are reused.

    Args:
        config: the run; None runs the embedded default (synthetic car auctions, all-MiniLM-L6-v2).
        overwrite: discard an existing run with a different configuration in the output dir.
        show_progress: tqdm bars for sizes, training and embedding.
        on_point: called with each newly finished point (e.g. to plot live in a notebook).

    Raises:
        CorpusError, ConfigError, RunDirectoryConflictError, CheckpointVerificationError,
        ModelResolutionError.
    """
    config = config or CurveConfig()
    run_dir = config.resolved_output_dir()
    saved_config = _prepare_run_dir(run_dir, config, overwrite)
    run_dir.mkdir(parents=True, exist_ok=True)

    corpus = load_corpus(config.data, config.text_column, config.target_column, config.max_rows)
    for line in corpus.report.summary_lines():
        logger.info(line)
    write_json_atomic(run_dir / "data_report.json", corpus.report.to_dict())

    splits = make_splits(len(corpus), config.test_fraction, config.seed, config.include_test_in_finetune)
    splits.save(run_dir / "splits.npz")
    sizes = parse_sizes(config.sizes, len(splits.pool_order))
    device = resolve_device(config.device)
    base_model, resolved = load_sentence_transformer(config.model, device=device)

    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    write_json_atomic(run_dir / "config.json", {
        "config": config.to_dict(),
        "result_key": config.result_key(),
        "finetune_sizes": sizes,
        "labels": [size_label(size) for size in sizes],
        "model": resolved.to_dict(),
        "corpus": {"source": corpus.report.source, "fingerprint": corpus.fingerprint, "rows": len(corpus)},
        "split": {"test_rows": int(len(splits.test_indices)), "probe_train_rows": int(len(splits.train_indices)),
                  "finetune_pool_rows": int(len(splits.pool_order))},
        "device": device,
        "versions": library_versions(),
        "created": (saved_config or {}).get("created", now),
        "updated": now,
    })
    logger.info(
        "Run %s: %d rows (%d probe-train / %d test), finetune pool %d, sizes %s",
        run_dir, len(corpus), len(splits.train_indices), len(splits.test_indices), len(splits.pool_order),
        ", ".join(size_label(s) for s in sizes),
    )

    targets = corpus.targets
    sample_texts = [corpus.texts[i] for i in splits.test_indices[:_VERIFY_SAMPLE]]
    finished = {point.label: point for point in read_points(run_dir)}
    points: list[CurvePoint] = []
    progress = tqdm(sizes, desc="finetune sizes", unit="size", disable=not show_progress)
    for finetune_size in progress:
        label = size_label(finetune_size)
        progress.set_postfix_str(label)
        if label in finished:
            logger.info("%s already finished, skipping", label)
            points.append(finished[label])
            continue
        point = _run_point(config, run_dir, corpus, splits, finetune_size, label, base_model, resolved.model_id,
                           sample_texts, targets, device, show_progress)
        write_point(run_dir, point)
        points.append(point)
        write_curve(run_dir, points, _summary(config, corpus, resolved.to_dict()))
        if on_point is not None:
            on_point(point)
    progress.close()
    write_curve(run_dir, points, _summary(config, corpus, resolved.to_dict()))
    return CurveResult(run_dir=run_dir, config=config, points=points, corpus=corpus, splits=splits)


def _run_point(config, run_dir, corpus, splits, finetune_size, label, base_model, base_model_id, sample_texts,
               targets, device, show_progress) -> CurvePoint:
    checkpoint_dir = run_dir / "checkpoints" / label
    stats: dict[str, Any] = {}
    if finetune_size == 0:
        model = base_model
        checkpoint = base_model_id
    elif (checkpoint_dir / "modules.json").exists():
        # Saved and verified before an interruption (saving renames into place only after the check).
        from sentence_transformers import SentenceTransformer

        logger.info("%s: reusing the verified checkpoint %s", label, checkpoint_dir)
        model = SentenceTransformer(str(checkpoint_dir), device=device)
        stats = read_json(checkpoint_dir / "finetune_stats.json")
        checkpoint = f"checkpoints/{label}"
    else:
        texts = [corpus.texts[i] for i in splits.finetune_indices(finetune_size)]
        logger.info("%s: MLM finetuning on %d texts", label, len(texts))
        work_dir = run_dir / "checkpoints" / f".{label}.trainer"
        result = finetune_sentence_transformer(
            base_model, texts, config.finetune, seed=config.seed, device=device, work_dir=work_dir,
            show_progress=show_progress,
        )
        shutil.rmtree(work_dir, ignore_errors=True)
        model = result.model
        stats = {
            "finetune_texts_seen": result.texts_seen,
            "finetune_tokens_seen": result.tokens_seen,
            "finetune_steps": result.optimizer_steps,
            "final_mlm_loss": result.final_loss,
            "train_seconds": result.train_seconds,
            "chunk_length": result.chunk_length,
            "num_chunks": result.num_chunks,
        }
        staging_stats = run_dir / "checkpoints" / f".{label}.stats.json"
        write_json_atomic(staging_stats, stats)
        save_checkpoint(model, checkpoint_dir, sample_texts)
        shutil.move(str(staging_stats), checkpoint_dir / "finetune_stats.json")
        checkpoint = f"checkpoints/{label}"

    cache_key = embedding_cache_key(f"{config.result_key()}:{label}", corpus.fingerprint, model.max_seq_length)
    embedded = embed_texts(
        model, corpus.texts, batch_size=config.embed_batch_size,
        cache_path=run_dir / "embeddings" / f"{label}-{cache_key}.npy", show_progress=show_progress,
    )
    embeddings = embedded.embeddings
    probe_started = time.perf_counter()
    # One --seed fixes the split, the data order, the masking and the probe.
    probe_config = dataclasses.replace(config.probe, seed=config.seed)
    result = fit_and_score(
        embeddings[splits.train_indices], targets[splits.train_indices],
        embeddings[splits.test_indices], targets[splits.test_indices], probe_config,
    )
    probe_seconds = time.perf_counter() - probe_started
    probe_path = run_dir / "probes" / f"{label}.json"
    result.probe.save(probe_path)
    with atomic_path(run_dir / "predictions" / f"{label}.npy") as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, result.predictions)
    logger.info("%s: R² %.4f  MAE %.2f  MedAE %.2f", label, result.scores["r2"], result.scores["mae"],
                result.scores["median_ae"])
    return CurvePoint(
        finetune_size=int(finetune_size),
        label=label,
        r2=result.scores["r2"],
        mae=result.scores["mae"],
        median_ae=result.scores["median_ae"],
        n_test=int(len(splits.test_indices)),
        n_probe_train=int(len(splits.train_indices)),
        finetune_texts_seen=int(stats.get("finetune_texts_seen", 0)),
        finetune_tokens_seen=int(stats.get("finetune_tokens_seen", 0)),
        finetune_steps=int(stats.get("finetune_steps", 0)),
        final_mlm_loss=stats.get("final_mlm_loss"),
        train_seconds=float(stats.get("train_seconds", 0.0)),
        embed_seconds=float(embedded.seconds),
        probe_seconds=float(probe_seconds),
        checkpoint=checkpoint,
        probe_path=f"probes/{label}.json",
    )


def _summary(config: CurveConfig, corpus: Corpus, model: dict[str, str]) -> dict[str, Any]:
    return {
        "title": f"{config.model} on {corpus.report.source}: price probe vs MLM finetuning data",
        "model": model,
        "corpus": {"source": corpus.report.source, "fingerprint": corpus.fingerprint, "rows": len(corpus)},
        "target_transform": config.probe.target_transform,
        "result_key": config.result_key(),
    }
