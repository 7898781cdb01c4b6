"""``curve.png``: the curve's four panels (R², R² on log price, MAE, MedAE) against finetune size.

Where it is written is :mod:`hf_finetune_curve.run_dir`'s business.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from ..io_utils import atomic_path
from ..names import METRICS, OBJECTIVE_COLOURS, Objective  # METRICS: (key, display name, higher is better)
from .points import CurvePoint, _estimate, by_objective


def _display(objective: str) -> str:
    try:
        return Objective(objective).display
    except ValueError:
        return objective


def plot_curve(points: Sequence[CurvePoint], path: str | Path, title: str | None = None,
               analysis: dict[str, Any] | None = None) -> None:
    """Four panels (R², R² on log price, MAE, MedAE) against finetune size, one curve per objective.

    Drawn: each point with its 95% interval, the factory floor as a dashed line, and, when
    ``analysis`` (``curve.json``'s summary) has them, each objective's fitted curve with its band,
    the TF-IDF baseline, and the size reaching 90% of the attainable gain (one objective).
    """
    analysis = analysis or {}
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    curves = by_objective(points)
    several = len(curves) > 1
    sizes_all = sorted({p.finetune_size for p in points})
    figure, axes = plt.subplots(1, len(METRICS), figsize=(18, 4.2), constrained_layout=True)
    positive = [s for s in sizes_all if s > 0]
    # A symlog axis keeps the factory-floor point (0) on the plot while spreading 1k..100k out.
    use_symlog = len(positive) >= 2 and max(positive) / min(positive) >= 20
    sections = analysis.get("objectives") or {}
    for axis, (key, name, higher_is_better) in zip(axes, METRICS):
        floor_drawn = False
        for index, (objective, curve) in enumerate(curves.items()):
            color = OBJECTIVE_COLOURS.get(objective, f"C{index}")  # the Space uses the same colours
            section = sections.get(objective) or (analysis if index == 0 else {})
            sizes = [p.finetune_size for p in curve]
            values = [v if v is not None else float("nan") for v in (_estimate(p, key) for p in curve)]
            prefix = f"{_display(objective)} " if several else ""
            fit = (section.get("fit") or {}).get(key)
            if fit and fit.get("grid"):
                grid = fit["grid"]
                xs = [x for x, y in zip(grid["sizes"], grid["predicted"]) if y is not None]
                axis.plot(xs, [y for y in grid["predicted"] if y is not None], color="tab:orange" if not several
                          else color, linewidth=1.2, linestyle="-" if not several else ":",
                          label=f"{prefix}fit ({fit['family']})")
                band = [(x, lo, hi) for x, lo, hi in zip(grid["sizes"], grid["low"], grid["high"])
                        if lo is not None and hi is not None]
                if band:
                    axis.fill_between([b[0] for b in band], [b[1] for b in band], [b[2] for b in band],
                                      color="tab:orange" if not several else color, alpha=0.12,
                                      label=f"{prefix}fit 95% band")
            intervals = [p.extras.get("intervals", {}).get(key) for p in curve]
            if curve and all(intervals):
                lower = [v - i["low"] for v, i in zip(values, intervals)]
                upper = [i["high"] - v for v, i in zip(values, intervals)]
                axis.errorbar(sizes, values, yerr=[lower, upper], fmt="none", ecolor=color, alpha=0.5, capsize=3)
            axis.plot(sizes, values, marker="o", color=color, label=_display(objective) if several else name)
            answer = section.get("answer") or {}
            n90 = (answer.get("n_for_90") or {}).get("n_needed")
            if key == answer.get("metric", "r2") and n90 is not None and math.isfinite(n90):  # the answer's panel
                axis.axvline(n90, color="tab:green" if not several else color, linestyle="-.", linewidth=1,
                             label=f"{prefix}90% of gain: {n90:,.0f}")
            if sizes and sizes[0] == 0 and not floor_drawn:
                axis.axhline(values[0], linestyle="--", color="grey", linewidth=1, label="factory floor (f0)")
                floor_drawn = True
            if index == 0:
                for size, value, point in zip(sizes, values, curve):
                    axis.annotate(point.label, (size, value), textcoords="offset points", xytext=(0, 6),
                                  ha="center", fontsize=7, color="dimgray")
            if any(not math.isfinite(v) for v in values):
                axis.set_title("non-finite values")
        baseline = (analysis.get("baselines") or {})
        if baseline.get(key) is not None:
            axis.axhline(baseline[key], linestyle=":", color="tab:red", linewidth=1, label="TF-IDF + probe")
        if use_symlog:
            axis.set_xscale("symlog", linthresh=min(positive))
        axis.set_xlabel("finetune examples")
        axis.set_ylabel(name + (" (higher is better)" if higher_is_better else " (lower is better)"))
        axis.grid(True, alpha=0.3)
    axes[0].legend(loc="lower right", fontsize=8)
    figure.suptitle(title or "Downstream price probe vs MLM finetuning data", fontsize=11)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=110, format="png")
    plt.close(figure)
