"""Branching schedule: one MLM run for the whole curve, with a short cooldown branch per size.

Training every size from the base model costs the sum of all sizes. Here one *main run* walks the
finetune pool in its nested order with a warmup-stable-decay learning rate (Hägele et al. 2024,
"Scaling Laws and Compute-Optimal Training Beyond Fixed Training Durations"): linear warmup, then
a constant rate. At each size boundary ``n`` the stable-phase state (model with MLM head,
optimizer, RNG, step) is saved to ``state_dir``; a *cooldown branch* then trains on, drawing only
from the first ``n`` texts, while the rate decays ``1-sqrt`` to zero over
``cooldown_fraction`` x (main steps up to ``n``) steps; the branch's model is handed to
``on_branch`` and the main run resumes from the saved state. The largest size decays inside the
main run (the last ``cooldown_fraction`` of its steps, all within its own last segment), so it
costs nothing extra; only when that last segment is shorter than its cooldown is it branched too.

Data and epochs (the same rule as the independent schedule):
    The pool is cut into segments at the sizes: ``pool[0:n1]``, ``pool[n1:n2]``, ... Each segment
    is tokenised and packed into chunks of ``chunk_length`` tokens (every token kept), and the main
    run makes ``epochs`` passes over each new segment (a fresh shuffle per pass; a fractional
    epoch takes the first part of one more shuffle) before reaching its boundary. So at boundary
    ``n`` the main run has seen every text of ``pool[:n]`` exactly ``epochs`` times, as an
    independent run on ``pool[:n]`` does: the same texts and the same number of tokens. The
    cooldown's tokens come on top and are counted in the point's ``tokens_seen``.

Cost: main run ``S(N)`` steps plus cooldowns ``f * sum(S(n) for branched n < N)``. For doubling
sizes (..., N/4, N/2, N) with f = 0.15 that is about 1.15x the largest independent run
(:func:`plan_branching` reports the exact ratio before anything is trained).

Several processes (``torchrun``, ``accelerate launch``): data-parallel like the Trainer path, each
process training on its share of every batch (``batch_size`` chunks per process), gradients
summed across processes; rank 0 writes the boundary states.

Resume: sizes in ``completed`` are not branched again; the main run restarts from the latest
valid boundary state at or before the first incomplete size; it stops once every incomplete size
is done. Boundary states are checked against a fingerprint of the data, sizes, config, seed and
base model, and all but the latest are deleted as the run moves on (``keep_states`` keeps them).

Example:
    >>> from hf_finetune_curve.branching import finetune_branching
    >>> stats = finetune_branching(model, pool_texts, [200, 400, 800], FinetuneConfig(), seed=42,
    ...                            device="cuda", state_dir="runs/x/checkpoints/.branching",
    ...                            on_branch=lambda n, result: result.model.save(f"f{n}"))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .config import FinetuneConfig
from .finetune import (
    FinetuneResult,
    MLMSetup,
    _world_size,
    build_optimizer,
    finetuned_encoder_state,
    make_collator,
    max_grad_norm,
    pack_token_lists,
    prepare_mlm,
    resolve_device,
    sentence_transformer_with_encoder,
    tokenize_texts,
    transformer_module,
    use_bf16,
)

logger = logging.getLogger(__name__)

STATE_FORMAT = 1
DEFAULT_COOLDOWN_FRACTION = 0.15
# What the whole curve should cost at most, in tokens, relative to an independent run on its largest size.
COMPUTE_BUDGET = 1.25
# trainer_kwargs the plain loop honours; any other key only shapes the independent (Trainer) schedule.
_HONOURED_TRAINER_KWARGS = {"max_grad_norm"}


# --------------------------------------------------------------------------------------------
# Plan: which chunks every optimizer step draws. Deterministic in (texts, sizes, config, seed).
# --------------------------------------------------------------------------------------------
@dataclass
class _Segment:
    size: int                       # the boundary this segment ends at
    chunk_start: int                # global chunk indices [chunk_start, chunk_end)
    chunk_end: int
    steps: list[list[list[int]]]    # optimizer steps -> micro-batches -> chunk indices
    cooldown: list[list[list[int]]]  # the cooldown branch at this boundary (empty when inline/none)
    inline_decay: bool = False      # the main run itself decays over its last cooldown steps


@dataclass
class BranchingPlan:
    """What a branching run will do, computed without training (cheap: tokenisation only)."""

    sizes: list[int]
    chunk_length: int
    chunks: list[list[int]]
    chunk_last_text: np.ndarray      # highest pool index of a text with tokens in each chunk
    chunk_sources: list[list[tuple[int, int]]]  # (text index, tokens) pieces of each chunk
    segments: list[_Segment]
    warmup_steps: int
    epochs: float
    inline_decay_steps: int = 0      # decay steps at the end of the main run (largest size), 0 if branched

    def main_steps_to(self, index: int) -> int:
        return sum(len(seg.steps) for seg in self.segments[: index + 1])

    def main_tokens_to(self, index: int) -> int:
        return sum(self._tokens(step) for seg in self.segments[: index + 1] for step in seg.steps)

    def cooldown_tokens(self, index: int) -> int:
        return sum(self._tokens(step) for step in self.segments[index].cooldown)

    def cooldown_steps(self, index: int) -> int:
        seg = self.segments[index]
        if seg.inline_decay:
            return _inline_decay_steps(self, index)
        return len(seg.cooldown)

    def subset_chunks(self, index: int) -> int:
        return self.segments[index].chunk_end

    def _tokens(self, step: list[list[int]]) -> int:
        return sum(len(self.chunks[c]) for micro in step for c in micro)

    def summary(self) -> dict[str, Any]:
        """Steps and tokens of the whole curve against the largest independent run (and all of them)."""
        last = len(self.segments) - 1
        main_tokens = self.main_tokens_to(last)
        cooldown_tokens = sum(self.cooldown_tokens(i) for i in range(len(self.segments)))
        main_steps = self.main_steps_to(last)
        cooldown_steps = sum(len(seg.cooldown) for seg in self.segments)
        independent_tokens = [self.main_tokens_to(i) for i in range(len(self.segments))]
        return {
            "sizes": list(self.sizes),
            "main_steps": main_steps,
            "cooldown_steps": cooldown_steps,
            "main_tokens": main_tokens,
            "cooldown_tokens": cooldown_tokens,
            "total_tokens": main_tokens + cooldown_tokens,
            "largest_independent_tokens": independent_tokens[-1],
            "compute_ratio": (main_tokens + cooldown_tokens) / max(1, independent_tokens[-1]),
            "independent_ratio": sum(independent_tokens) / max(1, independent_tokens[-1]),
            "warmup_steps": self.warmup_steps,
            "inline_last": self.segments[-1].inline_decay,
        }


def _inline_decay_steps(plan: BranchingPlan, index: int) -> int:
    return plan.inline_decay_steps if index == len(plan.segments) - 1 else 0


def _batches(order: Sequence[int], batch_size: int, accumulation: int) -> list[list[list[int]]]:
    per_step = batch_size * accumulation
    steps = []
    for start in range(0, len(order), per_step):
        block = [int(c) for c in order[start:start + per_step]]
        steps.append([block[i:i + batch_size] for i in range(0, len(block), batch_size)])
    return steps


def _validate_sizes(sizes: Sequence[int], pool_size: int) -> list[int]:
    sizes = [int(s) for s in sizes]
    if not sizes:
        raise ValueError("finetune_branching needs at least one positive size.")
    if any(s <= 0 for s in sizes):
        raise ValueError(f"branching sizes must be positive (size 0 is the base model); got {sizes}.")
    if any(b <= a for a, b in zip(sizes, sizes[1:])):
        raise ValueError(f"branching sizes must be strictly ascending; got {sizes}.")
    if sizes[-1] > pool_size:
        raise ValueError(f"size {sizes[-1]} exceeds the finetune pool ({pool_size} texts).")
    return sizes


def plan_branching(
    tokenizer,
    pool_texts: Sequence[str],
    sizes: Sequence[int],
    config: FinetuneConfig,
    *,
    seed: int,
    chunk_length: int,
    cooldown_fraction: float = DEFAULT_COOLDOWN_FRACTION,
    world_size: int = 1,
) -> BranchingPlan:
    """Tokenise, pack per segment and fix the draw order of the main run and of every cooldown.

    With ``world_size`` processes each micro-batch holds ``batch_size`` chunks per process, as
    the Trainer's ``per_device_train_batch_size`` does: the global batch grows, steps shrink.
    """
    sizes = _validate_sizes(sizes, len(pool_texts))
    if not 0 <= cooldown_fraction < 1:
        raise ValueError(f"cooldown_fraction must be in [0, 1); got {cooldown_fraction}.")
    epochs = float(config.epochs)
    batch, accumulation = int(config.batch_size) * int(world_size), int(config.gradient_accumulation_steps)
    encoded = tokenize_texts(pool_texts[: sizes[-1]], tokenizer)
    chunks: list[list[int]] = []
    sources: list[list[tuple[int, int]]] = []
    segments: list[_Segment] = []
    previous = 0
    for k, size in enumerate(sizes):
        seg_chunks, seg_sources = pack_token_lists(encoded[previous:size], chunk_length, first_index=previous,
                                                   with_sources=True)
        start = len(chunks)
        chunks.extend(seg_chunks)
        sources.extend(seg_sources)
        ids = np.arange(start, len(chunks))
        draws = max(1, int(round(epochs * len(ids))))
        order: list[int] = []
        epoch = 0
        while len(order) < draws:
            rng = np.random.default_rng([seed, 1, k, epoch])
            order.extend(rng.permutation(ids).tolist())
            epoch += 1
        segments.append(_Segment(size=size, chunk_start=start, chunk_end=len(chunks),
                                 steps=_batches(order[:draws], batch, accumulation), cooldown=[]))
        previous = size
    chunk_last_text = np.array([pieces[-1][0] for pieces in sources], dtype=np.int64)

    cumulative = np.cumsum([len(seg.steps) for seg in segments])
    warmup = int(math.ceil(float(config.warmup_ratio) * cumulative[0]))
    plan = BranchingPlan(sizes=sizes, chunk_length=chunk_length, chunks=chunks, chunk_last_text=chunk_last_text,
                         chunk_sources=sources, segments=segments, warmup_steps=warmup, epochs=epochs)
    if cooldown_fraction == 0:
        return plan
    for k, seg in enumerate(segments):
        n_steps = max(1, int(round(cooldown_fraction * cumulative[k])))
        if k == len(segments) - 1 and len(seg.steps) >= n_steps:
            seg.inline_decay = True
            plan.inline_decay_steps = n_steps
            continue
        available = np.arange(0, seg.chunk_end)
        needed = n_steps * batch * accumulation
        order = []
        round_ = 0
        while len(order) < needed:
            rng = np.random.default_rng([seed, 2, k, round_])
            order.extend(rng.permutation(available).tolist())
            round_ += 1
        seg.cooldown = _batches(order[:needed], batch, accumulation)
    return plan


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------
@dataclass
class BranchPointStats:
    """One branched size: what its model trained on and what it cost."""

    size: int
    main_steps: int          # main-run optimizer steps up to the boundary
    cooldown_steps: int      # steps of its cooldown (inside the main run for an inline last size)
    main_tokens: int         # main-run tokens up to the boundary (epochs x tokens of pool[:size])
    cooldown_tokens: int     # tokens drawn by its cooldown branch (0 when the decay was inline)
    inline_decay: bool
    max_text_index: int      # highest pool index any chunk it trained on came from (always < size)
    train_seconds: float     # incremental: main-run time of its segment + its cooldown

    @property
    def tokens_seen(self) -> int:
        return self.main_tokens + self.cooldown_tokens


@dataclass
class BranchingStats:
    """What a :func:`finetune_branching` call did, and what the whole curve costs."""

    sizes: list[int]
    points: dict[int, BranchPointStats] = field(default_factory=dict)  # branched in this call
    skipped: list[int] = field(default_factory=list)   # sizes in ``completed``, not branched again
    resumed_from: int | None = None    # boundary whose saved state the main run restarted from
    main_steps_run: int = 0            # main-run optimizer steps executed by this call
    cooldown_steps_run: int = 0        # cooldown optimizer steps executed by this call
    train_seconds: float = 0.0        # wall time of the call, time inside on_branch included
    # Where the time went: setup (model, tokenising, fingerprint), main, cooldown, save_state,
    # load_state, export (merged copy + restoring the main run) and on_branch (the caller's work).
    seconds: dict[str, float] = field(default_factory=dict)
    plan: dict[str, Any] = field(default_factory=dict)  # BranchingPlan.summary(): the whole curve's cost
    draws: dict[str, list[int]] | None = None  # with audit=True: chunk indices drawn, "main:<n>", "cooldown:<n>"
    chunk_sources: list[list[tuple[int, int]]] | None = None  # with audit=True: (text, tokens) per chunk

    @property
    def compute_ratio(self) -> float:
        """(main-run + all cooldown tokens) / tokens of an independent run on the largest size."""
        return float(self.plan.get("compute_ratio", float("nan")))

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values.pop("draws", None)
        values.pop("chunk_sources", None)
        values["points"] = {str(k): asdict(v) for k, v in self.points.items()}
        return values


# --------------------------------------------------------------------------------------------
# State on disk
# --------------------------------------------------------------------------------------------
def _state_path(state_dir: Path, size: int) -> Path:
    return state_dir / f"boundary-{size:012d}.pt"


def _saved_states(state_dir: Path) -> dict[int, Path]:
    found = {}
    if state_dir.is_dir():
        for path in state_dir.glob("boundary-*.pt"):
            try:
                found[int(path.stem.split("-", 1)[1])] = path
            except ValueError:
                continue
    return found


def _to_cpu(value):
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_cpu(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_to_cpu(v) for v in value)
    return value


def _fingerprint(model, pool_texts: Sequence[str], sizes: list[int], config: FinetuneConfig, seed: int,
                 chunk_length: int, world_size: int) -> list[str]:
    """One fingerprint per boundary: what the stable-phase state at that boundary depends on."""
    base = hashlib.sha256()
    values = asdict(config)
    values.pop("report_to", None)
    base.update(json.dumps({"format": STATE_FORMAT, "config": values, "seed": seed, "chunk": chunk_length,
                            "first_size": sizes[0], "world_size": world_size}, sort_keys=True, default=str).encode())
    encoder = transformer_module(model).auto_model
    with torch.no_grad():
        for name, param in encoder.state_dict().items():
            base.update(f"{name}:{tuple(param.shape)}:{float(param.double().sum()):.10e}".encode())
    prints = []
    previous = 0
    for size in sizes:
        for text in pool_texts[previous:size]:
            base.update(text.encode("utf-8", "surrogatepass"))
            base.update(b"\x00")
        base.update(f"|{size}|".encode())
        prints.append(base.hexdigest())
        previous = size
    return prints


def _atomic_torch_save(payload: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# Several processes (torchrun / accelerate launch): data-parallel, gradients summed by hand
# --------------------------------------------------------------------------------------------
def _distributed(device: str) -> tuple[int, int, str]:
    """(rank, world size, device): joins the launcher's process group, one GPU per process."""
    world_size = _world_size()
    if world_size == 1:
        return 0, 1, device
    import datetime

    import torch.distributed as dist

    if device.startswith("cuda"):
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    if not dist.is_initialized():
        # Rank 0 embeds and scores each branch while the others wait in the next collective:
        # allow that to take hours, not the default minutes.
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo",
                                timeout=datetime.timedelta(hours=6))
    return dist.get_rank(), dist.get_world_size(), device


def _all_reduce(tensor: torch.Tensor) -> torch.Tensor:
    import torch.distributed as dist

    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def _all_reduce_gradients(params: list[torch.Tensor]) -> None:
    from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

    grads = []
    for param in params:
        if param.grad is None:  # a process without chunks in this step still takes part
            param.grad = torch.zeros_like(param)
        grads.append(param.grad)
    for dtype in {g.dtype for g in grads}:
        group = [g for g in grads if g.dtype == dtype]
        flat = _all_reduce(_flatten_dense_tensors(group))
        for grad, reduced in zip(group, _unflatten_dense_tensors(flat, group)):
            grad.copy_(reduced)


def _barrier(world_size: int) -> None:
    if world_size > 1:
        import torch.distributed as dist

        dist.barrier()


def _gather_objects(value: Any, world_size: int) -> list[Any]:
    if world_size == 1:
        return [value]
    import torch.distributed as dist

    gathered: list[Any] = [None] * world_size
    dist.all_gather_object(gathered, value)
    return gathered


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------
class _Trainer:
    """The plain training loop: the same collator, SparseMaskedLM and AdamW as the Trainer path."""

    def __init__(self, setup: MLMSetup, plan: BranchingPlan, config: FinetuneConfig, device: str, seed: int,
                 on_draw: Callable[[str, list[int]], None] | None, rank: int = 0, world_size: int = 1) -> None:
        from transformers import get_wsd_schedule

        self.setup, self.plan, self.config, self.device = setup, plan, config, device
        self.rank, self.world_size = rank, world_size
        self.model = setup.trainable.to(device)
        self.model.train()
        self.optimizer = build_optimizer(self.model, config, device)
        total = plan.main_steps_to(len(plan.segments) - 1)
        decay = _inline_decay_steps(plan, len(plan.segments) - 1)
        self.scheduler = get_wsd_schedule(
            self.optimizer, num_warmup_steps=plan.warmup_steps, num_decay_steps=decay,
            num_stable_steps=max(0, total - plan.warmup_steps - decay), decay_type="1-sqrt",
        )
        self.collator = make_collator(setup.tokenizer, config.mlm_probability, seed)
        # Rank 0 masks as a single process does; other ranks draw their own masks.
        self.collator.generator = torch.Generator().manual_seed(int(seed) + 1_000_003 * rank)
        self.clip = max_grad_norm(config)
        self.autocast = use_bf16(device)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.on_draw = on_draw
        self.step = 0                 # main-run optimizer steps done
        self.tokens = 0               # main-run tokens
        self.loss_sum = 0.0           # sum of main-run step losses
        self.seconds = 0.0            # main-run seconds, all sessions
        self.max_text_index = -1      # highest pool index the main run trained on
        self.segment_seconds = 0.0    # main-run seconds of the current segment

    # -- one optimizer step ------------------------------------------------------------------
    def train_step(self, step: list[list[int]], tag: str) -> tuple[float, int]:
        chunks = self.plan.chunks
        if self.on_draw is not None:
            self.on_draw(tag, [c for micro in step for c in micro])
        # Under several processes every micro-batch is shared out: this process takes every
        # world_size-th chunk of it (possibly none of a short last one).
        local = [micro[self.rank::self.world_size] for micro in step]
        batches = [self.collator([{"input_ids": chunks[c]} for c in micro]) for micro in local if micro]
        items = sum(int((b["labels"] != -100).sum()) for b in batches)
        if self.world_size > 1:
            items = int(_all_reduce(torch.tensor(float(items), device=self.device)))
        self.optimizer.zero_grad(set_to_none=True)
        loss_total = torch.zeros((), device=self.device)
        for batch in batches:
            batch = {key: value.to(self.device, non_blocking=True) for key, value in batch.items()}
            context = (torch.autocast(device_type="cuda", dtype=torch.bfloat16) if self.autocast
                       else contextlib.nullcontext())
            with context:
                loss = self.model(**batch, num_items_in_batch=items)["loss"]
            loss.backward()
            loss_total += loss.detach().float()
        if self.world_size > 1:
            # Each process's loss is its share of the global mean: summing the gradients gives it.
            _all_reduce_gradients(self.params)
            loss_total = _all_reduce(loss_total)
        if self.clip and self.clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        self.optimizer.step()
        tokens = sum(len(chunks[c]) for micro in step for c in micro)
        return float(loss_total), tokens

    def run_main_segment(self, index: int, progress) -> None:
        seg = self.plan.segments[index]
        started = time.perf_counter()
        for step in seg.steps:
            loss, tokens = self.train_step(step, f"main:{seg.size}")
            self.scheduler.step()
            self.step += 1
            self.tokens += tokens
            self.loss_sum += loss
            self.max_text_index = max(self.max_text_index, int(self.plan.chunk_last_text[
                [c for micro in step for c in micro]].max()))
            progress.update(1)
        self.segment_seconds = time.perf_counter() - started
        self.seconds += self.segment_seconds

    def run_cooldown(self, index: int, progress) -> tuple[float, int, int, float]:
        """The cooldown branch at boundary ``index``: loss sum, tokens, max text index, seconds."""
        from transformers import get_wsd_schedule

        seg = self.plan.segments[index]
        started = time.perf_counter()
        for group in self.optimizer.param_groups:
            group["initial_lr"] = group["lr"]  # decay from the rate the main run is at
        scheduler = get_wsd_schedule(self.optimizer, num_warmup_steps=0, num_decay_steps=len(seg.cooldown),
                                     num_stable_steps=0, decay_type="1-sqrt")
        loss_sum, tokens, max_index = 0.0, 0, -1
        for step in seg.cooldown:
            loss, step_tokens = self.train_step(step, f"cooldown:{seg.size}")
            scheduler.step()
            loss_sum += loss
            tokens += step_tokens
            max_index = max(max_index, int(self.plan.chunk_last_text[[c for micro in step for c in micro]].max()))
            progress.update(1)
        return loss_sum, tokens, max_index, time.perf_counter() - started

    # -- state ---------------------------------------------------------------------------------
    def snapshot(self, index: int, fingerprint: str) -> dict[str, Any]:
        scheduler_state = {k: v for k, v in self.scheduler.state_dict().items()
                           if k in ("last_epoch", "_step_count", "_last_lr", "base_lrs")}
        return {
            "format": STATE_FORMAT,
            "fingerprint": fingerprint,
            "segment": index,
            "size": self.plan.segments[index].size,
            "model": _to_cpu(self.model.state_dict()),
            "optimizer": _to_cpu(self.optimizer.state_dict()),
            "scheduler": scheduler_state,
            # One entry per process (collective: every process takes the snapshot).
            "rng": _gather_objects({
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "collator": self.collator.generator.get_state(),
            }, self.world_size),
            "counters": {"step": self.step, "tokens": self.tokens, "loss_sum": self.loss_sum,
                         "seconds": self.seconds, "max_text_index": self.max_text_index,
                         "segment_seconds": self.segment_seconds},
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Load ``state`` (left intact: the optimizer would otherwise train on its tensors in place)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(_to_cpu(state["optimizer"]))
        self.scheduler.__dict__.update(copy.deepcopy(state["scheduler"]))
        rng = state["rng"][self.rank]
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] is not None and torch.cuda.is_available():
            with contextlib.suppress(Exception):
                torch.cuda.set_rng_state_all(rng["cuda"])
        self.collator.generator.set_state(rng["collator"])
        counters = state["counters"]
        self.step, self.tokens = int(counters["step"]), int(counters["tokens"])
        self.loss_sum, self.seconds = float(counters["loss_sum"]), float(counters["seconds"])
        self.max_text_index = int(counters["max_text_index"])
        self.segment_seconds = float(counters["segment_seconds"])

    def export(self, model):
        """The SentenceTransformer of the current weights (LoRA merged into a copy).

        On ``model``'s device; under several processes on this process's own device.
        """
        device = self.device if self.world_size > 1 else None
        return sentence_transformer_with_encoder(model, finetuned_encoder_state(self.setup, inplace=False), device)


class _Clock:
    """``with clock("key"):`` adds the block's wall time to ``totals["key"]``."""

    def __init__(self, totals: dict[str, float]) -> None:
        self.totals = totals

    @contextlib.contextmanager
    def __call__(self, key: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.totals[key] = self.totals.get(key, 0.0) + time.perf_counter() - started


def _load_state(path: Path, fingerprint: str) -> dict[str, Any] | None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: ignore it, train that part again
        logger.warning("Ignoring unreadable branching state %s: %s", path, exc)
        return None
    if state.get("format") != STATE_FORMAT or state.get("fingerprint") != fingerprint:  # incl. world size
        logger.warning("Ignoring branching state %s: it belongs to other data, sizes, config or model.", path)
        return None
    return state


def finetune_branching(
    model,
    pool_texts: Sequence[str],
    sizes: Sequence[int],
    config: FinetuneConfig,
    *,
    seed: int,
    device: str | None,
    state_dir: str | Path,
    completed: set[int] | frozenset[int] = frozenset(),
    on_branch: Callable[[int, FinetuneResult], None],
    cooldown_fraction: float = DEFAULT_COOLDOWN_FRACTION,
    show_progress: bool = True,
    keep_states: bool = False,
    audit: bool = False,
) -> BranchingStats:
    """Finetune one model per size in a single warmup-stable-decay run with cooldown branches.

    Args:
        model: the base SentenceTransformer (left unchanged).
        pool_texts: the finetune pool in its fixed order; subset ``n`` is ``pool_texts[:n]``.
        sizes: positive sizes, strictly ascending.
        config: the finetune hyperparameters (epochs: passes over each new segment; see the module
            docstring). ``trainer_kwargs`` other than ``max_grad_norm`` do not apply here.
        seed: fixes the head's initialisation, data order, masking and dropout.
        device: "cpu", "cuda", "auto". bf16 autocast on CUDA devices that support it.
        state_dir: where boundary states are kept for resuming (deleted when all sizes are done,
            unless ``keep_states``).
        completed: sizes already finished (their checkpoints exist): not branched again.
        on_branch: called as ``on_branch(n, result)`` with each new size's finetuned
            SentenceTransformer and its statistics, in ascending order. A size counts as done once
            it returns.
        cooldown_fraction: cooldown steps as a fraction of the main-run steps up to the size.
        show_progress: a tqdm bar over optimizer steps.
        keep_states: keep every boundary state instead of only the latest.
        audit: record the chunk indices of every step and each chunk's source texts in the stats.

    Under ``torchrun`` / ``accelerate launch`` every process calls this with the same arguments:
    each takes its share of every batch (``batch_size`` chunks per process, as in the Trainer),
    gradients are summed across processes, every process gets the same models and calls
    ``on_branch`` (only rank 0 should write), and rank 0 keeps the boundary states.

    Raises:
        ValueError: bad sizes or cooldown fraction, a tokenizer without mask token.
    """
    from tqdm.auto import tqdm

    call_started = time.perf_counter()
    sizes = _validate_sizes(sizes, len(pool_texts))
    completed = {int(s) for s in completed}
    rank, world_size, device = _distributed(resolve_device(device))
    main_process = rank == 0
    state_dir = Path(state_dir)
    ignored = sorted(set(config.trainer_kwargs) - _HONOURED_TRAINER_KWARGS)
    if ignored:
        logger.warning("The branching schedule ignores trainer_kwargs %s (they shape the Trainer only).", ignored)

    setup = prepare_mlm(model, config, seed)
    plan = plan_branching(setup.tokenizer, pool_texts, sizes, config, seed=seed,
                          chunk_length=setup.chunk_length, cooldown_fraction=cooldown_fraction,
                          world_size=world_size)
    stats = BranchingStats(sizes=sizes, plan=plan.summary(), skipped=[s for s in sizes if s in completed])
    timed = _Clock(stats.seconds)
    if stats.compute_ratio > COMPUTE_BUDGET:
        logger.warning(
            "Branching: this curve costs %.2fx its largest point (over %.2fx): sizes %s are dense for a "
            "cooldown fraction of %.2f. Fewer sizes (e.g. doubling) or a smaller cooldown fraction cost less.",
            stats.compute_ratio, COMPUTE_BUDGET, sizes, cooldown_fraction,
        )
    if audit:
        stats.draws = {}
        stats.chunk_sources = plan.chunk_sources
    pending = [s for s in sizes if s not in completed]
    if not pending:
        logger.info("Branching: every size is already done.")
        return stats
    last_needed = sizes.index(pending[-1])
    fingerprints = _fingerprint(model, pool_texts, sizes, config, seed, setup.chunk_length, world_size)
    stats.seconds["setup"] = time.perf_counter() - call_started

    def record(tag: str, chunk_ids: list[int]) -> None:
        stats.draws.setdefault(tag, []).extend(chunk_ids)  # type: ignore[union-attr]

    trainer = _Trainer(setup, plan, config, device, seed, record if audit else None, rank, world_size)

    # Resume from the latest valid boundary state at or before the first incomplete size.
    start, resumed_state = 0, None
    saved = _saved_states(state_dir)
    for size in sorted((s for s in saved if s <= pending[0] and s in sizes), reverse=True):
        index = sizes.index(size)
        with timed("load_state"):
            state = _load_state(saved[size], fingerprints[index])
        if state is not None:
            trainer.restore(state)
            start, resumed_state = index, state
            stats.resumed_from = size
            logger.info("Branching: resuming the main run from the saved state at size %d (step %d).",
                        size, trainer.step)
            break
    _barrier(world_size)  # every process has read the states before rank 0 writes or prunes any
    planned = sum(len(plan.segments[k].steps) for k in range(start, last_needed + 1))
    planned -= len(plan.segments[start].steps) if resumed_state is not None else 0
    planned += sum(len(plan.segments[k].cooldown) for k in range(start, last_needed + 1) if sizes[k] in pending)
    progress = tqdm(total=planned, desc="branching finetune", unit="step",
                    disable=not show_progress or not main_process)
    try:
        for index in range(start, last_needed + 1):
            seg = plan.segments[index]
            size = seg.size
            if index == start and resumed_state is not None:
                state = resumed_state
            else:
                before = trainer.step
                with timed("main"):
                    trainer.run_main_segment(index, progress)
                stats.main_steps_run += trainer.step - before
                state = None
            if seg.inline_decay:
                # The largest size: the main run has just decayed; its model is the point.
                with timed("export"):
                    branch_model = trainer.export(model)
                with timed("on_branch"):
                    _hand_over(stats, trainer, plan, index, branch_model, on_branch, loss_sum=0.0,
                               cooldown_tokens=0, cooldown_index=-1, cooldown_seconds=0.0)
                break
            if state is None:
                with timed("save_state"):
                    state = trainer.snapshot(index, fingerprints[index])
                    if main_process:
                        _atomic_torch_save(state, _state_path(state_dir, size))
                        # Every earlier size is handed over, so older states are no longer needed.
                        _prune_states(state_dir, keep=size, keep_all=keep_states)
            if size in completed:
                continue
            with timed("cooldown"):
                loss_sum, tokens, max_index, seconds = trainer.run_cooldown(index, progress)
            stats.cooldown_steps_run += len(seg.cooldown)
            with timed("export"):
                branch_model = trainer.export(model)
                trainer.restore(state)
            with timed("on_branch"):
                _hand_over(stats, trainer, plan, index, branch_model, on_branch, loss_sum=loss_sum,
                           cooldown_tokens=tokens, cooldown_index=max_index, cooldown_seconds=seconds)
    finally:
        progress.close()
        stats.train_seconds = time.perf_counter() - call_started
    if main_process and not keep_states and all(s in completed or s in stats.points for s in sizes):
        for path in _saved_states(state_dir).values():
            path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            state_dir.rmdir()
    return stats


def _hand_over(stats: BranchingStats, trainer: _Trainer, plan: BranchingPlan, index: int, branch_model,
               on_branch: Callable[[int, FinetuneResult], None], *, loss_sum: float, cooldown_tokens: int,
               cooldown_index: int, cooldown_seconds: float) -> None:
    seg = plan.segments[index]
    cooldown_steps = plan.cooldown_steps(index)
    branched = not seg.inline_decay
    steps = trainer.step + (len(seg.cooldown) if branched else 0)
    total_loss = trainer.loss_sum + loss_sum
    point = BranchPointStats(
        size=seg.size,
        main_steps=trainer.step,
        cooldown_steps=cooldown_steps,
        main_tokens=trainer.tokens,
        cooldown_tokens=cooldown_tokens,
        inline_decay=seg.inline_decay,
        max_text_index=max(trainer.max_text_index, cooldown_index),
        train_seconds=trainer.segment_seconds + cooldown_seconds,
    )
    if point.max_text_index >= seg.size:  # the guarantee the curve rests on
        raise AssertionError(f"f{seg.size} trained on pool text {point.max_text_index}")
    result = FinetuneResult(
        model=branch_model,
        texts_seen=int(round(plan.epochs * seg.size)),
        tokens_seen=point.tokens_seen,
        optimizer_steps=steps,
        train_seconds=point.train_seconds,
        final_loss=total_loss / steps if steps else None,
        chunk_length=plan.chunk_length,
        num_chunks=plan.subset_chunks(index),
        schedule="branching",
        cooldown_steps=cooldown_steps,
        cooldown_tokens=cooldown_tokens,
    )
    stats.points[seg.size] = point
    on_branch(seg.size, result)


def _prune_states(state_dir: Path, keep: int, keep_all: bool) -> None:
    if keep_all:
        return
    for size, path in _saved_states(state_dir).items():
        if size < keep:
            path.unlink(missing_ok=True)


__all__ = ["BranchingPlan", "BranchingStats", "BranchPointStats", "finetune_branching", "plan_branching",
           "DEFAULT_COOLDOWN_FRACTION"]
