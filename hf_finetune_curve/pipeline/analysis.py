"""After the points: the curve's analysis per objective and probe (intervals, fit, answer), the TF-IDF
baseline, and the summary written beside the points in curve.json."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Sequence

import numpy as np

from ..config import CurveConfig
from ..curve.analysis import analyze_curve
from ..curve.points import CurvePoint
from ..data.corpus import Corpus
from ..data.subsets import Splits
from ..names import ProbeKind
from ..names import Objective
from ..run_dir import RunDirectory
from .points import _RunContext

logger = logging.getLogger(__name__)

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
        from ..curve.compare import compare_objectives

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
    from ..curve.uncertainty import hierarchical_bootstrap
    from ..score.baselines import tfidf_baseline

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
