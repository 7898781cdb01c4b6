"""Named errors, so callers can catch what went wrong rather than parse messages."""

from __future__ import annotations


class FinetuneCurveError(Exception):
    """Base class of every error this package raises on purpose."""


class CorpusError(FinetuneCurveError, ValueError):
    """The corpus cannot be read or has no usable rows; the message names the file, line or column."""


class ConfigError(FinetuneCurveError, ValueError):
    """A configuration value is invalid; the message names the field, what was given and what is expected."""


class RunDirectoryConflictError(FinetuneCurveError):
    """The output directory holds a run made with a different configuration."""


class CheckpointVerificationError(FinetuneCurveError):
    """A saved checkpoint does not embed like the in-memory model it was saved from."""


class CheckpointDamagedError(CheckpointVerificationError):
    """A saved checkpoint's files no longer match the content hashes recorded when it was verified
    (a flipped bit, a truncated or missing file); the message names the folder and the file and says what to do."""


class OutputError(FinetuneCurveError, OSError):
    """A file of the run cannot be written (disk full, read-only folder, a file where a folder belongs);
    the message names the path and says what to do."""


class ModelResolutionError(FinetuneCurveError):
    """A model id or path could not be resolved to a loadable SentenceTransformer."""


class PublishError(FinetuneCurveError):
    """A run cannot be published (unfinished run, no token, bad name) or a push failed."""


class SpaceError(FinetuneCurveError, ValueError):
    """The Space cannot be built or published as asked; the message says what to do."""


class SubsetLeakError(FinetuneCurveError):
    """A point trained on a text beyond its subset: the nested-subset guarantee is broken."""


class RunDirectoryLockedError(FinetuneCurveError):
    """Another process holds the run directory's lock; the message names its PID and host."""


class NotARunDirectoryError(FinetuneCurveError, FileNotFoundError):
    """A directory given as a run holds no run (no ``config.json``); the message names it."""


class RunDirectoryFormatError(FinetuneCurveError, ValueError):
    """A file of a run directory is in a layout this version cannot read (written by a newer version);
    the message names the file, its version and the newest this version reads."""


class ProcessCountError(ConfigError):
    """The global batch (``--batch-size``, or SimCSE's) does not split evenly over the processes of a
    multi-process run; the message names the batch, the process count and the counts that divide it."""


class ParallelRunError(FinetuneCurveError):
    """A worker process of ``hf-curve run --workers`` failed; the message names its track, exit code and log."""


class ObjectiveSpecError(ConfigError):
    """An objective module of ``hf_finetune_curve.objectives`` declares an incomplete or inconsistent ``SPEC``;
    the message names the module and the field."""
