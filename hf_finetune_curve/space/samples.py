"""The Space's samples: ``samples.parquet``, a few hundred held-out listings with every checkpoint's
predicted price, 2-D map coordinates and embeddings, so the Space draws its maps and finds nearest
neighbours without embedding anything.

The pipeline runs this stage after the curve is analysed; ``hf-curve space`` runs it for a run that
lacks the file. The Space only reads it (:func:`read_samples`).

Checkpoints are named by their point key (:func:`point_key`): ``f200`` for MLM and the shared ``f0``,
``tsdae/f200`` for another objective, so every objective's checkpoints share one table.

Example:
    >>> from hf_finetune_curve.space.samples import build_samples, column_name, read_samples
    >>> column_name("pred", "f10k")
    'pred:f10k'
    >>> path = build_samples("runs/bat", n_samples=300)  # doctest: +SKIP
    >>> read_samples(path).labels  # doctest: +SKIP
    ['f0', 'f10k']
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SpaceError
from ..run_dir import RunDirectory, parse_file_label, point_key, sorted_points

logger = logging.getLogger(__name__)

SAMPLES_META_KEY = b"hf_finetune_curve"


def column_name(kind: str, label: str) -> str:
    """A per-checkpoint column of ``samples.parquet``: ``pred:f10k``, ``x:f10k``, ``y:f10k``, ``emb:f10k``."""
    return f"{kind}:{label}"


def _pca2(embeddings: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """Project onto the first two principal components (signs fixed so reruns draw the same map)."""
    X = np.asarray(embeddings, dtype=np.float64)
    mean = X.mean(axis=0)
    centred = X - mean
    components = np.zeros((2, X.shape[1]))
    explained = [0.0, 0.0]
    if len(X) >= 2:
        _, singular, vt = np.linalg.svd(centred, full_matrices=False)
        take = min(2, vt.shape[0])
        components[:take] = vt[:take]
        total = float(np.sum(singular ** 2)) or 1.0
        explained[:take] = [float(s ** 2 / total) for s in singular[:take]]
    for row in components:
        pivot = int(np.argmax(np.abs(row)))
        if row[pivot] < 0:
            row *= -1
    coords = centred @ components.T
    return coords, {"mean": mean.tolist(), "components": components.tolist(), "explained_variance_ratio": explained}


def _model_location(run: RunDirectory, meta: dict[str, Any], key: str) -> str:
    if key == "f0":
        model = meta.get("model", {})
        path = model.get("path")
        return path if path and Path(path).exists() else model.get("model_id") or meta["config"]["model"]
    return str(run.checkpoint_dir(*parse_file_label(key)))


def _sample_embeddings(run: RunDirectory, meta: dict[str, Any], key: str, rows: np.ndarray,
                       embedded_rows: np.ndarray, texts: list[str]) -> np.ndarray:
    """Embeddings of corpus ``rows`` from the run's cache (which holds ``embedded_rows``, sorted)."""
    label, objective = parse_file_label(key)
    path = run.cached_embeddings(label, len(embedded_rows), objective)
    if path is not None:
        return np.asarray(np.load(path, mmap_mode="r")[np.searchsorted(embedded_rows, rows)], dtype=np.float32)
    # No cached corpus embeddings (deleted to save space): embed just the samples.
    from ..train.models import load_sentence_transformer

    logger.info("%s: no cached embeddings; embedding %d sample listings", key, len(texts))
    model, _ = load_sentence_transformer(_model_location(run, meta, key))
    return np.asarray(model.encode(texts, convert_to_numpy=True, show_progress_bar=False), dtype=np.float32)


def _sample_predictions(run: RunDirectory, key: str, positions: np.ndarray, n_test: int,
                        embeddings: np.ndarray) -> np.ndarray:
    label, objective = parse_file_label(key)
    predictions = run.read_predictions(label, objective)
    if predictions is not None:
        if predictions.ndim == 1 and len(predictions) == n_test:
            return np.asarray(predictions[positions], dtype=np.float64)
        logger.warning("Ignoring %s: %s predictions for %d test rows", run.predictions_path(label, objective),
                       predictions.shape, n_test)
    probe = run.read_probe(label, objective)
    if probe is None:
        raise SpaceError(f"{key} has neither held-out predictions nor a probe in {run.path}.")
    return probe.predict(embeddings)


def _load_run_corpus(meta: dict[str, Any]):
    from ..data.corpus import load_corpus

    config = meta["config"]
    corpus = load_corpus(config.get("data"), config.get("text_column", "text"),
                         config.get("target_column", "price"), config.get("max_rows"))
    expected = meta.get("corpus", {}).get("fingerprint")
    if expected and corpus.fingerprint != expected:
        raise SpaceError(
            f"The corpus at {config.get('data')!r} has changed since the run (fingerprint {corpus.fingerprint}, "
            f"run has {expected}); cannot rebuild the samples."
        )
    return corpus


def build_samples(run_dir: str | os.PathLike | RunDirectory, corpus=None, splits=None, n_samples: int = 300,
                  seed: int = 0) -> Path:
    """Write ``run_dir/samples.parquet``: held-out listings for the Space's map and nearest neighbours.

    Rows are ``n_samples`` listings drawn (with ``seed``) from the probe's test split, in test-split
    order. Columns: ``row`` (corpus index), ``test_position`` (index into ``predictions/<label>.npy``),
    ``text``, ``price`` (true target), and for every finished checkpoint of every objective, by its
    point key (:func:`point_key`: ``f200``, ``tsdae/f200``), ``pred:<label>``
    (its probe's test prediction), ``x:<label>``/``y:<label>`` (2-D PCA of that checkpoint's
    embeddings of these samples, fitted per checkpoint) and ``emb:<label>`` (the embedding, float32).
    The schema metadata ``hf_finetune_curve`` holds the labels and each PCA (mean, components), so a
    new text can be placed on the same map.

    Cheap: reads cached corpus embeddings by memory map (embeds the samples only when the cache
    is gone). ``corpus``/``splits`` default to reloading them from the run.
    """
    import pyarrow as pa

    run = run_dir if isinstance(run_dir, RunDirectory) else RunDirectory(run_dir)
    run.require_run(SpaceError)
    meta = run.read_config()
    if splits is None:
        splits = run.read_splits()
    if corpus is None:
        corpus = _load_run_corpus(meta)
    expected_rows = meta.get("corpus", {}).get("rows")
    if expected_rows is not None and int(expected_rows) != len(corpus):
        raise SpaceError(f"The corpus has {len(corpus)} rows but the run in {run.path} used {expected_rows}.")
    # Point keys: "f200" for MLM and the shared f0, "tsdae/f200" for the other objectives; f0 once.
    keyed = {point_key(p.to_dict()): p for p in run.curve_points()}
    points = [dataclasses.replace(p, label=key) for key, p in keyed.items()
              if run.probe_path(*parse_file_label(key)).exists() or run.predictions_path(*parse_file_label(key)).exists()]
    if not points:
        raise SpaceError(f"{run.path} has no finished checkpoints yet; nothing to sample.")
    test = np.asarray(splits.test_indices)
    k = min(int(n_samples), len(test))
    if k < 1:
        raise SpaceError(f"n_samples must be >= 1; got {n_samples}.")
    positions = np.sort(np.random.default_rng(seed).choice(len(test), size=k, replace=False))
    rows = test[positions]
    texts = [corpus.texts[i] for i in rows]
    columns: dict[str, Any] = {
        "row": pa.array(rows.astype(np.int64)),
        "test_position": pa.array(positions.astype(np.int64)),
        "text": pa.array(texts, type=pa.string()),
        "price": pa.array(np.asarray(corpus.targets, dtype=np.float64)[rows]),
    }
    pca: dict[str, Any] = {}
    labels: list[str] = []
    sizes: dict[str, int] = {}
    for point in sorted(points, key=lambda p: p.finetune_size):
        label = point.label
        embeddings = _sample_embeddings(run, meta, label, rows, splits.probe_rows, texts)
        predictions = _sample_predictions(run, label, positions, len(test), embeddings)
        coords, pca[label] = _pca2(embeddings)
        dim = embeddings.shape[1]
        columns[column_name("pred", label)] = pa.array(predictions.astype(np.float64))
        columns[column_name("x", label)] = pa.array(coords[:, 0].astype(np.float32))
        columns[column_name("y", label)] = pa.array(coords[:, 1].astype(np.float32))
        columns[column_name("emb", label)] = pa.FixedSizeListArray.from_arrays(
            pa.array(np.ascontiguousarray(embeddings, dtype=np.float32).ravel()), dim)
        labels.append(label)
        sizes[label] = int(point.finetune_size)
    table = pa.table(columns)
    info = {"version": 1, "labels": labels, "finetune_sizes": sizes, "seed": int(seed), "n_test": int(len(test)),
            "text_column": meta["config"].get("text_column", "text"),
            "target_column": meta["config"].get("target_column", "price"), "pca": pca}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), SAMPLES_META_KEY: json.dumps(info)})
    path = run.write_samples_table(table)
    logger.info("Wrote %s (%d listings x %d checkpoints)", path, k, len(labels))
    return path


@dataclass
class Samples:
    """``samples.parquet`` read back: a frame of scalars plus per-label embeddings and PCA."""

    frame: Any  # pandas.DataFrame: row, test_position, text, price, pred:/x:/y:<label>
    embeddings: dict[str, np.ndarray]
    info: dict[str, Any]

    @property
    def labels(self) -> list[str]:
        return list(self.info.get("labels", []))

    def project(self, label: str, vectors: np.ndarray) -> np.ndarray:
        pca = self.info["pca"][label]
        return (np.atleast_2d(vectors) - np.asarray(pca["mean"])) @ np.asarray(pca["components"]).T


def read_samples(path: str | os.PathLike) -> Samples:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    info = json.loads((table.schema.metadata or {}).get(SAMPLES_META_KEY, b"{}"))
    embeddings = {}
    scalar_columns = []
    for name in table.column_names:
        if name.startswith("emb:"):
            column = table.column(name).combine_chunks()
            dim = column.type.list_size
            embeddings[name[4:]] = column.values.to_numpy(zero_copy_only=False).reshape(-1, dim)
        else:
            scalar_columns.append(name)
    frame = table.select(scalar_columns).to_pandas()
    if "labels" not in info:
        info["labels"] = list(embeddings)
    return Samples(frame=frame, embeddings=embeddings, info=info)


__all__ = ["SAMPLES_META_KEY", "Samples", "build_samples", "column_name", "point_key", "read_samples",
           "run_samples", "sorted_points"]


def run_samples(run: str | os.PathLike | RunDirectory) -> Samples | None:
    """A run's ``samples.parquet``, or None when the run has none (the Space then draws no map)."""
    directory = run if isinstance(run, RunDirectory) else RunDirectory(run)
    return read_samples(directory.samples_path) if directory.samples_path.is_file() else None
