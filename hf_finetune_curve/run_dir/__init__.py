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


A package of one concern per module:

- :mod:`~hf_finetune_curve.run_dir.layout`: the names of every file and folder, and how points are keyed;
- :mod:`~hf_finetune_curve.run_dir.curve_file`: ``curve.json`` read back, its format version checked;
- :mod:`~hf_finetune_curve.run_dir.directory`: :class:`RunDirectory`, the typed reader / writer;
- :mod:`~hf_finetune_curve.run_dir.record`: :class:`RunRecord`, what the cards, publishing and the Space read.
"""

from ..names import MLM, file_label, objective_name, parse_file_label
from .curve_file import CurveFile, secondary_probe_points
from .directory import RunDirectory, load_curve
from .layout import (BASELINES_DIR, BRANCHING_FILE, CHECKPOINT_STATS_FILE, CHECKPOINTS_DIR, CONFIG_FILE, CURVE_CSV_FILE,
                     CURVE_FORMAT_VERSION, CURVE_JSON_FILE, CURVE_PNG_FILE, DATA_REPORT_FILE, EMBEDDINGS_DIR, LOCK_FILE,
                     LOGS_DIR, POINTS_DIR, PREDICTIONS_DIR, PROBE_VIEW_PREFIX, PROBES_DIR, RUN_LOG_FILE, RUN_OUTPUTS,
                     SAMPLES_FILE, SEEDS_DIR, SPLITS_FILE, TRAINING_PLAN_FILE, point_key, sorted_points)
from .record import RunInfo, RunRecord

__all__ = ["BASELINES_DIR", "BRANCHING_FILE", "CHECKPOINTS_DIR", "CHECKPOINT_STATS_FILE", "CONFIG_FILE",
           "CURVE_CSV_FILE", "CURVE_FORMAT_VERSION", "CURVE_JSON_FILE", "CURVE_PNG_FILE", "CurveFile",
           "DATA_REPORT_FILE", "EMBEDDINGS_DIR", "LOCK_FILE", "LOGS_DIR", "MLM", "POINTS_DIR", "PREDICTIONS_DIR",
           "PROBES_DIR", "PROBE_VIEW_PREFIX", "RUN_LOG_FILE", "RUN_OUTPUTS", "RunDirectory", "RunInfo", "RunRecord",
           "SAMPLES_FILE", "SEEDS_DIR", "SPLITS_FILE", "TRAINING_PLAN_FILE", "file_label", "load_curve",
           "objective_name", "parse_file_label", "point_key", "secondary_probe_points", "sorted_points"]
