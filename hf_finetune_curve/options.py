"""Config fields as command-line options: each option's default, help text and flag live once, on its field.

The convention, for every field of :class:`~hf_finetune_curve.config.CurveConfig` and of its nested
sections (:class:`~hf_finetune_curve.config.FinetuneConfig`, :class:`~hf_finetune_curve.config.ProbeConfig`):

    learning_rate: float | None = field(default=None, metadata={
        "help": "peak learning rate", "default_help": "2e-5, or 1e-3 with --lora"})

- ``help`` (required for a flag): the flag's help text and the field's documentation (the class
  docstring's ``Options:`` section is generated from it by :func:`documented`). A field with a
  ``help`` gets the flag ``--field-name`` in ``hf-curve run``; that is all a new field needs.
- ``flag``: another flag name (``"--probe-trees"``), or ``None`` for a documented field with no flag.
- ``parse``: a function from the flag's text to the value, when the annotation's is not right.
  Inferred from the annotation: ``int``, ``float``, ``str``; ``int | None`` and ``float | None`` also
  take ``none``; ``bool`` gives ``--x / --no-x``; ``list[str]`` takes ``a,b,c``; a ``dict`` field
  takes ``--flag KEY=VALUE`` repeatedly (VALUE read as JSON when it parses).
- ``choices``, ``metavar``: as in argparse.
- ``default_help``: how ``--help`` shows the default, when the field's default says too little (``None``).
- ``apply``: ``apply(section: dict, value)`` puts a parsed value into its section's dict, when more than
  ``section[name] = value`` is needed (``--probe-arg`` routes known probe fields to their fields).
- ``group``: the ``--help`` group (default: the section's: ``run``, ``finetuning``, ``probe``).
- ``bounds``: a :class:`Bounds`, the values the field takes (``Bounds(low=0, low_open=True)``: a finite
  number > 0). Checked by :func:`check_fields` when the config is built (the CLI and the Python API alike),
  and shown in ``--help`` after the default. A field typed ``X | None`` also takes None.

A nested dataclass field (``finetune: FinetuneConfig``) is a section: its fields' flags carry no
prefix, so two sections must not name a flag alike (building the parser fails if they do).

Flags default to "not given": only the flags on the command line are applied, over the dataclass
defaults or over a saved config (``hf-curve run --config run/config.json --epochs 3``).

Example:
    >>> from dataclasses import dataclass, field
    >>> @documented
    ... @dataclass
    ... class Toy:
    ...     '''A toy section.'''
    ...     steps: int = field(default=3, metadata={"help": "optimizer steps"})
    ...     cap: int | None = field(default=None, metadata={"help": "at most this many rows"})
    ...     fast: bool = field(default=False, metadata={"help": "go fast"})
    >>> parser = argparse.ArgumentParser(prog="toy")
    >>> add_options(parser, Toy)
    >>> args = parser.parse_args(["--steps", "5", "--cap", "none", "--fast"])
    >>> options_given(args, Toy)
    {'steps': 5, 'cap': None, 'fast': True}
    >>> Toy(**options_given(parser.parse_args(["--no-fast"]), Toy))
    Toy(steps=3, cap=None, fast=False)
    >>> print(Toy.__doc__.split("Options:")[1].strip().splitlines()[0])
    steps: optimizer steps (default: 3)
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import inspect
import json
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, Iterator

__all__ = ["Bounds", "Option", "check_fields", "iter_options", "add_options", "options_given", "documented",
           "parse_key_value",
           "parse_optional_int", "parse_optional_float", "parse_finite_float", "parse_comma_list"]


def parse_optional_int(text: str) -> int | None:
    """``"none"`` (or ``"all"``, or nothing) is None, else a whole number.

    >>> parse_optional_int("20000"), parse_optional_int("none")
    (20000, None)
    """
    if text.strip().lower() in {"none", "all", ""}:
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or 'none', got {text!r}") from None


def parse_finite_float(text: str) -> float:
    """A finite number: ``inf`` and ``nan`` are refused where the flag is parsed, not after hours of training.

    >>> parse_finite_float("2e-5")
    2e-05
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def parse_optional_float(text: str) -> float | None:
    """``"none"`` is None, else a finite number.

    >>> parse_optional_float("2e-5"), parse_optional_float("None")
    (2e-05, None)
    """
    if text.strip().lower() in {"none", ""}:
        return None
    try:
        return parse_finite_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a finite number or 'none', got {text!r}") from None


def parse_comma_list(text: str) -> list[str] | None:
    """``"query, value"`` -> ``["query", "value"]``; nothing -> None.

    >>> parse_comma_list("query, value")
    ['query', 'value']
    """
    items = [item.strip() for item in text.split(",") if item.strip()]
    return items or None


def parse_key_value(text: str) -> tuple[str, Any]:
    """``KEY=VALUE``, VALUE read as JSON when it parses.

    >>> parse_key_value("max_depth=4"), parse_key_value("optim=adamw_torch")
    (('max_depth', 4), ('optim', 'adamw_torch'))
    """
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


@dataclass(frozen=True)
class Bounds:
    """The values a number field takes: ``whole`` numbers or finite reals, between ``low`` and ``high``
    (each inclusive unless ``*_open``); ``why`` says what a bound protects, in the error.

    >>> Bounds(low=0, high=1, low_open=True).describe(), Bounds(low=1, whole=True).describe()
    ('a finite number in (0, 1]', 'a whole number >= 1')
    >>> Bounds(low=0, high=1, high_open=True).accepts(1.0), Bounds(low=1, whole=True).accepts(2.0)
    (False, False)
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    whole: bool = False
    why: str = ""

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.whole and not isinstance(value, int):
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))

    def describe(self) -> str:
        kind = "a whole number" if self.whole else "a finite number"
        low, high = _number(self.low), _number(self.high)
        if self.low is not None and self.high is not None:
            text = f"{kind} in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"
        elif self.low is not None:
            text = f"{kind} {'>' if self.low_open else '>='} {low}"
        elif self.high is not None:
            text = f"{kind} {'<' if self.high_open else '<='} {high}"
        else:
            text = kind
        return f"{text} ({self.why})" if self.why else text


def _number(value: float | None) -> str:
    """A bound as --help shows it: ``0.5``, ``8``, ``2**31`` for the seeds' limit."""
    if value is None:
        return ""
    if float(value).is_integer() and value >= 2**20 and (int(value) & (int(value) - 1)) == 0:
        return f"2**{int(value).bit_length() - 1}"
    return f"{value:g}"


def check_fields(instance: Any, prefix: str = "", unflagged: str = "") -> None:
    """Check every field of the dataclass ``instance`` against its declared ``bounds`` and ``choices``; the error
    names the field, its flag (``unflagged``, formatted with the field's name, for a field without a flag of
    its own), what it takes and what it got (a :class:`~hf_finetune_curve.errors.ConfigError`)."""
    from .errors import ConfigError

    hints = typing.get_type_hints(type(instance))
    for f in dataclasses.fields(instance):
        bounds, choices = f.metadata.get("bounds"), f.metadata.get("choices")
        if bounds is None and choices is None:
            continue
        value = getattr(instance, f.name)
        if value is None and _strip_none(hints[f.name]) is not hints[f.name]:
            continue
        option = Option((f.name,), f, hints[f.name], "")
        flag = option.flag if f.metadata.get("flag", "") is not None else unflagged.format(name=f.name)
        set_with = f" (set with {flag})" if flag else ""
        if bounds is not None and not bounds.accepts(value):
            or_none = " or none" if _strip_none(hints[f.name]) is not hints[f.name] else ""
            raise ConfigError(f"{prefix}{f.name} must be {bounds.describe()}{or_none}{set_with}; got {value!r}.")
        if choices is not None and value not in choices:
            raise ConfigError(f"{prefix}{f.name} must be one of {', '.join(map(str, choices))}{set_with}; "
                              f"got {value!r}.")


@dataclass(frozen=True)
class Option:
    """One config field that has a flag: where it lives (``path``, e.g. ``("finetune", "epochs")``) and how to parse it."""

    path: tuple[str, ...]
    field: dataclasses.Field
    annotation: Any
    group: str

    @property
    def name(self) -> str:
        return self.path[-1]

    @property
    def dest(self) -> str:
        return ".".join(self.path)

    @property
    def flag(self) -> str:
        return self.field.metadata.get("flag") or "--" + self.name.replace("_", "-")

    @property
    def kind(self) -> str:
        """``bool``, ``dict`` or ``value``."""
        base = _strip_none(self.annotation)
        if base is bool:
            return "bool"
        if base is dict or typing.get_origin(base) is dict:
            return "dict"
        return "value"

    def parser(self) -> Callable[[str], Any]:
        if "parse" in self.field.metadata:
            return self.field.metadata["parse"]
        if self.kind == "dict":
            return parse_key_value
        optional = _strip_none(self.annotation) is not self.annotation
        base = _strip_none(self.annotation)
        if base is int:
            return parse_optional_int if optional else int
        if base is float:
            return parse_optional_float if optional else parse_finite_float
        if base is list or typing.get_origin(base) is list:
            return parse_comma_list
        return str

    def default_text(self) -> str | None:
        if "default_help" in self.field.metadata:
            return self.field.metadata["default_help"]
        if self.field.default is not dataclasses.MISSING:
            default = self.field.default
            if default is None:
                return None
            return "on" if default is True else "off" if default is False else str(default)
        return None

    def help_text(self) -> str:
        text = self.field.metadata["help"]
        notes = []
        default = self.default_text()
        if default is not None:
            notes.append(f"default: {default}")
        bounds = self.field.metadata.get("bounds")
        if bounds is not None:
            optional = _strip_none(self.annotation) is not self.annotation
            notes.append(f"takes {bounds.describe()}" + (" or none" if optional else ""))
        return f"{text} ({'; '.join(notes)})" if notes else text

    def apply(self, section: dict[str, Any], value: Any) -> None:
        custom = self.field.metadata.get("apply")
        if custom is not None:
            custom(section, value)
        elif self.kind == "dict":
            section[self.name] = {**(section.get(self.name) or {}), **dict(value)}
        else:
            section[self.name] = value


def _strip_none(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def _section_type(annotation: Any) -> type | None:
    base = _strip_none(annotation)
    return base if isinstance(base, type) and dataclasses.is_dataclass(base) else None


def iter_options(cls: type, path: tuple[str, ...] = (), group: str | None = None) -> Iterator[Option]:
    """Every field of ``cls`` (and of its nested sections) that has a flag, in declaration order."""
    hints = typing.get_type_hints(cls)
    group = group or getattr(cls, "__options_group__", cls.__name__)
    for f in dataclasses.fields(cls):
        section = _section_type(hints[f.name])
        if section is not None:
            yield from iter_options(section, (*path, f.name))
            continue
        if "help" not in f.metadata or ("flag" in f.metadata and f.metadata["flag"] is None):
            continue
        yield Option((*path, f.name), f, hints[f.name], f.metadata.get("group", group))


def add_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add a flag per option of ``cls`` to ``parser``; every flag defaults to "not given"."""
    groups: dict[str, Any] = {}
    for option in iter_options(cls):
        if option.group not in groups:
            groups[option.group] = parser.add_argument_group(option.group)
        target = groups[option.group]
        kwargs: dict[str, Any] = {"dest": option.dest, "default": argparse.SUPPRESS,
                                  "help": option.help_text().replace("%", "%%")}
        if option.kind == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = option.parser()
            if option.kind == "dict":
                kwargs["action"] = "append"
                kwargs.setdefault("metavar", "KEY=VALUE")
            if "choices" in option.field.metadata:
                kwargs["choices"] = option.field.metadata["choices"]
            else:
                kwargs.setdefault("metavar", option.name.upper())
            if "metavar" in option.field.metadata:
                kwargs["metavar"] = option.field.metadata["metavar"]
        target.add_argument(option.flag, **kwargs)


def options_given(args: argparse.Namespace, cls: type, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """``base`` (a config dict, nested sections included) with the flags given in ``args`` applied."""
    values = copy.deepcopy(base) if base else {}
    given = vars(args)
    for option in iter_options(cls):
        if option.dest not in given:
            continue
        section = values
        for key in option.path[:-1]:
            section = section.setdefault(key, {})
        option.apply(section, given[option.dest])
    return values


def documented(cls: type) -> type:
    """Append an ``Options:`` section, one line per field with a ``help``, to the dataclass's docstring."""
    hints = typing.get_type_hints(cls)
    lines = []
    for f in dataclasses.fields(cls):
        if "help" not in f.metadata:
            continue
        option = Option((f.name,), f, hints[f.name], "")
        flag = option.flag if option.field.metadata.get("flag", "") is not None else None
        flag_note = f" [{flag}]" if flag and flag != "--" + f.name.replace("_", "-") else ""
        lines.append(f"    {f.name}{flag_note}: {option.help_text()}")
    if lines:
        cls.__doc__ = inspect.cleandoc(cls.__doc__ or "") + "\n\nOptions:\n" + "\n".join(lines) + "\n"
    return cls
