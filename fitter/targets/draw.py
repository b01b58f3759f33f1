"""Overlay of fitting targets for humans: the crop with coloured part masks, point sets C_p,
landmarks, the forehead cut and the hatched occlusion mask."""
from __future__ import annotations

import numpy as np

from fitter.palette import PART_COLORS
from fitter.targets.types import Targets
from morphable_models.model import PART_NAMES


def draw_targets(targets: Targets, upscale: int = 2, mask_alpha: float = 0.35, points: bool = True,
                 landmarks: bool = True) -> np.ndarray:
    """Render an overlay of ``targets``.

    Args:
        targets: the targets of one face.
        upscale: integer magnification of the crop (thin lines stay readable).
        mask_alpha: opacity of the part colours.
        points, landmarks: draw the point sets / the 68 landmarks (numbered corners 36, 45).
    Returns:
        [H * upscale, W * upscale, 3] uint8 RGB image.
    """
    import cv2

    W, H = targets.crop.size
    u = max(1, int(upscale))
    base = targets.image if targets.image is not None else np.full((H, W, 3), 96, np.uint8)
    img = base.astype(np.float32)
    for i, name in enumerate(PART_NAMES):
        m = targets.part_masks == i + 1
        img[m] = (1 - mask_alpha) * img[m] + mask_alpha * PART_COLORS[i + 1].astype(np.float32)
    out = cv2.resize(np.clip(img, 0, 255).astype(np.uint8), (W * u, H * u), interpolation=cv2.INTER_NEAREST)

    # occlusion: diagonal hatching
    occ = cv2.resize(targets.occlusion.astype(np.uint8), (W * u, H * u), interpolation=cv2.INTER_NEAREST) > 0
    yy, xx = np.mgrid[0:H * u, 0:W * u]
    hatch = occ & (((xx + yy) // 3) % 4 == 0)
    out[hatch] = (255, 255, 255)
    edges = cv2.morphologyEx(occ.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    out[edges] = (200, 200, 200)

    if points:
        for i, name in enumerate(PART_NAMES):
            col = tuple(int(c * 0.6) for c in PART_COLORS[i + 1])
            for x, y in targets.part_points[name]:
                cv2.circle(out, (int(round((x + 0.5) * u - 0.5)), int(round((y + 0.5) * u - 0.5))), 0, col, -1)

    line = targets.forehead_line
    if line is not None:
        a, b, c = (float(v) for v in line)
        pts = []
        if abs(b) > 1e-6:
            for x in (0.0, W - 1.0):
                pts.append((x, -(a * x + c) / b))
        else:
            for y in (0.0, H - 1.0):
                pts.append((-c / a, y))
        p0, p1 = [(int(round((x + 0.5) * u - 0.5)), int(round((y + 0.5) * u - 0.5))) for x, y in pts]
        cv2.line(out, p0, p1, (255, 255, 0), 1, cv2.LINE_AA)

    if landmarks:
        for k, ((x, y), ok) in enumerate(zip(targets.landmarks, targets.landmark_valid)):
            if not ok:
                continue
            p = (int(round((x + 0.5) * u - 0.5)), int(round((y + 0.5) * u - 0.5)))
            cv2.drawMarker(out, p, (255, 255, 255), cv2.MARKER_CROSS, 3 * u, 1)
            cv2.circle(out, p, 1, (255, 0, 0), -1)
    return out

