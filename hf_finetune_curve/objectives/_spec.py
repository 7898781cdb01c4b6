"""What an objective declares: :class:`ObjectiveSpec`, one frozen instance per module of this package."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields

from ..errors import ObjectiveSpecError

#: How a spec's points train: the MLM engine (train/finetune.py, train/branching.py) or the sentence-transformers
#: engine (train/sentence_objectives.py). The train layer maps (engine, loss) to its code.
ENGINES: tuple[str, ...] = ("masked-lm", "sentence")
_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
_COLOUR = re.compile(r"^#[0-9A-Fa-f]{6}$")


@dataclass(frozen=True)
class ObjectiveSpec:
    """One finetuning objective, declared as data: its names, colour, card text, default rate and how it trains.

    Example:
        >>> spec = ObjectiveSpec(name="demo", display="Demo", colour="#123456", order=90,
        ...                      description="a demonstration", learning_rate=2e-5, learning_rate_why="untuned",
        ...                      engine="sentence", loss="simcse")
        >>> spec.trains_mlm, spec.uses_labels, spec.module_name
        (False, False, 'demo')
    """

    #: What users pass (``--objectives demo``): lower case, words joined by '-'; the module is the name with '_'.
    name: str
    #: How tables, legends and the Space title it.
    display: str
    #: Its colour on every plot (curve.png and the Space), a hex code matplotlib and plotly both read.
    colour: str
    #: Where help, tables and plots list it (lower first; ties by name).
    order: int
    #: What it trained on and what it saw, as the model card's "objective" row says.
    description: str
    #: The peak learning rate of its points when no flag sets one (full finetuning), and how it was chosen
    #: (written into every run's config.json beside the rate used).
    learning_rate: float
    learning_rate_why: str
    #: How it trains: the engine, and the loss that engine resolves (masked-lm: mlm, mlm-distill;
    #: sentence: tsdae, simcse, supervised).
    engine: str
    loss: str
    #: The objective whose checkpoint of the same size and seed this one continues (mlm-simcse: mlm), or None.
    starts_from: str | None = None
    #: It sees the prices of its finetune subset: refused with the held-out rows in the pool.
    uses_labels: bool = False
    #: The FinetuneConfig options only some objectives read that this one reads (a run that sets one of them
    #: without an objective that reads it is refused).
    options: tuple[str, ...] = ()
    #: Extra model-card rows: (row name, text), the text formatted with the point's finetune settings and
    #: training stats (``"{simcse_batch_size}"``).
    card_rows: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        problems = []
        for item in fields(self):
            value = getattr(self, item.name)
            if item.type == "str" and not (isinstance(value, str) and value.strip()):
                problems.append(f"{item.name}: expected a non-empty string; got {value!r}")
        if isinstance(self.name, str) and not _NAME.match(self.name):
            problems.append(f"name: expected lower-case words joined by '-'; got {self.name!r}")
        if isinstance(self.colour, str) and not _COLOUR.match(self.colour):
            problems.append(f"colour: expected a hex code such as '#636EFA'; got {self.colour!r}")
        if not isinstance(self.order, int):
            problems.append(f"order: expected an integer; got {self.order!r}")
        if not (isinstance(self.learning_rate, (int, float)) and math.isfinite(self.learning_rate)
                and self.learning_rate > 0):
            problems.append(f"learning_rate: expected a positive number; got {self.learning_rate!r}")
        if self.engine not in ENGINES:
            problems.append(f"engine: expected one of {list(ENGINES)}; got {self.engine!r}")
        if self.starts_from is not None and (self.starts_from == self.name or not _NAME.match(str(self.starts_from))):
            problems.append(f"starts_from: expected another objective's name or None; got {self.starts_from!r}")
        if not all(isinstance(o, str) and o for o in self.options):
            problems.append(f"options: expected FinetuneConfig field names; got {self.options!r}")
        if not all(isinstance(r, tuple) and len(r) == 2 and all(isinstance(p, str) and p for p in r)
                   for r in self.card_rows):
            problems.append(f"card_rows: expected (row name, text) pairs; got {self.card_rows!r}")
        if problems:
            raise ObjectiveSpecError(f"objective {self.name!r}: " + "; ".join(problems) + ".")

    @property
    def module_name(self) -> str:
        """The module of :mod:`hf_finetune_curve.objectives` that declares it: the name with '_' for '-'."""
        return self.name.replace("-", "_")

    @property
    def trains_mlm(self) -> bool:
        """Trained by the MLM engine (either schedule)."""
        return self.engine == "masked-lm"
