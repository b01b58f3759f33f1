"""Photo -> fitting targets (crop, landmarks, part point sets)."""
from fitter.targets.types import CropTransform, Targets

__all__ = ["CropTransform", "Targets"]
