"""Objectives side by side: paired deltas at each size, and which reaches the best metric with least data.

All objectives of a run score the same held-out rows with the same probe settings, so two
checkpoints are compared *paired*: the same bootstrap resamples score both, and "TSDAE beats MLM at
f2k" is a test rather than two overlapping bars. With ``--seeds``, the across-seed mean and spread
of each difference is reported beside it.

"Reaches the best": the best point of the run (highest seed-mean R², or lowest error) is found over
every objective and size; an objective reaches it at the smallest size whose paired delta against
that best point has an interval containing 0 (not distinguishable from the best). The objective
that does so at the smallest size is the one that "reaches the best metric with the least data".

Example:
    >>> from hf_finetune_curve.compare import compare_objectives, comparison_lines
    >>> summary = compare_objectives(curves, predictions, y_test)  # doctest: +SKIP
    >>> print("\\n".join(comparison_lines(summary)))  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Mapping, Sequence

import numpy as np

from .curve import CurvePoint
from .objectives import Objective
from .uncertainty import aggregate_seeds, paired_bootstrap_delta

# (metric, display name, higher is better) compared between objectives.
COMPARED = (("r2", "R²", True), ("r2_log", "log R²", True), ("mae", "MAE", False), ("median_ae", "MedAE", False))


def _seed_value(point: CurvePoint, metric: str, replicates: Sequence[Sequence[CurvePoint]]) -> float:
    values = [getattr(point, metric)] + [getattr(p, metric) for run in replicates for p in run
                                         if p.label == point.label]
    values = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def compare_objectives(
    curves: Mapping[str, Sequence[CurvePoint]],
    predictions: Mapping[str, Mapping[str, np.ndarray]],
    y_test: np.ndarray,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    replicate_points: Mapping[str, Sequence[Sequence[CurvePoint]]] | None = None,
) -> dict[str, Any]:
    """Paired deltas between every two objectives at every size both have, and the "least data" answer.

    Args:
        curves: objective -> its points (main seed), f0 included.
        predictions: objective -> label -> held-out predictions of that point.
        y_test: the held-out targets every prediction scores.
        replicate_points: objective -> the same curve under the other seeds (for the spread of deltas).

    Returns a JSON-friendly dict: ``pairs`` (one entry per objective pair and size: ``a``, ``b``,
    ``label``, ``size``, ``deltas`` of ``b - a`` per metric, ``seed_deltas``) and ``best`` (per
    metric: the best point and the smallest size at which each objective reaches it).
    """
    y_test = np.asarray(y_test, dtype=np.float64)
    replicate_points = replicate_points or {}
    objectives = list(curves)
    pairs: list[dict[str, Any]] = []
    for a, b in itertools.combinations(objectives, 2):
        by_label_a = {p.label: p for p in curves[a]}
        for point_b in curves[b]:
            point_a = by_label_a.get(point_b.label)
            if point_a is None or point_b.finetune_size == 0:
                continue
            pred_a, pred_b = predictions[a].get(point_a.label), predictions[b].get(point_b.label)
            if pred_a is None or pred_b is None:
                continue
            deltas = paired_bootstrap_delta(y_test, pred_a, pred_b, n_resamples=n_resamples, confidence=confidence,
                                            seed=seed)
            entry = {"a": a, "b": b, "label": point_b.label, "size": int(point_b.finetune_size),
                     "deltas": {metric: deltas[metric].to_dict() for metric, _, _ in COMPARED}}
            seed_deltas = _seed_deltas(point_a, point_b, replicate_points.get(a, ()), replicate_points.get(b, ()),
                                       confidence)
            if seed_deltas:
                entry["seed_deltas"] = seed_deltas
            pairs.append(entry)
    best = {metric: _best(curves, predictions, y_test, metric, higher, replicate_points, n_resamples=n_resamples,
                          confidence=confidence, seed=seed)
            for metric, _, higher in COMPARED}
    return {"objectives": objectives, "pairs": pairs, "best": best,
            "method": "paired percentile bootstrap over held-out rows (b - a), main seed's predictions",
            "n_resamples": int(n_resamples), "confidence": float(confidence)}


def _seed_deltas(point_a: CurvePoint, point_b: CurvePoint, runs_a: Sequence[Sequence[CurvePoint]],
                 runs_b: Sequence[Sequence[CurvePoint]], confidence: float) -> dict[str, Any]:
    """Per-seed differences b - a (the main seed first, then the replicates both have), aggregated."""
    per_seed = [(point_a, point_b)]
    for run_a, run_b in zip(runs_a, runs_b):
        match_a = next((p for p in run_a if p.label == point_a.label), None)
        match_b = next((p for p in run_b if p.label == point_b.label), None)
        if match_a is not None and match_b is not None:
            per_seed.append((match_a, match_b))
    if len(per_seed) < 2:
        return {}
    out = {}
    for metric, _, _ in COMPARED:
        values = [getattr(pb, metric) - getattr(pa, metric) for pa, pb in per_seed]
        if all(v is not None and math.isfinite(v) for v in values):
            out[metric] = aggregate_seeds(values, confidence)
    return out


def _best(curves, predictions, y_test, metric: str, higher: bool, replicate_points, *, n_resamples: int,
          confidence: float, seed: int) -> dict[str, Any]:
    candidates = [(objective, point) for objective, curve in curves.items() for point in curve
                  if point.label in predictions[objective]]
    if not candidates:
        return {"available": False}
    scored = [(_seed_value(p, metric, replicate_points.get(o, ())), o, p) for o, p in candidates]
    scored = [entry for entry in scored if math.isfinite(entry[0])]
    if not scored:
        return {"available": False}
    value, best_objective, best_point = (max if higher else min)(scored, key=lambda entry: entry[0])
    best_pred = predictions[best_objective][best_point.label]
    reaches: dict[str, Any] = {}
    for objective, curve in curves.items():
        reaches[objective] = None
        for point in sorted(curve, key=lambda p: p.finetune_size):
            pred = predictions[objective].get(point.label)
            if pred is None:
                continue
            if objective == best_objective and point.label == best_point.label:
                reaches[objective] = {"label": point.label, "size": int(point.finetune_size)}
                break
            delta = paired_bootstrap_delta(y_test, best_pred, pred, n_resamples=n_resamples, confidence=confidence,
                                           seed=seed)[metric]
            # b - a = point - best: "reaches" when the interval does not exclude 0 on the worse side.
            if (delta.high >= 0) if higher else (delta.low <= 0):
                reaches[objective] = {"label": point.label, "size": int(point.finetune_size),
                                      "delta": delta.to_dict()}
                break
    reached = [(r["size"], -_order(o, curves)) for o, r in reaches.items() if r is not None]
    least = None
    if reached:
        smallest = min(size for size, _ in reached)
        least = [o for o, r in reaches.items() if r is not None and r["size"] == smallest]
    return {"available": True, "metric": metric, "higher_is_better": higher,
            "best": {"objective": best_objective, "label": best_point.label, "size": int(best_point.finetune_size),
                     "value": value, "seed_mean": len(replicate_points.get(best_objective, ())) > 0},
            "reaches": reaches, "least_data": least}


def _order(objective: str, curves: Mapping[str, Any]) -> int:
    return list(curves).index(objective)


def _name(objective: str) -> str:
    try:
        return Objective(objective).display
    except ValueError:
        return objective


def _interval(delta: Mapping[str, Any], digits: int = 3) -> str:
    if delta.get("low") is None or delta.get("high") is None:
        return "[?]"
    return f"[{delta['low']:+.{digits}f}, {delta['high']:+.{digits}f}]"


def comparison_lines(comparison: Mapping[str, Any], metrics: Sequence[str] = ("r2", "r2_log")) -> list[str]:
    """The comparison as sentences: paired deltas per size, then the least-data answer."""
    if not comparison:
        return []
    names = {metric: name for metric, name, _ in COMPARED}
    lines: list[str] = []
    for pair in comparison.get("pairs", []):
        parts = []
        for metric in metrics:
            delta = pair["deltas"].get(metric) or {}
            if delta.get("delta") is None:
                continue
            text = f"Δ{names[metric]} {delta['delta']:+.3f} {_interval(delta)}"
            spread = (pair.get("seed_deltas") or {}).get(metric)
            if spread and spread.get("std") is not None:
                text += f" (over {spread['n']} seeds {spread['mean']:+.3f} ± {spread['std']:.3f})"
            parts.append(text)
        if parts:
            lines.append(f"{_name(pair['b'])} − {_name(pair['a'])} at {pair['label']}: " + ", ".join(parts))
    for metric in metrics:
        best = (comparison.get("best") or {}).get(metric) or {}
        if not best.get("available"):
            continue
        top = best["best"]
        kind = "seed mean " if top.get("seed_mean") else ""
        if top["size"] == 0:
            lines.append(f"Best {names[metric]}: the base model f0 ({kind}{top['value']:.4f}); no objective "
                         "improves on it measurably here.")
            continue
        reach = []
        for objective, entry in best["reaches"].items():
            reach.append(f"{_name(objective)} at {entry['label']}" if entry else f"{_name(objective)} never")
        least = best.get("least_data") or []
        if least and all((best["reaches"][o] or {}).get("size") == 0 for o in least):
            verdict = "the base model f0 is already within the best point's interval"
        elif least:
            verdict = f"least data: {' and '.join(_name(o) for o in least)}"
        else:
            verdict = "no objective reaches it"
        lines.append(f"Best {names[metric]}: {_name(top['objective'])} at {top['label']} ({kind}{top['value']:.4f}); "
                     f"within its interval (paired): {', '.join(reach)}; {verdict}.")
    return lines


__all__ = ["COMPARED", "compare_objectives", "comparison_lines"]
