"""A headless shaded render of the posed mesh (CPU, no OpenGL): z-buffer + flat Lambert shading.

The light sits at the camera (a headlight), so a face turned towards the camera is brightest.
Shading is two-sided (|n · view|) so it does not depend on the triangle winding.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
import torch

from fitter.geometry.zbuffer import rasterize_depth

#: RGB of the rendered surface (a neutral clay colour).
CLAY = (228, 214, 200)


def face_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """[F, 3] unit normals of triangles ([V, 3] vertices, [F, 3] indices); zero for degenerate ones."""
    v = np.asarray(vertices, dtype=np.float64)[np.asarray(triangles)]
    n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return np.where(norm > 0, n / np.maximum(norm, 1e-300), 0.0)


def render_shaded(points_img: np.ndarray, vertices_camera: np.ndarray, triangles: np.ndarray,
                  size: Tuple[int, int], color: Tuple[int, int, int] = CLAY,
                  ambient: float = 0.25) -> Tuple[np.ndarray, np.ndarray]:
    """Render a mesh as seen by the fitting camera.

    Args:
        points_img: [V, 2] projected vertices, pixels of the output image (x, y).
        vertices_camera: [V, 3] camera-space vertices (OpenCV axes; z = depth, smaller = nearer).
        triangles: [F, 3] vertex indices.
        size: (W, H) of the output.
        color: RGB of the surface.
        ambient: light level of a surface seen edge-on (0..1).
    Returns:
        rgb [H, W, 3] uint8 (black where empty) and mask [H, W] bool (covered pixels).
    """
    W, H = int(size[0]), int(size[1])
    pts = torch.as_tensor(np.asarray(points_img, dtype=np.float32))[None]
    depth = torch.as_tensor(np.asarray(vertices_camera, dtype=np.float32)[:, 2])[None]
    tris = torch.as_tensor(np.asarray(triangles, dtype=np.int64))
    _, face = rasterize_depth(pts, depth, tris, (W, H))
    face = face[0].numpy()
    mask = face >= 0
    n = face_normals(vertices_camera, triangles)
    # The camera looks along +z; the view vector from a surface point to the camera is ~ -z.
    light = ambient + (1.0 - ambient) * np.abs(n[:, 2])
    shade = np.zeros((H, W), dtype=np.float64)
    shade[mask] = light[face[mask]]
    rgb = (shade[..., None] * np.asarray(color, dtype=np.float64)).clip(0, 255).astype(np.uint8)
    return rgb, mask
