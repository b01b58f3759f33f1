"""Default backend: MediaPipe face detection + face mesh -> boxes, 68 landmarks, part labels.

Everything it needs ships inside the ``mediapipe`` wheel (Apache-2.0), so it works offline on a
fresh machine. Landmarks come from the mesh through :mod:`fitter.targets.mediapipe_68`; part
labels from mesh polygons (:mod:`fitter.targets.mesh_parts`) corrected with the photo's colours
(:mod:`fitter.targets.skin_refine`: forehead up to the hairline, hair over the upper face). Both read
the mesh after its lids' opening is calibrated (:mod:`fitter.targets.mediapipe_lids`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

from fitter.targets import mesh_parts, skin_refine
from fitter.targets.crop import warp_to_crop
from fitter.targets.face import FaceAnalysis
from fitter.targets.mediapipe_68 import mesh_to_ibug68
from fitter.targets.mediapipe_lids import close_lids, lid_opening_map
from fitter.targets.mediapipe_mesh import face_meshes, mesh_box
from fitter.targets.mediapipe_views import views_named
from fitter.targets.types import CropTransform
from morphable_models.mediapipe_topology import BROW_GROW, EYE_SHRINK


@dataclass
class MeshPartsConfig:
    """Tuning of the mesh -> label map step (defaults tuned on CelebAMask-HQ samples).

    Attributes:
        brow_grow: brow polygon widening, fraction of the brow height per side.
        eye_shrink: eye polygon inset, fraction of the inter-ocular distance.
        forehead_reach: search for forehead skin up to this many oval-top-to-brow distances above
            the oval top; 0 disables the photo-guided forehead.
        skin_max_dist: colour distance below which a forehead pixel is skin.
        hair_min_dist: colour distance above which a pixel of the upper face is hair; <= 0 disables.
    """

    brow_grow: float = BROW_GROW
    eye_shrink: float = EYE_SHRINK
    forehead_reach: float = 1.0
    skin_max_dist: float = 3.0
    hair_min_dist: float = 6.0


def mesh_label_map(rgb_crop: np.ndarray, mesh_crop: np.ndarray, config: MeshPartsConfig = MeshPartsConfig()) -> np.ndarray:
    """Label map of one face from its mesh, in the frame of ``rgb_crop``.

    Args:
        rgb_crop: [h, w, 3] uint8 image in the output frame.
        mesh_crop: [478, 3] mesh in pixels of that frame.
    Returns:
        [h, w] uint8 labels (:mod:`fitter.targets.labels`).
    """
    h, w = rgb_crop.shape[:2]
    labels = mesh_parts.rasterize_mesh_parts(mesh_crop, (w, h), brow_grow=config.brow_grow,
                                             eye_shrink=config.eye_shrink)
    if config.forehead_reach <= 0 and config.hair_min_dist <= 0:
        return labels
    lab = skin_refine.to_lab(rgb_crop)
    model = skin_refine.skin_color_model(lab, mesh_crop)
    dist = skin_refine.skin_distance(lab, model)
    if config.hair_min_dist > 0:
        labels = skin_refine.hair_over_face(labels, dist, mesh_crop, config.hair_min_dist,
                                            max(config.forehead_reach, 0.0))
    if config.forehead_reach > 0:
        labels = skin_refine.extend_forehead(labels, dist, mesh_crop, config.forehead_reach, config.skin_max_dist)
    return labels


class MediapipeParser:
    """Face parser ``mediapipe`` (see the module docstring)."""

    name = "mediapipe"

    def __init__(self, min_score: float = 0.5, parts: MeshPartsConfig = MeshPartsConfig(), views: str = "averaged",
                 lids: str = "calibrated"):
        self.min_score = min_score
        self.parts = parts
        self.views = views_named(views)
        self.lids = lid_opening_map(lids)

    def detect(self, rgb: np.ndarray, max_faces: int) -> List[FaceAnalysis]:
        out = []
        for det, mesh in face_meshes(rgb, max_faces=max_faces, min_score=self.min_score, views=self.views):
            mesh = close_lids(mesh, self.lids)
            lm = mesh_to_ibug68(mesh)
            out.append(FaceAnalysis(box=mesh_box(mesh), score=det.score, landmarks68=lm,
                                    landmark_valid=np.ones(68, dtype=bool), mesh=mesh, backend=self.name))
        return out

    def parse(self, rgb: np.ndarray, face: FaceAnalysis, crop: CropTransform) -> np.ndarray:
        if face.mesh is None:
            raise ValueError("the mediapipe parser needs a face found by its own detect()")
        mesh = face.mesh.copy()
        mesh[:, :2] = crop.to_crop(face.mesh[:, :2])
        mesh[:, 2] = face.mesh[:, 2] * crop.scale
        return mesh_label_map(warp_to_crop(rgb, crop), mesh, self.parts)


class MediapipeLandmarks:
    """Landmark source ``mediapipe``: the 68 points derived from the face mesh."""

    name = "mediapipe"

    def __init__(self, views: str = "averaged", lids: str = "calibrated"):
        self.views = views_named(views)
        self.lids = lid_opening_map(lids)

    def landmarks(self, rgb: np.ndarray, face: FaceAnalysis, source: str, scale: float = 1.0) -> Tuple[np.ndarray, np.ndarray]:
        if face.mesh is not None:
            return mesh_to_ibug68(face.mesh), np.ones(68, dtype=bool)
        # A face from another detector: run the mesh inside its box.
        from fitter.targets.mediapipe_mesh import mesh_in_box

        mesh = mesh_in_box(rgb, face.box, views=self.views)
        if mesh is None:
            return np.zeros((68, 2)), np.zeros(68, dtype=bool)
        return mesh_to_ibug68(close_lids(mesh, self.lids)), np.ones(68, dtype=bool)


__all__ = ["MeshPartsConfig", "MediapipeParser", "MediapipeLandmarks", "mesh_label_map"]
