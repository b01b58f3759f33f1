"""3D morphable face models: formats, loaders, part annotation. See :mod:`morphable_models.model`."""
from morphable_models.model import JAW_LANDMARKS, PART_NAMES, MorphableModel

__all__ = ["MorphableModel", "PART_NAMES", "JAW_LANDMARKS", "load"]


def load(name_or_path: str = "ict", **kwargs) -> MorphableModel:
    """Load a model by registered name (``ict``, ``sfm``, ``bfm``) or file path; see registry."""
    from morphable_models.registry import load as _load

    return _load(name_or_path, **kwargs)
