"""The training recipe of every curve point, computed before anything is trained.

A point ``f<n>`` trains ``steps`` optimizer steps on the first ``n`` texts of the finetune pool:

* ``steps = max(min_steps, data_steps(n))``, where ``data_steps(n)`` draws every packed chunk of
  ``pool[:n]`` ``epochs`` times (segment by segment, each rounded up to whole steps); small
  subsets are cycled up to ``min_steps`` so they are not starved;
* the learning rate warms up linearly over ``warmup_steps`` (absolute steps, the same for every
  point), stays at its peak, and decays ``1-sqrt`` to exactly 0 over the last
  ``cooldown_steps = max(min_cooldown_steps, round(cooldown_fraction x steps))`` steps (capped by
  ``steps``), so the rate *after* the last step is 0 and no step runs at a rate of 0.

Both schedules train each point on this same :class:`PointRecipe`: the independent schedule from
the base model, the branching schedule by resuming a shared warmup-stable main run at the point's
branch start and following the point's own schedule from there. Their learning-rate integrals are
identical by construction; what differs is only the order in which chunks are drawn.

Data (:class:`CurvePlan`): the pool is tokenised once and packed per segment (``pool[0:n1]``,
``pool[n1:n2]``, ...), so a chunk never mixes texts of two segments and a point's chunks are the
same in both schedules. The main run draws each new segment ``epochs`` times and nothing of a
later segment; a point that ``min_steps`` lengthens cycles its own subset inside its branch.

Example:
    >>> from hf_finetune_curve.train.recipe import PointRecipe
    >>> recipe = PointRecipe(size=100, steps=20, warmup_steps=4, cooldown_steps=5)
    >>> [round(recipe.lr_factor(t), 3) for t in (0, 3, 4, 14, 15, 19, 20)]
    [0.2, 0.8, 1.0, 1.0, 0.592, 0.087, 0.0]
    >>> round(recipe.lr_integral(), 3)
    14.578
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from ..config import FinetuneConfig, per_process_batch


def lr_factor(step: int, *, warmup_steps: int, steps: int | None = None, cooldown_steps: int = 0) -> float:
    """Multiplier of the peak learning rate for optimizer step ``step`` (0-based).

    ``steps=None`` is the branching main run: warmup, then constant. Otherwise the rate reaches 0
    at ``step == steps`` (after the last step), never before.
    """
    warm = (step + 1) / (warmup_steps + 1) if step < warmup_steps else 1.0
    if steps is None:
        return warm
    if step >= steps:
        return 0.0
    decay_start = steps - cooldown_steps
    decay = 1.0 if step < decay_start else 1.0 - math.sqrt((step - decay_start + 1) / (cooldown_steps + 1))
    return min(warm, decay)


@dataclass(frozen=True)
class PointRecipe:
    """How one point trains: its optimizer steps, warmup and cooldown (all in optimizer steps)."""

    size: int
    steps: int
    warmup_steps: int
    cooldown_steps: int

    @property
    def decay_start(self) -> int:
        """The step at which the cooldown starts (where a branching point leaves the main run)."""
        return self.steps - self.cooldown_steps

    def lr_factor(self, step: int) -> float:
        return lr_factor(step, warmup_steps=self.warmup_steps, steps=self.steps, cooldown_steps=self.cooldown_steps)

    def lr_integral(self) -> float:
        """Sum of the learning-rate multipliers over the point's steps (units of peak-LR steps)."""
        return float(sum(self.lr_factor(t) for t in range(self.steps)))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "lr_integral": self.lr_integral()}


def chunks_per_step(config: FinetuneConfig, world_size: int = 1) -> int:
    """Chunks drawn by one optimizer step over all processes (the Trainer's global batch): ``batch_size x
    gradient_accumulation_steps`` whatever the process count (refused when the batch does not split)."""
    per_process_batch(config.batch_size, world_size)
    return int(config.batch_size) * int(config.gradient_accumulation_steps)


@dataclass
class TokenizedTexts:
    """Token ids of many texts in two flat arrays: ``ids[offsets[i]:offsets[i + 1]]`` is text ``i``.

    ~4 bytes a token instead of a Python int object per token (a 120k-listing pool is ~15M tokens).
    """

    ids: np.ndarray       # int32
    offsets: np.ndarray   # int64, len(texts) + 1

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> np.ndarray:
        return self.ids[self.offsets[index]:self.offsets[index + 1]]

    @classmethod
    def from_lists(cls, encoded: Sequence[Sequence[int]]) -> "TokenizedTexts":
        lengths = np.fromiter((len(ids) for ids in encoded), dtype=np.int64, count=len(encoded))
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.fromiter((t for ids in encoded for t in ids), dtype=np.int32, count=int(offsets[-1]))
        return cls(ids=flat, offsets=offsets)

    @classmethod
    def concatenate(cls, parts: Sequence["TokenizedTexts"]) -> "TokenizedTexts":
        if not parts:
            return cls(ids=np.zeros(0, dtype=np.int32), offsets=np.zeros(1, dtype=np.int64))
        shifts = np.cumsum([0] + [int(p.offsets[-1]) for p in parts[:-1]])
        offsets = np.concatenate([parts[0].offsets[:1]] + [p.offsets[1:] + shift for p, shift in zip(parts, shifts)])
        return cls(ids=np.concatenate([p.ids for p in parts]), offsets=offsets)


@dataclass
class PackedChunks:
    """Chunks as views of a :class:`TokenizedTexts` stream: chunk ``c`` is ``ids[starts[c]:ends[c]]``."""

    ids: np.ndarray
    starts: np.ndarray
    ends: np.ndarray

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.ids[self.starts[index]:self.ends[index]]

    @property
    def lengths(self) -> np.ndarray:
        return self.ends - self.starts

    def to_lists(self) -> list[list[int]]:
        return [self[c].tolist() for c in range(len(self))]


def pack_segments(encoded: TokenizedTexts | Sequence[Sequence[int]], sizes: Sequence[int], chunk_length: int):
    """Pack tokenised texts into chunks of ``chunk_length`` tokens, segment by segment.

    Returns ``(chunks, chunk_last_text, segment_ends)``: the :class:`PackedChunks`, the highest
    pool index of a text with tokens in each chunk, and for each size the number of chunks built
    from its texts. Every token is kept; a long text continues into the next chunk of its segment
    (within a segment the stream is cut every ``chunk_length`` tokens, the last chunk shorter).
    """
    if chunk_length < 2:
        raise ValueError(f"chunk_length must be >= 2, got {chunk_length}")
    if not isinstance(encoded, TokenizedTexts):
        encoded = TokenizedTexts.from_lists(encoded)
    starts: list[np.ndarray] = []
    ends: list[int] = []
    previous = 0
    for size in sizes:
        first, last = int(encoded.offsets[previous]), int(encoded.offsets[size])
        starts.append(np.arange(first, last, chunk_length, dtype=np.int64))
        ends.append((ends[-1] if ends else 0) + len(starts[-1]))
        previous = size
    chunk_starts = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)
    # A chunk ends chunk_length later, or at its segment's end.
    segment_stops = np.concatenate([np.full(len(s), int(encoded.offsets[size]), dtype=np.int64)
                                    for s, size in zip(starts, sizes)]) if starts else np.zeros(0, dtype=np.int64)
    chunk_ends = np.minimum(chunk_starts + chunk_length, segment_stops)
    last_text = np.searchsorted(encoded.offsets, chunk_ends - 1, side="right") - 1
    return PackedChunks(ids=encoded.ids, starts=chunk_starts, ends=chunk_ends), last_text.astype(np.int64), ends


def _draws(ids: np.ndarray, count: int, seed_parts: Sequence[int]) -> list[int]:
    """``count`` draws of ``ids``: one fresh permutation per pass (seeded by ``seed_parts`` + pass)."""
    out: list[int] = []
    epoch = 0
    while len(out) < count and len(ids):
        rng = np.random.default_rng([*seed_parts, epoch])
        out.extend(rng.permutation(ids).tolist())
        epoch += 1
    return out[:count]


@dataclass
class CurvePlan:
    """Every point's recipe and the chunks each optimizer step draws, for both schedules.

    ``data_steps[k]``: steps the branching main run takes to draw every chunk of ``pool[:n_k]``
    ``epochs`` times (each segment rounded up to whole steps, the remainder filled from the
    subset). A point's ``steps`` is ``max(min_steps, data_steps)`` in both schedules.
    """

    sizes: list[int]
    chunk_length: int
    chunks: PackedChunks
    chunk_last_text: np.ndarray
    segment_ends: list[int]
    chunks_per_step: int
    epochs: float
    seed: int
    recipes: dict[int, PointRecipe]
    data_steps: list[int]
    main_stream: np.ndarray

    # -- independent ------------------------------------------------------------------------
    def independent_stream(self, size: int) -> np.ndarray:
        """Chunk ids an independent run of ``size`` draws, in order: ``steps x chunks_per_step``.

        ``epochs`` fresh permutations of the subset's chunks, cycled further to fill the steps.
        """
        k = self.sizes.index(size)
        ids = np.arange(self.segment_ends[k])
        return np.asarray(_draws(ids, self.recipes[size].steps * self.chunks_per_step, [self.seed, 0, k]),
                          dtype=np.int64)

    def head_warmup_stream(self, steps: int) -> np.ndarray:
        """Draws for training a new MLM head alone: the smallest subset's chunks only."""
        ids = np.arange(self.segment_ends[0])
        return np.asarray(_draws(ids, int(steps) * self.chunks_per_step, [self.seed, 3]), dtype=np.int64)

    # -- branching ---------------------------------------------------------------------------
    def branch_start(self, size: int) -> int:
        """The main-run step a point branches at: its decay start, or the end of its data when
        ``min_steps`` asks for more steps than that (the branch then cycles the subset itself)."""
        k = self.sizes.index(size)
        return min(self.recipes[size].decay_start, self.data_steps[k])

    def branch_stream(self, size: int) -> np.ndarray:
        """A branch's draws from step 0 (the Trainer skips the steps its checkpoint already took):
        the main run's up to the end of the point's data, then its own cycling of the subset."""
        k = self.sizes.index(size)
        main = self.main_stream[: self.data_steps[k] * self.chunks_per_step]
        extra = (self.recipes[size].steps - self.data_steps[k]) * self.chunks_per_step
        if extra <= 0:
            return main
        fill = _draws(np.arange(self.segment_ends[k]), extra, [self.seed, 4, k])
        return np.concatenate([main, np.asarray(fill, dtype=np.int64)])

    @property
    def main_steps(self) -> int:
        """Steps of the shared main run: up to the largest point's branch start."""
        return self.branch_start(self.sizes[-1])

    def max_text_index(self, stream: np.ndarray) -> int:
        return int(self.chunk_last_text[stream].max()) if len(stream) else -1

    def tokens(self, stream: np.ndarray) -> int:
        return int(self.chunks.lengths[stream].sum()) if len(stream) else 0

    def summary(self) -> dict[str, Any]:
        """Optimizer steps of the whole curve under each schedule, against its largest point."""
        independent = sum(self.recipes[s].steps for s in self.sizes)
        branching = self.main_steps + sum(self.recipes[s].steps - self.branch_start(s) for s in self.sizes)
        largest = self.recipes[self.sizes[-1]].steps
        return {
            "sizes": list(self.sizes),
            "points": {str(s): {**self.recipes[s].to_dict(), "branch_start": self.branch_start(s)}
                       for s in self.sizes},
            "chunks_per_step": self.chunks_per_step,
            "main_steps": self.main_steps,
            "independent_steps": independent,
            "branching_steps": branching,
            "independent_ratio": independent / largest,
            "branching_ratio": branching / largest,
        }


def plan_curve(
    encoded: TokenizedTexts | Sequence[Sequence[int]],
    sizes: Sequence[int],
    config: FinetuneConfig,
    *,
    seed: int,
    chunk_length: int,
    world_size: int = 1,
) -> CurvePlan:
    """Recipes and draw orders for ``sizes`` (positive, ascending) over tokenised pool texts."""
    sizes = [int(s) for s in sizes]
    if not sizes or any(s <= 0 for s in sizes) or any(b <= a for a, b in zip(sizes, sizes[1:])):
        raise ValueError(f"sizes must be positive and strictly ascending; got {sizes}.")
    if sizes[-1] > len(encoded):
        raise ValueError(f"size {sizes[-1]} exceeds the finetune pool ({len(encoded)} texts).")
    chunks, last_text, ends = pack_segments(encoded, sizes, chunk_length)
    per_step = chunks_per_step(config, world_size)
    epochs = float(config.epochs)

    # The branching main run: each new segment's chunks `epochs` times (fresh shuffles), the last
    # step of the segment filled from the whole subset; never a chunk of a later segment.
    stream: list[int] = []
    data_steps: list[int] = []
    previous_end = 0
    for k, end in enumerate(ends):
        new_ids = np.arange(previous_end, end)
        segment = _draws(new_ids, max(1, int(round(epochs * len(new_ids)))), [seed, 1, k])
        steps = math.ceil(len(segment) / per_step)
        segment += _draws(np.arange(end), steps * per_step - len(segment), [seed, 2, k])
        stream.extend(segment)
        data_steps.append(len(stream) // per_step)
        previous_end = end

    recipes = {}
    for k, size in enumerate(sizes):
        steps = max(int(config.min_steps), data_steps[k], 1)
        cooldown = min(steps, max(int(config.min_cooldown_steps), int(round(float(config.cooldown_fraction) * steps))))
        recipes[size] = PointRecipe(size=size, steps=steps, warmup_steps=int(config.warmup_steps),
                                    cooldown_steps=int(cooldown))
    return CurvePlan(sizes=sizes, chunk_length=chunk_length, chunks=chunks, chunk_last_text=last_text,
                     segment_ends=ends, chunks_per_step=per_step, epochs=epochs, seed=int(seed), recipes=recipes,
                     data_steps=data_steps, main_stream=np.asarray(stream, dtype=np.int64))


@dataclass
class UnitPlan:
    """Draw orders of the sentence objectives (TSDAE, SimCSE), on the MLM plan's recipes.

    A *unit* is one training example: a whole text, or one sentence of it. ``unit_text[u]`` is the
    pool index of the text unit ``u`` came from, in pool order, so the units of ``pool[:n]`` are the
    first ``unit_ends[k]`` units. Every point keeps the MLM point's :class:`PointRecipe` (steps,
    warmup, cooldown): curves of different objectives are compared at equal optimizer steps and
    learning-rate integrals; only what a step draws differs (``chunks_per_step`` units instead of
    packed chunks).
    """

    sizes: list[int]
    unit_text: np.ndarray
    unit_ends: list[int]
    chunks_per_step: int
    seed: int
    recipes: dict[int, PointRecipe]

    def independent_stream(self, size: int) -> np.ndarray:
        """Unit ids a point draws, in order: fresh permutations of its subset's units, cycled."""
        k = self.sizes.index(size)
        ids = np.arange(self.unit_ends[k])
        return np.asarray(_draws(ids, self.recipes[size].steps * self.chunks_per_step, [self.seed, 5, k]),
                          dtype=np.int64)

    def max_text_index(self, stream: np.ndarray) -> int:
        return int(self.unit_text[stream].max()) if len(stream) else -1

    def summary(self) -> dict[str, Any]:
        return {
            "sizes": list(self.sizes),
            "points": {str(s): {**self.recipes[s].to_dict(), "units": int(self.unit_ends[self.sizes.index(s)])}
                       for s in self.sizes},
            "chunks_per_step": self.chunks_per_step,
            "independent_steps": sum(self.recipes[s].steps for s in self.sizes),
        }


def plan_units(unit_text: np.ndarray, plan: CurvePlan, per_step: int | None = None) -> UnitPlan:
    """A :class:`UnitPlan` over ``unit_text`` (source text of each unit, ascending) with ``plan``'s recipes.

    ``per_step``: units one optimizer step draws (all processes); default the MLM plan's chunks per step.
    """
    unit_text = np.asarray(unit_text, dtype=np.int64)
    if len(unit_text) and np.any(np.diff(unit_text) < 0):
        raise ValueError("units must be in pool order (unit_text ascending).")
    ends = [int(np.searchsorted(unit_text, size, side="left")) for size in plan.sizes]
    return UnitPlan(sizes=list(plan.sizes), unit_text=unit_text, unit_ends=ends,
                    chunks_per_step=int(per_step or plan.chunks_per_step), seed=plan.seed,
                    recipes=dict(plan.recipes))


__all__ = ["CurvePlan", "PackedChunks", "PointRecipe", "TokenizedTexts", "chunks_per_step", "lr_factor", "per_process_batch", "pack_segments", "plan_curve",
           "UnitPlan", "plan_units"]
