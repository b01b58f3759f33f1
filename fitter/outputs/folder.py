"""An output folder that is safe to write: proved writable before any work, held by one run.

:func:`prepare_output_dir` creates the folder and writes (then removes) a probe file, because
``os.access`` says yes to root and on read-only mounts; :class:`FolderLock` is an exclusive
``flock`` on ``<folder>/.prdlfit.lock`` held for the life of a run, so two runs (``prdlfit fit``
or ``prdlfit batch``, in any mix) never write the same folder at once. The kernel frees the lock
when the process dies, so a killed run never leaves a stale lock.
"""
from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

from fitter.errors import PrdlfitError

#: the lock file inside an output folder
LOCK_NAME = ".prdlfit.lock"
#: prefix of the probe file written by :func:`prepare_output_dir`
PROBE_PREFIX = ".write-probe."


def prepare_output_dir(out: Path) -> None:
    """Create ``out`` and prove it is writable with a real write.

    Raises:
        PrdlfitError: one line naming the folder (cannot create, not a folder, not writable,
            disk full).
    """
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise PrdlfitError(f"cannot create output folder {out}: {err.strerror or err}") from None
    if not out.is_dir():
        raise PrdlfitError(f"output path {out} exists and is not a folder")
    if not os.access(out, os.W_OK | os.X_OK):
        raise PrdlfitError(f"output folder {out} is not writable")
    try:
        fd, probe = tempfile.mkstemp(prefix=PROBE_PREFIX, dir=out)
        try:
            os.write(fd, b"\0" * 4096)  # a full disk refuses data, not always the empty file
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as err:
        raise PrdlfitError(f"output folder {out} is not writable: {err.strerror or err}") from None


class FolderLock:
    """Exclusive lock on ``out/.prdlfit.lock`` until :meth:`release` (or the process ends).

    Args:
        out: an existing folder.
        what: the kind of run, for the message (``"batch"``, ``"prdlfit fit"``).
    Raises:
        PrdlfitError: another run holds the lock ("another <what> run is writing to <out> ...").
    """

    def __init__(self, out: Path, what: str = "prdlfit"):
        self.path = Path(out) / LOCK_NAME
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise PrdlfitError(f"cannot lock output folder {out}: {err.strerror or err}") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = -1
            raise PrdlfitError(f"another {what} run is writing to {out} (lock {self.path} is held); "
                               "wait for it to finish or use another output folder") from None

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "FolderLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


__all__ = ["LOCK_NAME", "PROBE_PREFIX", "prepare_output_dir", "FolderLock"]
