""":class:`RunInfo`, the run record the pipeline writes into ``config.json``, and :class:`RunRecord`: a run as its
files record it, the one way the model cards, ``hf-curve push`` and the Space read a run."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, NotARunDirectoryError
from ..io_utils import HUB_REPO_ID
from ..names import MLM, parse_file_label
from .directory import RunDirectory
from .layout import CURVE_JSON_FILE, sorted_points


@dataclass
class RunInfo:
    """The run record as the pipeline writes it into ``config.json``: what was run (the config, its result key and
    recipe version, the resolved sizes and labels), on what (model source, corpus fingerprint, split sizes),
    where and with which libraries. :attr:`RunRecord.info` reads it back, typed.

    >>> info = RunInfo(config={"model": "m"}, result_key="abc", labels=["f0", "f200"], finetune_sizes=[0, 200])
    >>> RunInfo.from_dict(info.to_dict()) == info, list(info.to_dict())[:3]
    (True, ['config', 'result_key', 'recipe_version'])
    """

    config: dict[str, Any]
    result_key: str
    recipe_version: int = 1  # a record from before the field was written: the first recipe
    recipe_choices: dict[str, Any] = field(default_factory=dict)
    finetune_sizes: list[int] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)
    corpus: dict[str, Any] = field(default_factory=dict)
    split: dict[str, int] = field(default_factory=dict)
    device: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""
    updated: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> "RunInfo":
        """A saved record; fields this version does not know are ignored, missing ones take their defaults."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in payload.items() if key in known})


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
        from ..names import parse_objectives

        done = {point["label"] for point in self.points}
        objectives = parse_objectives(self.config.get("objectives") or self.config.get("objective") or MLM)
        return list(dict.fromkeys(objective.file_label(label) for objective in objectives
                                  for label in self.saved.get("labels", []) if objective.file_label(label) not in done))

    # -- accessors --------------------------------------------------------------------------
    @property
    def info(self) -> RunInfo:
        """``config.json``'s run record, typed (:class:`RunInfo`)."""
        return RunInfo.from_dict(self.saved)

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
        from ..data.corpus import EMBEDDED_PREFIX

        return self.corpus_source.startswith(EMBEDDED_PREFIX)

    def corpus_looks_like_hub_id(self) -> bool:
        from ..data.corpus import DATA_FILE_SUFFIXES

        source = self.corpus_source
        return (bool(HUB_REPO_ID.match(source)) and not source.lower().endswith(DATA_FILE_SUFFIXES)
                and not source.startswith((".", "/")) and not Path(source).exists())

    def default_name(self) -> str:
        """The run's name: ``config.name``, else ``<model>-<corpus>`` as ``CurveConfig.resolved_name``."""
        from ..config import CurveConfig

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
