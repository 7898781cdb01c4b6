"""What a person reads: plain progress lines with an ETA, the Trainer's log dicts in the run's log file
(not on the terminal), no escape codes in a file or a pipe, ``--version``, help texts without markup, and the
Space opening on the metric the answer uses."""

from __future__ import annotations

import re

import pytest

import hf_finetune_curve
from hf_finetune_curve.cli import main
from hf_finetune_curve.data.sample_data import generate_listings, write_jsonl

ESCAPES = re.compile(r"\x1b\[|\r")  # a cursor escape code or a carriage return (a bar redrawing itself)
SUBCOMMANDS = ("run", "report", "push", "space", "push-metric")


@pytest.fixture(scope="module")
def progress_run(tmp_path_factory, tiny_model_dir):
    """One tiny run with progress on (no --no-progress), its stdout and stderr captured as a pipe would."""
    import contextlib
    import io

    data = tmp_path_factory.mktemp("data") / "listings.jsonl"
    write_jsonl(generate_listings(120, seed=5), data)
    out = tmp_path_factory.mktemp("runs") / "progress"
    stdout, stderr = io.StringIO(), io.StringIO()
    import logging

    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["run", "--data", str(data), "--model", str(tiny_model_dir), "--sizes", "0,40",
                     "--output-dir", str(out), "--probe-trees", "20", "--max-seq-length", "32", "--probe-seeds", "1",
                     "--bootstrap-resamples", "100", "--no-tfidf-baseline"])
        logging.getLogger("hf_finetune_curve").handlers[:] = []  # the handler holds the redirected stream
    assert code == 0, stderr.getvalue()
    return out, stdout.getvalue(), stderr.getvalue()


def test_a_run_prints_one_line_per_point_with_its_result_and_an_eta(progress_run):
    _, stdout, stderr = progress_run
    lines = [line for line in stderr.splitlines() if re.search(r"\[\d/2\] f", line)]
    assert len(lines) == 2, stderr
    assert "[1/2] f0: log R² " in lines[0] and "ETA " in lines[0]
    assert "[2/2] f40: log R² " in lines[1] and "Δ vs f0 " in lines[1] and lines[1].endswith("· done")
    assert "f40" in stdout  # the table, on stdout


def test_no_escape_codes_and_no_raw_trainer_logs_on_the_terminal(progress_run):
    out, stdout, stderr = progress_run
    for text in (stdout, stderr):
        assert not ESCAPES.search(text), repr(text[:2000])
        assert "'grad_norm'" not in text and "{'loss'" not in text and "'train_runtime'" not in text
    # The Trainer's logs are kept: in the run's log file, beside every line the terminal showed.
    log = (out / "logs" / "run.log").read_text(encoding="utf-8")
    assert '"loss"' in log and '"grad_norm"' in log
    assert "[2/2] f40: log R² " in log


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"hf-curve {hf_finetune_curve.__version__}"


@pytest.mark.parametrize("command", [None, *SUBCOMMANDS])
def test_help_texts_have_no_markup(command, capsys):
    with pytest.raises(SystemExit):
        main(([command] if command else []) + ["--help"])
    text = capsys.readouterr().out
    assert "usage: hf-curve" in text
    for markup in ("`", ":mod:", ":class:", ":func:", ":data:"):  # reST / Markdown code and roles
        assert markup not in text, f"{markup!r} in hf-curve {command or ''} --help"
    assert not re.search(r"\*\*[A-Za-z]|\*[A-Za-z][^*\n]*\*(?!\*)", text)  # **bold**, *emphasis* (2**31 is fine)


def test_every_subcommand_is_covered(capsys):
    """The markup test above sees every subcommand: the ones the top-level usage lists."""
    with pytest.raises(SystemExit):
        main(["--help"])
    listed = re.search(r"\{([a-z,-]+)\}", capsys.readouterr().out).group(1).split(",")
    assert set(listed) == set(SUBCOMMANDS)


def test_the_space_opens_on_the_metric_the_answer_uses(progress_run):
    from hf_finetune_curve.space import CurveExplorer, load_run_data

    out, _, _ = progress_run
    run = load_run_data(out)
    explorer = CurveExplorer(run)
    assert explorer.default_metric == "R² (log price)"  # the default answer metric, r2_log
    assert "log price" in explorer.curve_plot(explorer.default_metric, True, True).layout.yaxis.title.text
    run.curve["answer"] = {"metric": "mae"}  # a run answered on another metric opens on that one
    assert CurveExplorer(run).default_metric == "MAE"
