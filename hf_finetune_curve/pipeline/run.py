"""``run_curve``: data -> subsets -> finetune -> embed -> probe -> curve -> samples, resumable: the driver that
calls :mod:`.setup`, :mod:`.points` and :mod:`.analysis` in order and writes the run record."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ..config import RECIPE_VERSION, CurveConfig, check_supported_launch, library_versions, recipe_choices
from ..cores import set_torch_threads
from ..curve.analysis import answer_lines, probe_agreement
from ..curve.plot import plot_curve
from ..curve.points import CurvePoint, format_table
from ..data.corpus import Corpus, load_corpus
from ..data.subsets import Splits, make_splits, parse_sizes, size_label
from ..names import Objective
from ..progress import RunProgress, log_to_file
from ..score.embed import log_truncation
from ..run_dir import RunDirectory, RunInfo
from ..space.samples import build_samples
from ..train.finetune import resolve_device
from ..train.models import load_sentence_transformer
from .parallel import current_track, run_lock, selected
from .analysis import _analyze_objectives, _objective_answers, _summary
from .points import _Replicate, _RunContext, _run_replicate
from .setup import (_VERIFY_SAMPLE, _check_scoreable, _check_supervised_sizes, _init_distributed, _log_probe_sample,
                    _prepare_run_dir, is_main_process)

logger = logging.getLogger(__name__)

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
        show_progress: one line per finished point with its result and an ETA (never a progress bar).
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
        from ..errors import OutputError

        raise OutputError(f"--output-dir {run.path} is a file, not a folder; choose another --output-dir.")
    main_process = is_main_process()
    created = main_process and not run.path.exists()
    # One run per directory: a second one fails at once instead of corrupting the first.
    lock = run_lock(run) if main_process else contextlib.nullcontext()  # a --workers worker: its track's lock
    try:
        with lock, contextlib.ExitStack() as log_file:
            return _run_curve(config, run, overwrite=overwrite, show_progress=show_progress, on_point=on_point,
                              callbacks=callbacks, log_file=log_file)
    except BaseException:
        # After a failed first attempt, leave no run directory that holds nothing a rerun could use.
        if created and run.holds_nothing_to_resume():
            shutil.rmtree(run.path, ignore_errors=True)
        raise


def _run_curve(config: CurveConfig, run: RunDirectory, *, overwrite: bool, show_progress: bool,
               on_point: Callable[[CurvePoint], None] | None, callbacks: Sequence[Any],
               log_file: contextlib.ExitStack) -> CurveResult:
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
    if main_process:  # from here (--overwrite has cleared logs/) every line also goes to logs/run.log
        log_file.enter_context(log_to_file(run.run_log_path))
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
    if distributed is None:  # several CPU processes share the cores among themselves (torchrun's own setting)
        set_torch_threads(device)
    base_model, resolved = load_sentence_transformer(config.model, device=device)
    # How many texts the embedding model cuts short, and by how much: in the log and data_report.json.
    log_truncation(base_model, corpus, config.embed_max_length, run if main_process else None)

    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    run_record = RunInfo(
        config=config.to_dict(),
        result_key=result_key,
        recipe_version=RECIPE_VERSION,
        recipe_choices=recipe_choices(config),
        finetune_sizes=sizes,
        labels=[size_label(size) for size in sizes],
        model=resolved.to_dict(),
        corpus={"source": corpus.report.source, "fingerprint": corpus.fingerprint, "rows": len(corpus)},
        split={"test_rows": int(len(splits.test_indices)), "probe_train_rows": int(len(splits.train_indices)),
               "finetune_pool_rows": int(len(splits.pool_order))},
        device=device,
        versions=library_versions(),
        created=(saved_config or {}).get("created", now),
        updated=now,
    )
    if main_process:
        run.write_config(run_record.to_dict())
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
    # One line per finished point, with its result and an ETA (no progress bars: the same lines in a file or pipe).
    progress = RunProgress(len(objectives) * (len(sizes) + len(replicate_sizes) * (len(replicates) - 1)),
                           metric=config.answer_metric, enabled=show_progress and main_process)
    # all_points[objective][r]: the points of replicate r (0: the main seed) of one objective's curve.
    all_points: dict[Objective, list[list[CurvePoint]]] = {objective: [] for objective in objectives}
    main_curves: dict[Objective, list[CurvePoint]] = {}
    for replicate in replicates:
        shared_f0: CurvePoint | None = None
        for objective in objectives:
            if not selected(replicate.seed, objective):  # a --workers worker trains its own track only
                continue
            track = dataclasses.replace(replicate, objective=objective)

            def record(point: CurvePoint, points: list[CurvePoint], track: _Replicate = track) -> None:
                if point.finetune_size != 0 or track.objective is objectives[0]:  # f0 is written once
                    track.run.write_point(point, point.objective)
                points.append(point)
                points.sort(key=lambda p: p.finetune_size)
                if track.seed == config.seed and current_track() is None:  # a worker's curve.json would be partial
                    main_curves[track.objective] = points
                    so_far = [p for curve in main_curves.values() for p in curve]
                    summary = _summary(config, corpus, resolved.to_dict())
                    run.write_curve(so_far, summary)
                    plot_curve(so_far, run.curve_png_path, title=summary["title"], analysis=summary)
                if on_point is not None:
                    on_point(point)

            curve = _run_replicate(context, track, sizes if replicate is replicates[0] else replicate_sizes, progress,
                                   record, shared_f0=shared_f0)
            shared_f0 = next((p for p in curve if p.finetune_size == 0), shared_f0)
            all_points[objective].append(curve)
    if current_track() is not None:  # a --workers worker: its points are written; the coordinator analyses them all
        return CurveResult(run_dir=run_dir, config=config, points=[], corpus=corpus, splits=splits)
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
    summary = {**_summary(config, corpus, resolved.to_dict()), **analysis}
    plot_curve(points, run.curve_png_path, title=summary.get("title"), analysis=summary)
    # The samples stage: a few hundred held-out listings with each checkpoint's predictions and 2-D map
    # (every objective's), which the Space reads.
    build_samples(run, corpus, splits)
    return CurveResult(run_dir=run_dir, config=config, points=points, corpus=corpus, splits=splits,
                       analysis=analysis, probe_points=probe_points)
