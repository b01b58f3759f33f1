"""The fitting crop: a square around the face, resized to ``size`` (224 by default).

The square is centred on the 68-landmark box, nudged up by ``shift`` (the landmarks stop at the
brows; the forehead is above them), with side ``(1 + 2 * margin)`` times the box's longer side.
:class:`fitter.targets.types.CropTransform` maps points both ways; :func:`warp_to_crop` /
:func:`warp_labels` resample images and label maps.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from fitter.targets.types import CropTransform, quarter_turn

Box = Tuple[float, float, float, float]


def landmark_box(landmarks68: np.ndarray, valid: Optional[np.ndarray] = None) -> Box:
    """(x0, y0, x1, y1) box of the valid landmarks [68, 2]."""
    lm = np.asarray(landmarks68, dtype=np.float64)
    if valid is not None:
        lm = lm[np.asarray(valid, dtype=bool)]
    if lm.shape[0] == 0:
        raise ValueError("no valid landmarks to box")
    return float(lm[:, 0].min()), float(lm[:, 1].min()), float(lm[:, 0].max()), float(lm[:, 1].max())


def square_crop(box: Box, original_size: Tuple[int, int], size: int = 224, margin: float = 0.3,
                shift: float = 0.1) -> CropTransform:
    """Square crop around a face box, resized to ``size`` x ``size``.

    Args:
        box: (x0, y0, x1, y1) face box, original pixels (e.g. :func:`landmark_box`).
        original_size: (width, height) of the photo.
        size: output side in pixels.
        margin: extra room on each side, as a fraction of the box's longer side.
        shift: move the centre up by this fraction of the longer side.
    Returns:
        :class:`CropTransform` with ``crop = scale * original + offset``; pixel centres map to pixel
        centres (the crop may reach outside the photo; warping pads by edge replication).
    """
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0, 1e-6)
    cx = 0.5 * (x0 + x1)
    cy = 0.5 * (y0 + y1) - shift * side
    full = side * (1.0 + 2.0 * margin)
    s = size / full
    # The crop's pixel centre (size - 1) / 2 sits on the box centre.
    off = ((size - 1) / 2.0 - s * cx, (size - 1) / 2.0 - s * cy)
    return CropTransform(scale=float(s), offset=(float(off[0]), float(off[1])), size=(int(size), int(size)),
                         original_size=(int(original_size[0]), int(original_size[1])))


def rescale_transform(crop: CropTransform, k: float, original_size: Tuple[int, int]) -> CropTransform:
    """Re-base a crop defined on an image that is ``k`` times the original (``xy_img = k * xy_orig``)
    onto the original: ``crop = scale * R @ (k * orig) + offset``."""
    return CropTransform(scale=crop.scale * k, offset=crop.offset, size=crop.size,
                         original_size=(int(original_size[0]), int(original_size[1])), rotation=crop.rotation)


def compose(outer: CropTransform, inner: CropTransform) -> CropTransform:
    """``outer`` after ``inner`` (inner: original -> A, outer: A -> B) as one original -> B transform."""
    off = outer.to_crop(np.asarray(inner.offset, dtype=np.float64))
    return CropTransform(scale=outer.scale * inner.scale, offset=(float(off[0]), float(off[1])), size=outer.size,
                         original_size=inner.original_size, rotation=(outer.rotation + inner.rotation) % 4)


def rot90_transform(width: int, height: int, k: int) -> CropTransform:
    """The pixel map of ``np.rot90(image, k)`` for a ``width`` x ``height`` image: original pixel
    (x, y) -> pixel of the turned copy (pixel centres to pixel centres)."""
    k %= 4
    R = quarter_turn(k).astype(np.float64)
    # the turned copy's corners: pick the offset that maps the image's pixel-centre box onto [0, W'-1] x [0, H'-1]
    corners = np.array([[0, 0], [width - 1, 0], [0, height - 1], [width - 1, height - 1]], dtype=np.float64) @ R.T
    off = -corners.min(axis=0)
    size = (width, height) if k % 2 == 0 else (height, width)
    return CropTransform(scale=1.0, offset=(float(off[0]), float(off[1])), size=size,
                         original_size=(int(width), int(height)), rotation=k)


def warp_to_crop(rgb: np.ndarray, crop: CropTransform) -> np.ndarray:
    """[h, w, C] resampling of ``rgb`` [H, W, C] through ``crop`` (bilinear, edge replicated;
    area-averaged first when shrinking by more than 2x)."""
    import cv2

    w, h = crop.size
    src = rgb
    M = crop.matrix()
    # Shrinking by more than 2x: pre-shrink with area averaging to avoid aliasing.
    if crop.scale < 0.5:
        f = max(1, int(1.0 / crop.scale) // 2)
        if f > 1:
            src = cv2.resize(rgb, (max(1, rgb.shape[1] // f), max(1, rgb.shape[0] // f)), interpolation=cv2.INTER_AREA)
            kx, ky = src.shape[1] / rgb.shape[1], src.shape[0] / rgb.shape[0]
            # map pixel centres: x_small = (x + 0.5) * k - 0.5
            A = np.array([[1 / kx, 0, 0.5 / kx - 0.5], [0, 1 / ky, 0.5 / ky - 0.5], [0, 0, 1]])
            M = M @ A
    return cv2.warpAffine(src, M, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def warp_labels(labels: np.ndarray, crop: CropTransform, fill: int = 0) -> np.ndarray:
    """[h, w] nearest-neighbour resampling of a label map through ``crop`` (outside -> ``fill``)."""
    import cv2

    w, h = crop.size
    return cv2.warpAffine(np.ascontiguousarray(labels, dtype=np.uint8), crop.matrix(), (w, h),
                          flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=int(fill))


def labels_to_original(labels: np.ndarray, crop: CropTransform) -> np.ndarray:
    """[H, W] label map in original pixels from a crop-frame label map (nearest neighbour)."""
    import cv2

    W, H = crop.original_size
    inv = cv2.invertAffineTransform(crop.matrix())
    return cv2.warpAffine(np.ascontiguousarray(labels, dtype=np.uint8), inv, (W, H), flags=cv2.INTER_NEAREST,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
