"""Camera models, rotations, projection, z-buffer visibility, part rasterization and farthest point
sampling (pure tensors)."""
from fitter.geometry.camera import (
    MODEL_TO_CAMERA,
    default_focal,
    model_to_camera,
    model_to_camera_flip,
    project_perspective,
    project_weak,
)
from fitter.geometry.areas import lumped_point_weights, triangle_areas_2d
from fitter.geometry.raster import label_support, part_iou, rasterize_labels, triangle_labels
from fitter.geometry.sampling import farthest_point_sample
from fitter.geometry.rotation import euler_to_matrix, matrix_to_euler, matrix_to_rotation_6d, rotation_6d_to_matrix
from fitter.geometry.soft_raster import masks_to_resolution, soft_silhouettes
from fitter.geometry.visibility import zbuffer_visibility
from fitter.geometry.zbuffer import rasterize_depth, splat_depth

__all__ = [
    "MODEL_TO_CAMERA",
    "default_focal",
    "euler_to_matrix",
    "farthest_point_sample",
    "label_support",
    "lumped_point_weights",
    "masks_to_resolution",
    "matrix_to_euler",
    "matrix_to_rotation_6d",
    "model_to_camera",
    "model_to_camera_flip",
    "part_iou",
    "project_perspective",
    "project_weak",
    "rasterize_depth",
    "rasterize_labels",
    "rotation_6d_to_matrix",
    "soft_silhouettes",
    "splat_depth",
    "triangle_areas_2d",
    "triangle_labels",
    "zbuffer_visibility",
]
