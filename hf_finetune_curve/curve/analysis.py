"""Curve analysis: how sure the curve is, and how much data is enough.

From every checkpoint's held-out predictions this computes a bootstrap 95% interval per point,
paired deltas against the factory-floor model (same resamples for both, so "f50k beats f0" is a
test), saturating fits of each metric against finetune size with a band, and the answer:
N needed for 90% / 95% of the attainable gain, marginal gain per 10k texts at the largest size,
the extrapolated metric at 2x the largest size, and a back-test of the fit. With several probes
(``--probes xgboost,ridge``), :func:`probe_agreement` sets their verdicts side by side: per size, the
paired change against f0 (gain / loss / flat), and per curve (helps / hurts / no change / mixed).

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

from ..io_utils import json_safe
from ..names import HIGHER_IS_BETTER, METRIC_NAMES, Objective
from .fit import MIN_SIZES_FOR_ANSWER, fit_curve
from .next_size import suggest_next_size
from .points import METRICS, CurvePoint
from .uncertainty import aggregate_seeds, hierarchical_bootstrap

HIGHER = HIGHER_IS_BETTER

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
            label_of = {float(p.finetune_size): p.label for p in scored}

            def paired(smaller: float, larger: float, probabilities: Sequence[float], metric: str = metric):
                # The seed-level test of the bootstrap (Student-t with several finetune seeds) for every verdict.
                return boot.quantiles(metric, label_of[smaller], label_of[larger], probabilities)

            try:
                fit = fit_curve(sizes, values, higher_is_better=higher_is_better, point_resamples=resamples,
                                n_boot=min(_FIT_BOOT, resamples.shape[0]), seed=seed, confidence=confidence,
                                paired_quantiles=paired)
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
            answer["verdict"] = curve_call(chosen, scored, boot, answer_metric, confidence)
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


#: What makes a verdict firm: three finetuning runs per size (two leave a Student-t with one degree of freedom).
FIRM_SEEDS = 3


def curve_call(fit_summary: Mapping[str, Any], points: Sequence[CurvePoint], boot: Any, metric: str,
               confidence: float) -> dict[str, Any]:
    """The curve's verdict on ``metric`` and the evidence behind it.

    ``call``: ``hurts`` (every finetuned size significantly worse than f0), ``gain`` (some size significantly
    better), ``mixed`` (some worse, none better) or ``flat`` (no size distinguishable from f0). Each size is
    tested against f0 with the fit's paired test (the seed-level test with several finetune seeds), one-sided
    and Bonferroni-corrected over the sizes, so with no true change a non-flat call is made in at most
    ``1 - confidence`` of runs. ``levels`` names the noise the test holds; with one finetune seed the verdict is
    ``provisional`` (a single finetuning run per size: run-to-run noise is in no interval) and ``command`` says
    how to make it firm. ``trend``: the paired change from the smallest to the largest finetuned size.
    """
    below = fit_summary.get("below_base") or []
    if fit_summary.get("hurts"):
        call = "hurts"
    elif any(entry.get("better") for entry in below):
        call = "gain"
    elif any(entry.get("worse") for entry in below):
        call = "mixed"
    else:
        call = "flat"
    levels = boot.levels()
    finetune_seeds = int(boot.finetune_seeds.max())
    provisional = finetune_seeds < 2
    result: dict[str, Any] = {
        "call": call, "metric": metric, "levels": levels, "finetune_seeds": finetune_seeds,
        "provisional": provisional,
        "command": f"--seeds {FIRM_SEEDS}" if finetune_seeds < FIRM_SEEDS else None,
        "better": [entry["size"] for entry in below if entry.get("better")],
        "worse": [entry["size"] for entry in below if entry.get("worse") or entry.get("significant")],
        "trend": None,
    }
    tuned = sorted((p for p in points if p.finetune_size > 0), key=lambda p: p.finetune_size)
    if len(tuned) >= 2:
        delta = boot.delta(metric, tuned[0].label, tuned[-1].label, confidence).to_dict()
        result["trend"] = {"smaller": tuned[0].finetune_size, "larger": tuned[-1].finetune_size,
                           "from": delta["estimate_a"], "to": delta["estimate_b"], "change": delta["delta"],
                           "low": delta["low"], "high": delta["high"], "better": delta["better"]}
    return json_safe(result)


def verdict_lines(verdict: Mapping[str, Any], name: str) -> list[str]:
    """:func:`curve_call` as sentences: the call, the levels of noise behind it, and whether it is firm."""
    if not verdict:
        return []
    sizes = lambda values: ", ".join(f"{value:,.0f}" for value in values)  # noqa: E731
    call = verdict["call"]
    if call == "hurts":
        text = f"hurts: worse than f0 at every measured size ({sizes(verdict['worse'])})"
    elif call == "gain":
        text = f"gain: better than f0 at {sizes(verdict['better'])}"
    elif call == "mixed":
        text = f"mixed: worse than f0 at {sizes(verdict['worse'])}, better at none"
    else:
        text = "flat: no finetuned size is distinguishable from f0"
    trend = verdict.get("trend") or {}
    if trend.get("change") is not None:
        direction = {True: "rises", False: "falls", None: "changes"}[trend.get("better")]
        settled = "" if trend.get("better") is not None else ", not distinguishable from no change"
        text += (f"; from {trend['smaller']:,.0f} to {trend['larger']:,.0f} it {direction} from {trend['from']:.4f} "
                 f"to {trend['to']:.4f} ({trend['change']:+.4f}, interval {_fmt(trend.get('low'))} to "
                 f"{_fmt(trend.get('high'))}{settled})")
    lines = [f"Verdict on {name}: {text}. Noise behind it: {', '.join(verdict.get('levels') or ['rows'])}."]
    if verdict.get("provisional"):
        lines.append(f"The verdict is provisional: one finetuning run per size, so run-to-run finetuning noise is in "
                     f"no interval. Make it firm: hf-curve run ... {verdict.get('command')} (same run directory: the "
                     "finished sizes are kept).")
    elif verdict.get("command"):
        lines.append(f"{verdict['finetune_seeds']} finetuning runs per size: a Student-t with "
                     f"{verdict['finetune_seeds'] - 1} degree(s) of freedom, so only large changes are called; "
                     f"{verdict['command']} narrows it.")
    return lines


def _grid(sizes: Sequence[int]) -> np.ndarray:
    largest = max(sizes)
    positive = [s for s in sizes if s > 0]
    start = min(positive) / 4 if positive else 1
    grid = np.unique(np.concatenate([[0.0], np.geomspace(start, 2 * largest, 60), np.asarray(sizes, float)]))
    return grid


_NAMES = METRIC_NAMES
_SELECTION = {"aic_known_noise": "AIC on the points' bootstrap noise", "aicc": "AICc"}


def answer_lines(summary: Mapping[str, Any]) -> list[str]:
    """The answer as sentences for ``hf-curve report``."""
    lines: list[str] = []
    answer = summary.get("answer") or {}
    uncertainty = summary.get("uncertainty") or {}
    for warning in summary.get("warnings", []):
        lines.append(f"warning: {warning}")
    if uncertainty.get("levels"):
        missing = [level for level in ("probe seeds", "finetune seeds") if level not in uncertainty["levels"]
                   and not (level == "probe seeds" and uncertainty.get("probe") == "ridge")]  # deterministic: no noise
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
    lines.extend(verdict_lines(answer.get("verdict") or {}, name))
    if answer.get("hurts"):
        changes = ", ".join(f"{entry['size']:,.0f}: {entry['change']:+.4f}" for entry in answer.get("below_base", []))
        lines.append(f"Finetuning with this recipe scores worse on {name} than the factory model at every measured "
                     f"size ({changes}); the measured sizes do not show it catching up, so keep the factory model "
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
        elif next_size.get("saturated") or next_size.get("hurts"):
            lines.append(f"Next size: none needed ({next_size['reason']}).")
        else:
            lines.append(f"Next size: none suggested ({next_size['reason']}).")
    for warning in answer.get("warnings", []):
        lines.append(f"fit warning: {warning}")
    return lines


def _fmt(value: Any) -> str:
    return "?" if value is None else f"{value:+.4f}"


# -- several probes (--probes) -------------------------------------------------------------------------------------
# A size's verdict: its paired delta against f0 on the answer metric, read in the metric's direction.
_SIZE_VERDICTS = {True: "gain", False: "loss", None: "flat"}


def size_verdict(point: CurvePoint, metric: str) -> str | None:
    """``gain`` / ``loss`` when the point's paired delta against f0 on ``metric`` has a 95% interval that
    excludes 0 (better / worse than f0), ``flat`` when it contains 0; None without a delta (f0, no intervals,
    an undefined metric)."""
    delta = (point.extras.get("delta_vs_f0") or {}).get(metric)
    if not delta or delta.get("delta") is None:
        return None
    return _SIZE_VERDICTS[delta.get("better")]


def curve_verdict(verdicts: Sequence[str | None], hurts: bool = False) -> str:
    """One curve's verdict from its sizes' verdicts: ``hurts`` (every finetuned size significantly worse, or
    the fitted answer says finetuning hurts), ``helps`` (some size significantly better, none worse),
    ``no change`` (no size significantly different), ``mixed`` (the rest), ``unknown`` (no verdicts).

    >>> curve_verdict(["loss", "loss"]), curve_verdict(["flat", "gain"]), curve_verdict(["flat", "loss"])
    ('hurts', 'helps', 'mixed')
    """
    known = [verdict for verdict in verdicts if verdict is not None]
    if hurts or (known and all(verdict == "loss" for verdict in known)):
        return "hurts"
    if not known:
        return "unknown"
    if "loss" in known:
        return "mixed"
    return "helps" if "gain" in known else "no change"


def probe_agreement(curves: Mapping[str, Mapping[str, Sequence[CurvePoint]]],
                    answers: Mapping[str, Mapping[str, Mapping[str, Any]]], metric: str) -> dict[str, Any]:
    """Whether the probes of a run (``--probes``) reach the same verdicts: per objective, each probe's
    :func:`curve_verdict`, and per finetuned size each probe's :func:`size_verdict` with its paired delta
    against f0 on ``metric``.

    ``curves[probe][objective]``: the analysed points (their ``extras`` hold the deltas);
    ``answers[probe][objective]``: the answer section of that probe's analysis (its ``hurts``).
    The first probe is the primary one.

    Example:
        >>> def point(size, delta, better):
        ...     extras = {"delta_vs_f0": {"r2": {"delta": delta, "low": delta - 0.01, "high": delta + 0.01,
        ...                                      "better": better}}} if size else {}
        ...     return CurvePoint(size, f"f{size}", r2=0.5, mae=1, median_ae=1, n_test=9, n_probe_train=9,
        ...                       extras=extras)
        >>> curves = {"xgboost": {"mlm": [point(0, 0, None), point(50, -0.05, False)]},
        ...           "ridge": {"mlm": [point(0, 0, None), point(50, 0.001, None)]}}
        >>> summary = probe_agreement(curves, {"xgboost": {"mlm": {"hurts": False}}, "ridge": {}}, "r2")
        >>> summary["agree"], summary["objectives"]["mlm"]["verdicts"]
        (False, {'xgboost': 'hurts', 'ridge': 'no change'})
        >>> summary["objectives"]["mlm"]["sizes"][0]["verdicts"]
        {'xgboost': 'loss', 'ridge': 'flat'}
    """
    probes = list(curves)
    objectives = list(dict.fromkeys(objective for by_objective in curves.values() for objective in by_objective))
    sections: dict[str, Any] = {}
    for objective in objectives:
        sizes: dict[int, dict[str, Any]] = {}
        for probe in probes:
            for point in curves[probe].get(objective, []):
                if point.finetune_size == 0:
                    continue
                entry = sizes.setdefault(point.finetune_size, {"finetune_size": point.finetune_size,
                                                               "label": point.label, "verdicts": {}, "deltas": {}})
                delta = (point.extras.get("delta_vs_f0") or {}).get(metric) or {}
                entry["verdicts"][probe] = size_verdict(point, metric)
                entry["deltas"][probe] = {key: delta.get(key) for key in ("delta", "low", "high")}
        rows = [sizes[size] for size in sorted(sizes)]
        for row in rows:
            row["agree"] = len({row["verdicts"].get(probe) for probe in probes}) == 1
        verdicts = {probe: curve_verdict([row["verdicts"].get(probe) for row in rows],
                                         bool(((answers.get(probe) or {}).get(objective) or {}).get("hurts")))
                    for probe in probes}
        sections[objective] = {"verdicts": verdicts, "agree": len(set(verdicts.values())) == 1, "sizes": rows}
    return {
        "metric": metric,
        "probes": probes,
        "primary": probes[0] if probes else None,
        "agree": all(section["agree"] and all(row["agree"] for row in section["sizes"])
                     for section in sections.values()),
        "objectives": sections,
    }


def agreement_lines(summary: Mapping[str, Any]) -> list[str]:
    """:func:`probe_agreement` as sentences for ``hf-curve run`` / ``hf-curve report``."""

    probes = list(summary.get("probes") or [])
    if len(probes) < 2:
        return []
    name = _NAMES.get(summary.get("metric", ""), summary.get("metric", ""))
    sections = summary.get("objectives") or {}
    several = len(sections) > 1

    def objective_name(objective: str) -> str:
        try:
            return Objective(objective).display
        except ValueError:
            return objective

    if summary.get("agree"):
        verdicts = "; ".join(f"{objective_name(objective)}: {next(iter(section['verdicts'].values()))}"
                             for objective, section in sections.items())
        return [f"The {' and '.join(probes)} probes agree on every verdict on {name} ({verdicts})."]
    lines = []
    for objective, section in sections.items():
        prefix = f"{objective_name(objective)}: " if several else ""
        verdicts = ", ".join(f"{probe} says {section['verdicts'].get(probe)}" for probe in probes)
        lines.append(f"{prefix}the probes {'agree' if section['agree'] else 'DISAGREE'} about the curve ({verdicts}).")
        for row in section["sizes"]:
            if row["agree"]:
                continue
            parts = []
            for probe in probes:
                delta = row["deltas"].get(probe) or {}
                numbers = (f" (Δ {delta['delta']:+.4f} [{_fmt(delta.get('low'))}, {_fmt(delta.get('high'))}])"
                           if delta.get("delta") is not None else "")
                parts.append(f"{probe} {row['verdicts'].get(probe) or 'n/a'}{numbers}")
            lines.append(f"  {prefix}{row['label']}: {name} vs f0 disagrees: {'; '.join(parts)}")
    return lines
