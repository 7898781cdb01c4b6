"""``run_curve``: data -> subsets -> finetune -> embed -> probe -> curve -> samples, resumable.

Every file it reads or writes is named by :class:`~hf_finetune_curve.run_dir.RunDirectory`.

Example:
    >>> from hf_finetune_curve import CurveConfig, run_curve
    >>> result = run_curve(CurveConfig(sizes="0,200,400"))  # doctest: +SKIP
    >>> print(result.table())  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from .config import (NON_RESULT_FIELDS, RECIPE_VERSION, CurveConfig, check_supported_launch, library_versions,
                     recipe_choices)
from .curve.analysis import analyze_curve, answer_lines, probe_agreement
from .curve.points import RIDGE_ALPHA, CurvePoint, format_table
from .data.corpus import Corpus, load_corpus
from .data.subsets import Splits, make_splits, parse_sizes, size_label
from .errors import ConfigError, CorpusError, RunDirectoryConflictError
from .run_dir import CHECKPOINT_STATS_FILE, RunDirectory
from .score.embed import TokenCache, check_max_length, embed_texts, embedding_cache_key, log_truncation
from .score.probe import ProbeKind, fit_and_score
from .score.samples import build_samples
from .train.checkpoint import CHECKPOINT_HASHES_FILE, record_checkpoint_hashes, save_checkpoint
from .train.finetune import FinetuneResult, resolve_device
from .train.models import load_sentence_transformer
from .train.objectives import Objective

logger = logging.getLogger(__name__)

_VERIFY_SAMPLE = 16
# Held-out rows below which scores are refused, and below which the log warns.
MIN_TEST_ROWS = 10
WARN_TEST_ROWS = 50


@dataclass
class CurveResult:
    """A finished (or resumed) run: its directory, config and points."""

    run_dir: Path
    config: CurveConfig
    points: list[CurvePoint]
    corpus: Corpus
    splits: Splits
    analysis: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Each secondary probe's points (``--probes xgboost,ridge``: {"ridge": [...]}); ``points`` are the primary's.
    probe_points: dict[str, list[CurvePoint]] = dataclasses.field(default_factory=dict)

    def table(self) -> str:
        return format_table(self.points)

    def answer(self) -> str:
        """The "how much data is enough" answer, as sentences."""
        return "\n".join(answer_lines(self.analysis))


def is_main_process() -> bool:
    """False on the non-zero ranks of a ``torchrun`` / ``accelerate launch`` job.

    Every rank trains (the Trainer shards batches across processes); only rank 0 writes files,
    embeds, fits probes and analyses, so a multi-process run leaves exactly one copy of each result.
    """
    return int(os.environ.get("RANK", "0")) == 0


def _init_distributed(device: str):
    """Join a multi-process launch through accelerate (the Trainer's own process state), with a long
    timeout: rank 0 embeds and scores every point while the other ranks wait in the next collective.

    Returns the ``PartialState``, or None for a single process.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from accelerate import PartialState

    from .train.trainer import DDP_TIMEOUT_SECONDS

    return PartialState(cpu=not resolve_device(device).startswith("cuda"),
                        timeout=_dt.timedelta(seconds=DDP_TIMEOUT_SECONDS))


def _log_probe_sample(corpus: Corpus, config: CurveConfig, splits: Splits) -> None:
    probed = len(splits.train_indices) + len(splits.test_indices)
    if probed < len(corpus):
        full_test = int(round(len(corpus) * config.test_fraction))
        logger.info(
            "Probe sample: %d of %d rows (%d held out of %d); each checkpoint embeds %d texts instead of %d. "
            "Intervals are about %.1fx as wide as with every row (width ~ 1/sqrt(held-out rows)); "
            "--probe-rows sets the sample, --probe-rows none uses every row.",
            probed, len(corpus), len(splits.test_indices), full_test, probed, len(corpus),
            (full_test / max(1, len(splits.test_indices))) ** 0.5,
        )


def _check_scoreable(corpus: Corpus, splits: Splits) -> None:
    """What would make every score meaningless, refused before anything is trained."""
    n_test = len(splits.test_indices)
    if n_test < MIN_TEST_ROWS:
        raise ConfigError(
            f"Only {n_test} held-out rows ({len(corpus)} rows x test_fraction): R² on fewer than {MIN_TEST_ROWS} rows "
            "is noise. Use more rows or a larger --test-fraction."
        )
    if n_test < WARN_TEST_ROWS:
        logger.warning("Only %d held-out rows: expect wide intervals (%d or more give usable ones).", n_test,
                       WARN_TEST_ROWS)
    for name, rows in (("probe-training", splits.train_indices), ("held-out", splits.test_indices)):
        values = corpus.targets[rows]
        if np.ptp(values) == 0:
            raise CorpusError(
                f"{corpus.report.source}: every target in the {name} split equals {values[0]:g}; a price probe "
                f"cannot be fitted or scored (check --target-column {corpus.report.target_column!r})."
            )


def _check_supervised_sizes(config: CurveConfig, sizes: Sequence[int]) -> None:
    """The supervised objective fits a regression on each subset's prices: refuse subsets too small for it."""
    from .train.sentence_objectives import MIN_SUPERVISED_ROWS

    positive = [size for size in sizes if size > 0]
    if Objective.SUPERVISED in config.resolved_objectives() and positive and min(positive) < MIN_SUPERVISED_ROWS:
        raise ConfigError(
            f"--objectives supervised regresses each subset's prices, and the smallest of --sizes is "
            f"{min(positive)} rows: it needs at least {MIN_SUPERVISED_ROWS}. Use larger --sizes (or more rows)."
        )


def _config_differences(saved: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    differences = []
    for key in sorted(set(saved) | set(current)):
        old, new = saved.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            differences.extend(_config_differences(old, new, f"{prefix}{key}."))
        elif old != new:
            differences.append(f"{prefix}{key}: {old!r} -> {new!r}")
    return differences


def _prepare_run_dir(run: RunDirectory, config: CurveConfig, result_key: str, corpus: Corpus,
                     overwrite: bool) -> dict[str, Any] | None:
    saved = run.read_config()
    if saved is None:
        return None
    if saved.get("result_key") == result_key:
        return saved
    if not overwrite:
        ignored = set(NON_RESULT_FIELDS) | {"data"}  # the path may move; the content is compared below
        differences = [d for d in _config_differences(saved.get("config", {}), config.to_dict())
                       if d.split(":")[0] not in ignored]
        # ``probes`` is left out of the comparison above (a secondary probe extends a run), but the primary one
        # scores the run's points: name it when it changed.
        old_primary = str((saved.get("config") or {}).get("probes") or ProbeKind.XGBOOST.value).split(",")[0]
        if old_primary != config.resolved_probes()[0].value:
            differences.insert(0, f"primary probe (the first of --probes): {old_primary!r} -> "
                                  f"{config.resolved_probes()[0].value!r}")
        old_fingerprint = (saved.get("corpus") or {}).get("fingerprint")
        if old_fingerprint != corpus.fingerprint:
            differences.insert(0, f"corpus content: fingerprint {old_fingerprint} -> {corpus.fingerprint} "
                                  "(the data changed)")
        if saved.get("recipe_version") != RECIPE_VERSION:
            differences.append(f"recipe version: {saved.get('recipe_version', 1)} -> {RECIPE_VERSION} (points are "
                               "trained or scored differently since)")
        raise RunDirectoryConflictError(
            f"{run.path} holds a run with a different configuration or data ({'; '.join(differences[:6]) or 'unknown'}). "
            "Use another --output-dir, or --overwrite to discard that run."
        )
    logger.warning("Overwriting the run in %s", run.path)
    run.remove_outputs()
    return None


def run_curve(
    config: CurveConfig | None = None,
    *,
    overwrite: bool = False,
    show_progress: bool = True,
    on_point: Callable[[CurvePoint], None] | None = None,
    callbacks: Sequence[Any] = (),
) -> CurveResult:
    """Measure the finetuning curve that ``config`` describes; resume it if it was interrupted.

    Finished sizes (``points/<label>.json``) are skipped and checkpoints already saved and
    verified are reused. An interrupted size restarts from its beginning with
    ``schedule="independent"``; with ``"branching"`` the main run restarts from its latest saved
    size boundary.

    Args:
        config: the run; None runs the embedded default (synthetic car auctions, all-MiniLM-L6-v2).
        overwrite: discard an existing run with a different configuration in the output dir.
        show_progress: tqdm bars for sizes, training and embedding.
        on_point: called with each newly finished point (e.g. to plot live in a notebook).
        callbacks: ``transformers.TrainerCallback`` objects given to every Trainer run of the
            finetuning (both schedules), as to ``Trainer(callbacks=...)``.

    Raises:
        CorpusError, ConfigError, RunDirectoryConflictError, CheckpointVerificationError,
        ModelResolutionError.
    """
    config = config or CurveConfig()
    run = RunDirectory(config.resolved_output_dir())
    if run.path.exists() and not run.path.is_dir():
        from .errors import OutputError

        raise OutputError(f"--output-dir {run.path} is a file, not a folder; choose another --output-dir.")
    main_process = is_main_process()
    created = main_process and not run.path.exists()
    # One run per directory: a second one fails at once instead of corrupting the first.
    lock = run.lock() if main_process else contextlib.nullcontext()
    try:
        with lock:
            return _run_curve(config, run, overwrite=overwrite, show_progress=show_progress, on_point=on_point,
                              callbacks=callbacks)
    except BaseException:
        # After a failed first attempt, leave no run directory that holds nothing a rerun could use.
        if created and run.holds_nothing_to_resume():
            shutil.rmtree(run.path, ignore_errors=True)
        raise


def _run_curve(config: CurveConfig, run: RunDirectory, *, overwrite: bool, show_progress: bool,
               on_point: Callable[[CurvePoint], None] | None, callbacks: Sequence[Any]) -> CurveResult:
    run_dir = run.path
    main_process = is_main_process()
    check_supported_launch(config.finetune)  # an uninstalled --report-to, FSDP: before any work, not after f0
    distributed = _init_distributed(config.device)
    corpus = load_corpus(config.data, config.text_column, config.target_column, config.max_rows)
    result_key = config.result_key(corpus.fingerprint)
    # Rank 0 alone checks (and with --overwrite clears) the run directory; the others wait for it.
    saved_config = _prepare_run_dir(run, config, result_key, corpus, overwrite) if main_process else None
    if distributed is not None:
        distributed.wait_for_everyone()
    run_dir.mkdir(parents=True, exist_ok=True)
    if main_process:
        for line in corpus.report.summary_lines():
            logger.info(line)
        run.write_data_report(corpus.report)

    splits = make_splits(len(corpus), config.test_fraction, config.seed, config.include_test_in_finetune,
                         probe_rows=config.probe_rows)
    _log_probe_sample(corpus, config, splits)
    _check_scoreable(corpus, splits)
    if main_process:
        run.write_splits(splits)
    requested = parse_sizes(config.sizes, len(splits.pool_order))
    # Sizes only add: the sizes a finished run of the same result key measured stay in its curve,
    # so `--sizes` with new sizes on an existing run directory trains just the new ones.
    finished_sizes = {point.finetune_size for point in run.read_points()}
    sizes = sorted(set(requested) | finished_sizes)
    if finished_sizes - set(requested):
        logger.info("Keeping the sizes measured before: %s",
                    ", ".join(size_label(s) for s in sorted(finished_sizes - set(requested))))
    _check_supervised_sizes(config, sizes)
    device = resolve_device(config.device)
    if distributed is not None and device.startswith("cuda"):
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"  # one GPU per process, not all on GPU 0
    base_model, resolved = load_sentence_transformer(config.model, device=device)
    # How many texts the embedding model cuts short, and by how much: in the log and data_report.json.
    log_truncation(base_model, corpus, config.embed_max_length, run if main_process else None)

    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    run_record = {
        "config": config.to_dict(),
        "result_key": result_key,
        "recipe_version": RECIPE_VERSION,
        "recipe_choices": recipe_choices(config),
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
    }
    if main_process:
        run.write_config(run_record)
    logger.info(
        "Run %s: %d rows (%d probe-train / %d test), finetune pool %d, sizes %s",
        run_dir, len(corpus), len(splits.train_indices), len(splits.test_indices), len(splits.pool_order),
        ", ".join(size_label(s) for s in sizes),
    )

    replicates = [_Replicate(seed=config.seed, run=run, splits=splits)]
    for offset in range(1, int(config.seeds)):
        replicate_seed = config.seed + offset
        replicates.append(_Replicate(
            seed=replicate_seed,
            run=run.replicate(replicate_seed),
            splits=make_splits(len(corpus), config.test_fraction, config.seed, config.include_test_in_finetune,
                               order_seed=replicate_seed, probe_rows=config.probe_rows),
        ))
    context = _RunContext(config=config, run=run, corpus=corpus, base_model=base_model, result_key=result_key,
                          base_model_id=resolved.model_id, device=device, show_progress=show_progress,
                          sample_texts=[corpus.texts[i] for i in splits.test_indices[:_VERIFY_SAMPLE]],
                          callbacks=list(callbacks))
    objectives = config.resolved_objectives()
    if len(objectives) > 1:
        logger.info("Objectives %s on the same split, sizes, seeds and probe; f0 is shared",
                    ", ".join(o.value for o in objectives))
    # f0 is the same model in every replicate and for every objective: it is scored once, in the main run.
    replicate_sizes = [size for size in sizes if size > 0]
    progress = tqdm(total=len(objectives) * (len(sizes) + len(replicate_sizes) * (len(replicates) - 1)),
                    desc="curve points", unit="point", disable=not show_progress)
    # all_points[objective][r]: the points of replicate r (0: the main seed) of one objective's curve.
    all_points: dict[Objective, list[list[CurvePoint]]] = {objective: [] for objective in objectives}
    main_curves: dict[Objective, list[CurvePoint]] = {}
    for replicate in replicates:
        shared_f0: CurvePoint | None = None
        for objective in objectives:
            track = dataclasses.replace(replicate, objective=objective)

            def record(point: CurvePoint, points: list[CurvePoint], track: _Replicate = track) -> None:
                if point.finetune_size != 0 or track.objective is objectives[0]:  # f0 is written once
                    track.run.write_point(point, point.objective)
                points.append(point)
                points.sort(key=lambda p: p.finetune_size)
                if track.seed == config.seed:
                    main_curves[track.objective] = points
                    run.write_curve([p for curve in main_curves.values() for p in curve],
                                    _summary(config, corpus, resolved.to_dict()))
                if on_point is not None:
                    on_point(point)

            curve = _run_replicate(context, track, sizes if replicate is replicates[0] else replicate_sizes, progress,
                                   record, shared_f0=shared_f0)
            shared_f0 = next((p for p in curve if p.finetune_size == 0), shared_f0)
            all_points[objective].append(curve)
    progress.close()
    points = [p for objective in objectives for p in all_points[objective][0]]
    # probe_curves[probe][objective][r]: as all_points, for each secondary probe (--probes), on the same checkpoints.
    secondary = config.resolved_probes()[1:]
    probe_curves = {probe: {objective: [context.probe_curve(probe, objective, r.seed) for r in replicates]
                            for objective in objectives} for probe in secondary}
    probe_points = {probe.value: [p for objective in objectives for p in probe_curves[probe][objective][0]]
                    for probe in secondary}
    if not main_process:
        return CurveResult(run_dir=run_dir, config=config, points=points, corpus=corpus, splits=splits,
                           probe_points=probe_points)
    analysis = _analyze_objectives(context, splits, objectives, all_points, [r.run for r in replicates[1:]])
    if secondary:
        # Every secondary probe gets the primary's whole analysis (intervals, deltas, fit, answer, the
        # objectives' comparison) on its own predictions, then the verdicts of all probes side by side.
        analysis["probes"] = {probe.value: _analyze_objectives(context, splits, objectives, probe_curves[probe],
                                                               [r.run for r in replicates[1:]], probe=probe)
                              for probe in secondary}
        primary = config.resolved_probes()[0].value
        curves = {primary: {o.value: all_points[o][0] for o in objectives},
                  **{probe.value: {o.value: probe_curves[probe][o][0] for o in objectives} for probe in secondary}}
        answers = {primary: _objective_answers(analysis, objectives),
                   **{name: _objective_answers(section, objectives) for name, section in analysis["probes"].items()}}
        analysis["probe_agreement"] = probe_agreement(
            curves, answers, metric=(analysis.get("answer") or {}).get("metric") or config.answer_metric)
    run.write_curve(points, {**_summary(config, corpus, resolved.to_dict()), **analysis}, probe_points=probe_points)
    # The samples stage: a few hundred held-out listings with each checkpoint's predictions and 2-D map
    # (every objective's), which the Space reads.
    build_samples(run, corpus, splits)
    return CurveResult(run_dir=run_dir, config=config, points=points, corpus=corpus, splits=splits,
                       analysis=analysis, probe_points=probe_points)


@dataclass
class _Replicate:
    """One pass over the sizes of one objective: the main run, or a repeat with another data order
    (``--seeds``). Its files: ``checkpoints/f200`` etc. for MLM, ``checkpoints/tsdae/f200`` etc. otherwise."""

    seed: int
    run: RunDirectory
    splits: Splits
    objective: Objective = Objective.MLM

    def suffix(self, main_seed: int) -> str:
        parts = ([] if self.objective is Objective.MLM else [self.objective.display]) + \
            ([] if self.seed == main_seed else [f"seed {self.seed}"])
        return f" ({', '.join(parts)})" if parts else ""

    def file_label(self, label: str) -> str:
        """``f200`` or ``tsdae/f200``: a point's path under checkpoints/, probes/, predictions/, points/."""
        return self.objective.file_label(label)


@dataclass
class _RunContext:
    config: CurveConfig
    run: RunDirectory
    result_key: str
    corpus: Corpus
    base_model: Any
    base_model_id: str
    device: str
    show_progress: bool
    sample_texts: list[str]
    callbacks: list[Any] = dataclasses.field(default_factory=list)
    tokens: TokenCache = dataclasses.field(default_factory=TokenCache)  # probe rows' token ids, once per run
    # The secondary probes' points by (probe, objective, replicate seed), each list by size (the primary
    # probe's go through ``record``, as with one probe).
    probe_points: dict[tuple[ProbeKind, Objective, int], list[CurvePoint]] = dataclasses.field(default_factory=dict)

    def probe_curve(self, probe: ProbeKind, objective: Objective, seed: int) -> list[CurvePoint]:
        """A secondary probe's points of one objective in one replicate, by size."""
        return self.probe_points.setdefault((probe, objective, seed), [])


def _objective_answers(analysis: dict[str, Any], objectives: list[Objective]) -> dict[str, dict[str, Any]]:
    """Each objective's answer in an :func:`_analyze_objectives` result (the top level's is the first one's)."""
    sections = analysis.get("objectives") or {objectives[0].value: analysis}
    return {name: dict(section.get("answer") or {}) for name, section in sections.items()}


def _analyze_objectives(context: _RunContext, splits: Splits, objectives: list[Objective],
                        all_points: dict[Objective, list[list[CurvePoint]]],
                        replicate_runs: list[RunDirectory], probe: ProbeKind | None = None) -> dict[str, Any]:
    """The first objective's analysis at the top level (as for a one-objective run), each objective's
    under ``objectives``, and with several, the paired comparison between them (``comparison``).

    ``probe``: a secondary probe's analysis, read from its view of the run and of each replicate
    (:meth:`RunDirectory.probe_view`), without the TF-IDF baseline (the run's top level has it once).
    """
    y_test = context.corpus.targets[splits.test_indices]
    if probe is None:
        run = context.run
        run.write_y_test(y_test)
    else:
        run, replicate_runs = context.run.probe_view(probe), [r.probe_view(probe) for r in replicate_runs]
    # Per objective and label: (finetune seeds, probe seeds, test rows), read once for the analyses
    # and the comparison.
    predictions = {o: _load_predictions(run, all_points[o][0], replicate_runs) for o in objectives}
    analyses = {objective: _analyze(context, splits, y_test, all_points[objective][0], predictions[objective],
                                    all_points[objective][1:],
                                    with_baseline=probe is None and objective is objectives[0])
                for objective in objectives}
    for section in analyses.values():  # which probe's noise the intervals could hold (a ridge fit has no seed)
        section["uncertainty"]["probe"] = (probe or context.config.resolved_probes()[0]).value
    analysis = dict(analyses[objectives[0]])
    if len(objectives) > 1:
        from .curve.compare import compare_objectives

        curves = {o.value: all_points[o][0] for o in objectives}
        analysis["objectives"] = {o.value: {k: v for k, v in analyses[o].items() if k != "baselines"}
                                  for o in objectives}
        analysis["comparison"] = compare_objectives(curves, {o.value: predictions[o] for o in objectives}, y_test,
                                                    n_resamples=int(context.config.bootstrap_resamples),
                                                    seed=context.config.seed)
    return analysis


def _load_predictions(run: RunDirectory, points: Sequence[CurvePoint], replicate_runs: Sequence[RunDirectory]
                      ) -> dict[str, np.ndarray]:
    """One objective's held-out predictions by label, shaped (finetune seeds, probe seeds, test rows).

    f0 is scored once (main run) and shared: it has one finetune "seed".
    """
    predictions: dict[str, np.ndarray] = {}
    for point in points:
        runs = [run] + ([] if point.finetune_size == 0 else list(replicate_runs))
        found = [directory.read_seed_predictions(point.label, point.objective) for directory in runs]
        found = [array for array in found if array is not None]
        if found and len({array.shape for array in found}) == 1:
            predictions[point.label] = np.stack(found)
        elif found:
            logger.warning("%s: replicates were scored with different probe seeds %s; using the main run's only",
                           point.label, [array.shape[0] for array in found])
            predictions[point.label] = found[0][None]
    return predictions


def _analyze(context: _RunContext, splits: Splits, y_test: np.ndarray, points: list[CurvePoint],
             predictions: dict[str, np.ndarray], replicate_points: list[list[CurvePoint]],
             with_baseline: bool = True) -> dict[str, Any]:
    config = context.config
    baseline = None
    if config.tfidf_baseline and with_baseline:
        try:
            baseline = _tfidf_baseline(context, splits, y_test)
        except Exception as exc:  # an optional comparison: the curve stands without it
            logger.warning("TF-IDF baseline skipped: %s", exc)
    return analyze_curve(points, y_test, predictions, n_resamples=int(config.bootstrap_resamples),
                         seed=config.seed, replicate_points=replicate_points, baseline=baseline,
                         answer_metric=config.answer_metric, pool_size=len(splits.pool_order))


def _tfidf_baseline(context: _RunContext, splits: Splits, y_test: np.ndarray) -> dict[str, Any]:
    """TF-IDF + the same probe on the same split: does finetuning beat a bag of words at all?"""
    from .curve.uncertainty import hierarchical_bootstrap
    from .score.baselines import tfidf_baseline

    config, corpus = context.config, context.corpus
    cached = context.run.read_tfidf_baseline(context.result_key)
    if cached is not None:
        return cached
    logger.info("TF-IDF baseline on the same split")
    result = tfidf_baseline(
        [corpus.texts[i] for i in splits.train_indices], corpus.targets[splits.train_indices],
        [corpus.texts[i] for i in splits.test_indices], y_test,
        dataclasses.replace(config.probe, seed=config.seed), seed=config.seed, probe_seeds=int(config.probe_seeds),
    )
    # The same probe seeds and the same resamples of rows and seeds as the curve's points.
    boot = hierarchical_bootstrap(y_test, {"tfidf": result.seed_predictions[None]},
                                  n_resamples=int(config.bootstrap_resamples), seed=config.seed)
    intervals = {metric: boot.interval(metric, "tfidf") for metric in boot.estimates}
    summary = {
        "name": result.name,
        **{key: result.scores[key] for key in ("r2", "r2_log", "mae", "median_ae")},
        "intervals": {metric: interval.to_dict() for metric, interval in intervals.items()},
        "n_components": int(result.n_components),
        "seconds": result.seconds,
    }
    context.run.write_tfidf_baseline(context.result_key, summary)
    return summary


def _run_replicate(context: _RunContext, replicate: _Replicate, sizes: list[int], progress,
                   record: Callable[[CurvePoint, list[CurvePoint]], None],
                   shared_f0: CurvePoint | None = None) -> list[CurvePoint]:
    """Every size of one replicate: skip finished ones, score saved checkpoints, train the rest.

    ``shared_f0``: the base model's point, already scored for another objective on this replicate's
    split: every objective's curve starts from that same point.
    """
    config, run, objective = context.config, replicate.run, replicate.objective
    finished = {point.label: point for point in run.read_points(objective)}
    # The secondary probes' finished points (--probes), in their views of this replicate.
    finished_probes = {probe: {point.label: point for point in run.probe_view(probe).read_points(objective)}
                       for probe in config.resolved_probes()[1:]}
    points: list[CurvePoint] = []
    to_train: list[int] = []
    for finetune_size in sizes:
        label = size_label(finetune_size)
        checkpoint_dir = run.checkpoint_dir(label, objective)
        if finetune_size == 0 and shared_f0 is not None:
            point = dataclasses.replace(shared_f0, objective=objective.value, extras={})
            record(point, points)
            _share_probe_f0(context, replicate)
            progress.update()
        elif label in finished and finetune_size > 0 and \
                (damage := _damaged_checkpoint(run, label, objective)) is not None:
            # A finished point whose checkpoint no longer holds the verified bytes: its files would publish a
            # model the point never scored. Train it again (seeded: the same recipe), and score it again.
            logger.warning("%s%s: %s; training the point again", label, replicate.suffix(config.seed), damage)
            _forget_point(context, replicate, label)
            to_train.append(finetune_size)
        elif label in finished:
            logger.info("%s%s already finished, skipping", label, replicate.suffix(config.seed))
            points.append(finished[label])
            _complete_probes(context, replicate, finished[label], finished_probes)
            progress.update()
        elif finetune_size == 0:
            _score_and_record(context, replicate, 0, context.base_model, {}, context.base_model_id, points, record)
            progress.update()
        elif run.has_checkpoint(label, objective) and run.read_checkpoint_stats(label, objective) is None:
            # Not a checkpoint this version wrote in one step (statistics missing): train it again.
            logger.warning("%s: %s has no %s; training it again", label, checkpoint_dir, CHECKPOINT_STATS_FILE)
            shutil.rmtree(checkpoint_dir)
            to_train.append(finetune_size)
        elif (damage := _damaged_checkpoint(run, label, objective)) is not None:
            # Saved and verified, then changed on disk (a flipped bit, a truncated file): never reuse it.
            logger.warning("%s: %s; training it again", label, damage)
            _forget_point(context, replicate, label)
            to_train.append(finetune_size)
        elif run.has_checkpoint(label, objective):
            # Saved and verified before an interruption (saving renames into place only after the check), and
            # its files still hash as they did then.
            from sentence_transformers import SentenceTransformer

            logger.info("%s: reusing the verified checkpoint %s", label, checkpoint_dir)
            model = SentenceTransformer(str(checkpoint_dir), device=context.device)
            if not (checkpoint_dir / CHECKPOINT_HASHES_FILE).is_file() and is_main_process():
                # Saved by a version that recorded no hashes: nothing to check against. It loaded (its weights
                # are whole), so its hashes are recorded now, and from here on any change to it is caught.

                logger.info("%s: %s predates content hashes; recording them now", label, checkpoint_dir)
                record_checkpoint_hashes(checkpoint_dir)
            stats = run.read_checkpoint_stats(label, objective)
            _score_and_record(context, replicate, finetune_size, model, stats, run.relative(checkpoint_dir), points,
                              record)
            progress.update()
        else:
            to_train.append(finetune_size)
    if not to_train:
        return sorted(points, key=lambda p: p.finetune_size)

    def trained(finetune_size: int, result: FinetuneResult) -> None:
        progress.update()
        label = size_label(finetune_size)
        # Rank 0 saves and writes; every rank embeds its share of the probe's rows (collective).
        stats = _save_trained(context, replicate, label, result) if is_main_process() else {}
        _score_and_record(context, replicate, finetune_size, result.model, stats,
                          run.relative(run.checkpoint_dir(label, objective)), points, record)

    pool_texts = [context.corpus.texts[i] for i in replicate.splits.pool_order]
    positive = [size for size in sizes if size > 0]
    done = {size for size in positive if size not in to_train}
    common = dict(seed=replicate.seed, device=context.device, completed=done, callbacks=context.callbacks,
                  show_progress=context.show_progress, log_dir=run.logs_dir)
    # The objective's own settings: its peak rate, and the distillation term for mlm-distill only.
    finetune = config.finetune.for_objective(objective)
    if not objective.trains_mlm:
        from .train.sentence_objectives import finetune_objective_independent

        if config.schedule == "branching":
            logger.info("Independent schedule%s, not branching: every size trains from %s. A branch resumes a "
                        "Trainer checkpoint, and sentence-transformers' checkpoints do not hold TSDAE's decoder or "
                        "the supervised head; branching the sentence objectives is not implemented",
                        replicate.suffix(config.seed),
                        "its MLM checkpoint" if objective.starts_from is not None else "the base model")
        extra: dict[str, Any] = {}
        if objective.uses_labels:  # the pool's prices: probe-training rows only (the config refuses the test split)
            extra["pool_targets"] = context.corpus.targets[replicate.splits.pool_order]
        if objective.starts_from is not None:
            extra["start_model"] = lambda size: _start_checkpoint(context, replicate, objective.starts_from, size)
        plan = finetune_objective_independent(
            context.base_model, pool_texts, positive, finetune, objective, on_point=trained,
            work_dir=run.independent_work_dir(objective), **common, **extra,
        )
        if is_main_process():
            run.write_training_plan(plan, objective)
        return sorted(points, key=lambda p: p.finetune_size)
    if config.schedule == "branching":
        from .train.branching import finetune_branching

        logger.info("Branching schedule%s: one warmup-stable main run over %s, a cooldown branch per size",
                    replicate.suffix(config.seed), ", ".join(size_label(s) for s in positive))
        branching = finetune_branching(
            context.base_model, pool_texts, positive, finetune, on_branch=trained,
            state_dir=run.objective_branching_state_dir(objective), **common,
        )
        plan = {**branching.plan, "learning_rate": finetune.effective_learning_rate(objective),
                "distill_weight": finetune.distill_weight}
        if is_main_process():
            run.write_branching_summary(branching.to_dict(), objective)
    else:
        from .train.finetune import finetune_independent

        plan = {**finetune_independent(
            context.base_model, pool_texts, positive, finetune, on_point=trained,
            work_dir=run.independent_work_dir(objective), **common,
        ).summary(), "learning_rate": finetune.effective_learning_rate(objective),
            "distill_weight": finetune.distill_weight}
    if is_main_process():
        run.write_training_plan(plan, objective)
    return sorted(points, key=lambda p: p.finetune_size)


def _damaged_checkpoint(run: RunDirectory, label: str, objective: Objective) -> str | None:
    """Why the saved checkpoint of ``label`` cannot be trusted (a sentence naming the folder and file), or None
    when it is absent, matches its recorded hashes, or predates them and its weights open."""
    from .errors import CheckpointDamagedError

    if not run.has_checkpoint(label, objective):
        return None
    try:
        run.check_checkpoint(label, objective)
    except CheckpointDamagedError as exc:
        return str(exc).split(". Re-run")[0]
    return None


def _forget_point(context: _RunContext, replicate: _Replicate, label: str) -> None:
    """Delete a point's checkpoint, its points (every probe's) and its cached embeddings (they were the
    damaged checkpoint's, or the one before it), so it is trained, embedded and scored again."""
    run, objective = replicate.run, replicate.objective
    for view in [run] + [run.probe_view(probe) for probe in context.config.resolved_probes()[1:]]:
        path = view.point_path(label, objective)
        if path.is_file():
            path.unlink()
    for cached in context.run.embedding_cache_files(label, objective):
        cached.unlink()
    shutil.rmtree(run.checkpoint_dir(label, objective), ignore_errors=True)


def _start_checkpoint(context: _RunContext, replicate: _Replicate, objective: Objective, size: int):
    """The saved checkpoint of ``objective`` at ``size`` in this replicate: where a staged objective starts."""
    from sentence_transformers import SentenceTransformer

    directory = replicate.run.checkpoint_dir(size_label(size), objective)
    if not replicate.run.has_checkpoint(size_label(size), objective):
        raise RuntimeError(f"{directory} is missing: {objective.value} must finish size {size} before it is continued.")
    replicate.run.check_checkpoint(size_label(size), objective)  # a damaged start is an error, not a silent start
    return SentenceTransformer(str(directory), device=context.device)


def _save_trained(context: _RunContext, replicate: _Replicate, label: str, result: FinetuneResult) -> dict[str, Any]:
    """Save and verify a trained checkpoint with its statistics (one rename); return the statistics."""
    recipe = result.recipe
    stats = {
        "objective": replicate.objective.value,
        "schedule": result.schedule,
        "finetune_texts_seen": result.texts_seen,
        "finetune_tokens_seen": result.tokens_seen,
        "finetune_steps": result.optimizer_steps,
        "subset_epochs": result.subset_epochs,
        "warmup_steps": recipe.warmup_steps if recipe else 0,
        "cooldown_steps": recipe.cooldown_steps if recipe else 0,
        "lr_integral": result.lr_integral,
        "planned_lr_integral": recipe.lr_integral() if recipe else None,
        "final_lr": result.final_lr,
        "head": result.head,
        "text_unit": (None if replicate.objective.trains_mlm else
                      "whole" if replicate.objective.uses_labels else context.config.finetune.text_unit),
        "final_mlm_loss": result.final_loss,
        "batches_without_targets": result.batches_without_targets,
        "train_seconds": result.train_seconds,
        "chunk_length": result.chunk_length,
        "num_chunks": result.num_chunks,
        "learning_rate": context.config.finetune.effective_learning_rate(replicate.objective),
    }
    if replicate.objective is Objective.MLM_DISTILL:
        stats["distill_weight"] = context.config.finetune.for_objective(replicate.objective).distill_weight
    if replicate.objective.starts_from is not None:
        # Two stages, each the size's full recipe: the budget is the sum, recorded stage by stage.
        first = replicate.run.read_checkpoint_stats(label, replicate.objective.starts_from) or {}
        stats["stages"] = {
            replicate.objective.starts_from.value: {key: first.get(key) for key in (
                "finetune_steps", "finetune_tokens_seen", "train_seconds", "learning_rate", "schedule")},
            "simcse": {"finetune_steps": result.optimizer_steps, "finetune_tokens_seen": result.tokens_seen,
                       "train_seconds": result.train_seconds,
                       "learning_rate": context.config.finetune.effective_learning_rate(replicate.objective),
                       "schedule": result.schedule},
        }
        stats["finetune_steps"] = result.optimizer_steps + int(first.get("finetune_steps") or 0)
        stats["finetune_tokens_seen"] = result.tokens_seen + int(first.get("finetune_tokens_seen") or 0)
        stats["train_seconds"] = result.train_seconds + float(first.get("train_seconds") or 0.0)
    save_checkpoint(result.model, replicate.run.checkpoint_dir(label, replicate.objective), context.sample_texts,
                    extra_json={CHECKPOINT_STATS_FILE: stats})
    return stats


def _score_and_record(context: _RunContext, replicate: _Replicate, finetune_size: int, model, stats: dict[str, Any],
                      checkpoint: str, points: list[CurvePoint],
                      record: Callable[[CurvePoint, list[CurvePoint]], None]) -> None:
    """Embed once, score with every probe: the primary's point is recorded as ever, each secondary's in its view."""
    embedded = _embed_point(context, replicate, finetune_size, model)  # every rank takes part
    if not is_main_process():
        return
    record(_score_point(context, replicate, finetune_size, embedded, stats, checkpoint), points)
    for probe in context.config.resolved_probes()[1:]:
        _record_probe_point(context, replicate,
                            _score_point(context, replicate, finetune_size, embedded, stats, checkpoint, probe=probe))


def _record_probe_point(context: _RunContext, replicate: _Replicate, point: CurvePoint) -> None:
    """A secondary probe's new point: written to its view (f0 once, as the primary probe's) and kept for
    the analysis."""
    if point.finetune_size != 0 or replicate.objective is context.config.resolved_objectives()[0]:
        replicate.run.probe_view(point.probe).write_point(point, replicate.objective)
    _keep_probe_point(context, replicate, point)


def _keep_probe_point(context: _RunContext, replicate: _Replicate, point: CurvePoint) -> None:
    curve = context.probe_curve(ProbeKind(point.probe), replicate.objective, replicate.seed)
    curve[:] = sorted([p for p in curve if p.label != point.label] + [point], key=lambda p: p.finetune_size)


def _share_probe_f0(context: _RunContext, replicate: _Replicate) -> None:
    """Every objective's curve starts at the one f0: a secondary probe's too (scored for the first objective)."""
    for probe in context.config.resolved_probes()[1:]:
        base = next((p for objective in context.config.resolved_objectives() if objective is not replicate.objective
                     for p in context.probe_curve(probe, objective, replicate.seed) if p.finetune_size == 0), None)
        if base is not None:
            _keep_probe_point(context, replicate, dataclasses.replace(base, objective=replicate.objective.value,
                                                                      extras=dict(base.extras)))


def _complete_probes(context: _RunContext, replicate: _Replicate, finished: CurvePoint,
                     finished_probes: dict[ProbeKind, dict[str, CurvePoint]]) -> None:
    """A size the primary probe finished: keep the secondary probes' points it has, and score the ones it
    lacks (a probe added to a finished run) without training: the saved checkpoint (the base model for f0)
    embeds from the embedding cache, and only the probe is fitted."""
    label, run, objective = finished.label, replicate.run, replicate.objective
    missing = []
    for probe, done in finished_probes.items():
        if label in done:
            _keep_probe_point(context, replicate, done[label])
        else:
            missing.append(probe)
    if not missing:
        return
    if finished.finetune_size == 0:
        model = context.base_model
    elif run.has_checkpoint(label, objective):
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(run.checkpoint_dir(label, objective)), device=context.device)
    else:
        logger.warning("%s%s: no checkpoint in %s, so the %s probe cannot score it; its curve lacks this size",
                       label, replicate.suffix(context.config.seed), run.checkpoint_dir(label, objective),
                       ", ".join(probe.value for probe in missing))
        return
    logger.info("%s%s: scoring with the %s probe (the run had not measured it)", label,
                replicate.suffix(context.config.seed), ", ".join(probe.value for probe in missing))
    embedded = _embed_point(context, replicate, finished.finetune_size, model)  # every rank takes part
    if not is_main_process():
        return
    stats = run.read_checkpoint_stats(label, objective) or {}
    for probe in missing:
        _record_probe_point(context, replicate, _score_point(context, replicate, finished.finetune_size, embedded,
                                                             stats, finished.checkpoint, probe=probe))


def _embed_point(context: _RunContext, replicate: _Replicate, finetune_size: int, model):
    """Embed the probe's rows (all of them unless --probe-rows samples), in corpus order.

    Under several processes each rank embeds every world_size-th row and rank 0 gathers them; the
    other ranks return None.
    """
    config, corpus, splits = context.config, context.corpus, replicate.splits
    label = size_label(finetune_size)
    rows = splits.probe_rows
    sampled = "" if len(rows) == len(corpus) else \
        f":rows-{hashlib.sha256(rows.astype(np.int64).tobytes()).hexdigest()[:12]}"
    # The base model embeds identically in every replicate: one cache entry serves them all.
    checkpoint_id = f"{context.base_model_id}:base{sampled}" if finetune_size == 0 else \
        f"{context.result_key}:{replicate.seed}:{replicate.file_label(label)}{sampled}"
    # The base model's length unless --embed-max-length: a checkpoint loaded back from disk may report another
    # (sentence-transformers 6 saves no max_seq_length, so it reloads at the tokenizer's 512), and every point
    # must read the same tokens.
    length = check_max_length(context.base_model, config.embed_max_length)
    cache_key = embedding_cache_key(checkpoint_id, corpus.fingerprint, length)
    # The main run's cache serves every replicate (the key names the replicate's seed).
    cache_path = context.run.embedding_cache_path(label, cache_key, replicate.objective)
    texts = [corpus.texts[i] for i in rows]
    return embed_texts(model, texts, batch_size=config.embed_batch_size, cache_path=cache_path,
                       show_progress=context.show_progress, distributed=True, max_length=length,
                       tokens=context.tokens)


def _score_point(context: _RunContext, replicate: _Replicate, finetune_size: int, embedded, stats: dict[str, Any],
                 checkpoint: str, probe: ProbeKind | None = None) -> CurvePoint:
    """Fit the probe on the train split of the embedded probe rows and score the test split.

    ``probe``: a secondary probe of ``--probes``, whose files go to its view of the replicate
    (:meth:`RunDirectory.probe_view`); None: the primary probe, whose files are the replicate's own.
    """
    config, corpus = context.config, context.corpus
    splits = replicate.splits
    primary = config.resolved_probes()[0]
    probe = probe or primary
    # Paths in the point stay relative to the replicate (as its checkpoint's): probe-ridge/probes/f200.json.
    run = replicate.run if probe is primary else replicate.run.probe_view(probe)
    label = size_label(finetune_size)
    rows = splits.probe_rows
    sampled = len(rows) != len(corpus)
    embeddings = embedded.embeddings
    targets = corpus.targets

    def embedded_rows(indices: np.ndarray) -> np.ndarray:  # corpus rows -> rows of the (sorted) embedded sample
        return embeddings[np.searchsorted(rows, indices)] if sampled else embeddings[indices]

    probe_started = time.perf_counter()
    # One seed fixes the data order, the masking and the probe of a replicate.
    probe_config = dataclasses.replace(config.probe, seed=replicate.seed)
    result = fit_and_score(
        embedded_rows(splits.train_indices), targets[splits.train_indices],
        embedded_rows(splits.test_indices), targets[splits.test_indices], probe_config,
        n_seeds=int(config.probe_seeds), kind=probe,
    )
    extras: dict[str, Any] = {RIDGE_ALPHA: result.alpha} if result.alpha is not None else {}
    if replicate.objective.uses_labels and finetune_size > 0:
        check = _in_subset_probe_check(context, replicate, finetune_size, embedded_rows, probe_config, probe)
        if check is not None:
            extras["probe_in_subset_check"] = check
    probe_seconds = time.perf_counter() - probe_started
    run.write_probe(label, result.probe, replicate.objective)
    # Every probe seed's predictions (the intervals resample them), then their mean (what the
    # point scores): a point whose mean file exists is complete.
    run.write_predictions(label, result.predictions, result.seed_predictions, replicate.objective)
    logger.info("%s%s%s: R² %.4f  log R² %.4f  MAE %.2f  MedAE %.2f%s", label, replicate.suffix(config.seed),
                "" if probe is primary else f" [{probe.value} probe]", result.scores["r2"], result.scores["r2_log"],
                result.scores["mae"], result.scores["median_ae"],
                "" if result.alpha is None else f"  (ridge alpha {result.alpha:g})")
    return CurvePoint(
        finetune_size=int(finetune_size),
        label=label,
        r2=result.scores["r2"],
        r2_log=result.scores["r2_log"],
        mae=result.scores["mae"],
        median_ae=result.scores["median_ae"],
        n_test=int(len(splits.test_indices)),
        n_probe_train=int(len(splits.train_indices)),
        probe_seeds=int(result.seed_predictions.shape[0]),  # a ridge probe is fitted once
        finetune_texts_seen=int(stats.get("finetune_texts_seen", 0)),
        finetune_tokens_seen=int(stats.get("finetune_tokens_seen", 0)),
        finetune_steps=int(stats.get("finetune_steps", 0)),
        schedule=str(stats.get("schedule", "")),
        subset_epochs=float(stats.get("subset_epochs", 0.0)),
        warmup_steps=int(stats.get("warmup_steps", 0)),
        cooldown_steps=int(stats.get("cooldown_steps", 0)),
        lr_integral=float(stats.get("lr_integral", 0.0)),
        final_mlm_loss=stats.get("final_mlm_loss"),
        train_seconds=float(stats.get("train_seconds", 0.0)),
        embed_seconds=float(embedded.seconds),
        probe_seconds=float(probe_seconds),
        checkpoint=checkpoint,
        probe_path=replicate.run.relative(run.probe_path(label, replicate.objective)),
        objective=replicate.objective.value,
        probe=probe.value,
        extras=extras,
    )


# Fewer rows than this on either side and the in-subset check says nothing (a probe on 20 rows is noise).
_MIN_CHECK_ROWS = 50


def _in_subset_probe_check(context: _RunContext, replicate: _Replicate, finetune_size: int,
                           embedded_rows: Callable[[np.ndarray], np.ndarray], probe_config,
                           probe: ProbeKind) -> dict[str, Any] | None:
    """Does a probe overfit the rows whose prices the supervised encoder trained on?

    Two probes with the same number of training rows, scored on the same held-out rows: one fitted on
    probe-training rows inside the finetune subset (the encoder saw their prices), one on rows outside
    it (it did not). A clearly lower held-out score for the inside probe means the curve's probe, which
    fits on every probe-training row, is fed embeddings the encoder has memorised. None when either side
    has fewer than ``_MIN_CHECK_ROWS`` rows (at the whole pool there is no outside).
    """
    splits, targets = replicate.splits, context.corpus.targets
    subset = np.asarray(splits.pool_order[:finetune_size])
    inside = np.intersect1d(splits.train_indices, subset)
    outside = np.setdiff1d(splits.train_indices, subset)
    rows = min(len(inside), len(outside))
    if rows < _MIN_CHECK_ROWS:
        return None
    rng = np.random.default_rng([int(replicate.seed), int(finetune_size), 17])
    check: dict[str, Any] = {"rows": int(rows), "probe": probe.value}
    for name, candidates in (("inside_subset", inside), ("outside_subset", outside)):
        chosen = np.sort(rng.choice(candidates, size=rows, replace=False))
        fitted = fit_and_score(embedded_rows(chosen), targets[chosen], embedded_rows(splits.test_indices),
                               targets[splits.test_indices], probe_config, n_seeds=1, kind=probe)
        check[name] = {key: float(fitted.scores[key]) for key in ("r2", "r2_log")}
    return check


def _summary(config: CurveConfig, corpus: Corpus, model: dict[str, str]) -> dict[str, Any]:
    objectives = [o.display for o in config.resolved_objectives()]
    return {
        "title": f"{config.model} on {corpus.report.source}: price probe vs {' / '.join(objectives)} finetuning data",
        "objectives_measured": [o.value for o in config.resolved_objectives()],
        "model": model,
        "corpus": {"source": corpus.report.source, "fingerprint": corpus.fingerprint, "rows": len(corpus)},
        "target_transform": config.probe.target_transform,
        "probes_measured": [probe.value for probe in config.resolved_probes()],
        "result_key": config.result_key(corpus.fingerprint),
    }
