"""The finetuning objectives, one module each: adding an objective is adding a module here.

Each public module of this package (a name without a leading ``_``) declares one :class:`ObjectiveSpec` as
``SPEC``: its name, display name, colour, what the model card says it trained on, its default learning rate
and why, whether it sees labels, which recipe options it reads, and how it trains (an engine and a loss that
the train layer resolves). Everything that used to branch on objective names reads the spec instead:
:class:`hf_finetune_curve.names.Objective` (whose members are built from the specs), the config's defaults,
choices and option checks, the pipeline's choice of training code, the model card and the colours.

Discovery lists the modules of this package's ``__path__`` with :func:`pkgutil.iter_modules`, once, at import,
into the read-only :data:`SPECS`. Objectives outside the package (a plugin, a test) are found the same way: put
their folders in the environment variable ``HF_CURVE_OBJECTIVES_PATH`` (separated like ``PATH``), which is
added to ``__path__`` before discovery; a module there is declared exactly like the built-in ones.

Example:
    >>> from hf_finetune_curve.objectives import SPECS, spec_for
    >>> list(SPECS)[:3], spec_for("mlm-simcse").starts_from, spec_for("supervised").uses_labels
    (['mlm', 'tsdae', 'simcse'], 'mlm', True)
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from ..errors import ConfigError, ObjectiveSpecError
from ._spec import ENGINES, ObjectiveSpec

#: Extra folders of objective modules (os.pathsep-separated), searched after the package's own.
PATH_VARIABLE = "HF_CURVE_OBJECTIVES_PATH"


def discover(path: Iterable[str], package: str = __name__) -> Mapping[str, ObjectiveSpec]:
    """The ``SPEC`` of every public module in the folders ``path`` (a package's ``__path__``), in their
    declared order, as a read-only mapping from name to spec.

    A module without a ``SPEC``, a spec whose name is not its module's, a name declared twice or an objective
    that continues one that does not exist is an :class:`ObjectiveSpecError` naming the module.
    """
    specs: dict[str, ObjectiveSpec] = {}
    for info in pkgutil.iter_modules(list(path)):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        spec = getattr(module, "SPEC", None)
        where = getattr(module, "__file__", info.name)
        if not isinstance(spec, ObjectiveSpec):
            raise ObjectiveSpecError(f"{where}: an objective module declares SPEC = ObjectiveSpec(...); "
                                     f"got {type(spec).__name__}.")
        if spec.module_name != info.name:
            raise ObjectiveSpecError(f"{where}: SPEC.name {spec.name!r} is not the module's name "
                                     f"(expected {info.name.replace('_', '-')!r}).")
        if spec.name in specs:
            raise ObjectiveSpecError(f"{where}: objective {spec.name!r} is declared twice.")
        specs[spec.name] = spec
    for spec in specs.values():
        if spec.starts_from is not None and spec.starts_from not in specs:
            raise ObjectiveSpecError(f"objective {spec.name!r} starts from {spec.starts_from!r}, which no module "
                                     f"declares (the objectives are {', '.join(sorted(specs))}).")
    ordered = sorted(specs.values(), key=lambda s: (s.order, s.name))
    return MappingProxyType({spec.name: spec for spec in ordered})


# The extension hook: folders from the environment join the package's own before the one discovery.
__path__ = [*__path__, *(p for p in os.environ.get(PATH_VARIABLE, "").split(os.pathsep) if p)]

#: Every objective, by name, in the order help, tables and plots list them (read-only).
SPECS: Mapping[str, ObjectiveSpec] = discover(__path__)


def spec_for(objective: Any) -> ObjectiveSpec:
    """The spec of ``objective``: a name (any case) or an :class:`~hf_finetune_curve.names.Objective` member."""
    name = str(getattr(objective, "value", objective)).strip().lower()
    try:
        return SPECS[name]
    except KeyError:
        raise ConfigError(f"objective must be one of {list(SPECS)}; got {objective!r}.") from None


def options_used_by() -> dict[str, tuple[str, ...]]:
    """Each recipe option some objective declares, and the objectives that read it."""
    users: dict[str, list[str]] = {}
    for spec in SPECS.values():
        for option in spec.options:
            users.setdefault(option, []).append(spec.name)
    return {option: tuple(names) for option, names in users.items()}


__all__ = ["ENGINES", "ObjectiveSpec", "PATH_VARIABLE", "SPECS", "discover", "options_used_by", "spec_for"]
