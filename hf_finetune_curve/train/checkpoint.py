"""Checkpoint stage: save a finetuned SentenceTransformer and prove the saved copy embeds the same.

Example:
    >>> from hf_finetune_curve.train.checkpoint import save_checkpoint
    >>> save_checkpoint(model, "runs/bat/checkpoints/f10k", sample_texts)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import CheckpointDamagedError, CheckpointVerificationError, OutputError

logger = logging.getLogger(__name__)

MAX_ABS_DIFF = 1e-5
#: The content hashes of a checkpoint's files, written into its folder once the saved copy embeds like the
#: trained model: from then on "verified" means "these exact bytes", which resuming, ``hf-curve report``,
#: ``hf-curve push`` and the Space check (:func:`check_checkpoint_files`).
CHECKPOINT_HASHES_FILE = "checkpoint_sha256.json"
_HASH_CHUNK = 1 << 20


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_HASH_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_file_hashes(folder: str | Path) -> dict[str, str]:
    """SHA-256 of every file in ``folder`` (relative POSIX path -> hex digest), the hash file itself left out."""
    root = Path(folder)
    return {path.relative_to(root).as_posix(): _file_sha256(path) for path in sorted(root.rglob("*"))
            if path.is_file() and path.relative_to(root).as_posix() != CHECKPOINT_HASHES_FILE}


def record_checkpoint_hashes(folder: str | Path) -> dict[str, str]:
    """Write :data:`CHECKPOINT_HASHES_FILE` into ``folder`` from its files as they are now; return the hashes."""
    hashes = checkpoint_file_hashes(folder)
    payload = {"algorithm": "sha256", "files": hashes}
    (Path(folder) / CHECKPOINT_HASHES_FILE).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return hashes


def check_checkpoint_files(folder: str | Path, what_to_do: str = "Re-run the same `hf-curve run` command: it "
                           "trains this point again.") -> bool:
    """Check ``folder``'s files against the hashes recorded when it was verified.

    Returns True when they match, False for a checkpoint saved before hashes were recorded (nothing to
    check against; its ``*.safetensors`` files are still opened, so a truncated one is caught).

    Raises:
        CheckpointDamagedError: a file is missing, changed or unreadable; the message names the folder,
            the file and ``what_to_do``.
    """
    root = Path(folder)
    manifest = root / CHECKPOINT_HASHES_FILE
    if not manifest.is_file():
        _check_safetensors_readable(root, what_to_do)
        return False
    try:
        recorded = json.loads(manifest.read_text(encoding="utf-8"))["files"]
        if not isinstance(recorded, dict):
            raise TypeError("files is not an object")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointDamagedError(f"{manifest} is unreadable ({exc}): the checkpoint {root} cannot be checked. "
                                     f"{what_to_do}") from None
    for name, expected in recorded.items():
        path = root / name
        if not path.is_file():
            problem = "is missing"
        elif _file_sha256(path) != expected:
            problem = "does not match the hash recorded when the checkpoint was verified"
        else:
            continue
        raise CheckpointDamagedError(f"The checkpoint {root} is damaged: {name} {problem}. {what_to_do}")
    return True


def _check_safetensors_readable(root: Path, what_to_do: str) -> None:
    """A checkpoint without recorded hashes: at least its weights must open (header and length consistent)."""
    for path in sorted(root.rglob("*.safetensors")):
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="numpy"):
                pass
        except Exception as exc:  # SafetensorError and OSError alike: the file is not whole
            raise CheckpointDamagedError(f"The checkpoint {root} is damaged: {path.name} cannot be read "
                                         f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}). "
                                         f"{what_to_do}") from None


def embedding_difference(model_a, model_b, texts: Sequence[str], batch_size: int = 32) -> float:
    """Largest absolute difference between the two models' embeddings of ``texts``."""
    first = model_a.encode(list(texts), batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
    second = model_b.encode(list(texts), batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
    if first.shape != second.shape:
        return float("inf")
    return float(np.max(np.abs(first.astype(np.float64) - second.astype(np.float64))))


def verify_saved_model(model, path: str | Path, sample_texts: Sequence[str], tolerance: float = MAX_ABS_DIFF) -> float:
    """Load ``path`` and compare its embeddings with ``model``'s on ``sample_texts``.

    Raises:
        CheckpointVerificationError: the largest difference exceeds ``tolerance``.
    """
    from sentence_transformers import SentenceTransformer

    loaded = SentenceTransformer(str(path), device=str(model.device))
    was_training = model.training
    model.eval()
    try:
        difference = embedding_difference(model, loaded, sample_texts)
    finally:
        model.train(was_training)
    if not difference <= tolerance:
        raise CheckpointVerificationError(
            f"The checkpoint saved at {path} does not embed like the trained model: max abs difference "
            f"{difference:.3g} on {len(sample_texts)} sample texts (allowed {tolerance:g})."
        )
    return difference


def save_checkpoint(model, path: str | Path, sample_texts: Sequence[str], tolerance: float = MAX_ABS_DIFF,
                    extra_json: dict[str, dict] | None = None) -> float:
    """Save ``model`` to ``path`` so that ``SentenceTransformer(path)`` loads it, then verify it.

    The model (and ``extra_json``: file name -> content, e.g. the training statistics) is written
    to a temporary sibling folder, verified, and renamed into place in one step, so ``path``
    either does not exist or holds a verified checkpoint with all its files. Returns the max abs
    difference.
    """
    target = Path(path)
    staging = target.with_name(f".{target.name}.partial")
    if staging.exists():
        shutil.rmtree(staging)
    try:
        staging.parent.mkdir(parents=True, exist_ok=True)
        model.save(str(staging))
        for name, content in (extra_json or {}).items():
            (staging / name).write_text(json.dumps(content, indent=2, default=str), encoding="utf-8")
    except Exception as exc:
        # A full disk or a read-only folder surfaces as OSError or as safetensors' own SafetensorError
        # ("No space left on device"): either way nothing usable was written, and the previous state stays.
        shutil.rmtree(staging, ignore_errors=True)
        if not isinstance(exc, OSError) and "os error" not in str(exc).lower() and "space" not in str(exc).lower():
            raise
        raise OutputError(f"Cannot save the checkpoint {target}: {str(exc).splitlines()[0]}. Free disk space or "
                          "make the output folder writable (or choose another --output-dir), then run the same "
                          "command again: finished sizes are kept.") from None
    try:
        difference = verify_saved_model(model, staging, sample_texts, tolerance)
        # Verified: record what "this checkpoint" is, byte for byte (after the check, so a failed one has none).
        record_checkpoint_hashes(staging)
    except Exception:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
    logger.info("Saved %s (saved == trained: max abs diff %.2g)", target, difference)
    return difference
