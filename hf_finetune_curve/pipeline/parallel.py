"""Several processes for one curve: its seeds and objectives trained and scored side by side.

A curve with ``--seeds 3`` and two objectives is six independent tracks (one seed, one objective, every
size): each has its own data order, checkpoints, points and files, and depends on no other track's
state (masks are a function of seed, chunk and position; every plan and probe is seeded). So they can
run in separate processes, one per GPU (``CUDA_VISIBLE_DEVICES``) or per share of the CPU cores
(``OMP_NUM_THREADS``), and give what the serial run gives. Two objectives stay in one track where one
continues the other (``mlm-simcse`` starts from ``mlm``'s checkpoint of the same size and seed).

:func:`run_curve_parallel` holds the run's lock, starts one worker process per
track (at most ``workers`` at a time), each running :func:`~hf_finetune_curve.pipeline.run_curve` on the
same config restricted to its track (``HF_CURVE_TRACK``) and holding that track's own lock, then runs
``run_curve`` once more in this process: every point is finished by then, so that pass only writes the
curve, its analysis and the samples, exactly as a serial run's last steps do. A worker's log is
``logs/worker-<track>.log`` in the run directory.

``hf-curve run --workers N`` is this with N workers.

Example:
    >>> from hf_finetune_curve import CurveConfig
    >>> from hf_finetune_curve.pipeline.parallel import plan_tracks
    >>> [t.name for t in plan_tracks(CurveConfig(seeds=2, objectives="mlm,mlm-simcse,tsdae"))]
    ['seed-42-mlm+mlm-simcse', 'seed-42-tsdae', 'seed-43-mlm+mlm-simcse', 'seed-43-tsdae']
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import os
import queue
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import CurveConfig
from ..cores import usable_cores
from ..errors import ConfigError, ParallelRunError
from ..io_utils import exclusive_lock

logger = logging.getLogger(__name__)

# The environment variable that makes a run_curve process a worker of one track: "<seed>:<objective>+<objective>".
TRACK_VARIABLE = "HF_CURVE_TRACK"


@dataclass(frozen=True)
class Track:
    """One worker's share of a curve: a data-order seed and the objectives it trains, in the run's order."""

    seed: int
    objectives: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"seed-{self.seed}-{'+'.join(self.objectives)}"

    def encode(self) -> str:
        return f"{self.seed}:{'+'.join(self.objectives)}"

    @classmethod
    def decode(cls, text: str) -> "Track":
        seed, _, objectives = text.partition(":")
        return cls(int(seed), tuple(o for o in objectives.split("+") if o))


def plan_tracks(config: CurveConfig) -> list[Track]:
    """The run's independent tracks: every seed x every objective, an objective kept with the one it continues."""
    objectives = config.resolved_objectives()
    groups: list[list[str]] = []
    for objective in objectives:
        start = objective.starts_from
        group = next((g for g in groups if start is not None and start.value in g), None)
        if group is None:
            groups.append([objective.value])
        else:
            group.append(objective.value)
    return [Track(config.seed + offset, tuple(group)) for offset in range(int(config.seeds)) for group in groups]


def current_track() -> Track | None:
    """The track this process works on as a worker, or None (a whole run)."""
    value = os.environ.get(TRACK_VARIABLE, "").strip()
    return Track.decode(value) if value else None


def selected(seed: int, objective: Any) -> bool:
    """Whether this process trains ``objective`` for ``seed``: always in a whole run; a worker only its track's."""
    track = current_track()
    name = str(getattr(objective, "value", objective))
    return track is None or (int(seed) == track.seed and name in track.objectives)


def run_lock(run) -> contextlib.AbstractContextManager[None]:
    """The lock a run_curve process holds: the run's own, or a worker's lock of its track (the coordinator holds
    the run's); two workers of one track fail at once like two runs of one directory."""
    track = current_track()
    if track is None:
        return run.lock()
    return exclusive_lock(run.path / f".lock-{track.name}")


def _worker_environments(workers: int, device: str) -> list[dict[str, str]]:
    """One environment per worker slot: a GPU each on CUDA, an equal share of the usable cores on the CPU."""
    import torch

    if str(device) in ("auto", "cuda") and torch.cuda.is_available():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        gpus = [g.strip() for g in visible.split(",")] if visible else \
            [str(i) for i in range(torch.cuda.device_count())]
        if workers > len(gpus):
            raise ConfigError(f"--workers {workers}: one process per GPU, and {len(gpus)} GPU(s) are visible; use "
                              f"--workers {len(gpus)} or fewer.")
        return [{"CUDA_VISIBLE_DEVICES": gpus[i]} for i in range(workers)]
    threads = max(1, usable_cores() // workers)
    return [{"OMP_NUM_THREADS": str(threads), "CUDA_VISIBLE_DEVICES": ""} for _ in range(workers)]


def run_curve_parallel(config: CurveConfig, workers: int, *, overwrite: bool = False, show_progress: bool = False,
                       callbacks=()) -> Any:
    """Measure ``config``'s curve with up to ``workers`` processes (see the module docstring); returns the
    :class:`~hf_finetune_curve.pipeline.CurveResult` of the final pass. ``workers <= 1`` or a single track: the
    serial :func:`~hf_finetune_curve.pipeline.run_curve`."""
    from ..run_dir import RunDirectory
    from .run import run_curve  # run.py imports this module: the worker's entry point reaches back lazily

    workers = int(workers)
    if workers < 1:
        raise ConfigError(f"--workers must be a whole number >= 1; got {workers}.")
    if current_track() is not None or os.environ.get("WORLD_SIZE", "1") not in ("", "1"):
        raise ConfigError("--workers starts its own processes: run it once, not under torchrun, accelerate launch "
                          f"or inside another worker ({TRACK_VARIABLE} is set).")
    tracks = plan_tracks(config)
    workers = min(workers, len(tracks))
    if workers <= 1:
        return run_curve(config, overwrite=overwrite, show_progress=show_progress, callbacks=callbacks)
    run = RunDirectory(config.resolved_output_dir())
    environments = _worker_environments(workers, config.device)
    with run.lock():  # no other run of this directory while the workers write to it
        if overwrite and run.path.exists():
            logger.warning("Overwriting the run in %s", run.path)
            run.remove_outputs()
        # Every worker checks the directory and writes the same run record, splits and data report (atomically, so
        # alike copies replace one another); only the main seed's first track scores f0, the base model.
        _run_tracks(config, run.path, tracks, environments)
    return run_curve(config, show_progress=show_progress, callbacks=callbacks)


def _run_tracks(config: CurveConfig, run_path: Path, tracks: list[Track], environments: list[dict[str, str]]) -> None:
    slots: queue.Queue[dict[str, str]] = queue.Queue()
    for environment in environments:
        slots.put(environment)
    with tempfile.TemporaryDirectory(prefix="hf-curve-workers-") as scratch:
        config_path = Path(scratch) / "config.json"
        config_path.write_text(json.dumps(config.to_dict()), encoding="utf-8")
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(environments)) as pool:
            futures = {pool.submit(_run_worker, config_path, run_path, track, slots): track for track in tracks}
            failures = []
            for future in concurrent.futures.as_completed(futures):
                try:
                    future.result()
                except ParallelRunError as exc:
                    failures.append(str(exc))
    if failures:
        raise ParallelRunError("; ".join(sorted(failures)))


def _run_worker(config_path: Path, run_path: Path, track: Track, slots: "queue.Queue[dict[str, str]]") -> None:
    environment = slots.get()
    try:
        log_path = run_path / "logs" / f"worker-{track.name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **environment, TRACK_VARIABLE: track.encode()}
        logger.info("%s: started (%s)", track.name, ", ".join(f"{k}={v}" for k, v in environment.items()))
        with open(log_path, "w", encoding="utf-8") as log:
            code = subprocess.run([sys.executable, "-m", "hf_finetune_curve.pipeline.parallel", str(config_path)], env=env,
                                  stdout=log, stderr=subprocess.STDOUT).returncode
        if code != 0:
            tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
            raise ParallelRunError(f"worker {track.name} exited with {code} (log {log_path}): {' | '.join(tail)}")
        logger.info("%s: done", track.name)
    finally:
        slots.put(environment)


def _worker_main(argv: list[str]) -> int:
    from .run import run_curve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = CurveConfig.from_dict(json.loads(Path(argv[0]).read_text(encoding="utf-8")))
    run_curve(config, show_progress=False)
    return 0


__all__ = ["TRACK_VARIABLE", "Track", "current_track", "plan_tracks", "run_curve_parallel", "run_lock", "selected"]

if __name__ == "__main__":
    raise SystemExit(_worker_main(sys.argv[1:]))
