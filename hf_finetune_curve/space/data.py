"""Where the Space's data comes from: a local run directory or a published curve dataset repo, read once
(:class:`RunData`), and the checkpoints' models and probes, loaded when first asked for (:class:`CheckpointCache`).

The run is read through :class:`~hf_finetune_curve.run_dir.RunDirectory` (a curve repo keeps the run
directory's file names) and never written to.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..hub.model_card import PROBE_PATH_IN_REPO
from ..io_utils import HUB_REPO_ID as _REPO_ID, hub_endpoint, read_json
from ..run_dir import (CONFIG_FILE, CURVE_CSV_FILE, CURVE_JSON_FILE, DATA_REPORT_FILE, PROBES_DIR, SAMPLES_FILE,
                      RunRecord, parse_file_label)
from .samples import Samples, run_samples

SPACE_CONFIG_FILE = "curve_space.json"
ENV_RUN_DIR = "HF_CURVE_RUN_DIR"
ENV_REPO = "HF_CURVE_REPO"
ENV_MAX_MODELS = "HF_CURVE_MAX_MODELS"


# ----------------------------------------------------------------------------------------------------
# Where the app's data comes from: a local run directory or a published curve dataset repo
# ----------------------------------------------------------------------------------------------------
def derived_model_repo(curve_repo: str, label: str) -> str:
    """``org/bat-curve`` -> ``org/bat-f50`` (or ``org/bat-tsdae-f50`` for the point key ``tsdae/f50``):
    the naming a published run's model repos follow."""
    base = curve_repo[: -len("-curve")] if curve_repo.endswith("-curve") else curve_repo
    return f"{base}-{label.replace('/', '-')}"


@dataclass
class RunData(RunRecord):
    """A run as the app shows it, read once at start-up (no model is loaded here): the run's record
    (:class:`~hf_finetune_curve.run_dir.RunRecord`, from a run directory or a curve repo's snapshot) plus its
    samples and where its models live."""

    samples: Samples | None = None
    curve_repo: str | None = None
    local: bool = True
    model_repos: dict[str, str] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return [p["label"] for p in self.points]

    def model_location(self, label: str) -> str | None:
        """A local folder or a Hub model id to load ``label``'s SentenceTransformer from."""
        if label == "f0":
            path = self.model_info.get("path")
            if self.local and path and Path(path).exists():
                return path
            return self.base_model_id or None
        # A point key ("f200", "tsdae/f200") names the checkpoint's label and objective.
        if self.local and self.directory.has_checkpoint(*parse_file_label(label)):
            # A damaged checkpoint is an error naming it, never a model that silently predicts something else.
            self.directory.check_checkpoint(*parse_file_label(label))
            return str(self.checkpoint_dir(label))
        return self.model_repos.get(label)

    def probe_file(self, label: str) -> Path | None:
        """The saved probe for ``label``: in the run / curve repo, else in the checkpoint's model repo."""
        local = self.directory.probe_path(*parse_file_label(label))
        if local.exists():
            return local
        repo = self.model_repos.get(label)
        if repo and label != "f0":
            from huggingface_hub import hf_hub_download

            return Path(hf_hub_download(repo, PROBE_PATH_IN_REPO))
        return None

    def hub_url(self, label: str) -> str | None:
        repo = self.model_repos.get(label)
        if repo is None and label == "f0" and self.model_info.get("source") in ("hub", "package"):
            repo = self.base_model_id
        return f"{hub_endpoint()}/{repo}" if repo else None


def _load_local_run(run_dir: Path) -> RunData:
    record = RunRecord.read(run_dir)  # NotARunDirectoryError (a FileNotFoundError) when it is not a run
    return RunData(**vars(record), samples=run_samples(record.directory), curve_repo=None, local=True)


def _load_repo_run(curve_repo: str, token: str | None = None) -> RunData:
    from huggingface_hub import snapshot_download

    # The curve repo keeps the run directory's names for the files it publishes.
    root = Path(snapshot_download(
        curve_repo, repo_type="dataset", token=token,
        allow_patterns=[CONFIG_FILE, CURVE_JSON_FILE, CURVE_CSV_FILE, DATA_REPORT_FILE, SAMPLES_FILE, f"{PROBES_DIR}/*"],
    ))
    record = RunRecord.read(root)
    if not record.curve:
        raise FileNotFoundError(f"The curve repo {curve_repo} has no {CURVE_JSON_FILE}.")
    repos = {point["label"]: derived_model_repo(curve_repo, point["label"]) for point in record.points
             if point["label"] != "f0"}
    return RunData(**vars(record), samples=run_samples(record.directory), curve_repo=curve_repo, local=False,
                   model_repos=repos)


def point_objectives(points: Sequence[dict[str, Any]]) -> list[str]:
    """The objectives of a run's points in order of appearance (f0 counts for the first)."""
    return list(dict.fromkeys(str(p.get("objective") or "mlm") for p in points))


def resolve_source(app_dir: str | os.PathLike | None = None) -> str | None:
    """``HF_CURVE_RUN_DIR``, else ``HF_CURVE_REPO`` (a Space variable), else ``curve_space.json`` beside the app."""
    for name in (ENV_RUN_DIR, ENV_REPO):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    if app_dir is not None:
        config = Path(app_dir) / SPACE_CONFIG_FILE
        if config.exists():
            return read_json(config).get("curve_repo")
    return None


def load_run_data(source: str | os.PathLike, token: str | None = None) -> RunData:
    """A local run directory, or a curve dataset repo id (``org/name-curve``)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return _load_local_run(path)
    text = str(source)
    if _REPO_ID.match(text) and not text.startswith((".", "/", "~")):
        return _load_repo_run(text, token=token)
    raise FileNotFoundError(f"{source!r} is neither a run directory nor a Hub dataset repo id (org/name).")


# ----------------------------------------------------------------------------------------------------
# Models and probes, loaded lazily and cached
# ----------------------------------------------------------------------------------------------------
class CheckpointCache:
    """Loads each checkpoint's SentenceTransformer and probe on first use; keeps the last few models."""

    def __init__(self, run: RunData, max_models: int | None = None) -> None:
        self.run = run
        self.max_models = max(1, int(max_models or os.environ.get(ENV_MAX_MODELS, 8)))
        self._models: OrderedDict[str, Any] = OrderedDict()
        self._probes: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()  # one load at a time: two users must not load a model twice

    def _cached(self, label: str):
        with self._lock:
            if label in self._models:
                self._models.move_to_end(label)
                return self._models[label]
        return None

    def model(self, label: str):
        model = self._cached(label)
        if model is not None:
            return model
        with self._load_lock:
            model = self._cached(label)
            if model is not None:
                return model
            location = self.run.model_location(label)
            if location is None:
                raise LookupError(f"no checkpoint for {label} (not in the run and not published)")
            from ..train.models import load_sentence_transformer

            model, _ = load_sentence_transformer(location)
            with self._lock:
                self._models[label] = model
                while len(self._models) > self.max_models:
                    self._models.popitem(last=False)
        return model

    def probe(self, label: str):
        with self._lock:
            if label in self._probes:
                return self._probes[label]
        path = self.run.probe_file(label)
        if path is None:
            raise LookupError(f"no saved probe for {label}")
        from ..score.probe import load_probe

        probe = load_probe(path)  # the run's primary probe, XGBoost or ridge
        with self._lock:
            self._probes[label] = probe
        return probe

    def embed(self, label: str, texts: list[str]) -> np.ndarray:
        model = self.model(label)
        return np.asarray(model.encode(texts, convert_to_numpy=True, show_progress_bar=False), dtype=np.float32)
