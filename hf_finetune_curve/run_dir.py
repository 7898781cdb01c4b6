"""The run directory: where every file of a run lives, and the typed reading and writing of each.

Nothing else in the package builds a path inside a run: the pipeline, ``hf-curve report``, the cards,
publishing, the Space and the benchmarks all go through :class:`RunDirectory`. What a run's files say
(its record, ``curve.json``, the data report, the points by key) is read as one :class:`RunRecord`:
the model cards and ``hf-curve push`` use it as it is, the Space as :class:`~hf_finetune_curve.space.RunData`.
Every write is atomic (a temporary file renamed into place, :mod:`hf_finetune_curve.io_utils`), so an interrupted run or a
failed write leaves the previous file, never half of a new one.

Layout (the MLM objective, the default)::

    config.json              the run record: CurveConfig, resolved sizes, model, corpus, versions
    data_report.json         rows read / kept, drops by reason
    splits.npz               probe test / train rows and the finetune pool's order
    curve.csv, curve.json    one row per size; curve.json adds the analysis and a format version
    curve.png                the plot
    training_plan.json       every point's recipe; branching.json the branching schedule's summary
                             (training_plan.<objective>.json for another objective)
    samples.parquet          held-out listings for the Space (the samples stage)
    .lock                    held while a run writes here
    logs/                    TensorBoard logs of the Trainer runs
    embeddings/<label>-<key>.npy     embedding cache, keyed by checkpoint and corpus
    baselines/tfidf.json     the TF-IDF baseline, cached
    points/<label>.json      a finished size (written last: what a resumed run skips)
    checkpoints/<label>/     SentenceTransformer folder with finetune_stats.json (f0 is the base model, not copied)
    checkpoints/.branching-state/, checkpoints/.independent/   training state while sizes are unfinished
    probes/<label>.json      the point's XGBoost probe
    predictions/<label>.npy, predictions/<label>.probe-seeds.npy, predictions/y_test.npy
    seeds/seed-<n>/          a replicate with another data order (``--seeds``): the same layout, holding
                             what a replicate writes (points, checkpoints, probes, predictions, plans, logs)
    probe-<probe>/           a secondary probe's view (``--probes xgboost,ridge``: ``probe-ridge/``), with the
                             layout of the primary probe's files: ``points/``, ``probes/`` (a ridge probe is
                             its own JSON), ``predictions/`` (not ``y_test.npy``: the run's is the same);
                             a replicate's is ``seeds/seed-<n>/probe-<probe>/``

Probes: the first probe of ``--probes`` is the primary one; its files are the paths above (and its points
are curve.json's ``points``). Each secondary probe scores the same checkpoints from the same cached
embeddings into :meth:`RunDirectory.probe_view`, and curve.json holds its points and analysis under
``probes.<probe>`` (curve.csv: every probe's rows, told apart by the ``probe`` column).

Objectives: every accessor of a point's files takes ``objective`` (default ``"mlm"``, :data:`MLM`).
MLM keeps the paths above; another objective ``x`` puts its points under an ``x/`` prefix:
``checkpoints/x/<label>/``, ``points/x/<label>.json``, ``probes/x/<label>.json``,
``predictions/x/<label>.npy``, ``embeddings/x/<label>-<key>.npy``, the scratch space ``checkpoints/.x/``
and ``training_plan.x.json``. ``f0`` is the base model, shared
by every objective, so its files never take the prefix. An ``objective`` may be a string or a
``str``-valued enum member.

Example:
    >>> import tempfile
    >>> from hf_finetune_curve.curve.points import CurvePoint
    >>> from hf_finetune_curve.run_dir import RunDirectory
    >>> run = RunDirectory(tempfile.mkdtemp())
    >>> run.relative(run.checkpoint_dir("f10k")), run.relative(run.checkpoint_dir("f10k", objective="tsdae"))
    ('checkpoints/f10k', 'checkpoints/tsdae/f10k')
    >>> run.relative(run.predictions_path("f0", objective="tsdae"))  # the base model's files are shared
    'predictions/f0.npy'
    >>> run.relative(run.replicate(43).point_path("f200"))
    'seeds/seed-43/points/f200.json'
    >>> run.relative(run.replicate(43).probe_view("ridge").point_path("f200"))
    'seeds/seed-43/probe-ridge/points/f200.json'
    >>> run.write_point(CurvePoint(0, "f0", r2=0.52, mae=19_618, median_ae=11_281, n_test=400, n_probe_train=1600))
    >>> [point.label for point in run.read_points()]
    ['f0']
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from .curve.points import CurvePoint, csv_table, ordered_points
from .errors import ConfigError, NotARunDirectoryError, RunDirectoryFormatError
from .io_utils import HUB_REPO_ID, atomic_path, exclusive_lock, read_json, write_csv_atomic, write_json_atomic
# The point-label helpers live in the bottom module (the Space and the cards use them too); re-exported here.
from .names import MLM, OBJECTIVE_NAMES, PROBE_NAMES, file_label, objective_name, parse_file_label, parse_probe_kind

if TYPE_CHECKING:  # pragma: no cover
    from .data.corpus import DataReport
    from .data.subsets import Splits
    from .score.probe import AnyProbe

#: The default objective; its points keep the unprefixed paths.
#: The ``curve.json`` layout this version writes, and the newest it reads.
CURVE_FORMAT_VERSION = 1
#: The training statistics saved inside each checkpoint folder.
CHECKPOINT_STATS_FILE = "finetune_stats.json"

CONFIG_FILE = "config.json"
DATA_REPORT_FILE = "data_report.json"
SPLITS_FILE = "splits.npz"
CURVE_CSV_FILE = "curve.csv"
CURVE_JSON_FILE = "curve.json"
CURVE_PNG_FILE = "curve.png"
TRAINING_PLAN_FILE = "training_plan.json"
BRANCHING_FILE = "branching.json"
SAMPLES_FILE = "samples.parquet"
LOCK_FILE = ".lock"
POINTS_DIR = "points"
CHECKPOINTS_DIR = "checkpoints"
PROBES_DIR = "probes"
PREDICTIONS_DIR = "predictions"
EMBEDDINGS_DIR = "embeddings"
BASELINES_DIR = "baselines"
SEEDS_DIR = "seeds"
LOGS_DIR = "logs"
RUN_LOG_FILE = "run.log"
#: A secondary probe's view of a run: ``probe-ridge/``.
PROBE_VIEW_PREFIX = "probe-"

#: Everything a run writes at its top level; ``--overwrite`` removes exactly these.
RUN_OUTPUTS = (CONFIG_FILE, DATA_REPORT_FILE, SPLITS_FILE, CURVE_CSV_FILE, CURVE_JSON_FILE, CURVE_PNG_FILE,
               POINTS_DIR, CHECKPOINTS_DIR, EMBEDDINGS_DIR, PROBES_DIR, PREDICTIONS_DIR, BASELINES_DIR, SEEDS_DIR,
               SAMPLES_FILE, TRAINING_PLAN_FILE, BRANCHING_FILE, LOGS_DIR,
               *(f"training_plan.{name}.json" for name in OBJECTIVE_NAMES if name != MLM),
               *(f"branching.{name}.json" for name in OBJECTIVE_NAMES if name != MLM),
               *(f"{PROBE_VIEW_PREFIX}{name}" for name in PROBE_NAMES))
# What a failed first attempt may leave that holds nothing a rerun could resume from.
_METADATA_ONLY = frozenset({LOCK_FILE, f"{LOCK_FILE}.os", CONFIG_FILE, DATA_REPORT_FILE, SPLITS_FILE})  # .os: Windows
_SEED_DIR = re.compile(r"^seed-(\d+)$")
_EMBEDDING_FILE = r"^{label}-[0-9a-f]{{16}}\.npy$"


def point_key(point: dict[str, Any]) -> str:
    """How the samples and the Space name a point: its label for MLM and f0, ``<objective>/<label>``
    otherwise (:func:`file_label`; ``size_label`` is the plain label when
    the point was relabelled by its key).

    >>> point_key({"label": "f200", "objective": "tsdae"}), point_key({"label": "f0", "objective": "tsdae"})
    ('tsdae/f200', 'f0')
    """
    label = str(point.get("size_label") or point.get("label"))
    objective = str(point.get("objective") or MLM)
    return file_label(label, objective) if objective in OBJECTIVE_NAMES else label


def sorted_points(points: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Points (``curve.json``'s dicts) by size, keyed as the Space and the model cards name them (``label``
    becomes :func:`point_key`; ``size_label`` keeps ``f200``), the shared f0 once."""
    keyed: dict[str, dict[str, Any]] = {}
    for point in points:
        entry = dict(point)
        entry.setdefault("objective", MLM)
        entry.setdefault("size_label", entry.get("label"))
        entry["label"] = point_key(entry)
        keyed.setdefault(entry["label"], entry)
    return sorted(keyed.values(), key=lambda p: p.get("finetune_size", 0))


@dataclass
class CurveFile:
    """``curve.json`` read back: the points and the summary sections (fit, answer, baselines, warnings, ...)."""

    points: list[CurvePoint]
    summary: dict[str, Any] = field(default_factory=dict)
    format_version: int = CURVE_FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape without the version field: ``{"points": [...], **summary}``."""
        return {"points": [point.to_dict() for point in self.points], **self.summary}

    @property
    def probe_points(self) -> dict[str, list[CurvePoint]]:
        """Each secondary probe's points (``--probes``), by probe name; empty for a one-probe run."""
        return secondary_probe_points(self.summary)


def secondary_probe_points(curve: Mapping[str, Any]) -> dict[str, list[CurvePoint]]:
    """The secondary probes' points of a ``curve.json`` payload (or its summary): ``probes.<probe>.points``.

    >>> point = CurvePoint(0, "f0", r2=0.3, mae=1.0, median_ae=1.0, n_test=10, n_probe_train=40, probe="ridge")
    >>> {name: [p.label for p in points] for name, points in
    ...  secondary_probe_points({"probes": {"ridge": {"points": [point.to_dict()]}}}).items()}
    {'ridge': ['f0']}
    """
    return {name: [CurvePoint.from_dict(point) for point in (section or {}).get("points") or []]
            for name, section in (curve.get("probes") or {}).items()}


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
        from .data.corpus import DataReport

        if not self.data_report_path.is_file():
            return None
        known = {f.name for f in dataclasses.fields(DataReport)}
        return DataReport(**{key: value for key, value in read_json(self.data_report_path).items() if key in known})

    def write_data_report(self, report: "DataReport") -> None:
        write_json_atomic(self.data_report_path, report.to_dict())

    def read_splits(self) -> "Splits":
        from .data.subsets import Splits

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
        from .train.checkpoint import check_checkpoint_files

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
        from .score.probe import load_probe

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


@dataclass
class RunRecord:
    """A run as its files record it: the run record (``config.json``, as ``saved``), ``curve.json`` and the
    data report. The one way the model cards, ``hf-curve push`` and the Space read a run
    (:class:`~hf_finetune_curve.space.RunData` adds what the app needs beside it).

    Example:
        >>> run = RunRecord.read("runs/bat").require_finished()   # doctest: +SKIP
        >>> run.base_model_id, [point["label"] for point in run.points]  # doctest: +SKIP
        ('sentence-transformers/all-MiniLM-L6-v2', ['f0', 'f10k', 'f20k'])
    """

    run_dir: Path
    saved: dict[str, Any]
    curve: dict[str, Any]
    data_report: dict[str, Any] = field(default_factory=dict)
    # points/*.json of a run without curve.json yet (a finished run's points are curve.json's).
    unfinished_points: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def read(cls, path: str | os.PathLike, error: type[Exception] = NotARunDirectoryError) -> "RunRecord":
        """Read a run directory, or a curve repo's snapshot (it keeps the run directory's file names).

        A run without ``curve.json`` yet (unfinished) has ``curve == {}`` and the points finished so far;
        :meth:`require_finished` refuses it. ``error`` is raised when ``path`` is not a run at all.
        """
        directory = RunDirectory(path)
        directory.require_run(error)
        curve = directory.read_curve()
        report = directory.read_data_report()
        unfinished = [point.to_dict() for point in directory.read_points()] if curve is None else []
        return cls(run_dir=directory.path, saved=directory.read_config() or {},
                   curve=curve.to_dict() if curve is not None else {},
                   data_report=report.to_dict() if report is not None else {}, unfinished_points=unfinished)

    def require_finished(self, error: type[Exception] = NotARunDirectoryError) -> "RunRecord":
        """This record, if the run finished every size of every objective; else ``error`` saying what to do."""
        if not self.curve:
            raise error(f"{self.run_dir} has no {CURVE_JSON_FILE} yet; finish the run with `hf-curve run` first.")
        missing = self.missing()
        if missing:
            raise error(f"{self.run_dir} is not finished: no result yet for {', '.join(missing)}. Re-run the same "
                        "`hf-curve run` command to finish it, then push.")
        if not self.points:
            raise error(f"{self.run_dir} has no finished sizes to publish.")
        return self

    def missing(self) -> list[str]:
        """Point keys (``f200``, ``tsdae/f200``) of the sizes the run set out to measure and has not finished,
        for every objective it measures (the shared f0 counts once)."""
        from .names import parse_objectives

        done = {point["label"] for point in self.points}
        objectives = parse_objectives(self.config.get("objectives") or self.config.get("objective") or MLM)
        return list(dict.fromkeys(objective.file_label(label) for objective in objectives
                                  for label in self.saved.get("labels", []) if objective.file_label(label) not in done))

    # -- accessors --------------------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        return self.saved.get("config", {})

    @property
    def points(self) -> list[dict[str, Any]]:
        """The run's points by size, the shared f0 once; a point of another objective than MLM is
        labelled by its key (``tsdae/f200``: its path under checkpoints/ and its repo suffix ``tsdae-f200``),
        ``size_label`` keeping ``f200``."""
        return sorted_points(self.curve.get("points") or self.unfinished_points)

    def point(self, label: str) -> dict[str, Any]:
        for point in self.points:
            if point["label"] == label:
                return point
        raise KeyError(label)

    @property
    def base_point(self) -> dict[str, Any] | None:
        points = self.points
        return points[0] if points and points[0]["finetune_size"] == 0 else None

    @property
    def finetuned_labels(self) -> list[str]:
        return [p["label"] for p in self.points if p["finetune_size"] > 0]

    @property
    def model_info(self) -> dict[str, Any]:
        return self.saved.get("model") or self.curve.get("model") or {"model_id": self.config.get("model", "")}

    @property
    def base_model_id(self) -> str:
        return str(self.model_info.get("model_id") or self.config.get("model", ""))

    @property
    def base_is_hub(self) -> bool:
        """True when the base model is a Hub id (loaded from the Hub or its packaged copy), not a local folder."""
        source = self.model_info.get("source")
        if source in ("hub", "package"):
            return True
        if source == "local":
            return False
        return bool(HUB_REPO_ID.match(self.base_model_id)) and not Path(self.base_model_id).exists()

    @property
    def corpus_source(self) -> str:
        return str((self.saved.get("corpus") or {}).get("source") or self.data_report.get("source") or "")

    @property
    def corpus_rows(self) -> int:
        return int((self.saved.get("corpus") or {}).get("rows") or self.data_report.get("rows_kept") or 0)

    @property
    def is_synthetic(self) -> bool:
        from .data.corpus import EMBEDDED_PREFIX

        return self.corpus_source.startswith(EMBEDDED_PREFIX)

    def corpus_looks_like_hub_id(self) -> bool:
        from .data.corpus import DATA_FILE_SUFFIXES

        source = self.corpus_source
        return (bool(HUB_REPO_ID.match(source)) and not source.lower().endswith(DATA_FILE_SUFFIXES)
                and not source.startswith((".", "/")) and not Path(source).exists())

    def default_name(self) -> str:
        """The run's name: ``config.name``, else ``<model>-<corpus>`` as ``CurveConfig.resolved_name``."""
        from .config import CurveConfig

        try:
            return CurveConfig.from_dict(self.config).resolved_name()
        except (ConfigError, TypeError, ValueError):  # a config of another version: the folder's name
            return self.run_dir.resolve().name

    @property
    def directory(self) -> RunDirectory:
        return RunDirectory(self.run_dir)

    def checkpoint_dir(self, label: str) -> Path:
        """``label`` is a point key: ``f200`` (MLM) or ``tsdae/f200`` (another objective)."""
        return self.directory.checkpoint_dir(*parse_file_label(label))

    def checkpoint_stats(self, label: str) -> dict[str, Any]:
        """The training statistics saved with the checkpoint (empty when there are none)."""
        return self.directory.read_checkpoint_stats(*parse_file_label(label)) or {}

    def probe_path(self, label: str) -> Path:
        """The probe the point recorded (relative to the run), else where the run keeps a probe of ``label``."""
        recorded = self.point(label).get("probe_path")
        return self.directory.resolve(recorded) if recorded else self.directory.probe_path(*parse_file_label(label))


_POINT_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "float | None": (int, float, type(None)),
                "dict[str, Any]": (dict,)}


def _point_from_json(row: Any, path: Path, index: int) -> CurvePoint:
    """A point of ``curve.json``, each known field of the type :class:`CurvePoint` declares; else an error
    naming the file, the point and the field (not a ``TypeError`` deep in a table or a plot)."""
    def refuse(problem: str) -> RunDirectoryFormatError:
        return RunDirectoryFormatError(f"{path}: point {index} {problem}. The file was edited or damaged: re-run "
                                       "the same `hf-curve run` command to write it again.")

    if not isinstance(row, dict):
        raise refuse(f"is {type(row).__name__}, not an object")
    for f in dataclasses.fields(CurvePoint):
        allowed = _POINT_TYPES.get(str(f.type))
        if f.name not in row or allowed is None or (f.name == "r2_log" and row[f.name] is None):
            continue
        value = row[f.name]
        if isinstance(value, bool) or not isinstance(value, allowed):
            raise refuse(f"has {f.name}={value!r}, which is not of type {f.type}")
    try:
        return CurvePoint.from_dict(row)
    except TypeError as exc:  # a required field missing
        raise refuse(f"is incomplete ({exc})") from None


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


__all__ = ["CHECKPOINT_STATS_FILE", "CURVE_FORMAT_VERSION", "CurveFile", "MLM", "PROBE_VIEW_PREFIX", "RUN_OUTPUTS",
           "RunDirectory", "RunRecord", "file_label", "load_curve", "objective_name", "parse_file_label", "point_key",
           "secondary_probe_points", "sorted_points"]
