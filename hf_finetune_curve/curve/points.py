"""Curve stage: one row per finetune size, as a table and CSV rows (the plot is :mod:`~hf_finetune_curve.curve.plot`).

Where they are written and read back is :mod:`hf_finetune_curve.run_dir`'s business.

Example:
    >>> from hf_finetune_curve.curve.points import CurvePoint, format_table
    >>> points = [CurvePoint(0, "f0", r2=0.52, mae=19_618, median_ae=11_281, n_test=400, n_probe_train=1600),
    ...           CurvePoint(500, "f500", r2=0.55, mae=18_900, median_ae=10_950, n_test=400, n_probe_train=1600)]
    >>> print(format_table(points))
    size  label      R²  log R²  ΔR² vs f0     MAE   MedAE  steps  tokens  train s  embed s
    ----  -----  ------  ------  ---------  ------  ------  -----  ------  -------  -------
       0     f0  0.5200       -    +0.0000  19,618  11,281      0       0        0        0
     500   f500  0.5500       -    +0.0300  18,900  10,950      0       0        0        0
    >>> from hf_finetune_curve.run_dir import load_curve
    >>> print(format_table(load_curve("runs/bat")))  # a finished run's table  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Sequence

from ..names import METRICS, format_money  # METRICS: (key, display name, higher is better)


@dataclass
class CurvePoint:
    """One finetune size's result."""

    finetune_size: int
    label: str
    r2: float
    mae: float
    median_ae: float
    n_test: int
    n_probe_train: int
    probe_seeds: int = 1  # probe fits whose predictions the scores average
    r2_log: float = float("nan")  # R² of log predictions vs log targets (every row's relative error alike)
    finetune_texts_seen: int = 0
    finetune_tokens_seen: int = 0
    finetune_steps: int = 0
    schedule: str = ""           # how the point was trained: independent or branching
    subset_epochs: float = 0.0   # chunk draws / chunks of its subset: passes over its texts
    warmup_steps: int = 0
    cooldown_steps: int = 0
    lr_integral: float = 0.0     # sum of (learning rate / peak) over its steps, measured
    final_mlm_loss: float | None = None
    train_seconds: float = 0.0
    embed_seconds: float = 0.0
    probe_seconds: float = 0.0
    checkpoint: str = ""
    probe_path: str = ""
    objective: str = "mlm"       # what finetuned it: mlm, tsdae or simcse (f0 is every objective's start)
    probe: str = "xgboost"       # what scored it (--probes): xgboost or ridge (files before the field: xgboost)
    extras: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        if values["r2_log"] is None or not math.isfinite(values["r2_log"]):
            values["r2_log"] = None  # JSON has no NaN
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "CurvePoint":
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in values.items() if key in known}
        if values.get("r2_log") is None:
            values.pop("r2_log", None)
        return cls(**values)


CSV_COLUMNS = [f.name for f in fields(CurvePoint) if f.name != "extras"]
INTERVAL_COLUMNS = [f"{metric}_{bound}" for metric, _, _ in METRICS for bound in ("low", "high")]
DELTA_COLUMNS = [f"delta_{metric}_vs_f0{part}" for metric, _, _ in METRICS for part in ("", "_low", "_high")]
SEED_COLUMNS = [f"{metric}_seed_{stat}" for metric, _, _ in METRICS for stat in ("mean", "std")]
# The penalty a ridge probe's cross-validation chose for a point (``extras`` and a curve.csv column).
RIDGE_ALPHA = "ridge_alpha"


def csv_table(points: Sequence[CurvePoint]) -> tuple[list[dict[str, Any]], list[str]]:
    """``curve.csv``'s rows and columns: the interval and seed columns only when some point has them."""
    columns = list(CSV_COLUMNS)
    if any(p.extras.get("intervals") for p in points):
        columns += INTERVAL_COLUMNS + DELTA_COLUMNS
    if any(p.extras.get("seeds") for p in points):
        columns += SEED_COLUMNS
    if any(RIDGE_ALPHA in p.extras for p in points):
        columns.append(RIDGE_ALPHA)
    return [_csv_row(p) for p in points], columns


def _csv_row(point: "CurvePoint") -> dict[str, Any]:
    row = point.to_dict()
    intervals = point.extras.get("intervals", {})
    deltas = point.extras.get("delta_vs_f0", {})
    seeds = point.extras.get("seeds", {})
    if RIDGE_ALPHA in point.extras:
        row[RIDGE_ALPHA] = point.extras[RIDGE_ALPHA]
    for metric, _, _ in METRICS:
        if metric in intervals:
            row[f"{metric}_low"], row[f"{metric}_high"] = intervals[metric]["low"], intervals[metric]["high"]
        if metric in deltas:
            row[f"delta_{metric}_vs_f0"] = deltas[metric]["delta"]
            row[f"delta_{metric}_vs_f0_low"] = deltas[metric]["low"]
            row[f"delta_{metric}_vs_f0_high"] = deltas[metric]["high"]
        if metric in seeds:
            row[f"{metric}_seed_mean"], row[f"{metric}_seed_std"] = seeds[metric]["mean"], seeds[metric]["std"]
    return row


def objectives_of(points: Sequence[CurvePoint]) -> list[str]:
    """The objectives of ``points`` in the order they first appear."""
    return list(dict.fromkeys(p.objective for p in points))


def by_objective(points: Sequence[CurvePoint]) -> dict[str, list[CurvePoint]]:
    """Each objective's curve, sorted by size."""
    return {objective: sorted((p for p in points if p.objective == objective), key=lambda p: p.finetune_size)
            for objective in objectives_of(points)}


def ordered_points(points: Sequence[CurvePoint]) -> list[CurvePoint]:
    """``points`` as curve.csv / curve.json list them: one block per objective (first-seen order), by size."""
    return [p for curve in by_objective(points).values() for p in curve]


def _estimate(point: CurvePoint, metric: str) -> float | None:
    interval = point.extras.get("intervals", {}).get(metric)
    return interval["estimate"] if interval and interval.get("estimate") is not None else getattr(point, metric)


def format_table(points: Sequence[CurvePoint]) -> str:
    """A plain-text table of the curve, with the change against the factory-floor model.

    R², log R² and ΔR² are the values the intervals belong to: with ``--seeds`` the mean over
    finetune seeds (the spread is in the seeds column), else the run's own seed.

    With several objectives, one block of rows per objective (each against the shared f0) and an
    ``objective`` column.
    """
    curves = by_objective(points)
    if not curves:
        return "(no finished sizes yet)"
    several = len(curves) > 1 or "mlm" not in curves  # name the objective unless it is MLM alone
    points = [p for curve in curves.values() for p in curve]
    bases = {objective: curve[0] if curve[0].finetune_size == 0 else None for objective, curve in curves.items()}
    with_intervals = any(p.extras.get("intervals") for p in points)
    with_seeds = any(p.extras.get("seeds") for p in points)
    header = (["objective"] if several else []) + ["size", "label", "R²", "log R²"] + (["R² 95% CI"] if with_intervals else []) + ["ΔR² vs f0"] + \
        (["ΔR² 95% CI"] if with_intervals else []) + (["R² mean±sd (seeds)"] if with_seeds else []) + \
        ["MAE", "MedAE", "steps", "tokens", "train s", "embed s"]
    body = []
    for point in points:
        base = bases[point.objective]
        # With intervals, the values they belong to: seed means with --seeds (the main seed's alone otherwise).
        r2, r2_log = _estimate(point, "r2"), _estimate(point, "r2_log")
        paired = point.extras.get("delta_vs_f0", {}).get("r2")
        if paired and paired.get("delta") is not None:
            delta = f"{paired['delta']:+.4f}"
        else:
            delta = f"{r2 - _estimate(base, 'r2'):+.4f}" if base is not None else "-"
        row = ([point.objective] if several else []) + [f"{point.finetune_size:,}", point.label, f"{r2:.4f}",
               f"{r2_log:.4f}" if r2_log is not None and math.isfinite(r2_log) else "-"]
        if with_intervals:
            interval = point.extras.get("intervals", {}).get("r2")
            row.append(f"[{interval['low']:.3f}, {interval['high']:.3f}]" if interval else "-")
        row.append(delta)
        if with_intervals:
            row.append(f"[{paired['low']:+.3f}, {paired['high']:+.3f}]" if paired else "-")
        if with_seeds:
            seeds = point.extras.get("seeds", {}).get("r2")
            row.append(f"{seeds['mean']:.4f}±{seeds['std']:.4f} (n={seeds['n']})"
                       if seeds and seeds.get("std") is not None else "-")
        row += [format_money(point.mae), format_money(point.median_ae), f"{point.finetune_steps:,}",
                f"{point.finetune_tokens_seen:,}",
                f"{point.train_seconds:.0f}", f"{point.embed_seconds:.0f}"]
        body.append(row)
    widths = [max(len(str(row[i])) for row in [header] + body) for i in range(len(header))]
    lines = ["  ".join(str(cell).rjust(width) for cell, width in zip(row, widths)) for row in [header] + body]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
