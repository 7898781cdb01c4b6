"""CLI flags generated from the config dataclasses: one default and one help text per option."""

import argparse
import dataclasses
import json

import pytest

from hf_finetune_curve import CurveConfig, FinetuneConfig, ProbeConfig
from hf_finetune_curve.cli import build_parser, config_from_args
from hf_finetune_curve.options import add_options, iter_options, options_given

# Every flag `hf-curve run` had before the flags were generated: names kept.
FLAGS_BEFORE = {
    "--data", "--text-column", "--target-column", "--max-rows", "--probe-rows", "--test-fraction",
    "--include-test-in-finetune", "--seed", "--model", "--sizes", "--output-dir", "--name", "--schedule",
    "--device", "--embed-batch-size", "--overwrite", "--no-progress", "--config", "--seeds",
    "--bootstrap-resamples", "--no-tfidf-baseline", "--epochs", "--learning-rate", "--batch-size",
    "--gradient-accumulation-steps", "--warmup-steps", "--cooldown-fraction", "--min-cooldown-steps",
    "--min-steps", "--head-warmup-steps", "--head-warmup-learning-rate", "--train-word-embeddings",
    "--no-train-word-embeddings", "--weight-decay", "--max-seq-length", "--mlm-probability", "--lora",
    "--lora-r", "--lora-alpha", "--lora-dropout", "--lora-target-modules", "--report-to", "--trainer-arg",
    "--target-transform", "--probe-trees", "--probe-arg", "--push-to-hub", "--hub-org", "--hub-name",
    "--private", "--hub-token",
}


def _run_parser() -> argparse.ArgumentParser:
    return build_parser()._subparsers._group_actions[0].choices["run"]


def _config(*argv: str) -> CurveConfig:
    args = build_parser().parse_args(["run", *argv])
    return config_from_args(args, args.subparser)


def test_every_flag_of_before_is_still_there():
    flags = {flag for action in _run_parser()._actions for flag in action.option_strings}
    assert FLAGS_BEFORE <= flags


def test_every_config_field_is_documented_and_every_documented_field_has_its_flag():
    for cls in (CurveConfig, FinetuneConfig, ProbeConfig):
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(f.default_factory if f.default_factory is not dataclasses.MISSING else None):
                continue  # a section: its fields are listed on their own
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no metadata help"
            assert f"    {f.name}" in cls.__doc__  # the docstring's Options section comes from it
    flags = {flag: action for action in _run_parser()._actions for flag in action.option_strings}
    for option in iter_options(CurveConfig):
        action = flags[option.flag]
        assert action.help.startswith(option.field.metadata["help"].replace("%", "%%"))


def test_no_flags_give_the_dataclass_defaults(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # one line per flag's help
    assert _config().to_dict() == CurveConfig().to_dict()
    help_text = _run_parser().format_help()
    assert "(default: 0,200,400)" in help_text
    assert "(default: per objective: 2e-5, supervised 1e-4; 1e-3 with --lora; takes a finite number > 0 or none)" \
        in help_text
    assert "(default: 20000; takes a whole number >= 20 or none)" in help_text and "(default: 128; " in help_text


def test_flags_set_their_fields_with_the_field_type():
    config = _config("--sizes", "0,1k,all", "--probe-rows", "none", "--max-rows", "50", "--no-tfidf-baseline",
                     "--epochs", "2", "--learning-rate", "1e-4", "--lora", "--lora-target-modules", "query, value",
                     "--trainer-arg", "max_grad_norm=0.5", "--trainer-arg", "adam_beta2=0.99",
                     "--max-seq-length", "none", "--target-transform", "none", "--probe-trees", "30",
                     "--probe-arg", "max_depth=3", "--probe-arg", "gamma=0.1")
    assert config.sizes == "0,1k,all" and config.probe_rows is None and config.max_rows == 50
    assert config.tfidf_baseline is False
    assert config.finetune.epochs == 2.0 and config.finetune.learning_rate == 1e-4 and config.finetune.lora
    assert config.finetune.lora_target_modules == ["query", "value"]
    assert config.finetune.trainer_kwargs == {"max_grad_norm": 0.5, "adam_beta2": 0.99}
    assert config.finetune.max_seq_length is None
    assert config.probe.target_transform == "none" and config.probe.n_estimators == 30
    assert config.probe.max_depth == 3 and config.probe.xgb_params == {"gamma": 0.1}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--schedule", "sideways"])


def test_config_file_with_flags_on_top(tmp_path):
    saved = CurveConfig(sizes="0,50", tfidf_baseline=False, finetune=FinetuneConfig(epochs=3, lora=True,
                        max_seq_length=32, trainer_kwargs={"max_grad_norm": 0.5}),
                        probe=ProbeConfig(n_estimators=30, xgb_params={"gamma": 1}))
    (tmp_path / "config.json").write_text(json.dumps({"config": saved.to_dict()}))
    assert _config("--config", str(tmp_path / "config.json")) == saved
    assert _config("--config", str(tmp_path)) == saved  # a run directory works too
    # A flag given wins, even when it names the dataclass default; the rest of the file stays.
    config = _config("--config", str(tmp_path), "--epochs", "1", "--no-lora", "--tfidf-baseline",
                     "--trainer-arg", "adam_beta2=0.99", "--probe-arg", "max_depth=3")
    assert config.finetune.epochs == 1.0 and not config.finetune.lora and config.tfidf_baseline
    assert config.finetune.max_seq_length == 32 and config.sizes == "0,50" and config.probe.n_estimators == 30
    assert config.finetune.trainer_kwargs == {"max_grad_norm": 0.5, "adam_beta2": 0.99}
    assert config.probe.max_depth == 3 and config.probe.xgb_params == {"gamma": 1}


def test_a_new_field_with_help_metadata_is_enough_for_its_flag(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    @dataclasses.dataclass
    class Objective:
        objectives: list[str] | None = dataclasses.field(default=None, metadata={"help": "training objectives"})
        temperature: float = dataclasses.field(default=0.05, metadata={"help": "contrastive temperature"})

    @dataclasses.dataclass
    class Extended:
        probe_seeds: int = dataclasses.field(default=1, metadata={"help": "probe seeds per point"})
        answer_metric: str = dataclasses.field(default="r2", metadata={"help": "metric of the answer",
                                                                        "choices": ("r2", "r2_log")})
        undocumented: int = 3  # no help: no flag
        objective: Objective = dataclasses.field(default_factory=Objective)

    parser = argparse.ArgumentParser()
    add_options(parser, Extended)
    args = parser.parse_args(["--probe-seeds", "3", "--answer-metric", "r2_log", "--objectives", "mlm,simcse"])
    assert options_given(args, Extended) == {"probe_seeds": 3, "answer_metric": "r2_log",
                                             "objective": {"objectives": ["mlm", "simcse"]}}
    assert "probe seeds per point (default: 1)" in parser.format_help()
    with pytest.raises(SystemExit):
        parser.parse_args(["--undocumented", "4"])


def test_two_sections_naming_the_same_flag_fail_loudly():
    @dataclasses.dataclass
    class Section:
        seed: int = dataclasses.field(default=0, metadata={"help": "a second --seed"})

    @dataclasses.dataclass
    class Clash:
        seed: int = dataclasses.field(default=0, metadata={"help": "the seed"})
        section: Section = dataclasses.field(default_factory=Section)

    with pytest.raises(argparse.ArgumentError):
        add_options(argparse.ArgumentParser(), Clash)
