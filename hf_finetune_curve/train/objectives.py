"""Finetuning objectives, and how their checkpoints, files and Hub repos are named.

Five objectives adapt the encoder to the corpus without labels:

* ``mlm``: masked-language modelling of the transformer (the mission's objective,
  :mod:`hf_finetune_curve.train.finetune` / :mod:`hf_finetune_curve.train.branching`);
* ``mlm-distill``: the same MLM run plus a term that keeps each chunk's pooled, normalised embedding
  close to the factory model's embedding of the same (masked) chunk: MLM that keeps the geometry;
* ``mlm-simcse``: adapt, then align: each size's MLM checkpoint, then unsupervised SimCSE on the same
  subset (both stages get the size's full recipe: the step budget is twice MLM's, recorded per stage);
* ``tsdae``: a denoising auto-encoder (Wang et al. 2021, TSDAE): the sentence embedding of a text with
  60% of its words deleted must let a decoder rebuild the whole text
  (sentence-transformers' ``DenoisingAutoEncoderLoss``);
* ``simcse``: unsupervised SimCSE (Gao et al. 2021): a text paired with itself, the two dropout
  masks being the only noise, in-batch negatives (``MultipleNegativesRankingLoss``).

One uses the labels, as a ceiling that shows the instrument sees a gain where one exists:

* ``supervised``: the encoder finetuned to regress the standardised log price of the subset's
  (probe-training) rows from its pooled embedding, through a linear head first fitted in closed form
  on the factory embeddings (linear probing, then finetuning). Held-out rows never reach it.

The sentence objectives (and mlm-simcse's second stage) train with
:mod:`hf_finetune_curve.train.sentence_objectives`. MLM keeps the mission's names
(``checkpoints/f50k``, ``ORG/NAME-f50k``); the others live under their objective's name
(``checkpoints/tsdae/f50k``, ``ORG/NAME-tsdae-f50k``). ``f0`` is the base model: shared by every
objective.

Example:
    >>> from hf_finetune_curve.train.objectives import Objective, parse_objectives, delete_words
    >>> parse_objectives("mlm, tsdae")
    [<Objective.MLM: 'mlm'>, <Objective.TSDAE: 'tsdae'>]
    >>> Objective.TSDAE.file_label("f200")
    'tsdae/f200'
    >>> Objective.MLM.repo_suffix("f200"), Objective.SIMCSE.repo_suffix("f200")
    ('f200', 'simcse-f200')
    >>> Objective.MLM_SIMCSE.file_label("f50k"), Objective.SUPERVISED.uses_labels, Objective.MLM_DISTILL.trains_mlm
    ('mlm-simcse/f50k', True, True)
    >>> delete_words("a b c d e f g h i j", 0.6, [1, 2]) == delete_words("a b c d e f g h i j", 0.6, [1, 2])
    True
"""

from __future__ import annotations

import enum
import re
from typing import Sequence

import numpy as np

from ..errors import ConfigError


class Objective(str, enum.Enum):
    """What a curve finetunes the encoder on."""

    MLM = "mlm"
    TSDAE = "tsdae"
    SIMCSE = "simcse"
    MLM_SIMCSE = "mlm-simcse"
    MLM_DISTILL = "mlm-distill"
    SUPERVISED = "supervised"

    @property
    def trains_mlm(self) -> bool:
        """Trained by the MLM engine (either schedule): ``mlm`` and ``mlm-distill``."""
        return self in (Objective.MLM, Objective.MLM_DISTILL)

    @property
    def uses_labels(self) -> bool:
        """Sees the prices of its finetune subset (``supervised``): refused with the test split in the pool."""
        return self is Objective.SUPERVISED

    @property
    def starts_from(self) -> "Objective | None":
        """The objective whose checkpoint of the same size and seed this one continues (mlm-simcse: mlm)."""
        return Objective.MLM if self is Objective.MLM_SIMCSE else None

    def file_label(self, label: str) -> str:
        """A point's file stem relative to those folders: ``f200`` (MLM, f0) or ``tsdae/f200``."""
        return label if self is Objective.MLM or label == "f0" else f"{self.value}/{label}"

    def repo_suffix(self, label: str) -> str:
        """The Hub repo name suffix after ``NAME-``: ``f50k`` for MLM, ``tsdae-f50k`` otherwise."""
        return label if self is Objective.MLM else f"{self.value}-{label}"

    @property
    def display(self) -> str:
        return {"mlm": "MLM", "tsdae": "TSDAE", "simcse": "SimCSE", "mlm-simcse": "MLM→SimCSE",
                "mlm-distill": "MLM+distill", "supervised": "supervised"}[self.value]

    @property
    def description(self) -> str:
        return {
            "mlm": "masked-language-model finetuning of the transformer (20% of tokens masked)",
            "tsdae": "TSDAE: denoising auto-encoder on the sentence embedding (60% of words deleted, "
                     "sentence-transformers' DenoisingAutoEncoderLoss)",
            "simcse": "unsupervised SimCSE: each text paired with itself, dropout as noise, in-batch negatives "
                      "(MultipleNegativesRankingLoss)",
            "mlm-simcse": "adapt, then align: the MLM checkpoint of the same size, then unsupervised SimCSE on the "
                          "same subset (each stage the size's full recipe)",
            "mlm-distill": "masked-language-model finetuning plus a distillation term that keeps each chunk's pooled, "
                           "normalised embedding close to the factory model's (a frozen copy as teacher)",
            "supervised": "supervised: the pooled embedding regressed onto the standardised log price of the subset's "
                          "probe-training rows (a linear head fitted in closed form first, then trained with the "
                          "encoder); the label-aware ceiling, not an unsupervised recipe",
        }[self.value]


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


# A sentence ends at . ! or ? followed by whitespace and an upper-case letter, a digit or a quote;
# abbreviations such as "approx. 5" or "St. John" mostly survive (the next word is lower case / a name
# is rare after them in listings), and no language model is needed (nltk's punkt is not reachable).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")


def split_sentences(text: str, min_words: int = 3) -> list[str]:
    """The sentences of ``text``; fragments shorter than ``min_words`` words join the previous one."""
    sentences: list[str] = []
    for part in _SENTENCE_END.split(text.strip()):
        part = part.strip()
        if not part:
            continue
        if sentences and len(part.split()) < min_words:
            sentences[-1] = f"{sentences[-1]} {part}"
        else:
            sentences.append(part)
    return sentences or [text]


def text_units(texts: Sequence[str], unit: TextUnit | str) -> tuple[list[str], np.ndarray]:
    """The training examples of ``texts`` and, for each, the index of the text it came from."""
    unit = TextUnit(getattr(unit, "value", unit))
    if unit is TextUnit.WHOLE:
        return list(texts), np.arange(len(texts), dtype=np.int64)
    units: list[str] = []
    source: list[int] = []
    for index, text in enumerate(texts):
        for sentence in split_sentences(text):
            units.append(sentence)
            source.append(index)
    return units, np.asarray(source, dtype=np.int64)


def delete_words(text: str, ratio: float, seed_parts: Sequence[int]) -> str:
    """TSDAE's noise: delete each whitespace-separated word with probability ``ratio`` (at least one kept).

    A pure function of ``(text, ratio, seed_parts)``: the same damaged text on resume, on any
    process, in any run (the TSDAE paper deletes 60% of the words).
    """
    words = text.split()
    if not words:
        return text
    rng = np.random.default_rng([int(p) & 0xFFFF_FFFF for p in seed_parts])
    keep = rng.random(len(words)) >= float(ratio)
    if not keep.any():
        keep[int(rng.integers(len(words)))] = True
    return " ".join(word for word, kept in zip(words, keep) if kept)


__all__ = ["OBJECTIVE_NAMES", "Objective", "TEXT_UNITS", "TextUnit", "delete_words", "parse_objective",
           "parse_objectives", "split_sentences", "text_units"]
