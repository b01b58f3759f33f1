"""3D morphable face models: formats, loaders, part annotation. See :mod:`morphable_models.model`.

The package itself imports nothing heavy: ``morphable_models.errors`` and ``.files`` load without
torch; ``MorphableModel``, ``PART_NAMES`` and ``JAW_LANDMARKS`` are read from
:mod:`morphable_models.model` on first use.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from morphable_models.model import MorphableModel

__all__ = ["MorphableModel", "PART_NAMES", "JAW_LANDMARKS", "load", "prepare", "list_models", "model_info"]
_FROM_MODEL = ("MorphableModel", "PART_NAMES", "JAW_LANDMARKS")


def __getattr__(name: str):
    if name in _FROM_MODEL:
        from morphable_models import model

        return getattr(model, name)
    raise AttributeError(f"module 'morphable_models' has no attribute {name!r}")


def load(name_or_path: str = "ict", **kwargs) -> MorphableModel:
    """Load a model by registered name (``ict``, ``sfm``, ``bfm``) or file path; see registry."""
    from morphable_models.registry import load as _load

    return _load(name_or_path, **kwargs)


def prepare(name: str, **kwargs):
    """Convert a registered model into the cache once; returns the cache file. See registry."""
    from morphable_models.registry import prepare as _prepare

    return _prepare(name, **kwargs)


def list_models(**kwargs):
    """Install state, licence and sizes of every registered model (``registry.ModelInfo`` list)."""
    from morphable_models.registry import list_models as _list

    return _list(**kwargs)


def model_info(name: str, **kwargs):
    """``registry.ModelInfo`` of one registered model."""
    from morphable_models.registry import model_info as _info

    return _info(name, **kwargs)
