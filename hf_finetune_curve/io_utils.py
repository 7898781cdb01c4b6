"""Atomic file writes (a reader, or a run interrupted mid-write, never sees a half-written result), JSON-safe values,
and the shapes of Hub names that data loading, the cards, publishing and the Space all check.

Example:
    >>> bool(HUB_REPO_ID.match("sentence-transformers/all-MiniLM-L6-v2")), bool(HUB_REPO_ID.match("listings.jsonl"))
    (True, False)
    >>> bool(HUB_REPO_NAME.match("bat-f10k")), bool(HUB_REPO_NAME.match("-bat"))
    (True, False)
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

#: A Hub repo id, ``namespace/name`` (models, datasets and Spaces alike).
HUB_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
#: A Hub repo name (what follows the namespace), and the longest the Hub accepts.
HUB_REPO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
HUB_REPO_NAME_MAX = 96
#: The Hub's address when ``HF_ENDPOINT`` is not set.
DEFAULT_HUB_ENDPOINT = "https://huggingface.co"


def json_safe(value: Any) -> Any:
    """Recursively turn numpy scalars/arrays into plain Python, NaN/inf into None (JSON has neither).

    >>> json_safe({"a": np.float64("nan"), "b": np.arange(2)})
    {'a': None, 'b': [0, 1]}
    """
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_safe(v) for v in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def hub_endpoint() -> str:
    """``HF_ENDPOINT``, or the public Hub, without a trailing slash."""
    return os.environ.get("HF_ENDPOINT", DEFAULT_HUB_ENDPOINT).rstrip("/")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` in one rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates files 0600; results should get the permissions any new file gets.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (a lock file) for the block; fail at once if another
    process holds it, naming its PID and host. The lock dies with the process (no stale locks).

    Raises:
        RunDirectoryLockedError: another process holds the lock.
    """
    import socket

    from .errors import RunDirectoryLockedError

    try:
        import fcntl
    except ImportError:  # Windows: no flock; filelock (installed with the Hub client) takes an OS lock instead
        yield from _filelock(Path(path))
        return
    lock_path = Path(path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(lock_path, "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "an unknown process"
            raise RunDirectoryLockedError(
                f"{lock_path.parent} is in use by another run ({holder}); wait for it to finish or use "
                "another --output-dir."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"PID {os.getpid()} on host {socket.gethostname()}")
        handle.flush()
        yield
    finally:
        handle.close()


def _filelock(lock_path: Path) -> Iterator[None]:
    """:func:`exclusive_lock` where ``fcntl`` is missing: ``filelock``'s OS lock on a sibling file (it holds
    that file open exclusively, so the holder's PID and host go in ``lock_path`` beside it)."""
    import socket

    from filelock import FileLock, Timeout

    from .errors import RunDirectoryLockedError

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_path) + ".os", timeout=0)
    try:
        lock.acquire()
    except Timeout:
        holder = lock_path.read_text(encoding="utf-8").strip() if lock_path.is_file() else ""
        raise RunDirectoryLockedError(
            f"{lock_path.parent} is in use by another run ({holder or 'an unknown process'}); wait for it to finish "
            "or use another --output-dir."
        ) from None
    try:
        lock_path.write_text(f"PID {os.getpid()} on host {socket.gethostname()}", encoding="utf-8")
        yield
    finally:
        lock.release()


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, payload: Any) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=False, default=_json_default) + "\n")


def write_csv_atomic(path: str | os.PathLike, rows: Sequence[dict], fieldnames: Sequence[str]) -> None:
    with atomic_path(path) as tmp:
        with tmp.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(fieldnames), extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow(row)


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _json_default(value: Any) -> Any:
    # numpy scalars and paths show up in results; JSON has no type for them.
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
