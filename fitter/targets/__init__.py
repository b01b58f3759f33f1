"""Photo -> fitting targets (crop, landmarks, part point sets).

Main entry points: :func:`build_targets` (photo -> [Targets]), :func:`targets_from_label_map`
(any label map, e.g. synthetic, -> Targets), :func:`read_image`, :func:`draw_targets`.
"""
from fitter.targets.draw import draw_targets
from fitter.targets.face import FaceAnalysis
from fitter.targets.io import LoadedImage, load_image, read_image
from fitter.targets.pipeline import TargetConfig, analyze_faces, build_targets
from fitter.targets.preprocess import PreprocessConfig, targets_from_label_map, thin_points
from fitter.targets.types import CropTransform, Targets

__all__ = [
    "CropTransform",
    "Targets",
    "FaceAnalysis",
    "LoadedImage",
    "PreprocessConfig",
    "TargetConfig",
    "analyze_faces",
    "build_targets",
    "draw_targets",
    "thin_points",
    "load_image",
    "read_image",
    "targets_from_label_map",
]
