"""``hf-curve``: a thin command line over the Python API.

    hf-curve run                      # embedded default corpus + packaged all-MiniLM-L6-v2
    hf-curve run --data listings.jsonl --sizes 0,10k,20k,50k,all --output-dir runs/bat
    hf-curve report runs/bat          # print the table, redraw curve.png
    hf-curve space runs/bat           # explore it in the Gradio app (--push ORG/NAME-space deploys it)
    hf-curve push runs/bat --hub-org me   # publish a finished run (or: hf-curve run ... --push-to-hub)
    hf-curve run --config runs/bat/config.json --epochs 2   # a saved run's config, with flags on top

The flags of ``hf-curve run`` that set the run's config are generated from the config dataclasses'
fields (their ``metadata``: help, flag name, parser): see :mod:`hf_finetune_curve.options`. A new field
with ``metadata={"help": ...}`` gets its flag; nothing here changes.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from .config import CurveConfig
from .errors import FinetuneCurveError
from .options import add_options, options_given

logger = logging.getLogger("hf_finetune_curve")


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The config's flags, generated from its fields (:mod:`hf_finetune_curve.options`), and the run's own."""
    add_options(parser, CurveConfig)
    run = parser.add_argument_group("this invocation (not part of the run's config)")
    run.add_argument("--config", type=Path,
                     help="start from a saved config.json or run directory (the flags given here override it)")
    run.add_argument("--overwrite", action="store_true", help="discard an existing run with another config")
    run.add_argument("--workers", type=int, default=1, metavar="N",
                     help="train and score the run's seeds and objectives in up to N processes (one per GPU, or a "
                          "share of the CPU cores each); the same results as one process")
    run.add_argument("--no-progress", action="store_true", help="no progress lines (each point's scores are logged instead)")


def config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> CurveConfig:
    """The run's CurveConfig: the dataclass defaults, or a ``--config`` file (nested sections included), with
    only the flags given on the command line on top."""
    base = CurveConfig.load(args.config).to_dict() if getattr(args, "config", None) else None
    return CurveConfig.from_dict(options_given(args, CurveConfig, base))


def _cmd_run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .pipeline import run_curve

    config = config_from_args(args, parser)
    hub_target = _hub_preflight(args) if args.push_to_hub else None  # fail on a bad token before training
    started = time.perf_counter()
    if getattr(args, "workers", 1) > 1:
        from .pipeline.parallel import run_curve_parallel

        result = run_curve_parallel(config, args.workers, overwrite=args.overwrite, show_progress=not args.no_progress)
    else:
        result = run_curve(config, overwrite=args.overwrite, show_progress=not args.no_progress)
    elapsed = time.perf_counter() - started
    from .pipeline import is_main_process

    if not is_main_process():  # the other ranks of a torchrun job helped train; rank 0 reports
        return 0
    print()
    print(f"Finetuning curve: {result.config.model} on {result.corpus.report.source}")
    _print_primary_probe(result.config.resolved_probes()[0].value, result.probe_points)
    print(result.table())
    _print_answer(result.analysis)
    _print_probes(result.probe_points, result.analysis)
    from .run_dir import RunDirectory

    run = RunDirectory(result.run_dir)
    written = ", ".join(path.name for path in (run.curve_csv_path, run.curve_json_path, run.curve_png_path))
    print(f"\nResults in {result.run_dir} ({written}); {elapsed:.0f} s")
    if hub_target is not None:
        _push(result.run_dir, args, *hub_target)
    return 0


def _print_section(title: str, lines: Sequence[str]) -> None:
    if lines:
        print(f"\n{title}")
        for line in lines:
            print(f"  {line}")


def _print_answer(analysis: dict[str, Any]) -> None:
    from .curve.analysis import answer_lines

    baseline = (analysis or {}).get("baselines")
    if baseline:
        interval = baseline.get("intervals", {}).get("r2", {})
        print(f"\nTF-IDF + XGBoost baseline on the same split: R² {baseline['r2']:.4f} "
              f"[{interval.get('low', float('nan')):.3f}, {interval.get('high', float('nan')):.3f}], "
              f"MAE {baseline['mae']:,.2f}, MedAE {baseline['median_ae']:,.2f}")
    per_objective = (analysis or {}).get("objectives") or {}
    if not per_objective:
        _print_section("How much data is enough?", answer_lines(analysis or {}))
        return
    from .curve.compare import comparison_lines
    from .names import Objective

    for objective, section in per_objective.items():
        _print_section(f"How much data is enough? ({Objective(objective).display})", answer_lines(section))
    _print_section("Which objective? (paired on the same held-out rows, 95% intervals)",
                   comparison_lines(analysis.get("comparison") or {}))


def _print_primary_probe(primary: str, probe_points: dict[str, Any]) -> None:
    if probe_points:  # with one probe, nothing to tell apart
        print(f"Probe: {primary} (primary: the curve, its plot and its answer)")


def _print_probes(probe_points: dict[str, Any], analysis: dict[str, Any]) -> None:
    """After the primary probe's table and answer: each secondary probe's (``--probes``), then where the
    probes disagree about a verdict."""
    from .curve.analysis import agreement_lines
    from .curve.points import format_table

    sections = (analysis or {}).get("probes") or {}
    for name, points in probe_points.items():
        print(f"\nProbe: {name} (same checkpoints, same held-out rows)")
        print(format_table(points))
        _print_answer({key: value for key, value in (sections.get(name) or {}).items() if key != "points"})
    agreement = (analysis or {}).get("probe_agreement")
    if agreement:
        _print_section("Do the probes agree? (each size's paired change against f0, 95% intervals)",
                       agreement_lines(agreement))


def _cmd_report(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .curve.plot import plot_curve
    from .curve.points import CurvePoint, format_table
    from .run_dir import RunDirectory, RunRecord, secondary_probe_points

    run = RunDirectory(args.run_dir)
    record = RunRecord.read(run.path)  # curve.json, config.json and the finished points, read once
    points = [CurvePoint.from_dict(point) for point in record.curve.get("points") or record.unfinished_points]
    analysis = {key: value for key, value in record.curve.items() if key != "points"}
    info = record.info  # config.json's run record, typed
    print(f"Run {run.path}: {info.config['model']} on {info.corpus['source']} "
          f"({info.corpus['rows']} rows; {info.split['test_rows']} held out for the probe)")
    report = run.read_data_report()
    if report is not None:
        for line in report.summary_lines()[1:]:
            print(line)
    probe_points = secondary_probe_points(record.curve)
    _print_primary_probe(str(info.config.get("probes") or "xgboost").split(",")[0], probe_points)
    print(format_table(points))
    _print_answer(analysis)
    _print_probes(probe_points, analysis)
    missing = record.missing()
    if missing:
        print(f"Not finished yet: {', '.join(missing)} (re-run the same command to resume).")
    if points:
        try:
            plot_curve(points, run.curve_png_path, title=analysis.get("title"), analysis=analysis)
            print(f"Plot: {run.curve_png_path}")
        except OSError as exc:  # a read-only run (an archive, another user's): the report stands without a redraw
            print(f"Plot: {run.curve_png_path} (not redrawn: {exc.strerror or exc})")
    _check_checkpoints(record)
    return 0


def _check_checkpoints(record: Any) -> None:
    """Every finished point's checkpoint still holds the bytes verified when it was saved (absent ones are
    the user's choice and pass); else one error naming each damaged folder."""
    from .errors import CheckpointDamagedError
    from .run_dir import parse_file_label

    damaged = []
    for label in record.finetuned_labels:
        if record.directory.has_checkpoint(*parse_file_label(label)):
            try:
                record.directory.check_checkpoint(*parse_file_label(label), what_to_do="")
            except CheckpointDamagedError as exc:
                damaged.append(str(exc).strip())
    if damaged:
        raise CheckpointDamagedError(" ".join(damaged) + " Re-run the same `hf-curve run` command: it trains "
                                     "the damaged points again (the others are kept).")


def _add_push_arguments(parser: argparse.ArgumentParser, with_switch: bool) -> None:
    hub = parser.add_argument_group("Hugging Face Hub (not part of the run's config)")
    if with_switch:
        hub.add_argument("--push-to-hub", action="store_true",
                         help="after the run, publish a model repo per finetuned size and the curve dataset repo")
    hub.add_argument("--hub-org", help="user or organization to publish under (default: the token's user)")
    hub.add_argument("--hub-name", help="repo name prefix: NAME-f50k, NAME-curve (default: the run's name)")
    hub.add_argument("--private", action="store_true", help="create the repos private")
    hub.add_argument("--hub-token",
                     help="Hub token with write access (default: HF_TOKEN, else the token saved by hf auth login)")


def _hub_preflight(args: argparse.Namespace) -> tuple[str, str]:
    from .hub.publish import resolve_target, validate_hub_name

    if args.hub_name:
        validate_hub_name(args.hub_name)
    return resolve_target(args.hub_org, args.hub_token, verify=True)


def _push(run_dir: Path, args: argparse.Namespace, org: str, token: str) -> None:
    from .hub.publish import publish_run

    result = publish_run(run_dir, org=org, name=args.hub_name, private=args.private, token=token,
                         show_progress=not getattr(args, "no_progress", False))
    print(f"\nPublished to the Hub ({len(result.uploaded)} model repo(s) uploaded, {len(result.unchanged)} unchanged):")
    for line in result.summary_lines():
        print(f"  {line}")


def _cmd_push(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .hub.model_card import read_finished_run

    # A clear error for an unfinished run, or a damaged checkpoint, before asking the Hub anything.
    _check_checkpoints(read_finished_run(args.run_dir))
    _push(Path(args.run_dir), args, *_hub_preflight(args))
    return 0


def _cmd_push_metric(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .metrics import push_metric

    url = push_metric(args.repo_id, token=args.hub_token, private=args.private)
    print(f"Published the price_regression metric: {url}")
    print(f'Load it anywhere with: evaluate.load("{args.repo_id}")')
    return 0


def _cmd_space(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .space import launch_space, push_space

    if args.push:
        url = push_space(args.run_dir, args.push, token=args.hub_token, private=args.private,
                         curve_repo=args.curve_repo)
        print(f"Space: {url}")
        return 0
    launch_space(args.run_dir, host=args.host, port=args.port)
    return 0


DESCRIPTION = ("How much domain data is enough to finetune an embedding model? Measure the curve on your own "
               "priced corpus.")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="hf-curve", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"hf-curve {__version__}")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="debug logging on the terminal (the Trainer's log dicts too; logs/run.log keeps them anyway)")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="measure a finetuning curve (resumes an interrupted run)")
    _add_run_arguments(run)
    run.set_defaults(handler=_cmd_run, subparser=run)
    _add_push_arguments(run, with_switch=True)
    report = commands.add_parser("report", help="print a run's table and redraw its plot")
    report.add_argument("run_dir")
    report.set_defaults(handler=_cmd_report, subparser=report)
    push_metric = commands.add_parser("push-metric", help="publish the price_regression evaluate metric as a Space")
    push_metric.add_argument("repo_id", help="ORG/price_regression; then evaluate.load('ORG/price_regression')")
    push_metric.add_argument("--hub-token", help="else HF_TOKEN or the cached login")
    push_metric.add_argument("--private", action="store_true")
    push_metric.set_defaults(handler=_cmd_push_metric, subparser=push_metric)
    push = commands.add_parser("push", help="publish a finished run to the Hugging Face Hub (no retraining)")
    push.add_argument("run_dir")
    push.add_argument("--no-progress", action="store_true", help="no upload progress bars")
    _add_push_arguments(push, with_switch=False)
    push.set_defaults(handler=_cmd_push, subparser=push)
    space = commands.add_parser("space", help="explore a run in the Gradio app locally, or deploy it as a Space")
    space.add_argument("run_dir")
    space.add_argument("--port", type=int, help="local port (default: Gradio's, 7860 or the next free one)")
    space.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    space.add_argument("--push", metavar="ORG/NAME-space", help="create/update this Space instead of serving locally")
    space.add_argument("--curve-repo", help="with --push: the published curve dataset (default ORG/<run name>-curve)")
    space.add_argument("--hub-token", help="with --push: else HF_TOKEN or the cached login")
    space.add_argument("--private", action="store_true", help="with --push: create the Space private")
    space.set_defaults(handler=_cmd_space, subparser=space)
    return parser


def _configure_logging(verbose: bool) -> None:
    """The terminal shows INFO lines (DEBUG with --verbose); the logger passes DEBUG on, so the run's log file
    (logs/run.log) also keeps the Trainer's log dicts. No progress bars of the Hugging Face libraries when the
    output is a file or a pipe: their redrawing writes carriage returns and cursor escape codes."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    handler.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    if not (sys.stdout.isatty() and sys.stderr.isatty()):
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # read when huggingface_hub is imported
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()  # in case huggingface_hub is imported already
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        if not (sys.stdout.isatty() and sys.stderr.isatty()):
            transformers.logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    try:
        return args.handler(args, args.subparser)
    except FinetuneCurveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # The file system refused (read-only folder, full disk, a file where a folder belongs): one line naming the
        # path, not a traceback. Files are written atomically, so nothing already finished is lost.
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"error: cannot write or read{where}: {exc.strerror or exc}. Make the output folder writable, free "
              "disk space or choose another --output-dir, then run the same command again (finished sizes are "
              "kept).", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: finished sizes are saved; run the same command again to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
