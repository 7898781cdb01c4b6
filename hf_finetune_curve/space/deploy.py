"""The Space's files and publishing: :func:`space_files` (what ``spaces/finetune_curve/`` holds, with a
pushed Space's title, links and data source filled in) and :func:`push_space`.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Sequence

from ..errors import SpaceError
from ..io_utils import HUB_REPO_ID as _REPO_ID, hub_endpoint, read_json
from ..run_dir import CONFIG_FILE
from .data import ENV_REPO, SPACE_CONFIG_FILE, _load_local_run, derived_model_repo

logger = logging.getLogger(__name__)


# The deployed files are the files of spaces/finetune_curve/ (shipped as the package
# hf_finetune_curve.space_app): push_space uploads them as they are, only filling in the Space's
# title, its dataset / model links and where its data comes from.
SPACE_FILES = ("app.py", "README.md", "requirements.txt")
_DEFAULT_TITLE = "Finetuning curve explorer"


def space_source_dir() -> Path:
    """The folder holding the Space's files: ``spaces/finetune_curve/`` of the source tree beside this code when
    there is one (a checkout), else the installed package ``hf_finetune_curve.space_app``."""
    checkout = Path(__file__).resolve().parents[2] / "spaces" / "finetune_curve"
    if (checkout / "app.py").is_file():
        return checkout
    from importlib.resources import files

    return Path(str(files("hf_finetune_curve.space_app")))


def space_files(curve_repo: str | None = None, model_repos: Sequence[str] = (), title: str | None = None
                ) -> dict[str, str]:
    """The Space's files: ``app.py``, ``README.md``, ``requirements.txt`` (and ``curve_space.json`` for a repo).

    Without arguments they are exactly the files in ``spaces/finetune_curve/``.
    """
    source_dir = space_source_dir()
    files = {name: (source_dir / name).read_text(encoding="utf-8") for name in SPACE_FILES}
    readme = files["README.md"]
    if title:
        readme = re.sub(r"^title: .*$", f"title: {title}", readme, count=1, flags=re.M)
        readme = readme.replace(f"\n# {_DEFAULT_TITLE}\n", f"\n# {title}\n", 1)
    links = ""
    if curve_repo:
        links += f"datasets:\n- {curve_repo}\n"
    if model_repos:
        links += "models:\n" + "".join(f"- {repo}\n" for repo in model_repos)
    if links:  # into the front matter, before its closing ---
        head, sep, body = readme[4:].partition("\n---\n")
        readme = "---\n" + head + "\n" + links.rstrip("\n") + sep + body
    if curve_repo:
        source = (f"Data: the curve dataset [{curve_repo}](https://huggingface.co/datasets/{curve_repo}) "
                  f"(Space variable `{ENV_REPO}` / `{SPACE_CONFIG_FILE}`).\n\n")
        readme = readme.replace("Run it locally on a finished run", source + "Run it locally on a finished run", 1)
    files["README.md"] = readme
    if curve_repo:
        files[SPACE_CONFIG_FILE] = json.dumps({"curve_repo": curve_repo}, indent=2) + "\n"
    return files


def _run_name(run_dir: Path) -> str:
    """The name ``hf-curve push`` gives a run by default (its repos are ``ORG/<name>-<label>``, ``-curve``)."""
    from ..hub.model_card import read_finished_run
    from ..hub.publish import default_hub_name

    return default_hub_name(read_finished_run(run_dir))


def _curve_repo_for(run_dir_or_curve_repo: str | os.PathLike, namespace: str) -> str:
    path = Path(run_dir_or_curve_repo).expanduser()
    if path.is_dir():
        run = _load_local_run(path)
        return run.curve_repo or f"{namespace}/{_run_name(path)}-curve"
    text = str(run_dir_or_curve_repo)
    if not _REPO_ID.match(text):
        raise SpaceError(f"{text!r} is neither a run directory nor a curve dataset repo id (org/name-curve).")
    return text


def push_space(run_dir_or_curve_repo: str | os.PathLike, repo_id: str, *, token: str | None = None,
               private: bool = False, curve_repo: str | None = None) -> str:
    """Create (or update) the Gradio Space ``repo_id`` showing a published run; return its URL.

    The Space reads the run's curve dataset repo at start-up; its id goes in the Space variable
    ``HF_CURVE_REPO`` and in ``curve_space.json`` in the Space. For a run directory the curve repo is
    the one ``hf-curve push`` makes by default, ``<Space namespace>/<run name>-curve``; ``curve_repo``
    (or passing the repo id instead of a directory) names another. The token is never logged.

    Raises:
        SpaceError: bad ids, or the curve dataset repo does not exist (publish the run first).
    """
    from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError

    if not isinstance(repo_id, str) or not _REPO_ID.match(repo_id):
        raise SpaceError(f"The Space id must look like 'namespace/space_name'; got {repo_id!r}.")
    curve_repo = curve_repo or _curve_repo_for(run_dir_or_curve_repo, repo_id.split("/")[0])
    if not _REPO_ID.match(curve_repo):
        raise SpaceError(f"The curve repo id must look like 'namespace/name-curve'; got {curve_repo!r}.")
    api = HfApi(token=token)
    try:  # the Space would have nothing to show without the curve repo: fail before creating anything
        meta = read_json(hf_hub_download(curve_repo, CONFIG_FILE, repo_type="dataset", token=token))
    except (RepositoryNotFoundError, EntryNotFoundError) as exc:
        raise SpaceError(
            f"No curve dataset repo {curve_repo} (with a config.json) on {hub_endpoint()}. Publish the run first "
            "(`hf-curve push RUN_DIR --hub-org ORG`), or name the published repo with --curve-repo."
        ) from exc
    labels = [p for p in meta.get("labels", []) if p != "f0"]
    model_repos = [derived_model_repo(curve_repo, label) for label in labels]
    base = meta.get("model", {})
    if base.get("source") in ("hub", "package") and _REPO_ID.match(str(base.get("model_id", ""))):
        model_repos.insert(0, base["model_id"])
    repo_url = api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True,
                               space_variables=[{"key": ENV_REPO, "value": curve_repo}], token=token)
    try:  # create_repo sets variables only on creation; this also updates an existing Space's
        api.add_space_variable(repo_id, ENV_REPO, curve_repo, token=token)
    except HfHubHTTPError as exc:
        logger.warning("Could not set the Space variable %s (%s); the Space reads %s instead.",
                       ENV_REPO, type(exc).__name__, SPACE_CONFIG_FILE)
    name = curve_repo.split("/")[-1]
    title = f"{name[: -len('-curve')] if name.endswith('-curve') else name} finetuning curve"
    operations = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=content.encode("utf-8"))
                  for path, content in space_files(curve_repo, model_repos, title=title).items()]
    api.create_commit(repo_id, operations, repo_type="space", token=token,
                      commit_message=f"Finetuning-curve explorer for {curve_repo} (hf-finetune-curve)")
    url = str(getattr(repo_url, "url", "") or f"{hub_endpoint()}/spaces/{repo_id}")
    logger.info("Pushed the Space %s (data: %s)", url, curve_repo)
    return url
