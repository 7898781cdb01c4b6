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

Each objective is declared in its own module of :mod:`hf_finetune_curve.objectives` (its ``ObjectiveSpec``);
this module resolves a spec's engine and loss (:func:`training_spec`, :data:`ENGINE_LOSSES`).
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

import re
from typing import Sequence

import numpy as np

# The names live in the bottom module (config and every stage read them); re-exported for the training code.
from ..errors import ConfigError
from ..names import OBJECTIVE_NAMES, TEXT_UNITS, Objective, TextUnit, parse_objective, parse_objectives
from ..objectives import ObjectiveSpec, spec_for

#: The losses each engine of the train layer implements, by the name an objective's spec gives (its ``loss``):
#: the MLM engine (train/finetune.py, train/branching.py) and the sentence-transformers engine
#: (train/sentence_objectives.py). A new loss is code here; a new objective that reuses one is only a spec.
ENGINE_LOSSES: dict[str, tuple[str, ...]] = {
    "masked-lm": ("mlm", "mlm-distill"),
    "sentence": ("tsdae", "simcse", "supervised"),
}


def training_spec(objective: Objective | str) -> ObjectiveSpec:
    """The spec of ``objective`` once the train layer has checked it can train it: its engine is one of
    :data:`ENGINE_LOSSES` and its loss one that engine implements (else a :class:`ConfigError` naming both).

    >>> training_spec("mlm-simcse").engine, training_spec("mlm-simcse").loss
    ('sentence', 'simcse')
    """
    spec = spec_for(objective)
    losses = ENGINE_LOSSES.get(spec.engine, ())
    if spec.loss not in losses:
        raise ConfigError(f"objective {spec.name!r} declares engine {spec.engine!r} with loss {spec.loss!r}; that "
                          f"engine trains the losses {list(losses)} (hf_finetune_curve/train/objectives.py).")
    return spec


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


__all__ = ["ENGINE_LOSSES", "OBJECTIVE_NAMES", "Objective", "TEXT_UNITS", "TextUnit", "delete_words", "parse_objective",
           "parse_objectives", "split_sentences", "text_units", "training_spec"]
