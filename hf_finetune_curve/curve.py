"""Curve stage: one row per finetune size, written as CSV, JSON and a three-panel plot.

Example:
    >>> from hf_finetune_curve.curve import load_curve, format_table
    >>> print(format_table(load_curve("runs/bat")))  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

from .io_utils import atomic_path, read_json, write_csv_atomic, write_json_atomic

POINTS_DIR = "points"
METRICS = (("r2", "R²", True), ("mae", "MAE", False), ("median_ae", "Median abs. error", False))


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
    finetune_texts_seen: int = 0
    finetune_tokens_seen: int = 0
    finetune_steps: int = 0
    final_mlm_loss: float | None = None
    train_seconds: float = 0.0
    embed_seconds: float = 0.0
    probe_seconds: float = 0.0
    checkpoint: str = ""
    probe_path: str = ""
    extras: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "CurvePoint":
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})


CSV_COLUMNS = [f.name for f in fields(CurvePoint) if f.name != "extras"]


def point_path(run_dir: str | Path, label: str) -> Path:
    return Path(run_dir) / POINTS_DIR / f"{label}.json"


def write_point(run_dir: str | Path, point: CurvePoint) -> None:
    """Record a finished size; its existence is what lets a resumed run skip the size."""
    write_json_atomic(point_path(run_dir, point.label), point.to_dict())


def read_points(run_dir: str | Path) -> list[CurvePoint]:
    folder = Path(run_dir) / POINTS_DIR
    if not folder.is_dir():
        return []
    points = [CurvePoint.from_dict(read_json(path)) for path in folder.glob("*.json")]
    return sorted(points, key=lambda point: point.finetune_size)


def write_curve(run_dir: str | Path, points: Sequence[CurvePoint], summary: dict[str, Any] | None = None) -> None:
    """Write ``curve.csv``, ``curve.json`` and ``curve.png`` into ``run_dir`` (each atomically)."""
    run_dir = Path(run_dir)
    rows = [point.to_dict() for point in sorted(points, key=lambda p: p.finetune_size)]
    write_csv_atomic(run_dir / "curve.csv", rows, CSV_COLUMNS)
    payload = {"points": rows}
    if summary:
        payload.update(summary)
    write_json_atomic(run_dir / "curve.json", payload)
    plot_curve(points, run_dir / "curve.png", title=(summary or {}).get("title"))


def load_curve(run_dir: str | Path) -> list[CurvePoint]:
    """The points of a run: from ``curve.json`` when present, else from the finished sizes."""
    path = Path(run_dir) / "curve.json"
    if path.exists():
        return [CurvePoint.from_dict(row) for row in read_json(path)["points"]]
    return read_points(run_dir)


def _money(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def format_table(points: Sequence[CurvePoint]) -> str:
    """A plain-text table of the curve, with the change against the factory-floor model."""
    points = sorted(points, key=lambda p: p.finetune_size)
    if not points:
        return "(no finished sizes yet)"
    base = points[0] if points[0].finetune_size == 0 else None
    header = ["size", "label", "R²", "ΔR² vs f0", "MAE", "MedAE", "tokens", "train s", "embed s"]
    body = []
    for point in points:
        delta = f"{point.r2 - base.r2:+.4f}" if base is not None else "-"
        body.append([
            f"{point.finetune_size:,}", point.label, f"{point.r2:.4f}", delta, _money(point.mae),
            _money(point.median_ae), f"{point.finetune_tokens_seen:,}", f"{point.train_seconds:.0f}",
            f"{point.embed_seconds:.0f}",
        ])
    widths = [max(len(str(row[i])) for row in [header] + body) for i in range(len(header))]
    lines = ["  ".join(str(cell).rjust(width) for cell, width in zip(row, widths)) for row in [header] + body]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def plot_curve(points: Sequence[CurvePoint], path: str | Path, title: str | None = None, bands: dict | None = None) -> None:
    """Three panels (R², MAE, MedAE) against finetune size; the factory floor as a dashed line."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    points = sorted(points, key=lambda p: p.finetune_size)
    sizes = [p.finetune_size for p in points]
    figure, axes = plt.subplots(1, 3, figsize=(14, 4.2), constrained_layout=True)
    positive = [s for s in sizes if s > 0]
    # A symlog axis keeps the factory-floor point (0) on the plot while spreading 1k..100k out.
    use_symlog = len(positive) >= 2 and max(positive) / min(positive) >= 20
    for axis, (key, name, higher_is_better) in zip(axes, METRICS):
        values = [getattr(p, key) for p in points]
        if bands and key in bands:
            low, high = bands[key]
            axis.fill_between(sizes, low, high, alpha=0.2, color="tab:blue", label="95% interval")
        axis.plot(sizes, values, marker="o", color="tab:blue", label=name)
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


def write_summary_json(run_dir: str | Path, name: str, payload: dict[str, Any]) -> None:
    write_json_atomic(Path(run_dir) / name, payload)
