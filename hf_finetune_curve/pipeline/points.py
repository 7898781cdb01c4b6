"""The points of one replicate of one objective: skip the finished ones, score saved checkpoints, train the
rest (either schedule), and score every checkpoint with every probe."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import shutil
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..config import CurveConfig
from ..curve.points import RIDGE_ALPHA, CurvePoint
from ..data.corpus import Corpus
from ..data.subsets import Splits, size_label
from ..names import ProbeKind
from ..names import Objective
from ..progress import RunProgress
from ..run_dir import CHECKPOINT_STATS_FILE, RunDirectory
from ..score.embed import TokenCache, check_max_length, embed_texts, embedding_cache_key
from ..score.probe import PROBE_DEVICE, fit_and_score, mixed_probe_devices
from ..train.checkpoint import CHECKPOINT_HASHES_FILE, record_checkpoint_hashes, save_checkpoint
from ..train.finetune import FinetuneResult
from ..train.objectives import training_spec
from .setup import is_main_process

logger = logging.getLogger(__name__)

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
            _point_done(progress, replicate, config, points, label, timed=False)
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
            _point_done(progress, replicate, config, points, label, timed=False)
        elif finetune_size == 0:
            _score_and_record(context, replicate, 0, context.base_model, {}, context.base_model_id, points, record)
            _point_done(progress, replicate, config, points, label)
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
            _point_done(progress, replicate, config, points, label)
        else:
            to_train.append(finetune_size)
    if not to_train:
        return sorted(points, key=lambda p: p.finetune_size)

    def trained(finetune_size: int, result: FinetuneResult) -> None:
        label = size_label(finetune_size)
        # Rank 0 saves and writes; every rank embeds its share of the probe's rows (collective).
        stats = _save_trained(context, replicate, label, result) if is_main_process() else {}
        _score_and_record(context, replicate, finetune_size, result.model, stats,
                          run.relative(run.checkpoint_dir(label, objective)), points, record)
        _point_done(progress, replicate, config, points, label)

    pool_texts = [context.corpus.texts[i] for i in replicate.splits.pool_order]
    positive = [size for size in sizes if size > 0]
    done = {size for size in positive if size not in to_train}
    common = dict(seed=replicate.seed, device=context.device, completed=done, callbacks=context.callbacks,
                  show_progress=False, log_dir=run.logs_dir)  # no Trainer bars: RunProgress prints a line per point
    # The objective's own settings: its peak rate, and the distillation term for mlm-distill only.
    finetune = config.finetune.for_objective(objective)
    # The objective's spec says which engine trains it; the train layer checks it implements the spec's loss.
    if training_spec(objective).engine == "sentence":
        from ..train.sentence_objectives import finetune_objective_independent

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
        from ..train.branching import finetune_branching

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
        from ..train.finetune import finetune_independent

        plan = {**finetune_independent(
            context.base_model, pool_texts, positive, finetune, on_point=trained,
            work_dir=run.independent_work_dir(objective), **common,
        ).summary(), "learning_rate": finetune.effective_learning_rate(objective),
            "distill_weight": finetune.distill_weight}
    if is_main_process():
        run.write_training_plan(plan, objective)
    return sorted(points, key=lambda p: p.finetune_size)


def _point_done(progress: RunProgress, replicate: _Replicate, config: CurveConfig, points: Sequence[CurvePoint],
                label: str, *, timed: bool = True) -> None:
    """The progress line of the point ``label`` just recorded in ``points`` (its answer metric and ETA)."""
    point = next((p for p in points if p.label == label), None)
    value = getattr(point, config.answer_metric, None) if point is not None else None
    progress.point_done(f"{label}{replicate.suffix(config.seed)}", value, timed=timed, floor=label == "f0")


def _damaged_checkpoint(run: RunDirectory, label: str, objective: Objective) -> str | None:
    """Why the saved checkpoint of ``label`` cannot be trusted (a sentence naming the folder and file), or None
    when it is absent, matches its recorded hashes, or predates them and its weights open."""
    from ..errors import CheckpointDamagedError

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
    if "distill_weight" in replicate.objective.spec.options:
        stats["distill_weight"] = context.config.finetune.for_objective(replicate.objective).distill_weight
    if replicate.objective.starts_from is not None:
        # Two stages, each the size's full recipe: the budget is the sum, recorded stage by stage.
        first = replicate.run.read_checkpoint_stats(label, replicate.objective.starts_from) or {}
        loss_key = replicate.objective.spec.loss  # the second stage is named by its loss (mlm-simcse: simcse)
        stats["stages"] = {
            replicate.objective.starts_from.value: {key: first.get(key) for key in (
                "finetune_steps", "finetune_tokens_seen", "train_seconds", "learning_rate", "schedule")},
            loss_key: {"finetune_steps": result.optimizer_steps, "finetune_tokens_seen": result.tokens_seen,
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
    point = _score_point(context, replicate, finetune_size, embedded, stats, checkpoint)
    mixed = mixed_probe_devices(points, point.extras[PROBE_DEVICE])
    if mixed:
        logger.warning("%s: its probe ran on %s, but the probes of %s ran elsewhere (points record probe_device): "
                       "XGBoost's CPU and CUDA fits round differently; --probe-arg device=... pins one",
                       point.label, point.extras[PROBE_DEVICE], ", ".join(mixed))
    record(point, points)
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
    # The base model's length unless --embed-max-length, for every point alike: a checkpoint's own length comes
    # from its saved tokenizer config, and a checkpoint from another library version must not read other tokens.
    length = check_max_length(context.base_model, config.embed_max_length)
    cache_key = embedding_cache_key(checkpoint_id, corpus.fingerprint, length)
    # The main run's cache serves every replicate (the key names the replicate's seed).
    cache_path = context.run.embedding_cache_path(label, cache_key, replicate.objective)
    texts = [corpus.texts[i] for i in rows]
    return embed_texts(model, texts, batch_size=config.embed_batch_size, cache_path=cache_path,
                       show_progress=False, distributed=True,  # no bars: RunProgress prints a line per point
                       max_length=length, tokens=context.tokens)


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
    extras[PROBE_DEVICE] = result.device  # a resumed run on another machine must not mix devices unseen
    if replicate.objective.uses_labels and finetune_size > 0:
        check = _in_subset_probe_check(context, replicate, finetune_size, embedded_rows, probe_config, probe)
        if check is not None:
            extras["probe_in_subset_check"] = check
    probe_seconds = time.perf_counter() - probe_started
    run.write_probe(label, result.probe, replicate.objective)
    # Every probe seed's predictions (the intervals resample them), then their mean (what the
    # point scores): a point whose mean file exists is complete.
    run.write_predictions(label, result.predictions, result.seed_predictions, replicate.objective)
    # The primary probe's scores: in the run's log; the terminal's progress line carries the answer metric.
    level = logging.DEBUG if context.show_progress and probe is primary else logging.INFO
    logger.log(level, "%s%s%s: R² %.4f  log R² %.4f  MAE %.2f  MedAE %.2f%s", label, replicate.suffix(config.seed),
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
