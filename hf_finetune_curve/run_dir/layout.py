"""The run directory's names: every file and folder a run writes, and how points are keyed."""

from __future__ import annotations

import re
from typing import Any, Sequence

from ..names import MLM, OBJECTIVE_NAMES, PROBE_NAMES, file_label


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
# logs/ too: its run.log starts with the run, before anything is trained. .os: the lock's Windows twin.
_METADATA_ONLY = frozenset({LOCK_FILE, f"{LOCK_FILE}.os", CONFIG_FILE, DATA_REPORT_FILE, SPLITS_FILE, LOGS_DIR})
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
