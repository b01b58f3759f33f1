"""``overlay.png``: three panels side by side, each the photo's size (scaled to ``max_height``).

1. the input photo;
2. the photo blended with the reprojected part colours, the fitted landmarks (green) and the target
   landmarks (red);
3. the shaded posed mesh over the photo.
"""
from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from fitter.outputs.mesh_render import render_shaded
from fitter.outputs.parts_map import original_size, part_label_map, points_in_original, scaled_size
from fitter.palette import FIT_LANDMARK_COLOR, TARGET_LANDMARK_COLOR, label_colors
from fitter.result import FitResult
from morphable_models.model import MorphableModel

#: opacity of the part colours in panel 2
PART_ALPHA = 0.45


def _to_display(xy: np.ndarray, scale: float) -> np.ndarray:
    return (np.asarray(xy, dtype=np.float64) + 0.5) * scale - 0.5


def _draw_points(img: np.ndarray, xy: np.ndarray, color, radius: int) -> None:
    for x, y in np.asarray(xy):
        if np.isfinite(x) and np.isfinite(y):
            cv2.circle(img, (int(round(x)), int(round(y))), radius, color, -1, lineType=cv2.LINE_AA)


def parts_panel(image: np.ndarray, labels: np.ndarray, fit_landmarks: np.ndarray,
                target_landmarks: Optional[np.ndarray] = None) -> np.ndarray:
    """Photo blended with part colours, with landmarks drawn.

    Args:
        image: [H, W, 3] uint8 RGB.
        labels: [H, W] uint8 part labels (0 = none).
        fit_landmarks: [68, 2] pixels of ``image``.
        target_landmarks: [K, 2] pixels of ``image`` or None.
    """
    out = image.astype(np.float64)
    on = labels > 0
    out[on] = (1 - PART_ALPHA) * out[on] + PART_ALPHA * label_colors(labels[on]).astype(np.float64)
    out = out.clip(0, 255).astype(np.uint8)
    r = max(1, int(round(min(image.shape[:2]) / 200)))
    if target_landmarks is not None:
        _draw_points(out, target_landmarks, TARGET_LANDMARK_COLOR, r)
    _draw_points(out, fit_landmarks, FIT_LANDMARK_COLOR, r)
    return out


def overlay_image(result: FitResult, model: MorphableModel, image: Optional[np.ndarray] = None,
                  max_height: int = 512) -> np.ndarray:
    """The three-panel overlay, [h, 3 w, 3] uint8 RGB.

    Args:
        result: a fit of ``model``.
        image: [H, W, 3] uint8 RGB photo, at the crop's ``original_size`` or resized with the same
            aspect ratio (huge photos come back downscaled from ``load_image``); None = grey.
        max_height: panels taller than this are scaled down (never up).
    """
    W0, H0 = original_size(result)
    scale = min(1.0, max_height / float(H0))
    W, H = scaled_size((W0, H0), scale)
    if image is None:
        photo = np.full((H, W, 3), 128, dtype=np.uint8)
    else:
        h, w = image.shape[:2]
        if image.ndim != 3 or image.shape[2] != 3 or abs(w * H0 - h * W0) > 0.02 * w * H0:
            raise ValueError(f"image is {w}x{h} but the fit's photo is {W0}x{H0}")
        photo = image if (w, h) == (W, H) else cv2.resize(image, (W, H), interpolation=cv2.INTER_AREA)

    labels = part_label_map(result, model, scale)
    target_lmk = None
    t = result.targets
    if t is not None:
        target_lmk = _to_display(t.crop.to_original(t.landmarks[np.asarray(t.landmark_valid, bool)]), scale)
    fit_lmk = _to_display(result.landmarks2d_original(), scale)
    panel2 = parts_panel(photo, labels, fit_lmk, target_lmk)

    n = model.num_mesh_vertices
    pts = points_in_original(result, scale)[:n]
    rgb, mask = render_shaded(pts, np.asarray(result.vertices_camera)[:n], model.triangles.cpu().numpy(), (W, H))
    panel3 = photo.copy()
    panel3[mask] = rgb[mask]
    return np.concatenate([photo, panel2, panel3], axis=1)
