"""Names every layer shares: the objectives, the probes, the metrics and their direction, the colours
and the formatters of prices and point labels.

The bottom of the import contract (``tests/test_layers.py``): this module imports nothing of the package
but :mod:`hf_finetune_curve.errors` and the objectives' specs (:mod:`hf_finetune_curve.objectives`, one module
per objective, from which :class:`Objective`'s members and :data:`OBJECTIVE_COLOURS` are built), so the config
and every stage (data -> train -> score -> curve -> hub -> space) read one definition of each name.

Example:
    >>> from hf_finetune_curve.names import Objective, ProbeKind, HIGHER_IS_BETTER, format_money, file_label
    >>> Objective("mlm-simcse").display, ProbeKind.RIDGE.display, HIGHER_IS_BETTER["mae"]
    ('MLM→SimCSE', 'ridge', False)
    >>> format_money(1234.5), format_money(12.345), file_label("f200", "tsdae"), file_label("f0", "tsdae")
    ('1,234', '12.35', 'tsdae/f200', 'f0')
"""

from __future__ import annotations

import enum
import math
from typing import Any, Sequence

from .errors import ConfigError
from .objectives import SPECS, ObjectiveSpec

MLM = "mlm"

#: (key, display name, higher is better), in the order tables and plots show them.
METRICS: tuple[tuple[str, str, bool], ...] = (
    ("r2", "R²", True),
    ("r2_log", "R² (log price)", True),
    ("mae", "MAE", False),
    ("median_ae", "Median abs. error", False),
)
METRIC_KEYS: tuple[str, ...] = tuple(key for key, _, _ in METRICS)
METRIC_NAMES: dict[str, str] = {key: name for key, name, _ in METRICS}
HIGHER_IS_BETTER: dict[str, bool] = {key: higher for key, _, higher in METRICS}

#: One colour per objective on every plot (curve.png's panels and the Space's figures): each objective's spec.
OBJECTIVE_COLOURS: dict[str, str] = {name: spec.colour for name, spec in SPECS.items()}
#: The factory-floor model (f0) and a point the answer picks out.
FLOOR_COLOUR = "#EF553B"
DEFAULT_COLOUR = OBJECTIVE_COLOURS[MLM]


def format_money(value: Any) -> str:
    """A price or a price error: thousands separated, cents only below 100; "–" for a missing value."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "–"
    if not math.isfinite(number):
        return "–"
    return f"{number:,.0f}" if abs(number) >= 100 else f"{number:,.2f}"


def objective_name(objective: Any = MLM) -> str:
    """The objective's name: a string, or a ``str``-valued enum member's value.

    >>> objective_name("TSDAE"), objective_name(None)
    ('tsdae', 'mlm')
    """
    return str(getattr(objective, "value", objective) or MLM).strip().lower()


def file_label(label: str, objective: Any = MLM) -> str:
    """A point's file stem under ``points/``, ``probes/``, ``predictions/``, ``checkpoints/``, ``embeddings/``:
    the label for MLM and f0 (shared by every objective), ``<objective>/<label>`` otherwise."""
    name = objective_name(objective)
    return label if name == MLM or label == "f0" else f"{name}/{label}"


def parse_file_label(stem: str) -> tuple[str, str]:
    """The inverse of :func:`file_label`: ``(label, objective)`` of a stem such as ``tsdae/f200``.

    >>> parse_file_label("tsdae/f200"), parse_file_label("f200")
    (('f200', 'tsdae'), ('f200', 'mlm'))
    """
    objective, _, label = str(stem).rpartition("/")
    return label, objective_name(objective or MLM)


class _ObjectiveBase(str, enum.Enum):
    """What a curve finetunes the encoder on: one member per module of :mod:`hf_finetune_curve.objectives`,
    ``Objective.MLM_SIMCSE`` for ``mlm-simcse``; every property reads the objective's spec."""

    @property
    def spec(self) -> ObjectiveSpec:
        """Everything the objective declares (:class:`~hf_finetune_curve.objectives.ObjectiveSpec`)."""
        return SPECS[self.value]

    @property
    def trains_mlm(self) -> bool:
        """Trained by the MLM engine (either schedule): ``mlm`` and ``mlm-distill``."""
        return self.spec.trains_mlm

    @property
    def uses_labels(self) -> bool:
        """Sees the prices of its finetune subset (``supervised``): refused with the test split in the pool."""
        return self.spec.uses_labels

    @property
    def starts_from(self) -> "Objective | None":
        """The objective whose checkpoint of the same size and seed this one continues (mlm-simcse: mlm)."""
        return None if self.spec.starts_from is None else Objective(self.spec.starts_from)

    def file_label(self, label: str) -> str:
        """A point's file stem relative to those folders: ``f200`` (MLM, f0) or ``tsdae/f200``."""
        return file_label(label, self.value)

    def repo_suffix(self, label: str) -> str:
        """The Hub repo name suffix after ``NAME-``: ``f50k`` for MLM, ``tsdae-f50k`` otherwise."""
        return label if self.value == MLM else f"{self.value}-{label}"

    @property
    def colour(self) -> str:
        """The objective's colour on every plot (curve.png and the Space), as a hex code both matplotlib
        and plotly read."""
        return self.spec.colour

    @property
    def display(self) -> str:
        return self.spec.display

    @property
    def description(self) -> str:
        return self.spec.description


# The members come from the specs (in their declared order), so adding an objective module adds a member.
Objective = _ObjectiveBase("Objective", [(name.upper().replace("-", "_"), name) for name in SPECS],
                           module=__name__, qualname="Objective")
Objective.__doc__ = _ObjectiveBase.__doc__


class TextUnit(str, enum.Enum):
    """How the sentence objectives are fed a corpus text."""

    WHOLE = "whole"          # the whole text, truncated to max_seq_length tokens
    SENTENCES = "sentences"  # each sentence of the text as its own example


OBJECTIVE_NAMES = tuple(o.value for o in Objective)
TEXT_UNITS = tuple(u.value for u in TextUnit)


def parse_objective(value: str | Objective) -> Objective:
    try:
        return Objective(str(getattr(value, "value", value)).strip().lower())
    except ValueError:
        raise ConfigError(f"objective must be one of {list(OBJECTIVE_NAMES)}; got {value!r}.") from None


def parse_objectives(spec: str | Sequence[str]) -> list[Objective]:
    """``"mlm,tsdae"`` (or a list) -> objectives in the given order, without repeats."""
    parts = [p for p in (spec.split(",") if isinstance(spec, str) else spec) if str(p).strip()]
    if not parts:
        raise ConfigError("objectives must name at least one of " + ", ".join(OBJECTIVE_NAMES) + ".")
    objectives = [parse_objective(p) for p in parts]
    if len(set(objectives)) != len(objectives):
        raise ConfigError(f"objectives lists an objective twice: {spec!r}.")
    return objectives


class ProbeKind(str, enum.Enum):
    """Which regressor reads a checkpoint's embeddings (``--probes``)."""

    XGBOOST = "xgboost"  # :class:`~hf_finetune_curve.score.probe.PriceProbe`
    RIDGE = "ridge"      # :class:`~hf_finetune_curve.score.probe.RidgeProbe`

    @property
    def display(self) -> str:
        return {"xgboost": "XGBoost", "ridge": "ridge"}[self.value]


PROBE_NAMES: tuple[str, ...] = tuple(kind.value for kind in ProbeKind)


def parse_probe_kind(value: "str | ProbeKind") -> ProbeKind:
    """A probe name (any case) as a :class:`ProbeKind`; an unknown one is a :class:`ConfigError`.

    >>> parse_probe_kind("Ridge")
    <ProbeKind.RIDGE: 'ridge'>
    """
    try:
        return ProbeKind(str(getattr(value, "value", value)).strip().lower())
    except ValueError:
        raise ConfigError(f"--probes: unknown probe {value!r}; the probes are {', '.join(PROBE_NAMES)}.") from None


def parse_probes(spec: "str | Sequence[str | ProbeKind]") -> list[ProbeKind]:
    """``"xgboost,ridge"`` (or a list) -> probe kinds in the given order, a repeat dropped.

    The first is the run's primary probe (its points are the curve's points).

    >>> parse_probes("ridge, xgboost, ridge")
    [<ProbeKind.RIDGE: 'ridge'>, <ProbeKind.XGBOOST: 'xgboost'>]
    """
    parts = [p for p in (spec.split(",") if isinstance(spec, str) else spec) if str(getattr(p, "value", p)).strip()]
    if not parts:
        raise ConfigError(f"--probes must name at least one probe of {', '.join(PROBE_NAMES)}; got {spec!r}.")
    return list(dict.fromkeys(parse_probe_kind(part) for part in parts))
