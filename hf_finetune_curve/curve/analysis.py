"""Curve analysis: how sure the curve is, and how much data is enough.

From every checkpoint's held-out predictions this computes a bootstrap 95% interval per point,
paired deltas against the factory-floor model (same resamples for both, so "f50k beats f0" is a
test), saturating fits of each metric against finetune size with a band, and the answer:
N needed for 90% / 95% of the attainable gain, marginal gain per 10k texts at the largest size,
the extrapolated metric at 2x the largest size, and a back-test of the fit.

Example:
    >>> from hf_finetune_curve.curve.analysis import analyze_curve
    >>> summary = analyze_curve(points, y_test, predictions_by_label)  # doctest: +SKIP
    >>> summary["answer"]["n_for_90"]  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
from typing import Any, Mapping, Sequence

import numpy as np

from .fit import MIN_SIZES_FOR_ANSWER, fit_curve, json_safe, suggest_next_size
from .points import METRICS, CurvePoint
from .uncertainty import aggregate_seeds, hierarchical_bootstrap

HIGHER = {metric: higher for metric, _, higher in METRICS}

logger = logging.getLogger(__name__)

_FIT_BOOT = 200


def analyze_curve(
    points: Sequence[CurvePoint],
    y_test: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    replicate_points: Sequence[Sequence[CurvePoint]] = (),
    baseline: dict[str, Any] | None = None,
    answer_metric: str = "r2_log",
    pool_size: int | None = None,
) -> dict[str, Any]:
    """Intervals, paired deltas, fitted curves, the "how much is enough" answer and the next size.

    ``predictions`` maps a label to its held-out predictions, shaped ``(finetune_seeds,
    probe_seeds, n_test)`` (fewer dimensions: one seed at the missing levels). Every interval,
    paired delta and the curve fit's band come from one :func:`hierarchical_bootstrap` of all
    points (rows, probe seeds and finetune seeds resampled jointly). ``points`` are updated in
    place: ``extras["intervals"]``, ``extras["delta_vs_f0"]`` and, with ``replicate_points`` (the
    same sizes finetuned with other seeds), ``extras["seeds"]``. ``answer_metric`` is the metric
    the answer reads; ``pool_size`` (the largest size a run can add) bounds the next-size
    suggestion. Returns the JSON-friendly sections written into ``curve.json``.
    """
    if answer_metric not in HIGHER:
        raise ValueError(f"answer_metric must be one of {sorted(HIGHER)}, got {answer_metric!r}.")
    points = sorted(points, key=lambda p: p.finetune_size)
    y_test = np.asarray(y_test, dtype=np.float64)
    scored = [p for p in points if p.label in predictions]
    boot = hierarchical_bootstrap(y_test, {p.label: predictions[p.label] for p in scored},
                                  n_resamples=n_resamples, seed=seed) if scored else None
    base = points[0] if points and points[0].finetune_size == 0 else None
    for point in scored:
        point.extras["intervals"] = {metric: boot.interval(metric, point.label, confidence).to_dict()
                                     for metric in HIGHER}
        if base is not None and point is not base and base in scored:
            point.extras["delta_vs_f0"] = {metric: boot.delta(metric, base.label, point.label, confidence).to_dict()
                                           for metric in HIGHER}

    seeds_section: dict[str, Any] = {}
    if replicate_points:
        for point in points:
            same = [p for run in replicate_points for p in run if p.label == point.label]
            if not same:
                continue
            point.extras["seeds"] = {}
            for metric, _, _ in METRICS:
                values = [getattr(point, metric)] + [getattr(p, metric) for p in same]
                if all(v is not None and math.isfinite(v) for v in values):
                    point.extras["seeds"][metric] = aggregate_seeds(values, confidence)
        seeds_section = {"n_seeds": 1 + len(replicate_points)}

    sizes = [p.finetune_size for p in scored]
    fits: dict[str, Any] = {}
    fit_objects: dict[str, Any] = {}
    answer: dict[str, Any] = {"available": False, "metric": answer_metric}
    warnings: list[str] = []
    if len(set(sizes)) < MIN_SIZES_FOR_ANSWER:
        warnings.append(
            f"Only {len(set(sizes))} sizes: a saturating curve is not identifiable with fewer than "
            f"{MIN_SIZES_FOR_ANSWER}, so no 'N needed' estimate is given. Run more sizes (e.g. --sizes 0,1k,2k,5k,10k,all)."
        )
    if boot is not None and len(set(sizes)) >= 3 and any(size > 0 for size in sizes):
        columns = [boot.column(p.label) for p in scored]
        for metric, _, higher_is_better in METRICS:
            values = boot.estimates[metric][columns]
            resamples = boot.replicates[metric][:, columns]
            try:
                fit = fit_curve(sizes, values, higher_is_better=higher_is_better, point_resamples=resamples,
                                n_boot=min(_FIT_BOOT, resamples.shape[0]), seed=seed, confidence=confidence)
            except ValueError as exc:
                warnings.append(f"{metric}: no curve fit ({exc})")
                continue
            grid = _grid(sizes)
            low, high = fit.predict_interval(grid)
            summary = fit.to_dict()
            summary["grid"] = {"sizes": grid.tolist(), "predicted": json_safe(fit.predict(grid)),
                               "low": json_safe(low), "high": json_safe(high)}
            fits[metric] = summary
            fit_objects[metric] = fit
        if answer_metric not in fits and "r2" in fits:
            # r2_log is undefined when a prediction is <= 0 (a probe on raw prices can give those).
            warnings.append(f"no {answer_metric} fit: the answer uses r2 instead")
            answer_metric = "r2"
        if answer_metric in fits:
            chosen = fits[answer_metric]
            by_fraction = {round(entry["fraction"], 2): entry for entry in chosen["answer"]}
            answer = {
                "available": True,
                "metric": answer_metric,
                "family": chosen["family"],
                "selection": chosen.get("selection"),
                "monotone": chosen.get("monotone"),
                "hurts": chosen.get("hurts", False),
                "below_base": chosen.get("below_base", []),
                "n_for_90": by_fraction.get(0.9),
                "n_for_95": by_fraction.get(0.95),
                "marginal_gain_per_10k": chosen["marginal_gain_per_10k"],
                "extrapolate_2x": chosen["extrapolate_2x"],
                "backtest": chosen["backtest"],
                "next_size": suggest_next_size(fit_objects[answer_metric], max_size=pool_size),
                "warnings": chosen["warnings"],
            }
    result = {
        "uncertainty": {
            "method": "hierarchical percentile bootstrap: held-out rows, probe seeds and finetune seeds "
                      "resampled jointly, the same resamples for every point",
            "levels": boot.levels() if boot is not None else ["rows"],
            "probe_seeds": int(boot.probe_seeds.max()) if boot is not None else 1,
            "finetune_seeds": int(boot.finetune_seeds.max()) if boot is not None else 1,
            "n_resamples": n_resamples, "confidence": confidence, "seed": seed,
        },
        "fit": fits,
        "answer": answer,
        "warnings": warnings,
    }
    if seeds_section:
        result["seeds"] = seeds_section
    if baseline:
        result["baselines"] = baseline
    return result


def _grid(sizes: Sequence[int]) -> np.ndarray:
    largest = max(sizes)
    positive = [s for s in sizes if s > 0]
    start = min(positive) / 4 if positive else 1
    grid = np.unique(np.concatenate([[0.0], np.geomspace(start, 2 * largest, 60), np.asarray(sizes, float)]))
    return grid


_NAMES = {metric: name for metric, name, _ in METRICS}
_SELECTION = {"aic_known_noise": "AIC on the points' bootstrap noise", "aicc": "AICc"}


def answer_lines(summary: Mapping[str, Any]) -> list[str]:
    """The answer as sentences for ``hf-curve report``."""
    lines: list[str] = []
    answer = summary.get("answer") or {}
    uncertainty = summary.get("uncertainty") or {}
    for warning in summary.get("warnings", []):
        lines.append(f"warning: {warning}")
    if uncertainty.get("levels"):
        missing = [level for level in ("probe seeds", "finetune seeds") if level not in uncertainty["levels"]]
        note = f" (not {' or '.join(missing)}: one of each, so their noise is not measured)" if missing else ""
        lines.append(f"Intervals resample {', '.join(uncertainty['levels'])}{note}.")
    if not answer.get("available"):
        return lines
    name = _NAMES.get(answer.get("metric", "r2"), answer.get("metric", "r2"))
    selection = _SELECTION.get(answer.get("selection") or "aicc", answer.get("selection"))
    lines.append(f"Fitted {name} curve: {answer['family']} family (chosen by {selection}).")
    if answer.get("monotone") is False:
        lines.append("The curve is not monotone: a larger size scored significantly worse than a smaller one "
                     "(see the fit warnings).")
    if answer.get("hurts"):
        changes = ", ".join(f"{entry['size']:,.0f}: {entry['change']:+.4f}" for entry in answer.get("below_base", []))
        lines.append(f"Finetuning hurts: every finetuned size scores significantly worse on {name} than the factory "
                     f"model ({changes}). With this recipe, no amount of this data is enough: keep the factory model "
                     "or measure another recipe.")
    for key in ("n_for_90", "n_for_95"):
        entry = answer.get(key)
        if not entry:
            continue
        share = f"{int(round(entry['fraction'] * 100))}%"
        if entry.get("n_needed") is None:
            lines.append(f"N for {share} of the attainable {name} gain: not estimated ({entry.get('reason')}).")
        else:
            high = "unbounded" if entry.get("high") is None else f"{entry['high']:,.0f}"
            low = "?" if entry.get("low") is None else f"{entry['low']:,.0f}"
            note = f" [{entry['note']}]" if entry.get("note") else ""
            lines.append(f"N for {share} of the attainable {name} gain: {entry['n_needed']:,.0f} "
                         f"(95% interval {low} to {high}){note}")
    # A curve below its own starting point has no gain to extrapolate: the fitted line's level sits
    # between f0 and the finetuned points and describes neither.
    marginal = {} if answer.get("hurts") else answer.get("marginal_gain_per_10k") or {}
    if marginal.get("metric_change") is not None:
        lines.append(f"Marginal {name} per extra 10k texts at {marginal['at_size']:,.0f}: {marginal['metric_change']:+.4f} "
                     f"(interval {_fmt(marginal.get('low'))} to {_fmt(marginal.get('high'))})")
    extrapolated = {} if answer.get("hurts") else answer.get("extrapolate_2x") or {}
    if extrapolated.get("predicted") is not None:
        lines.append(f"Extrapolated {name} at {extrapolated['size']:,.0f} (2x largest): {extrapolated['predicted']:.4f} "
                     f"(interval {_fmt(extrapolated.get('low'))} to {_fmt(extrapolated.get('high'))})")
    backtest = answer.get("backtest") or {}
    if backtest.get("available"):
        verdict = "inside" if backtest["within_interval"] else "OUTSIDE"
        lines.append(f"Back-test: refit without {backtest['held_out_size']:,.0f} predicts {name} {backtest['predicted']:.4f}, "
                     f"observed {backtest['observed']:.4f}, miss {backtest['miss']:+.4f} ({verdict} its interval "
                     f"{backtest['low']:.4f} to {backtest['high']:.4f})")
    elif backtest:
        lines.append(f"Back-test: not available ({backtest.get('reason')})")
    next_size = answer.get("next_size") or {}
    if next_size.get("available"):
        if next_size.get("size") is not None:
            lines.append(f"Next size to measure: {next_size['size']:,.0f} ({next_size['reason']}).")
        else:
            lines.append(f"Next size: none needed ({next_size['reason']}).")
    for warning in answer.get("warnings", []):
        lines.append(f"fit warning: {warning}")
    return lines


def _fmt(value: Any) -> str:
    return "?" if value is None else f"{value:+.4f}"
