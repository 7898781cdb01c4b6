"""``curve.json`` read back and checked: its format version, each point's fields and their types."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..curve.points import CurvePoint
from ..errors import RunDirectoryFormatError
from .layout import CURVE_FORMAT_VERSION


@dataclass
class CurveFile:
    """``curve.json`` read back: the points and the summary sections (fit, answer, baselines, warnings, ...)."""

    points: list[CurvePoint]
    summary: dict[str, Any] = field(default_factory=dict)
    format_version: int = CURVE_FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape without the version field: ``{"points": [...], **summary}``."""
        return {"points": [point.to_dict() for point in self.points], **self.summary}

    @property
    def probe_points(self) -> dict[str, list[CurvePoint]]:
        """Each secondary probe's points (``--probes``), by probe name; empty for a one-probe run."""
        return secondary_probe_points(self.summary)


def secondary_probe_points(curve: Mapping[str, Any]) -> dict[str, list[CurvePoint]]:
    """The secondary probes' points of a ``curve.json`` payload (or its summary): ``probes.<probe>.points``.

    >>> point = CurvePoint(0, "f0", r2=0.3, mae=1.0, median_ae=1.0, n_test=10, n_probe_train=40, probe="ridge")
    >>> {name: [p.label for p in points] for name, points in
    ...  secondary_probe_points({"probes": {"ridge": {"points": [point.to_dict()]}}}).items()}
    {'ridge': ['f0']}
    """
    return {name: [CurvePoint.from_dict(point) for point in (section or {}).get("points") or []]
            for name, section in (curve.get("probes") or {}).items()}


_POINT_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "float | None": (int, float, type(None)),
                "dict[str, Any]": (dict,)}


def _point_from_json(row: Any, path: Path, index: int) -> CurvePoint:
    """A point of ``curve.json``, each known field of the type :class:`CurvePoint` declares; else an error
    naming the file, the point and the field (not a ``TypeError`` deep in a table or a plot)."""
    def refuse(problem: str) -> RunDirectoryFormatError:
        return RunDirectoryFormatError(f"{path}: point {index} {problem}. The file was edited or damaged: re-run "
                                       "the same `hf-curve run` command to write it again.")

    if not isinstance(row, dict):
        raise refuse(f"is {type(row).__name__}, not an object")
    for f in dataclasses.fields(CurvePoint):
        allowed = _POINT_TYPES.get(str(f.type))
        if f.name not in row or allowed is None or (f.name == "r2_log" and row[f.name] is None):
            continue
        value = row[f.name]
        if isinstance(value, bool) or not isinstance(value, allowed):
            raise refuse(f"has {f.name}={value!r}, which is not of type {f.type}")
    try:
        return CurvePoint.from_dict(row)
    except TypeError as exc:  # a required field missing
        raise refuse(f"is incomplete ({exc})") from None
