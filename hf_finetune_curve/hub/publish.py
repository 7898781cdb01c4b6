"""Publish a finished run to the Hugging Face Hub: one model repo per finetuned size, one curve dataset repo.

For a run with sizes ``0,50k,100k`` published as ``ORG/NAME``:

- ``ORG/NAME-f50k``, ``ORG/NAME-f100k`` (models): the SentenceTransformer folder, its XGBoost probe
  (``probe/xgboost_probe.json``), the curve point (``probe/curve_point.json``), ``finetune_stats.json`` and a
  model card (``README.md``) that places the checkpoint on the curve;
- ``ORG/NAME-curve`` (dataset): ``curve.csv``, ``curve.json``, ``curve.png``, ``config.json``,
  ``data_report.json`` (and ``samples.parquet`` when the run has one) with a dataset card;
- f0 is the unchanged base model: it is not re-uploaded, the cards link to the base model instead.

Publishing is idempotent (unchanged files are not uploaded and an unchanged repo gets no commit), every repo's
upload is retried with exponential backoff on transient errors (5xx, 429, timeouts, dropped connections), a
failed push leaves the run directory untouched (nothing is ever written there), and the token is only ever
handed to ``huggingface_hub``: it is not logged, written, or put in a card.

Example:
    >>> from hf_finetune_curve.hub.publish import publish_run
    >>> result = publish_run("runs/bat", org="me", name="minilm-bat")  # doctest: +SKIP
    >>> result.repo_ids["f10k"]  # doctest: +SKIP
    'me/minilm-bat-f10k'
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import PublishError
from ..io_utils import HUB_REPO_NAME, HUB_REPO_NAME_MAX
from ..run_dir import RunDirectory, RunRecord, parse_file_label
from .model_card import (
    POINT_PATH_IN_REPO,
    PROBE_PATH_IN_REPO,
    HubNames,
    build_dataset_card,
    build_model_card,
    read_finished_run,
    read_license,
)

logger = logging.getLogger(__name__)

__all__ = ["PublishError", "PublishResult", "publish_run", "resolve_target", "validate_hub_name"]

# config.json keys left out of the uploaded copy: they change on every `hf-curve run` without changing a result,
# and would otherwise make a re-run push a new commit.
VOLATILE_CONFIG_KEYS = ("updated",)
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# First wait between attempts (doubling each time, capped at MAX_RETRY_WAIT); tests turn it down.
RETRY_WAIT = 1.0
MAX_RETRY_WAIT = 30.0


@dataclass
class PublishResult:
    """Where a run was published.

    Attributes:
        org, name: the namespace and name prefix used (repos are ``org/name-<label>`` and ``org/name-curve``).
        repo_ids: label -> Hub id of the model for that size (f0 -> the base model's id, or its local path
            when the base model is not on the Hub).
        urls: label -> URL of that model on the Hub (None for a local base model).
        curve_repo_id, curve_url: the dataset repo with the curve.
        uploaded: labels whose model repo got a new commit in this push.
        unchanged: labels whose model repo already held exactly these files (no commit made).
        curve_uploaded: whether the curve dataset repo got a new commit.
        commits: repo id -> commit sha now at the head of ``main``.
    """

    org: str
    name: str
    repo_ids: dict[str, str]
    urls: dict[str, str | None]
    curve_repo_id: str
    curve_url: str
    uploaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    curve_uploaded: bool = False
    commits: dict[str, str] = field(default_factory=dict)

    def summary_lines(self) -> list[str]:
        lines = []
        for label, repo_id in self.repo_ids.items():
            if label in self.uploaded:
                state = "uploaded"
            elif label in self.unchanged:
                state = "unchanged"
            else:
                state = "base model, not re-uploaded"
            lines.append(f"{label:>8}  {self.urls.get(label) or repo_id}  ({state})")
        lines.append(f"{'curve':>8}  {self.curve_url}  ({'uploaded' if self.curve_uploaded else 'unchanged'})")
        return lines


# ---------------------------------------------------------------------------------------------
# Target: token, namespace and name
# ---------------------------------------------------------------------------------------------


def _resolve_token(token: str | None) -> str:
    if token:
        return token
    from huggingface_hub import get_token

    found = get_token()  # HF_TOKEN, else the token saved by `hf auth login`
    if not found:
        raise PublishError(
            "No Hugging Face token: pass --hub-token (or token=...), set HF_TOKEN, or run `hf auth login`. "
            "Pushing needs a token with write access."
        )
    return found


def resolve_target(org: str | None = None, token: str | None = None, *, verify: bool = False) -> tuple[str, str]:
    """``(namespace, token)`` for a push: ``org``, else the token's own user (``whoami``).

    With ``verify`` the token is checked with ``whoami`` even when ``org`` is given: call it so before a
    long run to fail early on a missing or rejected token.

    Raises:
        PublishError: no token, or the Hub rejects it / cannot be reached.
    """
    token = _resolve_token(token)
    if org and not verify:
        return org, token
    from huggingface_hub import HfApi

    try:
        info = HfApi(token=token).whoami()
    except Exception as exc:
        raise PublishError(
            f"The Hub did not accept the token or could not be reached ({_describe(exc, token)}). Check the token "
            "(and --hub-org); or run without --push-to-hub and publish later with `hf-curve push RUN_DIR`."
        ) from exc
    return (org or str(info["name"])), token


def validate_hub_name(name: str, labels: list[str] | None = None) -> str:
    """Check that ``name-<label>`` and ``name-curve`` are valid Hub repo names; return ``name``."""
    longest = max([len("curve")] + [len(label) for label in labels or []])
    problems = []
    if not HUB_REPO_NAME.match(name):
        problems.append("use letters, digits, '-', '_' or '.', starting with a letter or digit")
    if "--" in name or ".." in name:
        problems.append("no '--' or '..'")
    if name.endswith((".", "-", "_")):
        problems.append("do not end with '.', '-' or '_'")
    if len(name) + 1 + longest > HUB_REPO_NAME_MAX:
        problems.append(f"at most {HUB_REPO_NAME_MAX - 1 - longest} characters (the label is appended)")
    if problems:
        raise PublishError(f"Invalid Hub name {name!r}: {'; '.join(problems)}.")
    return name


def default_hub_name(run: RunRecord) -> str:
    """The name prefix ``hf-curve push`` uses when none is given: the run's name, made a valid repo name."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", run.default_name())
    name = re.sub(r"-{2,}", "-", re.sub(r"\.{2,}", ".", name)).strip("-._")
    longest = max([len("curve")] + [len(label) for label in run.finetuned_labels])
    return name[: HUB_REPO_NAME_MAX - 1 - longest].rstrip("-._") or "finetune-curve"


# ---------------------------------------------------------------------------------------------
# Retries
# ---------------------------------------------------------------------------------------------


def _transport_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module_name in ("httpx2", "httpx"):  # huggingface_hub's HTTP client (a vendored httpx fork in 2.x)
        try:
            module = __import__(module_name)
        except ImportError:
            continue
        if hasattr(module, "TransportError"):
            errors.append(module.TransportError)
    return tuple(errors)


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying: 408/429/5xx answers, timeouts and connection errors."""
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(exc, HfHubHTTPError):
        status = getattr(exc.response, "status_code", None) if exc.response is not None else None
        return status in RETRY_STATUS
    return isinstance(exc, _transport_errors())


def _describe(exc: BaseException, token: str | None) -> str:
    """A one-line description of ``exc`` that never contains ``token``."""
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    if token:
        text = text.replace(token, "***")
    return text[:500]


def _with_retries(action: Callable[[], Any], what: str, *, max_retries: int, wait: float, token: str | None,
                  sleep: Callable[[float], None] = time.sleep) -> Any:
    attempt = 0
    while True:
        try:
            return action()
        except Exception as exc:
            if not is_transient(exc) or attempt >= max_retries:
                raise
            delay = min(wait * (2 ** attempt), MAX_RETRY_WAIT)
            attempt += 1
            logger.warning("%s: transient error (%s); retry %d of %d in %.1f s", what, _describe(exc, token),
                           attempt, max_retries, delay)
            sleep(delay)


# ---------------------------------------------------------------------------------------------
# Repo contents
# ---------------------------------------------------------------------------------------------


def _model_files(run: RunRecord, label: str) -> list[tuple[str, Path]]:
    """(path in repo, local file) for the model repo of ``label``, README excluded (the card replaces it)."""
    folder = run.checkpoint_dir(label)
    if not run.directory.has_checkpoint(*parse_file_label(label)):  # a point key: f200 or tsdae/f200
        raise PublishError(
            f"{folder} is missing or is not a saved SentenceTransformer (no modules.json); cannot publish {label}. "
            "Re-run the same `hf-curve run` command to rebuild it."
        )
    # The bytes uploaded must be the ones verified when the point was scored.
    run.directory.check_checkpoint(*parse_file_label(label), what_to_do=(
        "Re-run the same `hf-curve run` command (it trains this point again), then push."))
    files = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if not path.is_file() or any(part.startswith(".") for part in relative.parts):
            continue
        if relative.as_posix() == "README.md":
            continue
        files.append((relative.as_posix(), path))
    probe = run.probe_path(label)
    if not probe.is_file():
        raise PublishError(f"{probe} is missing; cannot publish {label}'s probe. Re-run `hf-curve run` to rebuild it.")
    files.append((PROBE_PATH_IN_REPO, probe))
    return files


def without_local_paths(payload: Any) -> Any:
    """``payload`` with every absolute local path replaced by its last part: a published file names the data
    file and model folder, never the publisher's home directory or user name.

    >>> without_local_paths({"data": "/home/ana/data/bat.jsonl", "model": "org/model", "n": 3})
    {'data': 'bat.jsonl', 'model': 'org/model', 'n': 3}
    """
    if isinstance(payload, dict):
        return {key: without_local_paths(value) for key, value in payload.items()}
    if isinstance(payload, list):
        return [without_local_paths(value) for value in payload]
    if isinstance(payload, str) and (payload.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", payload)):
        return re.split(r"[\\/]", payload.rstrip("/\\"))[-1] or payload
    return payload


def _json_bytes(payload: Any) -> bytes:
    return (json.dumps(payload, indent=2) + "\n").encode("utf-8")


def curve_repo_sources(directory: RunDirectory) -> list[tuple[Path, bool]]:
    """The run's files that the curve dataset repo holds, as (file, required). The repo keeps the run
    directory's names (and its probes), so the Space reads a snapshot of it as it reads a run."""
    return [(directory.curve_csv_path, True), (directory.curve_json_path, True), (directory.curve_png_path, True),
            (directory.config_path, True), (directory.data_report_path, True), (directory.samples_path, False)]


def _curve_files(run: RunRecord) -> list[tuple[str, Path | bytes]]:
    directory = run.directory
    files: list[tuple[str, Path | bytes]] = []
    for path, required in curve_repo_sources(directory):
        if not path.is_file():
            if required:
                raise PublishError(f"{path} is missing; re-run `hf-curve run` (or `hf-curve report`) to rebuild it.")
            continue
        if path == directory.config_path:
            saved = {key: value for key, value in run.saved.items() if key not in VOLATILE_CONFIG_KEYS}
            files.append((directory.relative(path), _json_bytes(without_local_paths(saved))))
        else:
            files.append((directory.relative(path), path))
    # Every size's probe, f0's included (f0 has no model repo): the Space prices descriptions with them.
    for probe in sorted(directory.probe_path(*parse_file_label(point["label"])) for point in run.points):
        if probe.is_file():
            files.append((directory.relative(probe), probe))
    return files


def _operations(files: list[tuple[str, Path | bytes]], readme: str) -> list:
    from huggingface_hub import CommitOperationAdd

    operations = [CommitOperationAdd(path_in_repo=path_in_repo, path_or_fileobj=str(source) if isinstance(source, Path)
                                     else source) for path_in_repo, source in files]
    operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=readme.encode("utf-8")))
    return operations


def _push_repo(api, repo_id: str, repo_type: str, files: list[tuple[str, Path | bytes]], readme: str, *,
               private: bool, message: str, description: str) -> tuple[bool, str]:
    """Create ``repo_id`` if needed and commit ``files`` + README; returns (a commit was made, head sha)."""
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    info = api.repo_info(repo_id, repo_type=repo_type)
    if private and not info.private:
        api.update_repo_settings(repo_id, repo_type=repo_type, private=True)
    before = info.sha
    # Fresh operations for every attempt: they carry upload state from the previous one.
    commit = api.create_commit(repo_id, operations=_operations(files, readme), repo_type=repo_type,
                               commit_message=message, commit_description=description)
    return commit.oid != before, commit.oid


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def publish_run(
    run_dir: str | Path,
    *,
    org: str | None = None,
    name: str | None = None,
    private: bool = False,
    token: str | None = None,
    max_retries: int = 5,
    retry_wait: float | None = None,
    show_progress: bool = True,
) -> PublishResult:
    """Publish a finished run: a model repo per finetuned size and the curve dataset repo.

    Args:
        run_dir: a finished run directory (``hf-curve run`` output).
        org: the Hub namespace (user or organization); None uses the token's own user.
        name: the repo name prefix (``name-f50k``, ``name-curve``); None uses the run's name
            (``--name``, else ``<model>-<corpus>``).
        private: create the repos private (and make existing ones private); False leaves existing repos' visibility.
        token: a Hub token with write access; None uses ``HF_TOKEN`` or the cached ``hf auth login``.
        max_retries: retries per repo on transient errors (5xx, 429, timeouts, dropped connections).
        retry_wait: seconds before the first retry, doubling after each (default ``RETRY_WAIT``).
        show_progress: upload progress bars.

    Returns:
        PublishResult with the repo ids and URLs and what was uploaded or unchanged.

    Raises:
        PublishError: the run is not finished, no token, an invalid name, or a push that still fails after the
            retries (the message says which repos are done; run the same push again to finish).
    """
    from huggingface_hub import HfApi
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    run = read_finished_run(run_dir)
    labels = run.finetuned_labels
    name = validate_hub_name(name, labels) if name else validate_hub_name(default_hub_name(run), labels)
    org, token = resolve_target(org, token)
    api = HfApi(token=token)
    names = HubNames.for_run(run, org=org, name=name, endpoint=api.endpoint)
    wait = RETRY_WAIT if retry_wait is None else float(retry_wait)

    corpus_is_hub = False
    if run.corpus_looks_like_hub_id():
        try:
            corpus_is_hub = bool(api.repo_exists(run.corpus_source, repo_type="dataset"))
        except Exception:
            corpus_is_hub = False
    base_license = None
    if names.base_is_hub or run.model_info.get("path"):
        base_license = read_license(run.base_model_id, token=token, local_path=run.model_info.get("path"))

    result = PublishResult(
        org=org, name=name,
        repo_ids={p["label"]: names.repo_id(p["label"]) for p in run.points},
        urls={p["label"]: names.url(p["label"]) for p in run.points},
        curve_repo_id=names.curve_repo_id, curve_url=names.curve_url,
    )
    # Build everything before the first request that writes, so a bad run fails before anything is pushed.
    plan: list[tuple[str | None, str, str, list, str]] = []
    for label in labels:
        card = build_model_card(run, label, names, base_license=base_license, corpus_is_hub=corpus_is_hub)
        files = _model_files(run, label) + [(POINT_PATH_IN_REPO, _json_bytes(run.point(label)))]
        plan.append((label, names.model_repo_id(label), "model", files, str(card)))
    curve_files = _curve_files(run)
    dataset_card = build_dataset_card(run, names, files=[path for path, _ in curve_files], corpus_is_hub=corpus_is_hub)
    plan.append((None, names.curve_repo_id, "dataset", curve_files, str(dataset_card)))

    description = (f"Published with hf-finetune-curve from a run with result key {run.saved.get('result_key', '?')} "
                   f"({names.base_model_id} on {run.corpus_source}).")
    progress_was_disabled = are_progress_bars_disabled()
    if not show_progress:
        disable_progress_bars()
    done: list[str] = []
    try:
        for label, repo_id, repo_type, files, readme in plan:
            what = f"{repo_type} repo {repo_id}"
            message = (f"Upload {label} of the finetuning curve {name}" if label
                       else f"Upload the finetuning curve {name}")
            logger.info("Pushing %s (%d files)", what, len(files) + 1)
            try:
                changed, sha = _with_retries(
                    lambda: _push_repo(api, repo_id, repo_type, files, readme, private=private, message=message,
                                       description=description),
                    what, max_retries=max_retries, wait=wait, token=token,
                )
            except PublishError:
                raise
            except Exception as exc:
                finished = ", ".join(done) if done else "none"
                attempts = f" after {max_retries + 1} attempts" if is_transient(exc) else ""
                raise PublishError(
                    f"Pushing {what} failed{attempts}: {_describe(exc, token)}. Repos already complete: {finished}. "
                    f"The run directory {run.run_dir} is unchanged; run the same push again "
                    f"(`hf-curve push {run.run_dir} --hub-org {org} --hub-name {name}`) to finish: "
                    "unchanged files are not uploaded again."
                ) from exc
            done.append(repo_id)
            result.commits[repo_id] = sha
            if label is None:
                result.curve_uploaded = changed
            elif changed:
                result.uploaded.append(label)
            else:
                result.unchanged.append(label)
            logger.info("%s: %s (%s)", repo_id, "uploaded" if changed else "unchanged, no commit", sha[:8])
    finally:
        if not show_progress and not progress_was_disabled:
            enable_progress_bars()
    return result
