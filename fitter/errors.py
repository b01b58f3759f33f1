"""Errors with one-line messages meant for users. The CLI prints ``str(err)`` and exits non-zero.

:class:`PrdlfitError` (the base) and :class:`ModelError` are defined in
:mod:`morphable_models.errors`, so the model loaders need nothing from ``fitter``; they are
re-exported here.
"""
from morphable_models.errors import ModelError, PrdlfitError

__all__ = ["PrdlfitError", "ImageReadError", "NoFaceError", "ModelError", "FitError"]


class ImageReadError(PrdlfitError):
    """The file is missing, not an image, corrupt or truncated."""

    exit_code = 3


class NoFaceError(PrdlfitError):
    """No face was found in the image."""

    exit_code = 4


class FitError(PrdlfitError):
    """The optimization failed (NaN, diverged)."""

    exit_code = 6


class NonFiniteFitError(FitError):
    """The fit's loss or numbers stopped being finite (NaN / inf)."""


class DiskFullError(PrdlfitError):
    """The output disk is full (ENOSPC / EDQUOT): every next write fails too."""
