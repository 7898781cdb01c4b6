"""Before any point: the distributed launch, the run directory's checks (a changed config, an edited corpus),
and the refusals that must come before training (too few held-out rows, a constant target)."""

from __future__ import annotations

import datetime as _dt
import logging
import os
from typing import Any, Sequence

import numpy as np

from ..config import NON_RESULT_FIELDS, RECIPE_VERSION, CurveConfig
from ..data.corpus import Corpus
from ..data.subsets import Splits
from ..errors import ConfigError, CorpusError, RunDirectoryConflictError
from ..names import ProbeKind
from ..run_dir import RunDirectory
from ..train.finetune import resolve_device

logger = logging.getLogger(__name__)

_VERIFY_SAMPLE = 16
# Held-out rows below which scores are refused, and below which the log warns.
MIN_TEST_ROWS = 10
WARN_TEST_ROWS = 50


def is_main_process() -> bool:
    """False on the non-zero ranks of a ``torchrun`` / ``accelerate launch`` job.

    Every rank trains (the Trainer shards batches across processes); only rank 0 writes files,
    embeds, fits probes and analyses, so a multi-process run leaves exactly one copy of each result.
    """
    return int(os.environ.get("RANK", "0")) == 0


def _init_distributed(device: str):
    """Join a multi-process launch through accelerate (the Trainer's own process state), with a long
    timeout: rank 0 embeds and scores every point while the other ranks wait in the next collective.

    Returns the ``PartialState``, or None for a single process.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from accelerate import PartialState

    from ..train.trainer import DDP_TIMEOUT_SECONDS

    return PartialState(cpu=not resolve_device(device).startswith("cuda"),
                        timeout=_dt.timedelta(seconds=DDP_TIMEOUT_SECONDS))


def _log_probe_sample(corpus: Corpus, config: CurveConfig, splits: Splits) -> None:
    probed = len(splits.train_indices) + len(splits.test_indices)
    if probed < len(corpus):
        full_test = int(round(len(corpus) * config.test_fraction))
        logger.info(
            "Probe sample: %d of %d rows (%d held out of %d); each checkpoint embeds %d texts instead of %d. "
            "Intervals are about %.1fx as wide as with every row (width ~ 1/sqrt(held-out rows)); "
            "--probe-rows sets the sample, --probe-rows none uses every row.",
            probed, len(corpus), len(splits.test_indices), full_test, probed, len(corpus),
            (full_test / max(1, len(splits.test_indices))) ** 0.5,
        )


def _check_scoreable(corpus: Corpus, splits: Splits) -> None:
    """What would make every score meaningless, refused before anything is trained."""
    n_test = len(splits.test_indices)
    if n_test < MIN_TEST_ROWS:
        raise ConfigError(
            f"Only {n_test} held-out rows ({len(corpus)} rows x test_fraction): R² on fewer than {MIN_TEST_ROWS} rows "
            "is noise. Use more rows or a larger --test-fraction."
        )
    if n_test < WARN_TEST_ROWS:
        logger.warning("Only %d held-out rows: expect wide intervals (%d or more give usable ones).", n_test,
                       WARN_TEST_ROWS)
    for name, rows in (("probe-training", splits.train_indices), ("held-out", splits.test_indices)):
        values = corpus.targets[rows]
        if np.ptp(values) == 0:
            raise CorpusError(
                f"{corpus.report.source}: every target in the {name} split equals {values[0]:g}; a price probe "
                f"cannot be fitted or scored (check --target-column {corpus.report.target_column!r})."
            )


def _check_supervised_sizes(config: CurveConfig, sizes: Sequence[int]) -> None:
    """The supervised objective fits a regression on each subset's prices: refuse subsets too small for it."""
    from ..train.sentence_objectives import MIN_SUPERVISED_ROWS

    positive = [size for size in sizes if size > 0]
    labelled = [o.value for o in config.resolved_objectives() if o.spec.loss == "supervised"]
    if labelled and positive and min(positive) < MIN_SUPERVISED_ROWS:
        raise ConfigError(
            f"--objectives {', '.join(labelled)} regresses each subset's prices, and the smallest of --sizes is "
            f"{min(positive)} rows: it needs at least {MIN_SUPERVISED_ROWS}. Use larger --sizes (or more rows)."
        )


def _config_differences(saved: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    differences = []
    for key in sorted(set(saved) | set(current)):
        old, new = saved.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            differences.extend(_config_differences(old, new, f"{prefix}{key}."))
        elif old != new:
            differences.append(f"{prefix}{key}: {old!r} -> {new!r}")
    return differences


def _prepare_run_dir(run: RunDirectory, config: CurveConfig, result_key: str, corpus: Corpus,
                     overwrite: bool) -> dict[str, Any] | None:
    saved = run.read_config()
    if saved is None:
        return None
    if saved.get("result_key") == result_key:
        return saved
    if not overwrite:
        ignored = set(NON_RESULT_FIELDS) | {"data"}  # the path may move; the content is compared below
        differences = [d for d in _config_differences(saved.get("config", {}), config.to_dict())
                       if d.split(":")[0] not in ignored]
        # ``probes`` is left out of the comparison above (a secondary probe extends a run), but the primary one
        # scores the run's points: name it when it changed.
        old_primary = str((saved.get("config") or {}).get("probes") or ProbeKind.XGBOOST.value).split(",")[0]
        if old_primary != config.resolved_probes()[0].value:
            differences.insert(0, f"primary probe (the first of --probes): {old_primary!r} -> "
                                  f"{config.resolved_probes()[0].value!r}")
        old_fingerprint = (saved.get("corpus") or {}).get("fingerprint")
        if old_fingerprint != corpus.fingerprint:
            differences.insert(0, f"corpus content: fingerprint {old_fingerprint} -> {corpus.fingerprint} "
                                  "(the data changed)")
        if saved.get("recipe_version") != RECIPE_VERSION:
            differences.append(f"recipe version: {saved.get('recipe_version', 1)} -> {RECIPE_VERSION} (points are "
                               "trained or scored differently since)")
        raise RunDirectoryConflictError(
            f"{run.path} holds a run with a different configuration or data ({'; '.join(differences[:6]) or 'unknown'}). "
            "Use another --output-dir, or --overwrite to discard that run."
        )
    logger.warning("Overwriting the run in %s", run.path)
    run.remove_outputs()
    return None
