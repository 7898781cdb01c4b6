"""The import contract: a module imports only from its own layer and the layers below it.

The layers, bottom first, are docs/development.md's "Code layout": the shared names and helpers, the config, then
the stages in the order a run goes through them (data -> train -> score -> curve), the run directory that
stores what they produced, then what publishes and shows a finished run (hub, the metric, space), and on
top the pipeline that drives them all and the CLI. Every import counts: at module level, inside a
function (it runs when the function does) and under ``TYPE_CHECKING`` (an annotation is a dependency too).
The test reads the source with :mod:`ast` and imports nothing, so it runs in well under a second.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import hf_finetune_curve

PACKAGE = Path(hf_finetune_curve.__file__).parent
NAME = "hf_finetune_curve"

# Bottom first. A module belongs to the first entry that is its dotted name or a package above it.
LAYERS: list[tuple[str, ...]] = [
    ("errors", "io_utils", "objectives", "names", "options", "progress", "cores"),  # shared names and helpers, no stage
    ("config",),                                 # what a run is: its configs
    ("data",),
    ("train",),
    ("score",),
    ("curve",),
    ("run_dir",),                                # a run's files: what the stages above produced
    ("hub", "metrics"),                          # publishing a finished run
    ("space",),                                  # showing a finished run
    ("pipeline",),                               # run_curve: every stage, in order
    ("cli", "__init__"),                         # hf-curve and the package's public names
]

# Imports allowed against the layers, each with its reason. Keep this short.
EXCEPTIONS: dict[tuple[str, str], str] = {
    # The evaluate metric script is loaded by `evaluate` as a standalone file (and ships to the Hub), so it
    # can reach the package only through its public names.
    ("metrics.price_regression.price_regression", "__init__"):
        "the evaluate metric script imports the public API",
}


def _layer_of(module: str) -> int:
    for index, members in enumerate(LAYERS):
        for member in members:
            if module == member or module.startswith(member + "."):
                return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _is_module(dotted: str) -> bool:
    """``hf_finetune_curve.a.b`` names a module or a package of the source tree under PACKAGE."""
    if not dotted.startswith(NAME + "."):
        return False
    path = PACKAGE.joinpath(*dotted.split(".")[1:])
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, imported module relative to the package) for every import of the package in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    package_parts = module.split(".") if is_package else module.split(".")[:-1]
    if module == "__init__":
        package_parts = []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
                targets = [f"{NAME}.{stem}" if stem else NAME]
            else:
                targets = [node.module or ""]
            # `from . import x` / `from hf_finetune_curve import cli`: a name may be a module of its own.
            targets = [f"{targets[0]}.{alias.name}" if _is_module(f"{targets[0]}.{alias.name}") else targets[0]
                       for alias in node.names]
        else:
            continue
        for target in targets:
            if target == NAME:
                found.append((node.lineno, "__init__"))
            elif target.startswith(NAME + "."):
                found.append((node.lineno, target[len(NAME) + 1:]))
    return found


def _violations() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        layer = _layer_of(module)
        for line, target in _imports(path, module):
            if (module, target) in EXCEPTIONS or (module, target.split(".")[0]) in EXCEPTIONS:
                continue
            if _layer_of(target) > layer:
                problems.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {module} (layer "
                                f"{'/'.join(LAYERS[layer])}) imports {target} (layer "
                                f"{'/'.join(LAYERS[_layer_of(target)])}), a later layer")
    return problems


def test_every_module_imports_only_its_own_and_earlier_layers():
    problems = _violations()
    assert not problems, "the import contract is broken:\n" + "\n".join(problems)


def test_the_contract_sees_a_violation(tmp_path, monkeypatch):
    """The checker itself: a config module that imports a stage is reported (so the test above can fail)."""
    fake = tmp_path / NAME
    (fake / "score").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "score" / "__init__.py").write_text("")
    (fake / "score" / "probe.py").write_text("X = 1\n")
    (fake / "config.py").write_text("from .score.probe import X\n\ndef f():\n    from hf_finetune_curve import cli\n")
    (fake / "cli.py").write_text("from .config import X\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    problems = _violations()
    assert len(problems) == 2, problems
    assert "config.py:1: config (layer config) imports score.probe (layer score)" in problems[0]
    assert "imports cli (layer cli/__init__)" in problems[1]


@pytest.mark.parametrize("module", ["errors", "io_utils", "names", "options", "progress", "config"])
def test_the_shared_modules_import_no_stage(module):
    """The bottom of the contract, spelled out: config and the shared names never import a stage."""
    path = PACKAGE / f"{module}.py"
    stages = ("data", "train", "score", "curve", "run_dir", "hub", "metrics", "space", "pipeline", "cli")
    assert not [t for _, t in _imports(path, module) if t.split(".")[0] in stages]
