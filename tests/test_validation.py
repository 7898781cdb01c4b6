"""Validation declared once: each field's bounds and choices sit in its metadata beside the help text, are
checked the same way from the CLI and from Python, and appear in --help; every example a help text gives runs."""

from __future__ import annotations

import dataclasses
import re

import pytest

from hf_finetune_curve import CurveConfig, FinetuneConfig, ProbeConfig
from hf_finetune_curve.cli import build_parser, config_from_args, main
from hf_finetune_curve.errors import ConfigError
from hf_finetune_curve.options import Bounds, iter_options

SECTIONS = (CurveConfig, FinetuneConfig, ProbeConfig)


def _bounded_fields():
    for cls in SECTIONS:
        for f in dataclasses.fields(cls):
            if "bounds" in f.metadata:
                yield cls, f


def _outside(bounds: Bounds):
    """A value just outside ``bounds``: below the low end, else above the high end."""
    if bounds.low is not None:
        return bounds.low - 1 if bounds.whole else (bounds.low if bounds.low_open else bounds.low - 0.5)
    return bounds.high + 1


def _build(cls, name, value):
    if cls is CurveConfig:
        return CurveConfig(**{name: value})
    return CurveConfig(**{"finetune" if cls is FinetuneConfig else "probe": {name: value}})


@pytest.mark.parametrize("cls,f", list(_bounded_fields()), ids=lambda x: getattr(x, "name", getattr(x, "__name__", "")))
def test_every_bound_is_checked_from_python_with_the_field_and_its_flag_named(cls, f):
    bounds = f.metadata["bounds"]
    bad = _outside(bounds)
    with pytest.raises(ConfigError) as caught:
        _build(cls, f.name, bad)
    message = str(caught.value)
    assert f"{f.name} must be {bounds.describe()}" in message and f"got {bad!r}" in message
    assert "(set with --" in message  # the flag that sets it, so the user knows what to change
    for bad_kind in (float("nan"), True, "3"):
        with pytest.raises(ConfigError):
            _build(cls, f.name, bad_kind)


def test_the_cli_refuses_the_same_values_with_the_same_message(capsys):
    parser = build_parser()
    for argv, expected in ((["--lora-dropout", "1"], "finetune.lora_dropout must be a finite number in [0, 1)"),
                           (["--probe-seeds", "101"], "probe_seeds must be a whole number in [1, 100]"),
                           (["--probe-arg", "subsample=0"], "probe.subsample must be a finite number in (0, 1]")):
        args = parser.parse_args(["run", *argv])
        with pytest.raises(ConfigError, match=re.escape(expected)):
            config_from_args(args, parser)
        assert main(["run", *argv]) == 2 and expected in capsys.readouterr().err


def test_help_shows_each_bound(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "takes a whole number >= 1" in text  # --batch-size
    assert "takes a finite number in (0, 1)" in text  # --mlm-probability, --test-fraction
    assert "takes a whole number >= 8 or none" in text  # --max-seq-length
    flags = {option.flag for option in iter_options(CurveConfig) if "bounds" in option.field.metadata}
    assert len(flags) >= 25 and all(flag in text for flag in flags)


def test_trainer_kwargs_are_checked_when_the_config_is_built():
    with pytest.raises(ConfigError, match="--trainer-arg lr_scheduler_type is refused"):
        FinetuneConfig(trainer_kwargs={"lr_scheduler_type": "cosine"})
    with pytest.raises(ConfigError, match="--trainer-arg hub_token is refused"):
        CurveConfig.from_dict({"finetune": {"trainer_kwargs": {"hub_token": "x"}}})


def _help_examples():
    """(flag, argv) for every example a flag's help text gives: ``e.g. --flag VALUE``, ``e.g. VALUE`` (for the
    flag itself) and ``(KEY=VALUE)`` in the help of a KEY=VALUE flag."""
    for option in iter_options(CurveConfig):
        text = option.field.metadata["help"]
        for match in re.finditer(r"e\.g\. (--[a-z-]+) (\S+)|e\.g\. ([^\s(;]+)|\((\w+=[^\s)]+)\)", text):
            if match.group(1):
                yield option.flag, [match.group(1), match.group(2).rstrip(",;.")]
            else:
                yield option.flag, [option.flag, (match.group(3) or match.group(4)).rstrip(",;.")]


@pytest.mark.parametrize("flag,argv", list(_help_examples()), ids=lambda x: " ".join(x) if isinstance(x, list) else x)
def test_every_example_in_a_help_text_runs(flag, argv):
    parser = build_parser()
    base = ["--objectives", "mlm,simcse,mlm-simcse,mlm-distill,supervised"]  # an option's objective, measured
    config = config_from_args(parser.parse_args(["run", *base, *argv]), parser)
    assert isinstance(config, CurveConfig)


def test_the_help_examples_are_found():
    found = {flag for flag, _ in _help_examples()}
    assert {"--objectives", "--objective-learning-rate", "--trainer-arg", "--probe-arg"} <= found
