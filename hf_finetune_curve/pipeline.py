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

from .config import NON_RESULT_FIELDS, RECIPE_VERSION, CurveConfig, library_versions
from .curve.analysis import analyze_curve, answer_lines
from .curve.points import CurvePoint, format_table
from .data.corpus import Corpus, load_corpus
from .data.subsets import Splits, make_splits, parse_sizes, size_label
from .errors import ConfigError, CorpusError, RunDirectoryConflictError
from .run_dir import CHECKPOINT_STATS_FILE, RunDirectory
from .score.embed import embed_texts, embedding_cache_key
from .score.probe import fit_and_score
from .score.samples import build_samples
from .train.checkpoint import save_checkpoint
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
    device = resolve_device(config.device)
    if distributed is not None and device.startswith("cuda"):
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"  # one GPU per process, not all on GPU 0
    base_model, resolved = load_sentence_transformer(config.model, device=device)

    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    run_record = {
        "config": config.to_dict(),
        "result_key": result_key,
        "recipe_version": RECIPE_VERSION,
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
    if not main_process:
        return CurveResult(run_dir=run_dir, config=config, points=points, corpus=corpus, splits=splits)
    analysis = _analyze_objectives(context, splits, objectives, all_points, [r.run for r in replicates[1:]])
    run.write_curve(points, {**_summary(config, corpus, resolved.to_dict()), **analysis})
    # The samples stage: a few hundred held-out listings with each checkpoint's predictions and 2-D map
    # (every objective's), which the Space reads.
    build_samples(run, corpus, splits)
    return CurveResult(run_dir=run_dir, config=config, points=points, corpus=corpus, splits=splits,
                       analysis=analysis)


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


def _analyze_objectives(context: _RunContext, splits: Splits, objectives: list[Objective],
                        all_points: dict[Objective, list[list[CurvePoint]]],
                        replicate_runs: list[RunDirectory]) -> dict[str, Any]:
    """The first objective's analysis at the top level (as for a one-objective run), each objective's
    under ``objectives``, and with several, the paired comparison between them (``comparison``)."""
    y_test = context.corpus.targets[splits.test_indices]
    context.run.write_y_test(y_test)
    # Per objective and label: (finetune seeds, probe seeds, test rows), read once for the analyses
    # and the comparison.
    predictions = {o: _load_predictions(context.run, all_points[o][0], replicate_runs) for o in objectives}
    analyses = {objective: _analyze(context, splits, y_test, all_points[objective][0], predictions[objective],
                                    all_points[objective][1:], with_baseline=objective is objectives[0])
                for objective in objectives}
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
    points: list[CurvePoint] = []
    to_train: list[int] = []
    for finetune_size in sizes:
        label = size_label(finetune_size)
        checkpoint_dir = run.checkpoint_dir(label, objective)
        if finetune_size == 0 and shared_f0 is not None:
            point = dataclasses.replace(shared_f0, objective=objective.value, extras={})
            record(point, points)
            progress.update()
        elif label in finished:
            logger.info("%s%s already finished, skipping", label, replicate.suffix(config.seed))
            points.append(finished[label])
            progress.update()
        elif finetune_size == 0:
            _score_and_record(context, replicate, 0, context.base_model, {}, context.base_model_id, points, record)
            progress.update()
        elif run.has_checkpoint(label, objective) and run.read_checkpoint_stats(label, objective) is None:
            # Not a checkpoint this version wrote in one step (statistics missing): train it again.
            logger.warning("%s: %s has no %s; training it again", label, checkpoint_dir, CHECKPOINT_STATS_FILE)
            shutil.rmtree(checkpoint_dir)
            to_train.append(finetune_size)
        elif run.has_checkpoint(label, objective):
            # Saved and verified before an interruption (saving renames into place only after the check).
            from sentence_transformers import SentenceTransformer

            logger.info("%s: reusing the verified checkpoint %s", label, checkpoint_dir)
            model = SentenceTransformer(str(checkpoint_dir), device=context.device)
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
    if objective is not Objective.MLM:
        from .train.sentence_objectives import finetune_objective_independent

        if config.schedule == "branching":
            logger.info("Independent schedule%s, not branching: every size trains from the base model. A branch "
                        "resumes a Trainer checkpoint, and sentence-transformers' checkpoints do not hold TSDAE's "
                        "decoder; branching the sentence objectives is not implemented", replicate.suffix(config.seed))
        plan = finetune_objective_independent(
            context.base_model, pool_texts, positive, config.finetune, objective, on_point=trained,
            work_dir=run.independent_work_dir(objective), **common,
        )
        if is_main_process():
            run.write_training_plan(plan, objective)
        return sorted(points, key=lambda p: p.finetune_size)
    if config.schedule == "branching":
        from .train.branching import finetune_branching

        logger.info("Branching schedule%s: one warmup-stable main run over %s, a cooldown branch per size",
                    replicate.suffix(config.seed), ", ".join(size_label(s) for s in positive))
        branching = finetune_branching(
            context.base_model, pool_texts, positive, config.finetune, on_branch=trained,
            state_dir=run.branching_state_dir, **common,
        )
        plan = branching.plan
        if is_main_process():
            run.write_branching_summary(branching.to_dict())
    else:
        from .train.finetune import finetune_independent

        plan = finetune_independent(
            context.base_model, pool_texts, positive, config.finetune, on_point=trained,
            work_dir=run.independent_work_dir(), **common,
        ).summary()
    if is_main_process():
        run.write_training_plan(plan)
    return sorted(points, key=lambda p: p.finetune_size)


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
        "text_unit": context.config.finetune.text_unit if replicate.objective is not Objective.MLM else None,
        "final_mlm_loss": result.final_loss,
        "train_seconds": result.train_seconds,
        "chunk_length": result.chunk_length,
        "num_chunks": result.num_chunks,
    }
    save_checkpoint(result.model, replicate.run.checkpoint_dir(label, replicate.objective), context.sample_texts,
                    extra_json={CHECKPOINT_STATS_FILE: stats})
    return stats


def _score_and_record(context: _RunContext, replicate: _Replicate, finetune_size: int, model, stats: dict[str, Any],
                      checkpoint: str, points: list[CurvePoint],
                      record: Callable[[CurvePoint, list[CurvePoint]], None]) -> None:
    embedded = _embed_point(context, replicate, finetune_size, model)  # every rank takes part
    if not is_main_process():
        return
    record(_score_point(context, replicate, finetune_size, embedded, stats, checkpoint), points)


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
    cache_key = embedding_cache_key(checkpoint_id, corpus.fingerprint, model.max_seq_length)
    # The main run's cache serves every replicate (the key names the replicate's seed).
    cache_path = context.run.embedding_cache_path(label, cache_key, replicate.objective)
    texts = [corpus.texts[i] for i in rows]
    return embed_texts(model, texts, batch_size=config.embed_batch_size, cache_path=cache_path,
                       show_progress=context.show_progress, distributed=True)


def _score_point(context: _RunContext, replicate: _Replicate, finetune_size: int, embedded, stats: dict[str, Any],
                 checkpoint: str) -> CurvePoint:
    """Fit the probe on the train split of the embedded probe rows and score the test split."""
    config, corpus = context.config, context.corpus
    run, splits = replicate.run, replicate.splits
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
        n_seeds=int(config.probe_seeds),
    )
    probe_seconds = time.perf_counter() - probe_started
    run.write_probe(label, result.probe, replicate.objective)
    # Every probe seed's predictions (the intervals resample them), then their mean (what the
    # point scores): a point whose mean file exists is complete.
    run.write_predictions(label, result.predictions, result.seed_predictions, replicate.objective)
    logger.info("%s%s: R² %.4f  log R² %.4f  MAE %.2f  MedAE %.2f", label, replicate.suffix(config.seed),
                result.scores["r2"], result.scores["r2_log"], result.scores["mae"], result.scores["median_ae"])
    return CurvePoint(
        finetune_size=int(finetune_size),
        label=label,
        r2=result.scores["r2"],
        r2_log=result.scores["r2_log"],
        mae=result.scores["mae"],
        median_ae=result.scores["median_ae"],
        n_test=int(len(splits.test_indices)),
        n_probe_train=int(len(splits.train_indices)),
        probe_seeds=int(config.probe_seeds),
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
        probe_path=run.relative(run.probe_path(label, replicate.objective)),
        objective=replicate.objective.value,
    )


def _summary(config: CurveConfig, corpus: Corpus, model: dict[str, str]) -> dict[str, Any]:
    objectives = [o.display for o in config.resolved_objectives()]
    return {
        "title": f"{config.model} on {corpus.report.source}: price probe vs {' / '.join(objectives)} finetuning data",
        "objectives_measured": [o.value for o in config.resolved_objectives()],
        "model": model,
        "corpus": {"source": corpus.report.source, "fingerprint": corpus.fingerprint, "rows": len(corpus)},
        "target_transform": config.probe.target_transform,
        "result_key": config.result_key(corpus.fingerprint),
    }
