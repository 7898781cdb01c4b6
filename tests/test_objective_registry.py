"""Objectives as a registry: each module of ``hf_finetune_curve.objectives`` declares one objective, and
everything that used to branch on objective names (the enum, the config's defaults, choices and option checks,
the training engine, the model card, the colours) reads its spec. Adding an objective is one new module."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hf_finetune_curve.config import DEFAULT_LEARNING_RATES, RECIPE_CHOICES, CurveConfig, FinetuneConfig
from hf_finetune_curve.errors import ConfigError, ObjectiveSpecError
from hf_finetune_curve.names import OBJECTIVE_COLOURS, OBJECTIVE_NAMES, Objective
from hf_finetune_curve.objectives import PATH_VARIABLE, SPECS, ObjectiveSpec, discover, spec_for
from hf_finetune_curve.train.objectives import training_spec

REPO_ROOT = Path(__file__).resolve().parents[1]
FINETUNE_FIELDS = {f.name for f in dataclasses.fields(FinetuneConfig)}

# The one module the plugin test adds: an objective that reuses SimCSE's loss under its own name and rate.
PLUGIN = '''
from hf_finetune_curve.objectives import ObjectiveSpec

SPEC = ObjectiveSpec(
    name="self-pairs", display="Self-pairs", colour="#123ABC", order=60,
    description="self-pairs: each text ranked against the batch's other texts (a registry test objective)",
    learning_rate=3e-5, learning_rate_why="3e-5, a test's choice",
    engine="sentence", loss="simcse",
    options=("simcse_batch_size",),
    card_rows=(("texts ranked per step", "{simcse_batch_size} texts, each its own positive"),),
)
'''


def _spec(**changes) -> ObjectiveSpec:
    values = dict(name="demo", display="Demo", colour="#123456", order=90, description="a demonstration",
                  learning_rate=2e-5, learning_rate_why="untuned", engine="sentence", loss="simcse")
    return ObjectiveSpec(**{**values, **changes})


def test_every_objective_has_a_complete_spec_that_every_layer_reads():
    assert list(SPECS) == list(OBJECTIVE_NAMES) == [o.value for o in Objective]
    assert list(SPECS)[:3] == ["mlm", "tsdae", "simcse"]  # the declared order: mlm first, as before the registry
    for name, spec in SPECS.items():
        objective = Objective(name)
        assert objective.spec is spec and spec_for(name.upper()) is spec
        assert objective.colour == OBJECTIVE_COLOURS[name] == spec.colour
        assert DEFAULT_LEARNING_RATES[objective] == spec.learning_rate > 0
        assert RECIPE_CHOICES[objective] == spec.learning_rate_why
        assert objective.display == spec.display and objective.description == spec.description
        assert training_spec(name) is spec  # the train layer implements its engine and loss
        assert set(spec.options) <= FINETUNE_FIELDS, name
        assert spec.starts_from is None or spec.starts_from in SPECS
        settings = dataclasses.asdict(FinetuneConfig().for_objective(objective))
        for row, text in spec.card_rows:  # every placeholder is a setting the card can fill
            assert "?" not in text.format_map(settings), (name, row)
    assert Objective.MLM_SIMCSE.starts_from is Objective.MLM and Objective.SUPERVISED.uses_labels
    assert [o.value for o in Objective if o.trains_mlm] == ["mlm", "mlm-distill"]
    assert len(set(OBJECTIVE_COLOURS.values())) == len(OBJECTIVE_COLOURS)  # told apart on every plot


def test_the_config_reads_options_and_labels_from_the_specs():
    with pytest.raises(ConfigError, match="--simcse-batch-size is an option of mlm-simcse, simcse"):
        CurveConfig(objectives="mlm,tsdae", finetune=FinetuneConfig(simcse_batch_size=8))
    with pytest.raises(ConfigError, match="--objectives supervised trains on the prices"):
        CurveConfig(objectives="supervised", include_test_in_finetune=True)
    assert FinetuneConfig().for_objective("mlm-distill").distill_weight > 0
    assert FinetuneConfig().for_objective("mlm").distill_weight == 0


@pytest.mark.parametrize("change, field", [
    ({"colour": "blue"}, "colour"), ({"name": "Two Words"}, "name"), ({"engine": "rnn"}, "engine"),
    ({"learning_rate": 0.0}, "learning_rate"), ({"description": " "}, "description"),
    ({"card_rows": (("row",),)}, "card_rows"), ({"starts_from": "demo"}, "starts_from"),
])
def test_an_incomplete_spec_is_refused_naming_the_field(change, field):
    with pytest.raises(ObjectiveSpecError, match=rf"objective '.*': .*{field}: expected"):
        _spec(**change)


def test_the_train_layer_refuses_a_loss_its_engine_does_not_implement(tmp_path, monkeypatch):
    import hf_finetune_curve.objectives as objectives

    monkeypatch.setattr(objectives, "SPECS", {**SPECS, "demo": _spec(loss="triplet")})
    with pytest.raises(ConfigError, match="engine 'sentence' with loss 'triplet'.*'tsdae', 'simcse', 'supervised'"):
        training_spec("demo")


def test_discovery_refuses_a_module_without_a_spec_or_with_another_name(tmp_path, monkeypatch):
    import hf_finetune_curve.objectives as objectives

    folder = tmp_path / "objectives"
    folder.mkdir()
    (folder / "no_spec.py").write_text("X = 1\n")
    monkeypatch.setattr(objectives, "__path__", [*objectives.__path__, str(folder)])
    with pytest.raises(ObjectiveSpecError, match=r"no_spec\.py: an objective module declares SPEC"):
        discover(objectives.__path__)
    (folder / "no_spec.py").unlink()
    (folder / "other_name.py").write_text(PLUGIN)
    with pytest.raises(ObjectiveSpecError, match="SPEC.name 'self-pairs' is not the module's name"):
        discover(objectives.__path__)
    (folder / "other_name.py").unlink()
    (folder / "self_pairs.py").write_text(PLUGIN)
    found = discover(objectives.__path__)
    assert list(found) == [*SPECS, "self-pairs"] and found["self-pairs"].colour == "#123ABC"
    with pytest.raises(TypeError):
        found["x"] = found["mlm"]  # the registry is read-only: no hidden mutable state to patch


def test_adding_an_objective_is_one_new_module(tmp_path, tiny_model_dir):
    """One module in a folder named by HF_CURVE_OBJECTIVES_PATH, no other file edited: the config accepts the new
    objective and its option, it trains (the tiny model, f50) through the engine its spec names, its colour is
    the plots' and the Space's, and its card says what it trained on."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "self_pairs.py").write_text(PLUGIN)
    script = textwrap.dedent(f'''
        import json, sys
        from hf_finetune_curve.cli import main
        from hf_finetune_curve.config import CurveConfig, FinetuneConfig, recipe_choices
        from hf_finetune_curve.data.sample_data import generate_listings, write_jsonl
        from hf_finetune_curve.hub.model_card import HubNames, build_model_card, read_finished_run
        from hf_finetune_curve.names import OBJECTIVE_COLOURS, Objective
        from hf_finetune_curve.space.figures import curve_figure

        config = CurveConfig(objectives="self-pairs", finetune=FinetuneConfig(simcse_batch_size=8))
        write_jsonl(generate_listings(150, seed=3), {str(tmp_path / "listings.jsonl")!r})
        out = {str(tmp_path / "run")!r}
        code = main(["run", "--data", {str(tmp_path / "listings.jsonl")!r}, "--model", {str(tiny_model_dir)!r},
                     "--sizes", "0,50", "--objectives", "mlm,self-pairs", "--simcse-batch-size", "8",
                     "--output-dir", out, "--probe-trees", "20", "--max-seq-length", "32", "--batch-size", "16",
                     "--no-progress", "--no-tfidf-baseline"])
        run = read_finished_run(out)
        card = build_model_card(run, "self-pairs/f50", HubNames.for_run(run, "org", "reg"))
        figure = curve_figure(run.points, run.curve)
        print(json.dumps({{
            "code": code, "member": Objective.SELF_PAIRS.value, "display": Objective("self-pairs").display,
            "rate": recipe_choices(config)["self-pairs"],
            "colour": OBJECTIVE_COLOURS["self-pairs"], "labels": [p["label"] for p in run.points],
            "trace_colours": {{t.name: t.marker.color for t in figure.data if t.name}},
            "repo": HubNames.for_run(run, "org", "reg").model_repo_id("self-pairs/f50"),
            "card": card.text, "tags": list(card.data.tags),
        }}))
    ''')
    env = {**os.environ, PATH_VARIABLE: str(plugins), "PYTHONPATH": os.pathsep.join(
        [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] == 0 and result["member"] == "self-pairs" and result["display"] == "Self-pairs"
    assert result["rate"] == {"learning_rate": 3e-5, "how": "3e-5, a test's choice"}
    assert result["colour"] == "#123ABC"
    assert "#123ABC" in result["trace_colours"].values(), result["trace_colours"]
    assert {"f0", "f50", "self-pairs/f50"} <= set(result["labels"])
    assert result["repo"] == "org/reg-self-pairs-f50" and "self-pairs" in result["tags"]
    card = result["card"]
    assert "each text ranked against the batch's other texts" in card
    assert "| texts ranked per step | 8 texts, each its own positive |" in card
    assert "MLM masking probability" not in card  # trained by the sentence engine, as its spec says
    # Without the module the name is unknown: the objective came from the one new file and nothing else.
    with pytest.raises(ConfigError, match="self-pairs"):
        CurveConfig(objectives="self-pairs")
