"""Branching schedule: one Trainer main run for the whole curve, a short cooldown branch per size.

Every point ``f<n>`` trains on its :class:`~hf_finetune_curve.train.recipe.PointRecipe` (``steps``
optimizer steps, warmup, a cooldown that decays to 0), exactly as an independent run would.
Instead of training each point from the base model, one *main run* (a ``CurveTrainer``) walks the
finetune pool in its nested order at warmup-then-constant learning rate (Hägele et al. 2024,
"Scaling Laws and Compute-Optimal Training Beyond Fixed Training Durations"). When it reaches a
point's decay start (``steps - cooldown_steps``) a callback saves a Trainer checkpoint there
(model and head, optimizer, scheduler, RNG, counters, in the Trainer's own format). The point's
*branch* is a second Trainer run that resumes that checkpoint with ``resume_from_checkpoint`` and
the point's own schedule, drawing the main run's next chunks (all from ``pool[:n]``) while the rate
decays to 0 (a point lengthened by ``min_steps`` cycles its own subset there). The main run then
resumes the same checkpoint and goes on to the next point. The largest point branches like the
others.

Cost: the main run up to the largest point's branch start plus each point's branch, against the
sum of all points' steps for the independent schedule (:meth:`CurvePlan.summary` gives both
before training).

Resume: a Trainer checkpoint at each branch start stays until the next point is done; an
interrupted run restarts from the latest one at or before the first unfinished point. Checkpoints
are tied to a fingerprint of the plan, config, seed, base model and world size; foreign ones are
removed, never reused.

Several processes (``torchrun``, ``accelerate launch``): every process calls this with the same
arguments, the Trainer shards each step's chunks across them, and all get the same models.

Example:
    >>> from hf_finetune_curve.train.branching import finetune_branching
    >>> stats = finetune_branching(model, pool_texts, [200, 400, 800], FinetuneConfig(), seed=42,
    ...                            device="cuda", state_dir="runs/x/checkpoints/.branching-state",
    ...                            on_branch=lambda n, result: result.model.save(f"f{n}"))  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..config import FinetuneConfig, result_trainer_kwargs
from .finetune import (
    FinetuneResult,
    check_no_leak,
    head_label,
    keep_logs,
    load_head,
    plan_for,
    point_result,
    prepare_mlm,
    resolve_device,
    result_device,
    run_stream,
    warm_up_head,
)
from .recipe import CurvePlan, lr_factor

logger = logging.getLogger(__name__)

STATE_FORMAT = 2
_CHECKPOINT_PREFIX = "checkpoint-"


@dataclass
class BranchingStats:
    """What a :func:`finetune_branching` call did, and what the whole curve costs."""

    sizes: list[int]
    trained: list[int] = field(default_factory=list)    # sizes finished by this call
    skipped: list[int] = field(default_factory=list)    # sizes in ``completed``
    resumed_from_step: int | None = None  # main-run checkpoint step this call restarted from
    main_steps_run: int = 0               # main-run optimizer steps executed by this call
    branch_steps_run: int = 0             # cooldown-branch optimizer steps executed by this call
    seconds: dict[str, float] = field(default_factory=dict)  # head, main, branch, on_branch, total
    plan: dict[str, Any] = field(default_factory=dict)      # CurvePlan.summary()
    draws: dict[str, list[tuple[int, int]]] | None = None   # audit: (draw, chunk) per run

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values.pop("draws", None)
        return values


def _fingerprint(model, plan: CurvePlan, config: FinetuneConfig, seed: int) -> str:
    digest = hashlib.sha256()
    values = asdict(config)
    values.pop("report_to", None)
    values["trainer_kwargs"] = result_trainer_kwargs(values["trainer_kwargs"])  # a speed-only change keeps the state
    digest.update(json.dumps({"config": values, "seed": seed, "sizes": plan.sizes, "per_step": plan.chunks_per_step,
                              "chunk_length": plan.chunk_length, "format": STATE_FORMAT},
                             sort_keys=True, default=str).encode())
    digest.update(plan.main_stream.tobytes())
    digest.update(plan.chunks.starts.tobytes())
    digest.update(plan.chunks.ends.tobytes())
    digest.update(plan.chunks.ids[: int(plan.chunks.ends[-1]) if len(plan.chunks) else 0].tobytes())
    with torch.no_grad():
        for param in list(model.parameters())[:: max(1, len(list(model.parameters())) // 8)]:
            digest.update(param.detach().float().cpu().numpy().tobytes()[:4096])
    return digest.hexdigest()[:20]


def _checkpoints(main_dir: Path) -> dict[int, Path]:
    """Complete Trainer checkpoints by step (``trainer_state.json`` is written last)."""
    found = {}
    if main_dir.is_dir():
        for path in main_dir.glob(f"{_CHECKPOINT_PREFIX}*"):
            try:
                step = int(path.name[len(_CHECKPOINT_PREFIX):])
            except ValueError:
                continue
            if (path / "trainer_state.json").exists():
                found[step] = path
    return found


def _is_main_process() -> bool:
    import os

    return int(os.environ.get("RANK", "0")) == 0


def _barrier() -> None:
    """Wait for every process of a multi-process launch (accelerate's state, as the Trainer's)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        from accelerate import PartialState

        PartialState().wait_for_everyone()


def _prepare_state_dir(state_dir: Path, fingerprint: str) -> None:
    """Keep the checkpoints only when they belong to this plan; remove anything else."""
    marker = state_dir / "fingerprint.json"
    if _is_main_process():
        if state_dir.exists():
            saved = json.loads(marker.read_text()).get("fingerprint") if marker.exists() else None
            if saved != fingerprint:
                logger.warning("Branching: removing checkpoints in %s made for other data, sizes, config or model.",
                               state_dir)
                shutil.rmtree(state_dir)
        state_dir.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"fingerprint": fingerprint, "format": STATE_FORMAT}))
    _barrier()


def finetune_branching(
    model,
    pool_texts: Sequence[str],
    sizes: Sequence[int],
    config: FinetuneConfig,
    *,
    seed: int,
    device: str | None,
    state_dir: str | Path,
    on_branch: Callable[[int, FinetuneResult], None],
    completed: set[int] | frozenset[int] = frozenset(),
    callbacks: Sequence[Any] = (),
    show_progress: bool = True,
    keep_states: bool = False,
    audit: bool = False,
    log_dir: str | Path | None = None,
) -> BranchingStats:
    """Finetune one model per size with a shared main run and a cooldown branch per size.

    Args:
        model: the base SentenceTransformer (left unchanged).
        pool_texts: the finetune pool in its fixed order; subset ``n`` is ``pool_texts[:n]``.
        sizes: positive sizes, strictly ascending.
        config: the finetune hyperparameters and per-point recipe.
        seed: fixes the head's initialisation, data order, masking and dropout.
        device: "cpu", "cuda", "auto" (bf16 on CUDA devices that support it).
        state_dir: where the main run's Trainer checkpoints are kept for resuming (removed when
            every size is done, unless ``keep_states``).
        on_branch: called as ``on_branch(n, result)`` with each new size's finetuned
            SentenceTransformer and its statistics, in ascending order; a size counts as done once
            it returns.
        completed: sizes already finished: not trained again.
        callbacks: extra ``TrainerCallback`` objects, given to every Trainer run.
        show_progress: the Trainer's progress bars.
        keep_states: keep the checkpoints after the last size.
        audit: record ``(draw, chunk)`` of every run in ``stats.draws`` (single process).
        log_dir: where the Trainer runs' TensorBoard logs (``report_to``) are kept (default
            ``state_dir/../logs``).

    Raises:
        ValueError: bad sizes, a tokenizer without mask token.
    """
    call_started = time.perf_counter()
    device = resolve_device(device)
    sizes = [int(s) for s in sizes]
    completed = {int(s) for s in completed}
    state_dir = Path(state_dir)
    main_dir = state_dir / "main"
    log_dir = Path(log_dir) if log_dir is not None else state_dir.parent / "logs"
    setup = prepare_mlm(model, config, seed)
    plan = plan_for(setup, pool_texts, sizes, config, seed)
    stats = BranchingStats(sizes=plan.sizes, plan=plan.summary(), skipped=[s for s in plan.sizes if s in completed],
                           draws={} if audit else None)
    pending = [s for s in plan.sizes if s not in completed]
    if not pending:
        return stats
    fingerprint = _fingerprint(model, plan, config, seed)
    _prepare_state_dir(state_dir, fingerprint)
    seconds = stats.seconds
    output_device = result_device(device)

    def timed(key: str, started: float) -> None:
        seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - started

    head_cache: dict[str, Any] = {}

    def head_state():
        if "state" not in head_cache:
            started = time.perf_counter()
            head_cache["state"] = warm_up_head(prepare_mlm(model, config, seed), plan, config, seed=seed,
                                               device=device, work_dir=state_dir / "head", callbacks=callbacks,
                                               show_progress=show_progress)
            timed("head", started)
        return head_cache["state"]

    untouched = True  # `setup` still holds the base model (nothing has trained it yet)

    def from_base():
        """The base model with the warmed-up head (rebuilt only once a run has trained `setup`)."""
        fresh = setup if untouched else prepare_mlm(model, config, seed)
        load_head(fresh, head_state())
        return fresh

    def draws_for(tag: str):
        if stats.draws is None:
            return None
        return stats.draws.setdefault(tag, [])

    def hand_over(size: int, result: FinetuneResult) -> None:
        check_no_leak(result, size)
        started = time.perf_counter()
        on_branch(size, result)
        timed("on_branch", started)
        stats.trained.append(size)

    for size in plan.sizes:
        if size not in pending:
            continue
        recipe = plan.recipes[size]
        # The main run up to this point's branch start (resumed from the latest checkpoint before it).
        start = plan.branch_start(size)
        saved = _checkpoints(main_dir)
        if start not in saved:
            earlier = [step for step in saved if step < start]
            resume = saved[max(earlier)] if earlier else None
            if resume is None:
                setup = from_base()
            elif stats.resumed_from_step is None and not stats.trained:
                stats.resumed_from_step = max(earlier)
                logger.info("Branching: resuming the main run from its checkpoint at step %d.", max(earlier))
            started = time.perf_counter()
            if start > 0:
                def main_rate(step: int, warmup: int = recipe.warmup_steps) -> float:
                    return lr_factor(step, warmup_steps=warmup)  # warmup, then the peak: no decay

                run = run_stream(setup, plan, plan.main_stream, main_rate, max_steps=start, config=config, seed=seed,
                                 device=device, output_dir=main_dir, resume_from=resume, save_at=start,
                                 callbacks=callbacks, show_progress=show_progress, audit=draws_for(f"main:{size}"))
                stats.main_steps_run += run.global_step - (max(earlier) if earlier else 0)
                untouched = False
            timed("main", started)
            saved = _checkpoints(main_dir)
        elif stats.resumed_from_step is None and not stats.trained:
            stats.resumed_from_step = start
            logger.info("Branching: resuming from the main run's checkpoint at step %d.", start)

        # The branch: resume that checkpoint with the point's own schedule, decaying to 0.
        started = time.perf_counter()
        stream = plan.branch_stream(size)
        if start == 0:  # a point that is all cooldown starts from the base model and warmed-up head
            branch_resume = None
            setup = from_base()
        else:
            branch_resume = saved[start]
        run = run_stream(setup, plan, stream, recipe.lr_factor, max_steps=recipe.steps, config=config, seed=seed,
                         device=device, output_dir=state_dir / "branch", resume_from=branch_resume,
                         callbacks=callbacks, show_progress=show_progress, audit=draws_for(f"branch:{size}"))
        stats.branch_steps_run += run.global_step - start
        untouched = False
        result = point_result(model, setup, plan, size, stream, run, schedule="branching",
                              head=head_label(setup, config), device=output_device)
        timed("branch", started)
        hand_over(size, result)
        if _is_main_process() and not keep_states:
            for step, path in _checkpoints(main_dir).items():
                if step < start:
                    shutil.rmtree(path, ignore_errors=True)
        _barrier()

    if _is_main_process():
        keep_logs(state_dir, log_dir)
        if not keep_states and all(s in completed or s in stats.trained for s in plan.sizes):
            shutil.rmtree(state_dir, ignore_errors=True)
    seconds["total"] = time.perf_counter() - call_started
    return stats


__all__ = ["BranchingStats", "finetune_branching"]
