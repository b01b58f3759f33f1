"""The error base class shared by the whole project, and the model error.

They live in ``morphable_models`` (the lowest room) so the model loaders raise them without
importing :mod:`fitter`; :mod:`fitter.errors` re-exports both (same classes, so ``except`` clauses
written against either module catch the same exceptions). The CLI prints ``str(err)`` and exits
with ``err.exit_code``.
"""


class PrdlfitError(Exception):
    """Base class: a problem with the user's input, not a bug."""

    exit_code = 1


class ModelError(PrdlfitError):
    """A morphable model file is missing, of the wrong format, or inconsistent."""

    exit_code = 5
