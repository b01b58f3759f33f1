"""``parts.png``: the part label map of the reprojected fit at the photo's size.

Values: 0 background (or a mesh region outside the 8 parts, e.g. neck and ears), i + 1 =
``PART_NAMES[i]`` (1 right eye, 2 left eye, 3 right brow, 4 left brow, 5 nose, 6 upper lip,
7 lower lip, 8 skin; right/left = the person's own). The mesh triangles and the model's
``hole_triangles`` (eye openings) are z-buffered, so hidden parts do not show.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
import torch

from fitter.geometry.raster import face_labels
from fitter.geometry.zbuffer import rasterize_depth
from fitter.outputs.fitted_mesh import check_result_matches_model
from fitter.result import FitResult
from morphable_models.model import MorphableModel

#: most pixels rasterized at once for parts.png, and most (triangle, pixel) pairs the z-buffer
#: holds at once (about 100 bytes each): together they bound the memory a huge photo costs
BAND_PIXELS = 4_000_000
MAX_PAIRS = 1 << 20


def original_size(result: FitResult) -> Tuple[int, int]:
    """(width, height) of the photo the fit belongs to (the crop itself when targets are unknown)."""
    if result.targets is not None:
        w, h = result.targets.crop.original_size
    else:
        w, h = result.camera.width, result.camera.height
    return int(w), int(h)


def points_in_original(result: FitResult, scale: float = 1.0) -> np.ndarray:
    """[V, 2] float64 projected points in pixels of the photo resized by ``scale``.

    Pixel centres are at integer coordinates in every image, so resizing maps
    ``x -> (x + 0.5) * scale - 0.5`` (the convention of cv2.resize).
    """
    pts = np.asarray(result.vertices_image, dtype=np.float64)
    if result.targets is not None:
        pts = result.targets.crop.to_original(pts)
    return (pts + 0.5) * scale - 0.5


def scaled_size(size: Tuple[int, int], scale: float) -> Tuple[int, int]:
    """(W, H) resized by ``scale`` (at least 1 pixel per side)."""
    return max(1, int(round(size[0] * scale))), max(1, int(round(size[1] * scale)))


def part_label_map(result: FitResult, model: MorphableModel, scale: float = 1.0) -> np.ndarray:
    """[H, W] uint8 label map of the fit over the photo (H, W = original size × ``scale``).

    Args:
        result: a fit of ``model``.
        model: the model fitted (its triangles, hole triangles and part labels are used).
        scale: output pixels per original pixel.
    """
    check_result_matches_model(result, model)
    W, H = scaled_size(original_size(result), scale)
    tris, tri_lab = model.all_triangles.cpu(), model.triangle_part_labels.cpu()
    pts = points_in_original(result, scale)
    out = np.zeros((H, W), dtype=np.uint8)
    # Rasterize only the window the mesh covers (a huge photo's full-size z-buffer would take
    # gigabytes; the face is a small part of it), then paste it into the map.
    finite = pts[np.all(np.isfinite(pts), axis=1)]
    if len(finite) == 0:
        return out
    x0, y0 = (max(0, int(np.floor(v))) for v in finite.min(axis=0))
    x1, y1 = min(W, int(np.ceil(finite[:, 0].max())) + 1), min(H, int(np.ceil(finite[:, 1].max())) + 1)
    if x1 <= x0 or y1 <= y0:
        return out
    depth = torch.from_numpy(np.asarray(result.vertices_camera, dtype=np.float32)[:, 2])
    # ... in bands of at most BAND_PIXELS, so a face filling a huge photo stays bounded too
    band = max(1, BAND_PIXELS // (x1 - x0))
    for top in range(y0, y1, band):
        h = min(band, y1 - top)
        local = torch.from_numpy(pts - np.array([x0, top], dtype=np.float64)).to(torch.float32)
        _, face = rasterize_depth(local[None], depth[None], tris, (x1 - x0, h), max_candidates=MAX_PAIRS)
        labels = face_labels(face, tri_lab)[0]
        out[top:top + h, x0:x1] = labels.to(torch.uint8).numpy()
    return out
