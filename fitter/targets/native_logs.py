"""Keep the log lines that mediapipe's C++ code (absl, glog, TensorFlow Lite) prints off the terminal.

Those lines (``INFO: Created TensorFlow Lite XNNPACK delegate``, ``WARNING: All log messages before
absl::InitializeLog()``, ``W0000 ... inference_feedback_manager``) are written by native code straight
to file descriptor 2, past ``sys.stderr``, and the glog/TF environment variables stop only some of
them. So, unless verbose, file descriptor 2 points at the null device while mediapipe is imported,
builds a graph or runs one (:func:`native_stderr_silenced`). Verbose mode (``prdlfit -v``) is the
environment variable :data:`VERBOSE_ENV`, so worker processes inherit it.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator

VERBOSE_ENV = "PRDLFIT_VERBOSE"
#: environment of the native loggers: errors only
_QUIET_ENV = {"GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "2"}


def verbose() -> bool:
    """True when library log lines should reach the terminal."""
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def set_verbose(on: bool) -> None:
    """Switch verbose mode for this process and the processes it starts."""
    if on:
        os.environ[VERBOSE_ENV] = "1"
    else:
        os.environ.pop(VERBOSE_ENV, None)


def quiet_native_loggers() -> None:
    """Set the glog / TensorFlow log levels (before mediapipe is imported), unless verbose or set."""
    if not verbose():
        for key, value in _QUIET_ENV.items():
            os.environ.setdefault(key, value)


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Within the block, file descriptor 2 goes to the null device (unless verbose).

    Python exceptions raised inside still propagate (and print) after descriptor 2 is restored.
    The redirection is process-wide: keep the block to the native call itself.
    """
    if verbose():
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no descriptor 2 (some embedded interpreters)
        yield
        return
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, 2)
        finally:
            os.close(null)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
