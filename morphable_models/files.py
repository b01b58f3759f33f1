"""Atomic file writes: write to a temporary file in the same folder, fsync, then rename.

A reader (or a process killed midway) sees either the old file or the complete new one, never a
partial file. Lives in ``morphable_models`` (the lowest room) so the model cache and the fit
outputs share one implementation; :mod:`fitter.outputs.atomic` re-exports it.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator, Optional, Union

PathLike = Union[str, "os.PathLike[str]"]


_FILE_MODE: Optional[int] = None


def _file_mode() -> int:
    """Permissions of a newly created file under this process's umask (0o644 for umask 022).

    ``mkstemp`` creates 0o600 files; outputs should look like any other file the user writes.
    """
    global _FILE_MODE
    if _FILE_MODE is None:
        umask = None
        try:  # Linux: read it without changing it (os.umask would briefly affect other threads)
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("Umask:"):
                    umask = int(line.split()[1], 8)
        except (OSError, ValueError):
            pass
        if umask is None:
            umask = os.umask(0o022)
            os.umask(umask)
        _FILE_MODE = 0o666 & ~umask
    return _FILE_MODE


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is fsynced and renamed onto ``path``.

    The temporary name keeps the suffix of ``path`` so writers that pick a format by suffix
    (cv2.imwrite, open3d, matplotlib) work. On error the temporary file is removed. The final
    file gets the usual permissions for the process's umask.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp_path, _file_mode())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes_atomic(path: PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_with_atomic(path: PathLike, writer: Callable[[Path], object]) -> None:
    """Call ``writer(tmp_path)`` and move the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)


def fsync_dir(path: PathLike) -> None:
    """fsync a directory so a rename inside it survives a crash (no-op where unsupported)."""
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
