"""Curve analysis: how sure the curve is, and how much data is enough.

From every checkpoint's held-out predictions this computes a bootstrap 95% interval per point,
paired deltas against the factory-floor model (same resamples for both, so "f50k beats f0" is a
test), saturating fits of each metric against finetune size with a band, and the answer:
N needed for 90% / 95% of the attainable gain, marginal gain per 10k texts at the largest size,
the extrapolated metric at 2x the largest size, and a back-test of the fit.

Example:
    >>> from hf_finetune_curve.analysis import analyze_curve
    >>> summary = analyze_curve(points, y_test, predictions_by_label)  # doctest: +SKIP
    >>> summary["answer"]["n_for_90"]  # doctest: +SKIP
"""

from __future__ import annotations

import math

import logging
from typing import Any, Mapping, Sequence

import numpy as np

from .curve import METRICS, CurvePoint
from .curve_fit import fit_curve, json_safe
from .uncertainty import aggregate_seeds, bootstrap_replicates, bootstrap_scores, paired_bootstrap_delta

logger = logging.getLogger(__name__)

MIN_SIZES_FOR_ANSWER = 5
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
) -> dict[str, Any]:
    """Intervals, paired deltas, fitted curves and the "how much is enough" answer.

    ``points`` are updated in place: ``extras["intervals"]``, ``extras["delta_vs_f0"]`` and, with
    ``replicate_points`` (the same sizes finetuned with other seeds), ``extras["seeds"]``.
    Returns the JSON-friendly sections written into ``curve.json``.
    """
    points = sorted(points, key=lambda p: p.finetune_size)
    y_test = np.asarray(y_test, dtype=np.float64)
    base = points[0] if points and points[0].finetune_size == 0 else None
    replicates: dict[str, dict[str, np.ndarray]] = {}
    for point in points:
        pred = predictions.get(point.label)
        if pred is None:
            continue
        intervals = bootstrap_scores(y_test, pred, n_resamples=n_resamples, confidence=confidence, seed=seed)
        point.extras["intervals"] = {metric: interval.to_dict() for metric, interval in intervals.items()}
        replicates[point.label] = bootstrap_replicates(y_test, pred, n_resamples=n_resamples, seed=seed)
        if base is not None and point is not base and base.label in predictions:
            deltas = paired_bootstrap_delta(y_test, predictions[base.label], pred, n_resamples=n_resamples,
                                            confidence=confidence, seed=seed)
            point.extras["delta_vs_f0"] = {metric: delta.to_dict() for metric, delta in deltas.items()}

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

    sizes = [p.finetune_size for p in points if p.label in replicates]
    fits: dict[str, Any] = {}
    answer: dict[str, Any] = {"available": False}
    warnings: list[str] = []
    if len(set(sizes)) < MIN_SIZES_FOR_ANSWER:
        warnings.append(
            f"Only {len(set(sizes))} sizes: a saturating curve is not identifiable with fewer than "
            f"{MIN_SIZES_FOR_ANSWER}, so no 'N needed' estimate is given. Run more sizes (e.g. --sizes 0,1k,2k,5k,10k,all)."
        )
    if len(set(sizes)) >= 3 and any(size > 0 for size in sizes):
        labels = [p.label for p in points if p.label in replicates]
        for metric, _, higher_is_better in METRICS:
            values = [_seed_mean(p, metric) for p in points if p.label in replicates]
            resamples = np.column_stack([replicates[label][metric][:_FIT_BOOT] for label in labels])
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
        if "r2" in fits:
            r2_fit = fits["r2"]
            by_fraction = {round(entry["fraction"], 2): entry for entry in r2_fit["answer"]}
            answer = {
                "available": True,
                "metric": "r2",
                "family": r2_fit["family"],
                "n_for_90": by_fraction.get(0.9),
                "n_for_95": by_fraction.get(0.95),
                "marginal_gain_per_10k": r2_fit["marginal_gain_per_10k"],
                "extrapolate_2x": r2_fit["extrapolate_2x"],
                "backtest": r2_fit["backtest"],
                "warnings": r2_fit["warnings"],
            }
    result = {
        "uncertainty": {"method": "percentile bootstrap over held-out rows", "n_resamples": n_resamples,
                        "confidence": confidence, "seed": seed},
        "fit": fits,
        "answer": answer,
        "warnings": warnings,
    }
    if seeds_section:
        result["seeds"] = seeds_section
    if baseline:
        result["baselines"] = baseline
    return result


def _seed_mean(point: CurvePoint, metric: str) -> float:
    seeds = point.extras.get("seeds", {}).get(metric)
    return float(seeds["mean"]) if seeds else float(getattr(point, metric))


def _grid(sizes: Sequence[int]) -> np.ndarray:
    largest = max(sizes)
    positive = [s for s in sizes if s > 0]
    start = min(positive) / 4 if positive else 1
    grid = np.unique(np.concatenate([[0.0], np.geomspace(start, 2 * largest, 60), np.asarray(sizes, float)]))
    return grid


def answer_lines(summary: Mapping[str, Any]) -> list[str]:
    """The answer as sentences for ``hf-curve report``."""
    lines: list[str] = []
    answer = summary.get("answer") or {}
    for warning in summary.get("warnings", []):
        lines.append(f"warning: {warning}")
    if not answer.get("available"):
        return lines
    lines.append(f"Fitted R² curve: {answer['family']} family (chosen by AICc).")
    for key in ("n_for_90", "n_for_95"):
        entry = answer.get(key)
        if not entry:
            continue
        share = f"{int(round(entry['fraction'] * 100))}%"
        if entry.get("n_needed") is None:
            lines.append(f"N for {share} of the attainable R² gain: not estimated ({entry.get('reason')}).")
        else:
            high = "unbounded" if entry.get("high") is None else f"{entry['high']:,.0f}"
            low = "?" if entry.get("low") is None else f"{entry['low']:,.0f}"
            note = f" [{entry['note']}]" if entry.get("note") else ""
            lines.append(f"N for {share} of the attainable R² gain: {entry['n_needed']:,.0f} "
                         f"(95% interval {low} to {high}){note}")
    marginal = answer.get("marginal_gain_per_10k") or {}
    if marginal.get("metric_change") is not None:
        lines.append(f"Marginal R² per extra 10k texts at {marginal['at_size']:,.0f}: {marginal['metric_change']:+.4f} "
                     f"(interval {_fmt(marginal.get('low'))} to {_fmt(marginal.get('high'))})")
    extrapolated = answer.get("extrapolate_2x") or {}
    if extrapolated.get("predicted") is not None:
        lines.append(f"Extrapolated R² at {extrapolated['size']:,.0f} (2x largest): {extrapolated['predicted']:.4f} "
                     f"(interval {_fmt(extrapolated.get('low'))} to {_fmt(extrapolated.get('high'))})")
    backtest = answer.get("backtest") or {}
    if backtest.get("available"):
        verdict = "inside" if backtest["within_interval"] else "OUTSIDE"
        lines.append(f"Back-test: refit without {backtest['held_out_size']:,.0f} predicts R² {backtest['predicted']:.4f}, "
                     f"observed {backtest['observed']:.4f}, miss {backtest['miss']:+.4f} ({verdict} its interval "
                     f"{backtest['low']:.4f} to {backtest['high']:.4f})")
    elif backtest:
        lines.append(f"Back-test: not available ({backtest.get('reason')})")
    for warning in answer.get("warnings", []):
        lines.append(f"fit warning: {warning}")
    return lines


def _fmt(value: Any) -> str:
    return "?" if value is None else f"{value:+.4f}"
