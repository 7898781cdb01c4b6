"""How many CPU threads a stage may use: the cores this process may run on that nothing else is using.

OpenMP pools (XGBoost's, torch's) default to every core the machine reports. On a shared or containerised
machine that oversubscribes: a pool's threads wait at each barrier for a thread that another process holds
off its core, and a fit slows down by an order of magnitude (a tiny-model curve: 654 s with the default
threads beside one busy process on two cores, 66 s with one thread). :func:`thread_budget` is the count to
ask for instead:

* an explicit request wins (``--probe-arg n_jobs=N`` for XGBoost);
* else ``OMP_NUM_THREADS`` when the user set it (the usual way to say it for every OpenMP library);
* else the cores this process may use (``os.sched_getaffinity``, capped by a cgroup CPU quota), less the
  threads other processes keep runnable right now (``/proc/loadavg``), at least one: for XGBoost, whose fits do
  not depend on the thread count. torch's training pool gets the usable cores without the load part
  (:func:`set_torch_threads`), so a run's weights never depend on what else ran beside it.

Example:
    >>> from hf_finetune_curve.cores import thread_budget
    >>> thread_budget(3)
    3
    >>> 1 <= thread_budget() <= usable_cores()
    True
"""

from __future__ import annotations

import math
import os
import statistics
import time
from pathlib import Path


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup v2 quota (``cpu.max``)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:  # a container limited to "200000 100000" may run two cores' worth, whatever the affinity says
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.floor(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def busy_elsewhere(samples: int = 5, interval: float = 0.01) -> int:
    """Threads other processes keep runnable now: the median over a few readings of ``/proc/loadavg``'s runnable
    count, less the one reading it (0 where the file does not exist)."""
    readings = []
    for index in range(samples):
        try:
            runnable = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            return 0
        readings.append(max(0, runnable - 1))
        if index + 1 < samples:
            time.sleep(interval)
    return int(statistics.median(readings))


def thread_budget(requested: int | None = None, *, load_aware: bool = True) -> int:
    """Threads a CPU stage should use now (see the module docstring for the order of the rules).

    ``load_aware=False`` leaves out what other processes keep busy: for torch's training pool, whose thread count
    changes the float rounding of its reductions (the same run under another load would train weights ~1e-8 apart,
    and a probe can turn that into a visible difference). XGBoost's hist fits give the same model on any thread
    count, so the probes follow the load.
    """
    if requested is not None:
        return max(1, int(requested))
    configured = os.environ.get("OMP_NUM_THREADS", "").strip()
    if configured.isdigit() and int(configured) >= 1:
        return int(configured)
    cores = usable_cores()
    return max(1, cores - min(cores - 1, busy_elsewhere())) if load_aware else cores


def set_torch_threads(device: str) -> int | None:
    """On the CPU, size torch's intra-op pool to the usable cores (or ``OMP_NUM_THREADS``), not to every core the
    machine reports, and not by the load (:func:`thread_budget` with ``load_aware=False``: the weights must not
    depend on what else ran); returns the count, or None on an accelerator (whose host threads only launch kernels)."""
    if not str(device).startswith("cpu"):
        return None
    import torch

    threads = thread_budget(load_aware=False)
    torch.set_num_threads(threads)
    return threads


__all__ = ["busy_elsewhere", "set_torch_threads", "thread_budget", "usable_cores"]
