""":class:`RunDirectory`: a path accessor and a typed reader / writer for every file of a run (it writes data;
the pipeline draws ``curve.png``)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ..curve.points import CurvePoint, csv_table, ordered_points
from ..errors import NotARunDirectoryError, RunDirectoryFormatError
from ..io_utils import atomic_path, exclusive_lock, read_json, write_csv_atomic, write_json_atomic
from ..names import MLM, file_label, objective_name, parse_probe_kind
from .curve_file import CurveFile, _point_from_json
from .layout import (BASELINES_DIR, BRANCHING_FILE, CHECKPOINTS_DIR, CHECKPOINT_STATS_FILE, CONFIG_FILE, CURVE_CSV_FILE,
                     CURVE_FORMAT_VERSION, CURVE_JSON_FILE, CURVE_PNG_FILE, DATA_REPORT_FILE, EMBEDDINGS_DIR, LOCK_FILE,
                     LOGS_DIR, POINTS_DIR, PREDICTIONS_DIR, PROBES_DIR, PROBE_VIEW_PREFIX, RUN_LOG_FILE, RUN_OUTPUTS,
                     SAMPLES_FILE, SEEDS_DIR, SPLITS_FILE, TRAINING_PLAN_FILE, _EMBEDDING_FILE, _METADATA_ONLY,
                     _SEED_DIR)

if TYPE_CHECKING:  # pragma: no cover
    from ..data.corpus import DataReport
    from ..data.subsets import Splits
    from ..score.probe import AnyProbe


class RunDirectory:
    """One run's directory (or a replicate's under ``seeds/``, or a snapshot of a published curve repo,
    which keeps the same names for the files it has).

    Path accessors never create anything; ``write_*`` methods create folders as needed and write
    atomically; ``read_*`` methods return None (or an empty list) for a file the run has not written.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDirectory({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunDirectory) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    def relative(self, path: str | os.PathLike) -> str:
        """``path`` relative to this directory, with forward slashes (as points record their files)."""
        return Path(path).relative_to(self.path).as_posix()

    def resolve(self, relative: str) -> Path:
        """The inverse of :meth:`relative`."""
        return self.path / relative

    # -- the run's own files ------------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def data_report_path(self) -> Path:
        return self.path / DATA_REPORT_FILE

    @property
    def splits_path(self) -> Path:
        return self.path / SPLITS_FILE

    @property
    def curve_csv_path(self) -> Path:
        return self.path / CURVE_CSV_FILE

    @property
    def curve_json_path(self) -> Path:
        return self.path / CURVE_JSON_FILE

    @property
    def curve_png_path(self) -> Path:
        return self.path / CURVE_PNG_FILE

    @property
    def training_plan_path(self) -> Path:
        """MLM's training plan (:meth:`objective_training_plan_path` for any objective)."""
        return self.path / TRAINING_PLAN_FILE

    def objective_training_plan_path(self, objective: Any = MLM) -> Path:
        """``training_plan.json`` for MLM, ``training_plan.<objective>.json`` for another objective."""
        name = objective_name(objective)
        return self.training_plan_path if name == MLM else self.path / f"training_plan.{name}.json"

    @property
    def branching_path(self) -> Path:
        return self.path / BRANCHING_FILE

    @property
    def samples_path(self) -> Path:
        return self.path / SAMPLES_FILE

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK_FILE

    @property
    def logs_dir(self) -> Path:
        return self.path / LOGS_DIR

    @property
    def run_log_path(self) -> Path:
        """``logs/run.log``: every line the run logged, and the Trainer's log dicts the terminal does not show."""
        return self.logs_dir / RUN_LOG_FILE

    @property
    def embeddings_dir(self) -> Path:
        return self.path / EMBEDDINGS_DIR

    @property
    def tfidf_baseline_path(self) -> Path:
        return self.path / BASELINES_DIR / "tfidf.json"

    @property
    def y_test_path(self) -> Path:
        """The held-out targets, in the order of every ``predictions/<label>.npy``."""
        return self.path / PREDICTIONS_DIR / "y_test.npy"

    @property
    def branching_state_dir(self) -> Path:
        """The branching schedule's main-run checkpoints, until every size is done (MLM)."""
        return self.path / CHECKPOINTS_DIR / ".branching-state"

    def objective_branching_state_dir(self, objective: Any = MLM) -> Path:
        """:attr:`branching_state_dir` of ``objective`` (``.branching-state-<objective>`` for mlm-distill)."""
        name = objective_name(objective)
        return self.branching_state_dir if name == MLM else self.path / CHECKPOINTS_DIR / f".branching-state-{name}"

    def independent_work_dir(self, objective: Any = MLM) -> Path:
        """Scratch space of the independent schedule (``.independent`` for MLM, ``.<objective>`` otherwise)."""
        name = objective_name(objective)
        return self.path / CHECKPOINTS_DIR / (".independent" if name == MLM else f".{name}")

    # -- a point's files ----------------------------------------------------------------------------------------
    def point_path(self, label: str, objective: Any = MLM) -> Path:
        return self.path / POINTS_DIR / f"{file_label(label, objective)}.json"

    def checkpoint_dir(self, label: str, objective: Any = MLM) -> Path:
        return self.path / CHECKPOINTS_DIR / file_label(label, objective)

    def checkpoint_stats_path(self, label: str, objective: Any = MLM) -> Path:
        return self.checkpoint_dir(label, objective) / CHECKPOINT_STATS_FILE

    def probe_path(self, label: str, objective: Any = MLM) -> Path:
        return self.path / PROBES_DIR / f"{file_label(label, objective)}.json"

    def predictions_path(self, label: str, objective: Any = MLM) -> Path:
        """A point's held-out predictions: the mean over its probe seeds, shape ``(n_test,)``."""
        return self.path / PREDICTIONS_DIR / f"{file_label(label, objective)}.npy"

    def seed_predictions_path(self, label: str, objective: Any = MLM) -> Path:
        """Every probe seed's held-out predictions of a point, shape ``(probe_seeds, n_test)``."""
        return self.path / PREDICTIONS_DIR / f"{file_label(label, objective)}.probe-seeds.npy"

    def embedding_cache_path(self, label: str, cache_key: str, objective: Any = MLM) -> Path:
        """Where a checkpoint's embeddings of the probe rows are cached (``cache_key``:
        :func:`score.embed.embedding_cache_key`)."""
        return self.embeddings_dir / f"{file_label(label, objective)}-{cache_key}.npy"

    def replicate(self, seed: int) -> "RunDirectory":
        """The replicate finetuned with data-order seed ``seed`` (``--seeds``)."""
        return RunDirectory(self.path / SEEDS_DIR / f"seed-{int(seed)}")

    def probe_view(self, probe: Any) -> "RunDirectory":
        """Where a secondary probe (``--probes``) keeps its points, probes and predictions: ``probe-<probe>/``,
        with the same layout (a replicate's view: ``run.replicate(seed).probe_view(probe)``)."""
        return RunDirectory(self.path / f"{PROBE_VIEW_PREFIX}{parse_probe_kind(probe).value}")

    def replicate_seeds(self) -> list[int]:
        """Seeds of the replicates this run holds, ascending."""
        folder = self.path / SEEDS_DIR
        if not folder.is_dir():
            return []
        return sorted(int(match.group(1)) for entry in folder.iterdir() if (match := _SEED_DIR.match(entry.name)))

    # -- the whole directory ------------------------------------------------------------------------------------
    @property
    def is_run(self) -> bool:
        """True once the run has recorded its configuration."""
        return self.config_path.is_file()

    def require_run(self, error: type[Exception] = NotARunDirectoryError) -> None:
        """Raise ``error`` naming the directory unless it holds a run's ``config.json``."""
        if not self.is_run:
            raise error(f"{self.path} is not a run directory (no {CONFIG_FILE}).")

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Hold the run's exclusive lock for a block (:func:`io_utils.exclusive_lock`)."""
        return exclusive_lock(self.lock_path)

    def remove_outputs(self) -> None:
        """Delete everything a run writes here (``--overwrite``); the lock and foreign files stay."""
        for name in RUN_OUTPUTS:
            target = self.path / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()

    def holds_nothing_to_resume(self) -> bool:
        """True when the directory holds only what a run writes before training (or nothing)."""
        return self.path.is_dir() and all(entry.name in _METADATA_ONLY for entry in self.path.iterdir())

    # -- config.json, data_report.json, splits.npz -------------------------------------------------------------
    def read_config(self) -> dict[str, Any] | None:
        """The run record (``config``, ``result_key``, ``labels``, ``model``, ``corpus``, ``split``, ...)."""
        return read_json(self.config_path) if self.config_path.is_file() else None

    def write_config(self, record: dict[str, Any]) -> None:
        write_json_atomic(self.config_path, record)

    def read_data_report(self) -> "DataReport | None":
        from ..data.corpus import DataReport

        if not self.data_report_path.is_file():
            return None
        known = {f.name for f in dataclasses.fields(DataReport)}
        return DataReport(**{key: value for key, value in read_json(self.data_report_path).items() if key in known})

    def write_data_report(self, report: "DataReport") -> None:
        write_json_atomic(self.data_report_path, report.to_dict())

    def read_splits(self) -> "Splits":
        from ..data.subsets import Splits

        return Splits.load(self.splits_path)

    def write_splits(self, splits: "Splits") -> None:
        splits.save(self.splits_path)

    # -- points ------------------------------------------------------------------------------------------------
    def write_point(self, point: CurvePoint, objective: Any = MLM) -> None:
        """Record a finished size; its existence is what lets a resumed run skip the size."""
        write_json_atomic(self.point_path(point.label, objective), point.to_dict())

    def read_points(self, objective: Any = MLM) -> list[CurvePoint]:
        """The finished sizes of ``objective``, smallest first (f0, shared, is listed under MLM)."""
        name = objective_name(objective)
        folder = self.path / POINTS_DIR / ("" if name == MLM else name)
        if not folder.is_dir():
            return []
        points = [CurvePoint.from_dict(read_json(path)) for path in folder.glob("*.json")]
        return sorted(points, key=lambda point: point.finetune_size)

    # -- checkpoints, probes, predictions -----------------------------------------------------------------------
    def has_checkpoint(self, label: str, objective: Any = MLM) -> bool:
        """True when a saved SentenceTransformer is in place (saving renames it there only once verified)."""
        return (self.checkpoint_dir(label, objective) / "modules.json").is_file()

    def check_checkpoint(self, label: str, objective: Any = MLM, what_to_do: str | None = None) -> bool:
        """Check a saved checkpoint's files against the hashes recorded when it was verified
        (:func:`~hf_finetune_curve.train.checkpoint.check_checkpoint_files`).

        Returns True when they match, False for a checkpoint saved before hashes were recorded.

        Raises:
            CheckpointDamagedError: a file is missing, changed or unreadable (the message names it and says
                ``what_to_do``, by default: re-run the same ``hf-curve run`` command, which trains the point again).
        """
        from ..train.checkpoint import check_checkpoint_files

        folder = self.checkpoint_dir(label, objective)
        return check_checkpoint_files(folder) if what_to_do is None else check_checkpoint_files(folder, what_to_do)

    def read_checkpoint_stats(self, label: str, objective: Any = MLM) -> dict[str, Any] | None:
        """The training statistics saved with a checkpoint (steps, tokens, recipe, loss, seconds)."""
        path = self.checkpoint_stats_path(label, objective)
        return read_json(path) if path.is_file() else None

    def write_probe(self, label: str, probe: "AnyProbe", objective: Any = MLM) -> None:
        probe.save(self.probe_path(label, objective))

    def read_probe(self, label: str, objective: Any = MLM) -> "AnyProbe | None":
        """The point's fitted probe, of whichever kind was saved (:func:`score.probe.load_probe`)."""
        from ..score.probe import load_probe

        path = self.probe_path(label, objective)
        return load_probe(path) if path.is_file() else None

    def write_predictions(self, label: str, mean: np.ndarray, seed_predictions: np.ndarray,
                          objective: Any = MLM) -> None:
        """Every probe seed's predictions, then their mean: a point whose mean file exists is complete."""
        _save_npy(self.seed_predictions_path(label, objective), seed_predictions)
        _save_npy(self.predictions_path(label, objective), mean)

    def read_predictions(self, label: str, objective: Any = MLM) -> np.ndarray | None:
        """The mean held-out predictions of a point, shape ``(n_test,)``."""
        path = self.predictions_path(label, objective)
        return np.load(path) if path.is_file() else None

    def read_seed_predictions(self, label: str, objective: Any = MLM) -> np.ndarray | None:
        """``(probe_seeds, n_test)`` predictions of a point (one row when only the mean was saved)."""
        path = self.seed_predictions_path(label, objective)
        if path.is_file():
            return np.atleast_2d(np.load(path))
        mean = self.read_predictions(label, objective)
        return mean[None, :] if mean is not None else None

    def write_y_test(self, y_test: np.ndarray) -> None:
        _save_npy(self.y_test_path, y_test)

    def read_y_test(self) -> np.ndarray | None:
        return np.load(self.y_test_path) if self.y_test_path.is_file() else None

    # -- the embedding cache ------------------------------------------------------------------------------------
    def embedding_cache_files(self, label: str, objective: Any = MLM) -> list[Path]:
        """Every cached embedding file of ``label`` (one per replicate and probe sample), newest first."""
        stem = file_label(label, objective)
        folder = (self.embeddings_dir / stem).parent
        if not folder.is_dir():
            return []
        pattern = re.compile(_EMBEDDING_FILE.format(label=re.escape(Path(stem).name)))
        return sorted((p for p in folder.iterdir() if pattern.match(p.name)), key=lambda p: p.stat().st_mtime,
                      reverse=True)

    def cached_embeddings(self, label: str, n_rows: int | None = None, objective: Any = MLM) -> Path | None:
        """The newest cached embedding file of a checkpoint (with ``n_rows`` rows when given), if any.

        The cache key hashes the checkpoint and corpus; a reader that has neither at hand (the samples
        stage, a benchmark) takes the newest readable file of the label.
        """
        for path in self.embedding_cache_files(label, objective):
            try:
                array = np.load(path, mmap_mode="r")
            except (OSError, ValueError):
                continue
            if array.ndim == 2 and (n_rows is None or array.shape[0] == n_rows):
                return path
        return None

    # -- curve.csv / curve.json ---------------------------------------------------------------------------------
    def write_curve(self, points: Sequence[CurvePoint], summary: dict[str, Any] | None = None,
                    probe_points: Mapping[str, Sequence[CurvePoint]] | None = None) -> None:
        """Write ``curve.csv`` and ``curve.json`` (with its format version), each atomically. The run directory
        writes data; the pipeline draws ``curve.png`` from it (:func:`hf_finetune_curve.curve.plot.plot_curve`).

        Points are listed one objective after another (in the order they first appear), each by size.
        ``points`` are the primary probe's; ``probe_points`` each secondary probe's (``--probes``): their rows
        follow in curve.csv (the ``probe`` column tells them apart), and curve.json keeps them as
        ``probes.<probe>.points``, beside that probe's analysis if ``summary["probes"]`` has one.
        """
        ordered = ordered_points(points)
        secondary = {str(name): ordered_points(others) for name, others in (probe_points or {}).items()}
        every_probe = ordered + [point for others in secondary.values() for point in others]
        write_csv_atomic(self.curve_csv_path, *csv_table(every_probe))
        payload: dict[str, Any] = {"format_version": CURVE_FORMAT_VERSION, "points": [p.to_dict() for p in ordered]}
        payload.update({key: value for key, value in (summary or {}).items() if key not in payload})
        if secondary:
            sections = dict(payload.get("probes") or {})  # a copy: the caller's summary is left as it was
            for name, others in secondary.items():
                sections[name] = {**(sections.get(name) or {}), "points": [p.to_dict() for p in others]}
            payload["probes"] = sections
        write_json_atomic(self.curve_json_path, payload)

    def read_curve(self) -> CurveFile | None:
        """``curve.json``, or None before the first point is finished.

        Raises:
            RunDirectoryFormatError: the file was written by a newer version of the layout.
        """
        path = self.curve_json_path
        if not path.is_file():
            return None
        try:
            payload = dict(read_json(path))
        except (ValueError, TypeError) as exc:  # not JSON, or JSON that is not an object
            raise RunDirectoryFormatError(f"{path} is not a curve file ({str(exc).splitlines()[0]}). It was edited or "
                                          "damaged: re-run the same `hf-curve run` command to write it again.") from None
        # Files written before the field existed have the version-1 layout.
        version = payload.pop("format_version", 1)
        if not isinstance(version, int) or version > CURVE_FORMAT_VERSION:
            raise RunDirectoryFormatError(
                f"{path} has format_version {version!r}; this version of hf-finetune-curve reads format_version "
                f"{CURVE_FORMAT_VERSION} or older. Upgrade hf-finetune-curve to read it."
            )
        rows = payload.pop("points", [])
        if not isinstance(rows, list):
            raise RunDirectoryFormatError(
                f"{path}: 'points' must be a list of points, got {type(rows).__name__}. The file was edited or "
                "damaged: re-run the same `hf-curve run` command to write it again."
            )
        points = [_point_from_json(row, path, index) for index, row in enumerate(rows)]
        return CurveFile(points=points, summary=payload, format_version=version)

    def curve_points(self) -> list[CurvePoint]:
        """The points of the run: from ``curve.json`` when present, else from the finished sizes."""
        curve = self.read_curve()
        return curve.points if curve is not None else self.read_points()

    # -- training plans and the baseline --------------------------------------------------------------------------
    def write_training_plan(self, plan: dict[str, Any], objective: Any = MLM) -> None:
        write_json_atomic(self.objective_training_plan_path(objective), plan)

    def _branching_path(self, objective: Any = MLM) -> Path:
        name = objective_name(objective)
        return self.branching_path if name == MLM else self.path / f"branching.{name}.json"

    def write_branching_summary(self, summary: dict[str, Any], objective: Any = MLM) -> None:
        write_json_atomic(self._branching_path(objective), summary)

    def read_tfidf_baseline(self, result_key: str) -> dict[str, Any] | None:
        """The cached TF-IDF baseline, if it was computed for this ``result_key``."""
        if not self.tfidf_baseline_path.is_file():
            return None
        saved = read_json(self.tfidf_baseline_path)
        return saved["tfidf"] if saved.get("result_key") == result_key else None

    def write_tfidf_baseline(self, result_key: str, summary: dict[str, Any]) -> None:
        write_json_atomic(self.tfidf_baseline_path, {"result_key": result_key, "tfidf": summary})

    # -- samples.parquet ----------------------------------------------------------------------------------------
    def write_samples_table(self, table: Any) -> Path:
        """Write a ``pyarrow.Table`` as ``samples.parquet`` (:mod:`hf_finetune_curve.space.samples` builds it)."""
        import pyarrow.parquet as pq

        with atomic_path(self.samples_path) as tmp:
            pq.write_table(table, tmp, compression="zstd")
        return self.samples_path


def load_curve(run_dir: str | os.PathLike) -> list[CurvePoint]:
    """The points of a run directory: ``RunDirectory(run_dir).curve_points()``.

    >>> load_curve("no/such/run")
    []
    """
    return RunDirectory(run_dir).curve_points()


def _save_npy(path: Path, values: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, values)
