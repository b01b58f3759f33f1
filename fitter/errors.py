"""Errors with one-line messages meant for users. The CLI prints ``str(err)`` and exits non-zero."""


class PrdlfitError(Exception):
    """Base class: a problem with the user's input, not a bug."""

    exit_code = 1


class ImageReadError(PrdlfitError):
    """The file is missing, not an image, corrupt or truncated."""

    exit_code = 3


class NoFaceError(PrdlfitError):
    """No face was found in the image."""

    exit_code = 4


class ModelError(PrdlfitError):
    """A morphable model file is missing, of the wrong format, or inconsistent."""

    exit_code = 5


class FitError(PrdlfitError):
    """The optimization failed (NaN, diverged)."""

    exit_code = 6


class NonFiniteFitError(FitError):
    """The fit's loss or numbers stopped being finite (NaN / inf)."""


class DiskFullError(PrdlfitError):
    """The output disk is full (ENOSPC / EDQUOT): every next write fails too."""
