"""``run_curve``: data -> subsets -> finetune -> embed -> probe -> curve -> samples, resumable.

Every file it reads or writes is named by :class:`~hf_finetune_curve.run_dir.RunDirectory`. The top layer
of the import contract: it drives every stage, in the order of its modules:

- :mod:`~hf_finetune_curve.pipeline.setup`: the launch, the run directory's checks, the early refusals;
- :mod:`~hf_finetune_curve.pipeline.points`: each replicate's points (train, save, embed, probe);
- :mod:`~hf_finetune_curve.pipeline.analysis`: the curve's analysis, the baseline, the summary;
- :mod:`~hf_finetune_curve.pipeline.run`: :func:`run_curve`, which calls them in order.

Example:
    >>> from hf_finetune_curve import CurveConfig, run_curve
    >>> result = run_curve(CurveConfig(sizes="0,200,400"))  # doctest: +SKIP
    >>> print(result.table())  # doctest: +SKIP
"""

from .run import CurveResult, run_curve
from .setup import MIN_TEST_ROWS, WARN_TEST_ROWS, is_main_process

__all__ = ["MIN_TEST_ROWS", "WARN_TEST_ROWS", "CurveResult", "is_main_process", "run_curve"]
