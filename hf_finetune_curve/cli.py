"""``hf-curve``: a thin command line over the Python API.

    hf-curve run                      # embedded default corpus + packaged all-MiniLM-L6-v2
    hf-curve run --data listings.jsonl --sizes 0,10k,20k,50k,all --output-dir runs/bat
    hf-curve report runs/bat          # print the table, redraw curve.png
    hf-curve space runs/bat           # explore it in the Gradio app (--push ORG/NAME-space deploys it)
    hf-curve push runs/bat --hub-org me   # publish a finished run (or: hf-curve run ... --push-to-hub)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from .config import DEFAULT_MODEL, DEFAULT_SIZES, SCHEDULES, CurveConfig, FinetuneConfig
from .errors import FinetuneCurveError
from .objectives import OBJECTIVE_NAMES, TEXT_UNITS
from .probe import TARGET_TRANSFORMS, ProbeConfig

logger = logging.getLogger("hf_finetune_curve")


def _optional_int(text: str) -> int | None:
    if text.strip().lower() in {"none", "all", ""}:
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or 'none', got {text!r}") from None


def _key_value(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data")
    data.add_argument("--data", help="JSONL/JSON/CSV/Parquet file, save_to_disk folder or Hub dataset id "
                                     "(default: the embedded synthetic car-auction sample)")
    data.add_argument("--text-column", default="text")
    data.add_argument("--target-column", default="price")
    data.add_argument("--max-rows", type=int, help="use only the first N clean rows")
    data.add_argument("--probe-rows", type=_optional_int, default=CurveConfig.probe_rows,
                      help="the probe fits and scores on a seeded sample of at most N rows (test share kept), so "
                           "each checkpoint embeds at most N texts; 'none': every row "
                           f"(default {CurveConfig.probe_rows})")
    data.add_argument("--test-fraction", type=float, default=0.2, help="held-out probe test share (default 0.2)")
    data.add_argument("--include-test-in-finetune", action="store_true",
                      help="let MLM finetuning see the held-out texts (transductive variant)")
    data.add_argument("--seed", type=int, default=42)

    run = parser.add_argument_group("run")
    run.add_argument("--model", default=DEFAULT_MODEL, help=f"SentenceTransformer id or path (default {DEFAULT_MODEL})")
    run.add_argument("--sizes", default=DEFAULT_SIZES,
                     help=f"finetune sizes: counts (10k, 1.5k), fractions (0.25) and 'all' (default {DEFAULT_SIZES})")
    run.add_argument("--output-dir", help="run directory (default runs/<name>)")
    run.add_argument("--name", help="run name (default from model and corpus)")
    run.add_argument("--schedule", choices=SCHEDULES, default="branching",
                     help="branching: one warmup-stable main run with a cooldown branch per size; independent: train every size from the base model (both give every point the same recipe)")
    run.add_argument("--objective", choices=OBJECTIVE_NAMES, default="mlm",
                     help="finetuning objective: mlm (masked LM, default), tsdae (denoising auto-encoder) or simcse "
                          "(unsupervised SimCSE)")
    run.add_argument("--objectives", metavar="LIST",
                     help="several objectives on the same split, sizes, seeds and probe in one run, e.g. "
                          "mlm,tsdae,simcse: one curve each, f0 shared, paired deltas between them")
    run.add_argument("--device", default="auto")
    run.add_argument("--embed-batch-size", type=int, default=64)
    run.add_argument("--overwrite", action="store_true", help="discard an existing run with another config")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument("--config", type=Path, help="start from a saved config.json (flags given here override it)")
    run.add_argument("--seeds", type=int, default=1,
                     help="repeat the finetuning with N data orders on the same test split (mean and spread)")
    run.add_argument("--bootstrap-resamples", type=int, default=1000, help="resamples for the 95%% intervals")
    run.add_argument("--no-tfidf-baseline", action="store_true", help="skip the TF-IDF + probe baseline")

    tune = parser.add_argument_group("finetuning")
    defaults = FinetuneConfig()
    tune.add_argument("--epochs", type=float, default=defaults.epochs)
    tune.add_argument("--learning-rate", type=float, default=None, help="default 2e-5 (full) / 1e-3 (LoRA)")
    tune.add_argument("--batch-size", type=int, default=defaults.batch_size)
    tune.add_argument("--gradient-accumulation-steps", type=int, default=defaults.gradient_accumulation_steps)
    tune.add_argument("--warmup-steps", type=int, default=defaults.warmup_steps,
                      help="linear warmup in optimizer steps, the same for every point")
    tune.add_argument("--cooldown-fraction", type=float, default=defaults.cooldown_fraction,
                      help="share of a point's steps over which the rate decays to 0")
    tune.add_argument("--min-cooldown-steps", type=int, default=defaults.min_cooldown_steps,
                      help="the decay lasts at least this many steps")
    tune.add_argument("--min-steps", type=int, default=defaults.min_steps,
                      help="every point trains at least this many steps, cycling its subset")
    tune.add_argument("--head-warmup-steps", type=int, default=defaults.head_warmup_steps,
                      help="train a new MLM head alone (encoder frozen) this many steps first; 0: off")
    tune.add_argument("--head-warmup-learning-rate", type=float, default=defaults.head_warmup_learning_rate)
    tune.add_argument("--train-word-embeddings", action=argparse.BooleanOptionalAction,
                      default=defaults.train_word_embeddings,
                      help="update the input word embeddings (tied to the MLM decoder); off by default: "
                           "trained, the rows of tokens a subset never uses drift")
    tune.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    tune.add_argument("--max-seq-length", type=int, default=defaults.max_seq_length, help="chunk length in tokens")
    tune.add_argument("--mlm-probability", type=float, default=defaults.mlm_probability)
    tune.add_argument("--lora", action="store_true", help="train LoRA adapters + the MLM head; merged on save")
    tune.add_argument("--lora-r", type=int, default=defaults.lora_r)
    tune.add_argument("--lora-alpha", type=int, default=defaults.lora_alpha)
    tune.add_argument("--lora-dropout", type=float, default=defaults.lora_dropout)
    tune.add_argument("--lora-target-modules", help="comma-separated module names (default: peft's for the architecture)")
    tune.add_argument("--text-unit", choices=TEXT_UNITS, default=defaults.text_unit,
                      help="TSDAE / SimCSE examples: each sentence of a text (default; measured better on listings "
                           "than whole texts) or whole texts up to --max-seq-length tokens")
    tune.add_argument("--tsdae-deletion-ratio", type=float, default=defaults.tsdae_deletion_ratio,
                      help="share of words TSDAE deletes from its input (default 0.6)")
    tune.add_argument("--report-to", default=defaults.report_to)
    tune.add_argument("--trainer-arg", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                      help="any other TrainingArguments field, e.g. --trainer-arg lr_scheduler_type=cosine")

    probe = parser.add_argument_group("probe")
    probe_defaults = ProbeConfig()
    probe.add_argument("--target-transform", choices=TARGET_TRANSFORMS, default=probe_defaults.target_transform)
    probe.add_argument("--probe-trees", type=int, default=probe_defaults.n_estimators, help="XGBoost n_estimators")
    probe.add_argument("--probe-arg", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                       help="further XGBRegressor parameters, e.g. --probe-arg max_depth=4")


def _explicit(args: argparse.Namespace, parser: argparse.ArgumentParser, dest: str) -> bool:
    return getattr(args, dest) != parser.get_default(dest)


def config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> CurveConfig:
    """Build the run's CurveConfig from parsed flags (a --config file supplies the non-given ones)."""
    base = CurveConfig.load(args.config) if args.config else None
    finetune = FinetuneConfig(
        epochs=args.epochs, learning_rate=args.learning_rate, batch_size=args.batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps, warmup_steps=args.warmup_steps,
        cooldown_fraction=args.cooldown_fraction, min_cooldown_steps=args.min_cooldown_steps,
        min_steps=args.min_steps, head_warmup_steps=args.head_warmup_steps,
        head_warmup_learning_rate=args.head_warmup_learning_rate, train_word_embeddings=args.train_word_embeddings,
        weight_decay=args.weight_decay, max_seq_length=args.max_seq_length, mlm_probability=args.mlm_probability,
        lora=args.lora, lora_r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
        lora_target_modules=[m.strip() for m in args.lora_target_modules.split(",")] if args.lora_target_modules else None,
        report_to=args.report_to, trainer_kwargs=dict(args.trainer_arg), text_unit=args.text_unit,
        tsdae_deletion_ratio=args.tsdae_deletion_ratio,
    )
    known_probe = set(ProbeConfig.__dataclass_fields__)
    probe_fields = {k: v for k, v in args.probe_arg if k in known_probe}
    probe_passthrough = {k: v for k, v in args.probe_arg if k not in known_probe}
    probe = ProbeConfig(target_transform=args.target_transform, n_estimators=args.probe_trees,
                        xgb_params=probe_passthrough, **{k: v for k, v in probe_fields.items()
                                                         if k not in {"target_transform", "n_estimators"}})
    values: dict[str, Any] = dict(
        data=args.data, text_column=args.text_column, target_column=args.target_column, model=args.model,
        sizes=args.sizes, output_dir=args.output_dir, name=args.name, seed=args.seed,
        test_fraction=args.test_fraction, include_test_in_finetune=args.include_test_in_finetune,
        schedule=args.schedule, embed_batch_size=args.embed_batch_size, max_rows=args.max_rows,
        probe_rows=args.probe_rows, device=args.device,
        seeds=args.seeds, bootstrap_resamples=args.bootstrap_resamples, tfidf_baseline=not args.no_tfidf_baseline,
        objective=args.objective, objectives=args.objectives,
    )
    if base is None:
        return CurveConfig(**values, finetune=finetune, probe=probe)
    # A saved config, with only the flags given on this command line on top (nested sections too).
    merged = base.to_dict()
    for key, value in values.items():
        if _explicit(args, parser, _RUN_FLAG_DEST.get(key, key)):
            merged[key] = value
    for field_name, value in finetune.__dict__.items():
        if _explicit(args, parser, _FINETUNE_FLAG_DEST.get(field_name, field_name)):
            merged["finetune"][field_name] = value
    if _explicit(args, parser, "target_transform"):
        merged["probe"]["target_transform"] = args.target_transform
    if _explicit(args, parser, "probe_trees"):
        merged["probe"]["n_estimators"] = args.probe_trees
    if args.probe_arg:
        for key, value in probe_fields.items():
            merged["probe"][key] = value
        merged["probe"]["xgb_params"] = {**(merged["probe"].get("xgb_params") or {}), **probe_passthrough}
    return CurveConfig.from_dict(merged)


# Config fields whose flag stores under another name.
_RUN_FLAG_DEST = {"tfidf_baseline": "no_tfidf_baseline"}
_FINETUNE_FLAG_DEST = {"trainer_kwargs": "trainer_arg"}


def _cmd_run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .pipeline import run_curve

    config = config_from_args(args, parser)
    hub_target = _hub_preflight(args) if args.push_to_hub else None  # fail on a bad token before training
    started = time.perf_counter()
    result = run_curve(config, overwrite=args.overwrite, show_progress=not args.no_progress)
    elapsed = time.perf_counter() - started
    from .pipeline import is_main_process

    if not is_main_process():  # the other ranks of a torchrun job helped train; rank 0 reports
        return 0
    print()
    print(f"Finetuning curve: {result.config.model} on {result.corpus.report.source}")
    print(result.table())
    _print_answer(result.analysis)
    print(f"\nResults in {result.run_dir} (curve.csv, curve.json, curve.png); {elapsed:.0f} s")
    if hub_target is not None:
        _push(result.run_dir, args, *hub_target)
    return 0


def _print_answer(analysis: dict[str, Any]) -> None:
    from .analysis import answer_lines

    baseline = (analysis or {}).get("baselines")
    if baseline:
        interval = baseline.get("intervals", {}).get("r2", {})
        print(f"\nTF-IDF + XGBoost baseline on the same split: R² {baseline['r2']:.4f} "
              f"[{interval.get('low', float('nan')):.3f}, {interval.get('high', float('nan')):.3f}], "
              f"MAE {baseline['mae']:,.2f}, MedAE {baseline['median_ae']:,.2f}")
    per_objective = (analysis or {}).get("objectives") or {}
    if not per_objective:
        lines = answer_lines(analysis or {})
        if lines:
            print("\nHow much data is enough?")
            for line in lines:
                print(f"  {line}")
        return
    from .compare import comparison_lines
    from .objectives import Objective

    for objective, section in per_objective.items():
        lines = answer_lines(section)
        if lines:
            print(f"\nHow much data is enough? ({Objective(objective).display})")
            for line in lines:
                print(f"  {line}")
    lines = comparison_lines(analysis.get("comparison") or {})
    if lines:
        print("\nWhich objective? (paired on the same held-out rows, 95% intervals)")
        for line in lines:
            print(f"  {line}")


def _cmd_report(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .curve import format_table, load_analysis, load_curve, plot_curve
    from .io_utils import read_json

    run_dir = Path(args.run_dir)
    if not (run_dir / "config.json").exists():
        raise FinetuneCurveError(f"{run_dir} is not a run directory (no config.json).")
    points = load_curve(run_dir)
    analysis = load_analysis(run_dir)
    saved = read_json(run_dir / "config.json")
    report_path = run_dir / "data_report.json"
    print(f"Run {run_dir}: {saved['config']['model']} on {saved['corpus']['source']} "
          f"({saved['corpus']['rows']} rows; {saved['split']['test_rows']} held out for the probe)")
    if report_path.exists():
        from .corpus import DataReport

        import dataclasses

        known = {f.name for f in dataclasses.fields(DataReport)}
        report = DataReport(**{k: v for k, v in read_json(report_path).items() if k in known})
        for line in report.summary_lines()[1:]:
            print(line)
    print(format_table(points))
    _print_answer(analysis)
    from .objectives import parse_objectives

    config = saved.get("config") or {}
    done = {(p.objective, p.label) for p in points}
    missing = [objective.file_label(label)
               for objective in parse_objectives(config.get("objectives") or config.get("objective") or "mlm")
               for label in saved.get("labels", []) if (objective.value, label) not in done
               and not (label == "f0" and any(l == "f0" for _, l in done))]
    if missing:
        print(f"Not finished yet: {', '.join(missing)} (re-run the same command to resume).")
    if points:
        plot_curve(points, run_dir / "curve.png", title=analysis.get("title"), analysis=analysis)
        print(f"Plot: {run_dir / 'curve.png'}")
    return 0


def _add_push_arguments(parser: argparse.ArgumentParser, with_switch: bool) -> None:
    hub = parser.add_argument_group("Hugging Face Hub (not part of the run's config)")
    if with_switch:
        hub.add_argument("--push-to-hub", action="store_true",
                         help="after the run, publish a model repo per finetuned size and the curve dataset repo")
    hub.add_argument("--hub-org", help="user or organization to publish under (default: the token's user)")
    hub.add_argument("--hub-name", help="repo name prefix: NAME-f50k, NAME-curve (default: the run's name)")
    hub.add_argument("--private", action="store_true", help="create the repos private")
    hub.add_argument("--hub-token", help="Hub token with write access (default: HF_TOKEN or `hf auth login`)")


def _hub_preflight(args: argparse.Namespace) -> tuple[str, str]:
    from .publish import resolve_target, validate_hub_name

    if args.hub_name:
        validate_hub_name(args.hub_name)
    return resolve_target(args.hub_org, args.hub_token, verify=True)


def _push(run_dir: Path, args: argparse.Namespace, org: str, token: str) -> None:
    from .publish import publish_run

    result = publish_run(run_dir, org=org, name=args.hub_name, private=args.private, token=token,
                         show_progress=not getattr(args, "no_progress", False))
    print(f"\nPublished to the Hub ({len(result.uploaded)} model repo(s) uploaded, {len(result.unchanged)} unchanged):")
    for line in result.summary_lines():
        print(f"  {line}")


def _cmd_push(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .model_card import RunInfo

    RunInfo.load(args.run_dir)  # a clear error for an unfinished run before asking the Hub anything
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-curve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
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
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False
    try:
        import transformers

        transformers.logging.set_verbosity_error()
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
    except KeyboardInterrupt:
        print("\ninterrupted: finished sizes are saved; run the same command again to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
