"""hf-finetune-curve: how much domain data is enough to MLM-finetune an embedding model?

Example:
    >>> from hf_finetune_curve import CurveConfig, run_curve
    >>> result = run_curve(CurveConfig(data="listings.jsonl", sizes="0,10k,20k,all"))  # doctest: +SKIP
    >>> print(result.table())  # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"

from .config import CurveConfig, FinetuneConfig
from .corpus import Corpus, DataReport, load_corpus
from .curve import CurvePoint, format_table, load_curve
from .errors import (
    CheckpointVerificationError,
    ConfigError,
    CorpusError,
    FinetuneCurveError,
    ModelResolutionError,
    RunDirectoryConflictError,
)
from .pipeline import CurveResult, run_curve
from .probe import PriceProbe, ProbeConfig, fit_and_score, regression_scores
from .subsets import make_splits, parse_sizes, size_label


def metric_path(name: str = "price_regression") -> str:
    """Path of a bundled ``evaluate`` metric folder, for ``evaluate.load(metric_path())``."""
    from .metrics import metric_path as _metric_path

    return _metric_path(name)


__all__ = [
    "CheckpointVerificationError", "ConfigError", "Corpus", "CorpusError", "CurveConfig", "CurvePoint",
    "CurveResult", "DataReport", "FinetuneConfig", "FinetuneCurveError", "ModelResolutionError", "PriceProbe",
    "ProbeConfig", "RunDirectoryConflictError", "fit_and_score", "format_table", "load_corpus", "load_curve",
    "make_splits", "metric_path", "parse_sizes", "regression_scores", "run_curve", "size_label",
]
