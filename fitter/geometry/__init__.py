"""Camera models, rotations, projection, z-buffer visibility, part rasterization and farthest point
sampling (pure tensors).

Names are loaded from their modules on first use, so that the torch-free
:mod:`fitter.geometry.conventions` (frames, the paper's focal) imports without torch.
"""
from __future__ import annotations

import importlib

#: public name -> the module that defines it.
_WHERE = {
    "MODEL_TO_CAMERA": "fitter.geometry.camera",
    "default_focal": "fitter.geometry.camera",
    "euler_to_matrix": "fitter.geometry.rotation",
    "farthest_point_sample": "fitter.geometry.sampling",
    "label_support": "fitter.geometry.raster",
    "lumped_point_weights": "fitter.geometry.areas",
    "masks_to_resolution": "fitter.geometry.soft_raster",
    "matrix_to_euler": "fitter.geometry.rotation",
    "matrix_to_rotation_6d": "fitter.geometry.rotation",
    "model_to_camera": "fitter.geometry.camera",
    "model_to_camera_flip": "fitter.geometry.camera",
    "part_iou": "fitter.geometry.raster",
    "project_perspective": "fitter.geometry.camera",
    "project_weak": "fitter.geometry.camera",
    "rasterize_depth": "fitter.geometry.zbuffer",
    "rasterize_labels": "fitter.geometry.raster",
    "rotation_6d_to_matrix": "fitter.geometry.rotation",
    "soft_silhouettes": "fitter.geometry.soft_raster",
    "splat_depth": "fitter.geometry.zbuffer",
    "triangle_areas_2d": "fitter.geometry.areas",
    "triangle_labels": "fitter.geometry.raster",
    "zbuffer_visibility": "fitter.geometry.visibility",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'fitter.geometry' has no attribute {name!r}")

__all__ = sorted(_WHERE)
