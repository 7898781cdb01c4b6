"""hf-finetune-curve: how much domain data is enough to MLM-finetune an embedding model?

Example:
    >>> from hf_finetune_curve import CurveConfig, run_curve
    >>> result = run_curve(CurveConfig(data="listings.jsonl", sizes="0,10k,20k,all"))  # doctest: +SKIP
    >>> print(result.table())  # doctest: +SKIP

Names are imported on first use: ``from hf_finetune_curve import fit_and_score`` (what the ``evaluate``
metric and the model cards' snippets import) must not pay for torch and transformers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {  # name: the module it lives in, by stage (the shared modules first)
    "CurveConfig": "config", "FinetuneConfig": "config", "ProbeConfig": "config",
    "load_curve": "run_dir", "RunDirectory": "run_dir", "RunRecord": "run_dir",
    "CheckpointVerificationError": "errors", "ConfigError": "errors", "CorpusError": "errors",
    "FinetuneCurveError": "errors", "ModelResolutionError": "errors", "RunDirectoryConflictError": "errors",
    "RunDirectoryLockedError": "errors", "SubsetLeakError": "errors", "PublishError": "errors", "SpaceError": "errors",
    "Corpus": "data.corpus", "DataReport": "data.corpus", "load_corpus": "data.corpus",
    "make_splits": "data.subsets", "parse_sizes": "data.subsets", "size_label": "data.subsets",
    "PriceProbe": "score.probe", "RidgeProbe": "score.probe",
    "fit_and_score": "score.probe",
    "regression_scores": "score.probe", "validate_embeddings": "score.probe", "validate_targets": "score.probe",
    "CurvePoint": "curve.points", "format_table": "curve.points",
    "analyze_curve": "curve.analysis",
    "CurveResult": "pipeline", "run_curve": "pipeline",
}

if TYPE_CHECKING:  # pragma: no cover
    from .config import CurveConfig, FinetuneConfig, ProbeConfig
    from .curve.analysis import analyze_curve
    from .curve.points import CurvePoint, format_table
    from .data.corpus import Corpus, DataReport, load_corpus
    from .data.subsets import make_splits, parse_sizes, size_label
    from .errors import (CheckpointVerificationError, ConfigError, CorpusError, FinetuneCurveError,
                         ModelResolutionError, PublishError, RunDirectoryConflictError, RunDirectoryLockedError,
                         SpaceError, SubsetLeakError)
    from .pipeline import CurveResult, run_curve
    from .run_dir import RunDirectory, RunRecord, load_curve
    from .score.probe import (PriceProbe, RidgeProbe, fit_and_score, regression_scores,
                              validate_embeddings, validate_targets)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hf_finetune_curve' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def metric_path(name: str = "price_regression") -> str:
    """Path of a bundled ``evaluate`` metric folder, for ``evaluate.load(metric_path())``."""
    from .metrics import metric_path as _metric_path

    return _metric_path(name)


__all__ = sorted(_EXPORTS) + ["metric_path"]
