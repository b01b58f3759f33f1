"""What the image front end hands to the optimizer: one :class:`Targets` per face.

Coordinates are (x, y) pixels of the *fitting crop* (``crop.size``, 224×224 by default), x right,
y down, pixel centres at integer coordinates. :class:`CropTransform` maps them back to the
original photo.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import numpy as np

from morphable_models.model import PART_NAMES


def quarter_turn(k: int) -> np.ndarray:
    """[2, 2] int rotation of (x, y) image coordinates (y down) by ``k`` quarter turns, the way
    ``np.rot90(image, k)`` turns the picture (counter-clockwise as displayed): k=1 maps
    (x, y) -> (y, -x)."""
    return np.linalg.matrix_power(np.array([[0, 1], [-1, 0]], dtype=np.int64), int(k) % 4)


@dataclass
class CropTransform:
    """Similarity crop: ``crop_xy = scale * R @ orig_xy + offset``, R a quarter-turn rotation.

    Attributes:
        scale: crop pixels per original pixel.
        offset: (2,) crop-pixel offset.
        size: (width, height) of the crop in pixels.
        original_size: (width, height) of the original (EXIF-rotated) image.
        rotation: R = :func:`quarter_turn` (rotation): 0 for an upright face; 1-3 when the face
            was found in the photo turned by ``np.rot90(photo, rotation)`` (a face upside down in
            the photo has rotation 2), so the crop shows it upright.
    """

    scale: float
    offset: Tuple[float, float]
    size: Tuple[int, int]
    original_size: Tuple[int, int]
    rotation: int = 0

    def _R(self) -> np.ndarray:
        return quarter_turn(self.rotation).astype(np.float64)

    def to_original(self, xy: np.ndarray) -> np.ndarray:
        """[..., 2] crop pixels -> original pixels."""
        q = (np.asarray(xy, dtype=np.float64) - np.asarray(self.offset)) / self.scale
        return q if self.rotation % 4 == 0 else q @ self._R()  # R^-1 = R^T: (R^T q^T)^T = q R

    def to_crop(self, xy: np.ndarray) -> np.ndarray:
        """[..., 2] original pixels -> crop pixels."""
        p = np.asarray(xy, dtype=np.float64)
        if self.rotation % 4:
            p = p @ self._R().T
        return p * self.scale + np.asarray(self.offset)

    def matrix(self) -> np.ndarray:
        """[2, 3] affine original -> crop (for cv2.warpAffine)."""
        M = np.zeros((2, 3), dtype=np.float64)
        M[:, :2] = self.scale * self._R()
        M[:, 2] = self.offset
        return M

    @classmethod
    def identity(cls, width: int, height: int) -> "CropTransform":
        return cls(1.0, (0.0, 0.0), (width, height), (width, height))


@dataclass
class Targets:
    """Fitting targets of one face (all coordinates in crop pixels, float32).

    Attributes:
        landmarks: [68, 2] iBUG-68 landmarks.
        landmark_valid: [68] bool; False for points the detector could not give.
        part_points: part name (PART_NAMES) -> [N_p, 2] target point set C_p after preprocessing
            (ears removed, noise filtered, forehead cut, thinned); an empty [0, 2] array = part absent.
        part_point_weights: part name -> [N_p] mask pixels each point stands for (1 everywhere
            unless the set was thinned), used as the weights of PRDL's mean distance; None = all 1.
        part_outline: part name -> [K_p, 2] outline of the part's pixel region (midpoints of the
            edges between its pixels and the rest, see ``preprocess.mask_outline``): PRDL's f_min
            and f_max also reach these points, its f_ave does not; None = pixel centres only.
        part_masks: [H, W] uint8 label map of the cleaned targets (0 background, i + 1 = PART_NAMES[i]).
        occlusion: [H, W] bool, True where hair or another occluder covers the face: predicted points
            that land there are dropped.
        forehead_line: (3,) line (a, b, c) in crop pixels; a predicted skin point (x, y) is kept only
            where a*x + b*y + c >= 0 (below the dynamic forehead cut). None = no cut.
        crop: the crop transform (original photo <-> crop).
        image: [H, W, 3] uint8 RGB crop (for the photometric term and overlays), or None.
        mesh_points: [N, 2] the front end's dense face mesh (MediaPipe: its 478 points), crop pixels,
            or None (other front ends, synthetic targets): the targets of the ``mesh_lmk`` term.
        source: path or name of the photo.
        face_index: which detected face of the photo (0 = largest).
        meta: free-form provenance (backend names, detector score, ...), JSON-serializable.
    """

    landmarks: np.ndarray
    landmark_valid: np.ndarray
    part_points: Dict[str, np.ndarray]
    part_masks: np.ndarray
    occlusion: np.ndarray
    crop: CropTransform
    forehead_line: Optional[np.ndarray] = None
    image: Optional[np.ndarray] = None
    part_point_weights: Optional[Dict[str, np.ndarray]] = None
    part_outline: Optional[Dict[str, np.ndarray]] = None
    mesh_points: Optional[np.ndarray] = None
    source: str = ""
    face_index: int = 0
    meta: Dict[str, object] = field(default_factory=dict)

    @property
    def size(self) -> Tuple[int, int]:
        """(width, height) of the fitting crop."""
        return self.crop.size

    def present_parts(self) -> Dict[str, bool]:
        return {p: len(self.part_points.get(p, ())) > 0 for p in PART_NAMES}

    def validate(self) -> None:
        """Raise ValueError naming the first malformed field (shapes, NaN)."""
        W, H = self.crop.size
        if self.landmarks.shape != (68, 2):
            raise ValueError(f"landmarks must be [68, 2], got {self.landmarks.shape}")
        if not np.all(np.isfinite(self.landmarks[self.landmark_valid])):
            raise ValueError("landmarks contain NaN or inf")
        if set(self.part_points) != set(PART_NAMES):
            raise ValueError(f"part_points must be keyed {PART_NAMES}")
        for p, pts in self.part_points.items():
            if pts.ndim != 2 or pts.shape[1] != 2:
                raise ValueError(f"part_points[{p}] must be [N, 2], got {pts.shape}")
            if not np.all(np.isfinite(pts)):
                raise ValueError(f"part_points[{p}] contains NaN or inf")
        for p, w in (self.part_point_weights or {}).items():
            if p not in self.part_points or np.shape(w) != (len(self.part_points[p]),):
                raise ValueError(f"part_point_weights[{p}] must be [{len(self.part_points.get(p, ()))}]")
            if not np.all(np.isfinite(w)) or np.any(np.asarray(w) < 0):
                raise ValueError(f"part_point_weights[{p}] must be finite and >= 0")
        for p, pts in (self.part_outline or {}).items():
            if p not in self.part_points or np.ndim(pts) != 2 or np.shape(pts)[1] != 2:
                raise ValueError(f"part_outline[{p}] must be [K, 2] and keyed like part_points")
            if not np.all(np.isfinite(pts)):
                raise ValueError(f"part_outline[{p}] contains NaN or inf")
        if self.mesh_points is not None and (np.ndim(self.mesh_points) != 2 or np.shape(self.mesh_points)[1] != 2
                                             or not np.all(np.isfinite(self.mesh_points))):
            raise ValueError(f"mesh_points must be finite [N, 2], got {np.shape(self.mesh_points)}")
        if self.part_masks.shape != (H, W) or self.occlusion.shape != (H, W):
            raise ValueError(f"part_masks/occlusion must be [{H}, {W}]")
