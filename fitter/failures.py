"""What a failure of one image is, decided by the exception's TYPE in one table.

Both commands use it: ``prdlfit fit`` takes the exit code (the code of the run when every image
failed alike), ``prdlfit batch`` the kind (the manifest's ``error_kind``, the prefix of its
``reason``). The exit codes are the error classes' own ``exit_code`` (:mod:`fitter.errors`);
an exception outside that hierarchy exits 1. An exception whose type is not in the table gets
the kind of the stage it was raised in (``targets``, ``fit`` or ``write``).

The one translation before the look-up: an :class:`OSError` whose ``errno`` says the disk is full
(ENOSPC, EDQUOT) is the failure :class:`DiskFullError`, since every next write fails too.
"""
from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Optional, Tuple, Type

from fitter.errors import DiskFullError, ImageReadError, NoFaceError, NonFiniteFitError, PrdlfitError

#: exit code of a failure that is not a PrdlfitError (and of ``prdlfit fit`` with mixed failures)
EXIT_OTHER = 1
#: errno values that mean "the disk is full"
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
#: failure stages: where an exception was raised, the kind of those the table does not name
STAGES = ("targets", "fit", "write")


@dataclass(frozen=True)
class FailureType:
    """One row of :data:`FAILURE_TABLE`: an exception type and its manifest kind."""

    type: Type[BaseException]
    kind: str

    @property
    def exit_code(self) -> int:
        """The ``prdlfit fit`` exit code of this type (its class attribute, else 1)."""
        return int(getattr(self.type, "exit_code", EXIT_OTHER)) if issubclass(self.type, PrdlfitError) \
            else EXIT_OTHER


#: exception type -> failure kind; the first row the exception is an instance of wins (subclasses
#: before their bases).
FAILURE_TABLE: Tuple[FailureType, ...] = (
    FailureType(ImageReadError, "read"),          # exit 3
    FailureType(NoFaceError, "no_face"),          # exit 4
    FailureType(NonFiniteFitError, "nan"),        # exit 6 (a FitError)
    FailureType(DiskFullError, "enospc"),         # exit 1; the batch run stops, a rerun retries it
    FailureType(MemoryError, "memory"),           # exit 1
)


@dataclass(frozen=True)
class Failure:
    """A classified failure of one image.

    Attributes:
        kind: manifest ``error_kind`` (a :data:`FAILURE_TABLE` kind or the stage).
        exit_code: ``prdlfit fit`` exit code.
        error: the exception (after the disk-full translation).
    """

    kind: str
    exit_code: int
    error: BaseException

    @property
    def message(self) -> str:
        """The error on one line; the exception type is named unless it is one of ours."""
        return error_text(self.error)

    @property
    def reason(self) -> str:
        """``<kind>: <message>`` (the manifest's ``reason``, before its length cap)."""
        return _one_line(f"{self.kind}: {self.message}")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def error_text(err: BaseException) -> str:
    """``str(err)`` on one line; ``Type: ...`` unless ``err`` is a PrdlfitError or an OSError with a reason."""
    msg = _one_line(str(err)) or type(err).__name__
    if not isinstance(err, PrdlfitError) and not (isinstance(err, OSError) and err.strerror):
        msg = f"{type(err).__name__}: {msg}"
    return msg


def typed(err: BaseException) -> BaseException:
    """``err``, except that an OSError meaning "disk full" becomes a :class:`DiskFullError`."""
    if isinstance(err, OSError) and not isinstance(err, DiskFullError) and err.errno in DISK_FULL_ERRNOS:
        full = DiskFullError(err.strerror or "no space left on device")
        full.__cause__ = err
        return full
    return err


def failure_type(err: BaseException) -> Optional[FailureType]:
    """The :data:`FAILURE_TABLE` row of ``err``'s type, or None."""
    for row in FAILURE_TABLE:
        if isinstance(err, row.type):
            return row
    return None


def classify(err: BaseException, stage: str) -> Failure:
    """The failure of an exception raised in ``stage`` (one of :data:`STAGES`)."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {', '.join(STAGES)}, got {stage!r}")
    err = typed(err)
    row = failure_type(err)
    code = int(getattr(err, "exit_code", EXIT_OTHER)) if isinstance(err, PrdlfitError) else EXIT_OTHER
    return Failure(row.kind if row is not None else stage, code, err)


__all__ = ["EXIT_OTHER", "DISK_FULL_ERRNOS", "STAGES", "FailureType", "FAILURE_TABLE", "Failure",
           "error_text", "typed", "failure_type", "classify"]
