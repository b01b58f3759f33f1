"""Loss terms of the fit: pure tensor functions, batch first (see each module).

``farthest_point_sample`` is re-exported from :mod:`fitter.geometry.sampling` (where it lives).
"""
from fitter.geometry.sampling import farthest_point_sample
from fitter.losses.landmarks import (
    EYE_PAIRS,
    JAW_WEIGHT,
    LIP_PAIRS,
    closure_loss,
    default_landmark_weights,
    fade_jaw_weights,
    landmark_loss,
    march_contour_landmarks,
)
from fitter.losses.photometric import photometric_loss, sample_image, sh_basis, sh_shading, vertex_normals
from fitter.losses.point_sets import pad_point_sets
from fitter.losses.prdl import (
    compact_point_sets,
    make_anchors,
    prdl_descriptors,
    prdl_descriptors_naive,
    prdl_loss,
    prdl_part_losses,
)
from fitter.losses.priors import PROFILE_YAW_DEG, gaussian_prior, l1_prior, l2_prior, profile_factor, profile_ramp
from fitter.losses.segmentation import (
    chamfer_loss,
    dcd_loss,
    icp_p2t_loss,
    icp_t2p_loss,
    nearest_neighbors,
    soft_iou_loss,
)
from fitter.losses.shading import SHADING_TRIANGLES, ShadingTable, point_weights, shading_loss, solve_light

__all__ = [
    "SHADING_TRIANGLES",
    "ShadingTable",
    "EYE_PAIRS",
    "JAW_WEIGHT",
    "LIP_PAIRS",
    "PROFILE_YAW_DEG",
    "closure_loss",
    "compact_point_sets",
    "chamfer_loss",
    "dcd_loss",
    "default_landmark_weights",
    "fade_jaw_weights",
    "farthest_point_sample",
    "gaussian_prior",
    "l1_prior",
    "icp_p2t_loss",
    "icp_t2p_loss",
    "l2_prior",
    "landmark_loss",
    "make_anchors",
    "march_contour_landmarks",
    "nearest_neighbors",
    "pad_point_sets",
    "photometric_loss",
    "point_weights",
    "prdl_descriptors",
    "prdl_descriptors_naive",
    "prdl_loss",
    "prdl_part_losses",
    "profile_factor",
    "profile_ramp",
    "sample_image",
    "sh_basis",
    "sh_shading",
    "shading_loss",
    "soft_iou_loss",
    "solve_light",
    "vertex_normals",
]
