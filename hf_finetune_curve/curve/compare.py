"""Objectives side by side: paired deltas at each size, and which is not distinguishable from the best with least data.

All objectives of a run score the same held-out rows with the same probe seeds, so two checkpoints
are compared *paired*: one :func:`~hf_finetune_curve.curve.uncertainty.hierarchical_bootstrap` over every
objective's points resamples the rows, the probe seeds and the ``--seeds`` finetune replicates
identically for all of them, and "TSDAE beats MLM at f2k" is a test rather than two overlapping
bars. Values are seed means (each point's predictions averaged over its probe seeds, the metric
averaged over its finetune seeds).

"Not distinguishable from the best": the best point of the run (highest R², or lowest error) is found
over every objective and size; an objective is not distinguishable from it at the smallest size whose
paired delta against that best point has an interval containing 0. That is an absence of evidence, not
evidence of equality (a wide interval contains 0 too), so the lines say "not distinguishable from", never
"reaches". The objective that gets there at the smallest size is the "least data" one. With several
finetune seeds the deltas are the seed-level Student-t test of
:meth:`~hf_finetune_curve.curve.uncertainty.HierarchicalBootstrap.delta`; with one, the verdict is
provisional (the levels of noise behind it are listed).

Example:
    >>> import numpy as np
    >>> from hf_finetune_curve.curve.points import CurvePoint
    >>> rng = np.random.default_rng(0)
    >>> y = rng.lognormal(5, 0.5, 300)
    >>> def point(objective, size):
    ...     return CurvePoint(finetune_size=size, label=f"f{size}", r2=0.0, mae=0.0, median_ae=0.0, n_test=300,
    ...                       n_probe_train=0, objective=objective)
    >>> curves = {"mlm": [point("mlm", 0), point("mlm", 100)], "tsdae": [point("tsdae", 0), point("tsdae", 100)]}
    >>> base = y * rng.lognormal(0, 0.6, 300)
    >>> predictions = {"mlm": {"f0": base, "f100": y * rng.lognormal(0, 0.5, 300)},
    ...                "tsdae": {"f0": base, "f100": y * rng.lognormal(0, 0.3, 300)}}
    >>> summary = compare_objectives(curves, predictions, y, n_resamples=200)
    >>> summary["pairs"][0]["deltas"]["r2_log"]["better"]  # TSDAE - MLM at f100
    True
    >>> summary["best"]["r2_log"]["best"]["objective"]
    'tsdae'
"""

from __future__ import annotations

import itertools
from typing import Any, Mapping, Sequence

import numpy as np

from ..names import METRICS, Objective
from .points import CurvePoint
from .uncertainty import HierarchicalBootstrap, hierarchical_bootstrap

# (metric, display name, higher is better) compared between objectives.
COMPARED = METRICS  # every metric the probe reports, each with its display name and direction


def _key(objective: str, label: str) -> str:
    return f"{objective}/{label}"


def compare_objectives(
    curves: Mapping[str, Sequence[CurvePoint]],
    predictions: Mapping[str, Mapping[str, np.ndarray]],
    y_test: np.ndarray,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Paired deltas between every two objectives at every size both have, and the "least data" answer
    (the smallest size not distinguishable from the run's best point).

    Args:
        curves: objective -> its points (main seed), f0 included.
        predictions: objective -> label -> held-out predictions of that point, shaped
            ``(finetune_seeds, probe_seeds, n_test)`` (fewer dimensions: one seed at the missing levels).
        y_test: the held-out targets every prediction scores.

    Returns a JSON-friendly dict: ``pairs`` (one entry per objective pair and size: ``a``, ``b``,
    ``label``, ``size``, ``deltas`` of ``b - a`` per metric), ``best`` (per metric: the best point and, under
    ``reaches``, the smallest size at which each objective is not distinguishable from it), ``levels`` (the
    noise the tests hold) and ``provisional`` (True with one finetune seed per point).
    """
    y_test = np.asarray(y_test, dtype=np.float64)
    objectives = list(curves)
    scored = {_key(o, p.label): predictions[o][p.label] for o in objectives for p in curves[o]
              if p.label in predictions[o]}
    if not scored:
        return {"objectives": objectives, "pairs": [], "best": {}}
    boot = hierarchical_bootstrap(y_test, scored, n_resamples=n_resamples, seed=seed)
    pairs: list[dict[str, Any]] = []
    for a, b in itertools.combinations(objectives, 2):
        labels_a = {p.label for p in curves[a]}
        for point_b in curves[b]:
            if point_b.label not in labels_a or point_b.finetune_size == 0:
                continue
            key_a, key_b = _key(a, point_b.label), _key(b, point_b.label)
            if key_a not in scored or key_b not in scored:
                continue
            pairs.append({"a": a, "b": b, "label": point_b.label, "size": int(point_b.finetune_size),
                          "deltas": {metric: boot.delta(metric, key_a, key_b, confidence).to_dict()
                                     for metric, _, _ in COMPARED}})
    best = {metric: _best(curves, scored, boot, metric, higher, confidence) for metric, _, higher in COMPARED}
    return {"objectives": objectives, "pairs": pairs, "best": best,
            "method": "hierarchical paired bootstrap (b - a): held-out rows, probe seeds and finetune seeds "
                      "resampled jointly for every point",
            "levels": boot.levels(), "provisional": bool(boot.finetune_seeds.max() < 2),
            "n_resamples": int(n_resamples), "confidence": float(confidence)}


def _best(curves: Mapping[str, Sequence[CurvePoint]], scored: Mapping[str, Any], boot: HierarchicalBootstrap,
          metric: str, higher: bool, confidence: float) -> dict[str, Any]:
    candidates = [(o, p) for o, curve in curves.items() for p in curve if _key(o, p.label) in scored]
    values = [(float(boot.estimates[metric][boot.column(_key(o, p.label))]), o, p) for o, p in candidates]
    values = [entry for entry in values if np.isfinite(entry[0])]
    if not values:
        return {"available": False}
    value, best_objective, best_point = (max if higher else min)(values, key=lambda entry: entry[0])
    best_key = _key(best_objective, best_point.label)
    reaches: dict[str, Any] = {}
    for objective, curve in curves.items():
        reaches[objective] = None
        for point in sorted(curve, key=lambda p: p.finetune_size):
            key = _key(objective, point.label)
            if key not in scored:
                continue
            if key == best_key:
                reaches[objective] = {"label": point.label, "size": int(point.finetune_size)}
                break
            delta = boot.delta(metric, best_key, key, confidence)
            # b - a = point - best: not distinguishable when the interval does not exclude 0 on the worse side.
            if (delta.high >= 0) if higher else (delta.low <= 0):
                reaches[objective] = {"label": point.label, "size": int(point.finetune_size),
                                      "delta": delta.to_dict()}
                break
    reached = [r["size"] for r in reaches.values() if r is not None]
    least = None
    if reached:
        smallest = min(reached)
        least = [o for o, r in reaches.items() if r is not None and r["size"] == smallest]
    return {"available": True, "metric": metric, "higher_is_better": higher,
            "best": {"objective": best_objective, "label": best_point.label, "size": int(best_point.finetune_size),
                     "value": value},
            "reaches": reaches, "least_data": least}


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
            parts.append(f"Δ{names[metric]} {delta['delta']:+.3f} {_interval(delta)}")
        if parts:
            lines.append(f"{_name(pair['b'])} − {_name(pair['a'])} at {pair['label']}: " + ", ".join(parts))
    for metric in metrics:
        best = (comparison.get("best") or {}).get(metric) or {}
        if not best.get("available"):
            continue
        top = best["best"]
        if top["size"] == 0:
            lines.append(f"Best {names[metric]}: the base model f0 ({top['value']:.4f}); no objective "
                         "improves on it measurably here.")
            continue
        reach = []
        for objective, entry in best["reaches"].items():
            reach.append(f"{_name(objective)} from {entry['label']}" if entry else f"{_name(objective)} at no size")
        least = best.get("least_data") or []
        if least and all((best["reaches"][o] or {}).get("size") == 0 for o in least):
            verdict = "the base model f0 is already not distinguishable from it"
        elif least:
            verdict = f"least data: {' and '.join(_name(o) for o in least)}"
        else:
            verdict = "no objective is"
        lines.append(f"Best {names[metric]}: {_name(top['objective'])} at {top['label']} ({top['value']:.4f}); "
                     f"not distinguishable from it (paired): {', '.join(reach)}; {verdict}.")
    if lines and comparison.get("levels"):
        note = (" The verdicts are provisional: one finetuning run per size, so run-to-run noise is in no interval; "
                "--seeds 3 makes them firm." if comparison.get("provisional") else "")
        lines.append(f"Noise behind these comparisons: {', '.join(comparison['levels'])}.{note}")
    return lines


__all__ = ["COMPARED", "compare_objectives", "comparison_lines"]
