"""Subsets stage: the held-out probe test split and nested finetune subsets.

Example:
    >>> from hf_finetune_curve.data.subsets import make_splits, parse_sizes, size_label
    >>> splits = make_splits(num_rows=1000, test_fraction=0.2, seed=0)
    >>> parse_sizes("0,100,0.5,all", pool_size=len(splits.pool_order))
    [0, 100, 400, 800]
    >>> [size_label(n) for n in (0, 500, 1500, 10_000, 2_000_000)]
    ['f0', 'f500', 'f1.5k', 'f10k', 'f2m']
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError

logger = logging.getLogger(__name__)

_COUNT = re.compile(r"^(\d+(?:\.\d+)?)([km]?)$")


def parse_sizes(spec: str, pool_size: int) -> list[int]:
    """Parse a size list like ``"0,10k,1.5k,0.25,all"`` into sorted, unique example counts.

    Counts take ``k`` (thousand) and ``m`` (million) suffixes; a decimal in (0, 1] without suffix
    is a fraction of the finetune pool; ``all`` is the whole pool; ``0`` is the factory-floor model.

    Raises:
        ConfigError: a token that is none of these, or a size larger than the pool.
    """
    if pool_size < 0:
        raise ValueError(f"pool_size must be >= 0, got {pool_size}")
    tokens = [token.strip().lower() for token in str(spec).split(",") if token.strip()]
    if not tokens:
        raise ConfigError(f"sizes is empty; expected a comma-separated list such as '0,10k,20k,all', got {spec!r}.")
    sizes: set[int] = set()
    for token in tokens:
        if token == "all":
            sizes.add(pool_size)
            continue
        match = _COUNT.match(token)
        if not match:
            raise ConfigError(
                f"sizes: cannot parse {token!r}; expected a count (500, 10k, 1.5k, 2m), a fraction "
                "of the pool (0.25) or 'all'."
            )
        number, suffix = float(match.group(1)), match.group(2)
        if suffix:
            size = number * (1_000 if suffix == "k" else 1_000_000)
        elif "." in match.group(1):
            if not 0 < number <= 1:
                raise ConfigError(f"sizes: fraction {token!r} must be in (0, 1]; use a count for more.")
            size = number * pool_size
        else:
            size = number
        if abs(size - round(size)) > 1e-9 and not ("." in match.group(1) and not suffix):
            raise ConfigError(f"sizes: {token!r} is not a whole number of examples.")
        size = int(round(size))
        if token == "1" and any("." in t for t in tokens):
            logger.warning("sizes: '1' is a count (one text), while %s are fractions of the pool; write '1.0' "
                           "for the whole pool.", [t for t in tokens if "." in t])
        if size > pool_size:
            raise ConfigError(
                f"sizes: {token!r} asks for {size} finetune examples but the pool holds only {pool_size} "
                "(the corpus after cleaning, minus the held-out test split). Use 'all' or a smaller size."
            )
        sizes.add(size)
    return sorted(sizes)


def size_label(finetune_size: int) -> str:
    """``0 -> f0``, ``500 -> f500``, ``1500 -> f1.5k``, ``10000 -> f10k``, ``2000000 -> f2m``."""
    if finetune_size < 0:
        raise ValueError(f"finetune_size must be >= 0, got {finetune_size}")
    if finetune_size < 1_000:
        return f"f{finetune_size}"
    for unit, scale in (("m", 1_000_000), ("k", 1_000)):
        if finetune_size >= scale:
            value = f"{finetune_size / scale:.6f}".rstrip("0").rstrip(".")
            return f"f{value}{unit}"
    raise AssertionError("unreachable")


@dataclass
class Splits:
    """Row indices into the corpus.

    ``test_indices`` score the probe; ``train_indices`` fit it; ``pool_order`` is the one fixed
    permutation that finetune subsets are prefixes of, so subsets are nested.
    """

    test_indices: np.ndarray
    train_indices: np.ndarray
    pool_order: np.ndarray

    @property
    def probe_rows(self) -> np.ndarray:
        """Every row the probe sees (train and test), in corpus order: the rows each checkpoint embeds."""
        return np.union1d(self.train_indices, self.test_indices)

    def save(self, path: str | Path) -> None:
        from ..io_utils import atomic_path

        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, test_indices=self.test_indices, train_indices=self.train_indices,
                         pool_order=self.pool_order)

    @classmethod
    def load(cls, path: str | Path) -> "Splits":
        with np.load(path) as data:
            return cls(data["test_indices"], data["train_indices"], data["pool_order"])


def make_splits(
    num_rows: int,
    test_fraction: float = 0.2,
    seed: int = 42,
    include_test_in_finetune: bool = False,
    order_seed: int | None = None,
    probe_rows: int | None = None,
) -> Splits:
    """Hold out ``test_fraction`` of rows for the probe and fix the finetune pool's order.

    The held-out rows never enter finetuning unless ``include_test_in_finetune`` (the
    transductive variant). The test split depends only on ``seed``, not on the sizes asked for;
    ``order_seed`` (default ``seed``) reorders the pool alone, for repeated runs on one test split.
    ``probe_rows`` caps the rows the probe fits and scores on: a fixed seeded sample of at most that
    many, the test share kept, so each checkpoint embeds at most ``probe_rows`` texts. The pool is
    not sampled: finetuning still uses every non-test row.
    """
    if not 0 < test_fraction < 1:
        raise ConfigError(f"test_fraction must be in (0, 1); got {test_fraction!r}.")
    num_test = int(round(num_rows * test_fraction))
    if num_test < 2 or num_rows - num_test < 2:
        raise ConfigError(
            f"{num_rows} rows with test_fraction={test_fraction} leave {num_test} test and "
            f"{num_rows - num_test} train rows; the probe needs at least 2 of each."
        )
    # Separate streams so the test split does not move when the pool logic changes.
    permutation = np.random.default_rng([seed, 0]).permutation(num_rows)
    test_indices = np.sort(permutation[:num_test])
    train_indices = np.sort(permutation[num_test:])
    pool_source = np.arange(num_rows) if include_test_in_finetune else train_indices
    pool_order = np.random.default_rng([seed if order_seed is None else order_seed, 1]).permutation(pool_source)
    if probe_rows is not None and num_rows > int(probe_rows):
        if int(probe_rows) < 20:
            raise ConfigError(f"probe_rows must be >= 20 or None; got {probe_rows!r}.")
        sample = np.random.default_rng([seed, 2])
        n_test = max(2, int(round(int(probe_rows) * len(test_indices) / num_rows)))
        test_indices = np.sort(sample.choice(test_indices, size=n_test, replace=False))
        train_indices = np.sort(sample.choice(train_indices, size=int(probe_rows) - n_test, replace=False))
    return Splits(test_indices=test_indices, train_indices=train_indices, pool_order=pool_order)
