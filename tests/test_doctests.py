"""Every docstring example in the package runs in the suite (the README's ``python -m pytest -q``).

Examples that need a trained model, a run directory or the Hub are marked ``# doctest: +SKIP`` in place;
everything else runs here. A module with examples must be listed below, so a new one is not forgotten.
"""

import doctest
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hf_finetune_curve"

MODULES = [
    "hf_finetune_curve", "hf_finetune_curve.names", "hf_finetune_curve.objectives", "hf_finetune_curve.objectives._spec",
    "hf_finetune_curve.config", "hf_finetune_curve.io_utils",
    "hf_finetune_curve.progress", "hf_finetune_curve.cores", "hf_finetune_curve.pipeline.parallel",
    "hf_finetune_curve.options",
    "hf_finetune_curve.pipeline", "hf_finetune_curve.run_dir", "hf_finetune_curve.run_dir.layout",
    "hf_finetune_curve.run_dir.curve_file", "hf_finetune_curve.run_dir.directory", "hf_finetune_curve.run_dir.record",
    "hf_finetune_curve.metrics",
    "hf_finetune_curve.data.corpus", "hf_finetune_curve.data.sample_data", "hf_finetune_curve.data.subsets",
    "hf_finetune_curve.train.branching", "hf_finetune_curve.train.checkpoint", "hf_finetune_curve.train.finetune",
    "hf_finetune_curve.train.models", "hf_finetune_curve.train.objectives", "hf_finetune_curve.train.recipe",
    "hf_finetune_curve.train.sentence_objectives", "hf_finetune_curve.train.trainer",
    "hf_finetune_curve.score.embed", "hf_finetune_curve.score.probe", "hf_finetune_curve.space.samples",
    "hf_finetune_curve.curve.analysis", "hf_finetune_curve.curve.compare", "hf_finetune_curve.curve.points",
    "hf_finetune_curve.curve.uncertainty",
    "hf_finetune_curve.hub.model_card", "hf_finetune_curve.hub.publish",
    "hf_finetune_curve.space",
]
# Modules whose examples run elsewhere in the suite.
RUN_ELSEWHERE = {
    "hf_finetune_curve.score.baselines": "tests/test_baselines.py::test_doctests",
    "hf_finetune_curve.curve.fit": "tests/test_curve_fit.py::test_doctests",
    "hf_finetune_curve.metrics.price_regression.price_regression": "tests/test_metric.py (the evaluate script's "
                                                                   "_KWARGS_DESCRIPTION examples)",
}


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (see the output)"


def test_every_module_with_examples_is_run():
    with_examples = set()
    for path in PACKAGE.rglob("*.py"):
        if ">>> " in path.read_text(encoding="utf-8"):
            parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
            with_examples.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    assert with_examples - set(MODULES) - set(RUN_ELSEWHERE) == set()
