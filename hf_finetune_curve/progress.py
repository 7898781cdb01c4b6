"""What a person reads while a run works: one line per finished point, with its result and an ETA.

The lines go through the package's logger (the terminal's stderr, and the run's log file ``logs/run.log``),
never through a progress bar, so a terminal, a file and a pipe read the same plain lines: no carriage
returns, no cursor escape codes. The Trainer's own log dicts (loss, grad_norm, learning rate) go to the
run's log file and to TensorBoard (``--report-to tensorboard``), not here.

Example:
    >>> clock = iter([0.0, 0.0, 30.0, 50.0]).__next__
    >>> progress = RunProgress(3, metric="r2_log", clock=clock, emit=print)
    >>> progress.point_done("f0", 0.60, timed=False)
    [1/3] f0: log R² 0.6000 · 0 s
    >>> progress.point_done("f200", 0.62)
    [2/3] f200: log R² 0.6200, Δ vs f0 +0.0200 · 30 s · ETA 30 s
    >>> progress.point_done("f400", 0.59)
    [3/3] f400: log R² 0.5900, Δ vs f0 -0.0100 · 50 s · done
    >>> format_duration(75), format_duration(3725)
    ('1 min 15 s', '1 h 02 min')
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from pathlib import Path
from typing import Callable, Iterator

from .names import METRIC_NAMES

logger = logging.getLogger("hf_finetune_curve")

# Shorter than the tables' names: a progress line has room for one number and its change.
_SHORT = {"r2": "R²", "r2_log": "log R²", "mae": "MAE", "median_ae": "MedAE"}


def format_duration(seconds: float) -> str:
    """``45 s``, ``3 min 05 s``, ``1 h 02 min``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class RunProgress:
    """Counts a run's points and prints one line as each finishes: its score on ``metric``, its change
    against the factory floor (f0), the time since the run started and the time left.

    The ETA is the mean time of the points that did work (trained or scored) times the points left;
    points a rerun skips (already finished) count as done but not in that mean.
    """

    def __init__(self, total: int, *, metric: str = "r2_log", enabled: bool = True,
                 clock: Callable[[], float] = time.monotonic, emit: Callable[[str], None] | None = None) -> None:
        self.total = int(total)
        self.metric = metric
        self.enabled = enabled
        self._clock = clock
        self._emit = emit or logger.info
        self._started = clock()
        self._last = self._started
        self._done = 0
        self._worked = 0
        self._work_seconds = 0.0
        self._floor: float | None = None

    def point_done(self, what: str, value: float | None, *, timed: bool = True, floor: bool | None = None) -> None:
        """One point finished: ``what`` names it (``f200``, ``f200 (TSDAE, seed 43)``), ``value`` is its
        ``metric``; ``timed=False`` for a point that did no work (already finished on a rerun). ``floor``
        marks the factory-floor point (default: ``what`` starts with ``f0``)."""
        now = self._clock()
        self._done += 1
        if timed:
            self._worked += 1
            self._work_seconds += now - self._last
        self._last = now
        is_floor = what.split(" ")[0] == "f0" if floor is None else floor
        if is_floor and value is not None:
            self._floor = float(value)
        if not self.enabled:
            return
        name = _SHORT.get(self.metric, METRIC_NAMES.get(self.metric, self.metric))
        result = f"{name} {value:.4f}" if value is not None and math.isfinite(value) else f"{name} –"
        if not is_floor and self._floor is not None and value is not None and math.isfinite(value):
            result += f", Δ vs f0 {value - self._floor:+.4f}"
        left = self.total - self._done
        if left <= 0:
            eta = " · done"
        elif self._worked:
            eta = f" · ETA {format_duration(self._work_seconds / self._worked * left)}"
        else:
            eta = ""
        self._emit(f"[{self._done}/{self.total}] {what}: {result} · {format_duration(now - self._started)}{eta}")


@contextlib.contextmanager
def log_to_file(path: str | Path) -> Iterator[Path]:
    """While the block runs, append every record of the package's logger (DEBUG included, as far as the logger's
    level lets it through: ``hf-curve`` sets DEBUG, with INFO on the terminal) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield path
    finally:
        logger.removeHandler(handler)
        handler.close()


__all__ = ["RunProgress", "format_duration", "log_to_file"]
