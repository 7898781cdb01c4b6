"""Curve stage: one row per finetune size, as a table, CSV rows and a four-panel plot.

Where they are written and read back is :mod:`hf_finetune_curve.run_dir`'s business.

Example:
    >>> from hf_finetune_curve.curve import CurvePoint, format_table
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
from pathlib import Path
from typing import Any, Sequence

from .io_utils import atomic_path
from .probe import METRICS  # (key, display name, higher is better)


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


def csv_table(points: Sequence[CurvePoint]) -> tuple[list[dict[str, Any]], list[str]]:
    """``curve.csv``'s rows and columns: the interval and seed columns only when some point has them."""
    columns = list(CSV_COLUMNS)
    if any(p.extras.get("intervals") for p in points):
        columns += INTERVAL_COLUMNS + DELTA_COLUMNS
    if any(p.extras.get("seeds") for p in points):
        columns += SEED_COLUMNS
    return [_csv_row(p) for p in points], columns


def _csv_row(point: "CurvePoint") -> dict[str, Any]:
    row = point.to_dict()
    intervals = point.extras.get("intervals", {})
    deltas = point.extras.get("delta_vs_f0", {})
    seeds = point.extras.get("seeds", {})
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


def _money(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def format_table(points: Sequence[CurvePoint]) -> str:
    """A plain-text table of the curve, with the change against the factory-floor model."""
    points = sorted(points, key=lambda p: p.finetune_size)
    if not points:
        return "(no finished sizes yet)"
    base = points[0] if points[0].finetune_size == 0 else None
    with_intervals = any(p.extras.get("intervals") for p in points)
    with_seeds = any(p.extras.get("seeds") for p in points)
    header = ["size", "label", "R²", "log R²"] + (["R² 95% CI"] if with_intervals else []) + ["ΔR² vs f0"] + \
        (["ΔR² 95% CI"] if with_intervals else []) + (["R² mean±sd (seeds)"] if with_seeds else []) + \
        ["MAE", "MedAE", "steps", "tokens", "train s", "embed s"]
    body = []
    for point in points:
        delta = f"{point.r2 - base.r2:+.4f}" if base is not None else "-"
        row = [f"{point.finetune_size:,}", point.label, f"{point.r2:.4f}",
               f"{point.r2_log:.4f}" if point.r2_log is not None and math.isfinite(point.r2_log) else "-"]
        if with_intervals:
            interval = point.extras.get("intervals", {}).get("r2")
            row.append(f"[{interval['low']:.3f}, {interval['high']:.3f}]" if interval else "-")
        row.append(delta)
        if with_intervals:
            paired = point.extras.get("delta_vs_f0", {}).get("r2")
            row.append(f"[{paired['low']:+.3f}, {paired['high']:+.3f}]" if paired else "-")
        if with_seeds:
            seeds = point.extras.get("seeds", {}).get("r2")
            row.append(f"{seeds['mean']:.4f}±{seeds['std']:.4f} (n={seeds['n']})"
                       if seeds and seeds.get("std") is not None else "-")
        row += [_money(point.mae), _money(point.median_ae), f"{point.finetune_steps:,}",
                f"{point.finetune_tokens_seen:,}",
                f"{point.train_seconds:.0f}", f"{point.embed_seconds:.0f}"]
        body.append(row)
    widths = [max(len(str(row[i])) for row in [header] + body) for i in range(len(header))]
    lines = ["  ".join(str(cell).rjust(width) for cell, width in zip(row, widths)) for row in [header] + body]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def plot_curve(points: Sequence[CurvePoint], path: str | Path, title: str | None = None,
               analysis: dict[str, Any] | None = None) -> None:
    """Four panels (R², R² on log price, MAE, MedAE) against finetune size.

    Drawn: each point with its 95% interval, the factory floor as a dashed line, and, when
    ``analysis`` (``curve.json``'s summary) has them, the fitted curve with its band, the TF-IDF
    baseline, and the size reaching 90% of the attainable gain.
    """
    analysis = analysis or {}
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    points = sorted(points, key=lambda p: p.finetune_size)
    sizes = [p.finetune_size for p in points]
    figure, axes = plt.subplots(1, len(METRICS), figsize=(18, 4.2), constrained_layout=True)
    positive = [s for s in sizes if s > 0]
    # A symlog axis keeps the factory-floor point (0) on the plot while spreading 1k..100k out.
    use_symlog = len(positive) >= 2 and max(positive) / min(positive) >= 20
    for axis, (key, name, higher_is_better) in zip(axes, METRICS):
        values = [v if v is not None else float("nan") for v in (getattr(p, key) for p in points)]
        fit = (analysis.get("fit") or {}).get(key)
        if fit and fit.get("grid"):
            grid = fit["grid"]
            xs = [x for x, y in zip(grid["sizes"], grid["predicted"]) if y is not None]
            axis.plot(xs, [y for y in grid["predicted"] if y is not None], color="tab:orange", linewidth=1.2,
                      label=f"fit ({fit['family']})")
            band = [(x, lo, hi) for x, lo, hi in zip(grid["sizes"], grid["low"], grid["high"])
                    if lo is not None and hi is not None]
            if band:
                axis.fill_between([b[0] for b in band], [b[1] for b in band], [b[2] for b in band],
                                  color="tab:orange", alpha=0.15, label="fit 95% band")
        intervals = [p.extras.get("intervals", {}).get(key) for p in points]
        if all(intervals):
            lower = [v - i["low"] for v, i in zip(values, intervals)]
            upper = [i["high"] - v for v, i in zip(values, intervals)]
            axis.errorbar(sizes, values, yerr=[lower, upper], fmt="none", ecolor="tab:blue", alpha=0.5, capsize=3)
        axis.plot(sizes, values, marker="o", color="tab:blue", label=name)
        baseline = (analysis.get("baselines") or {})
        if baseline.get(key) is not None:
            axis.axhline(baseline[key], linestyle=":", color="tab:red", linewidth=1, label="TF-IDF + probe")
        answer = analysis.get("answer") or {}
        n90 = (answer.get("n_for_90") or {}).get("n_needed")
        if key == "r2" and n90 is not None and math.isfinite(n90):
            axis.axvline(n90, color="tab:green", linestyle="-.", linewidth=1, label=f"90% of gain: {n90:,.0f}")
        if sizes and sizes[0] == 0:
            axis.axhline(values[0], linestyle="--", color="grey", linewidth=1, label="factory floor (f0)")
        for size, value, point in zip(sizes, values, points):
            axis.annotate(point.label, (size, value), textcoords="offset points", xytext=(0, 6),
                          ha="center", fontsize=7, color="dimgray")
        if use_symlog:
            axis.set_xscale("symlog", linthresh=min(positive))
        axis.set_xlabel("finetune examples")
        axis.set_ylabel(name + (" (higher is better)" if higher_is_better else " (lower is better)"))
        axis.grid(True, alpha=0.3)
        if any(not math.isfinite(v) for v in values):
            axis.set_title("non-finite values")
    axes[0].legend(loc="lower right", fontsize=8)
    figure.suptitle(title or "Downstream price probe vs MLM finetuning data", fontsize=11)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=110, format="png")
    plt.close(figure)
