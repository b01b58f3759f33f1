"""Contour lines for landmark marching, derived from a mesh.

For each jaw landmark j (0..16) we collect a horizontal line of face vertices at the landmark's
height, on its side of the face, running from part-way towards the nose out past the frontal
silhouette to the front of the ear. The optimizer's landmark marching picks on each line the
vertex furthest out along the jaw's outward normal in the current projection (the silhouette in
the current pose; :func:`fitter.losses.landmarks.march_contour_landmarks`). Lines are ordered from
the inner face outwards by the angle around a vertical axis behind the face, so a line that wraps
around the cheek stays in surface order. The chin (8) has only its own vertex.
"""
from __future__ import annotations

from typing import List, Tuple

import numpy as np

from morphable_models.parts import PartRules, inter_ocular

CHIN = 8


def line_frame(vertices: np.ndarray, landmark_index: np.ndarray) -> Tuple[float, float, float]:
    """(x of the face midline, z of the vertical axis behind the face, inter-ocular distance) of a mesh."""
    lm = vertices[landmark_index]
    half_width = 0.5 * (lm[16, 0] - lm[0, 0])
    return float(lm[27, 0]), float(lm[[0, 16], 2].mean() - half_width), float(inter_ocular(lm))


def contour_line(vertices: np.ndarray, own: int, face: np.ndarray, frame: Tuple[float, float, float],
                 max_len: int = 16, band: float = 0.04, inner: float = 0.4) -> np.ndarray:
    """[L] candidate vertices of one jaw landmark's line, inner to outer (see :func:`contour_candidates`).

    Args:
        own: the landmark's vertex on the neutral mesh (always in the line; it fixes the height).
        face: int indices of the vertices the line may use. frame: :func:`line_frame`.
    """
    x_mid, z_axis, iod = frame
    face = np.asarray(face, dtype=np.int64)
    p = vertices[face]
    here = vertices[own]
    side = np.sign(here[0] - x_mid)
    dist = abs(here[0] - x_mid)
    sel = ((np.sign(p[:, 0] - x_mid) == side) & (np.abs(p[:, 1] - here[1]) <= band * iod)
           & (np.abs(p[:, 0] - x_mid) >= inner * dist) & (face != own))
    cand = face[sel]
    if len(cand) == 0:
        return np.array([own], dtype=np.int64)
    ang = np.arctan2(np.abs(p[sel, 0] - x_mid), p[sel, 2] - z_axis)
    dy = np.abs(p[sel, 1] - here[1])
    own_angle = float(np.arctan2(dist, here[2] - z_axis))
    lo, hi = min(ang.min(), own_angle), max(ang.max(), own_angle)
    edges = np.linspace(lo, hi, max_len + 1)
    b = np.clip(np.searchsorted(edges, ang, side="right") - 1, 0, max_len - 1)
    own_bin = int(np.clip(np.searchsorted(edges, own_angle, side="right") - 1, 0, max_len - 1))
    picked = []
    for k in range(max_len):
        if k == own_bin:
            picked.append((own_angle, own))
            continue
        in_bin = np.flatnonzero(b == k)
        if len(in_bin):
            best = in_bin[np.lexsort((cand[in_bin], dy[in_bin]))[0]]
            picked.append((float(ang[best]), int(cand[best])))
    picked.sort()
    return np.array([v for _, v in picked], dtype=np.int64)


def pad_lines(rows: List[np.ndarray]) -> np.ndarray:
    """[17, L] int64 of per-landmark lines, padded with -1 to the longest."""
    L = max(len(r) for r in rows)
    out = np.full((len(rows), L), -1, dtype=np.int64)
    for j, r in enumerate(rows):
        out[j, :len(r)] = r
    return out


def contour_candidates(vertices: np.ndarray, landmark_index: np.ndarray, face: np.ndarray,
                       rules: PartRules = PartRules(), max_len: int = 16, band: float = 0.04,
                       inner: float = 0.4) -> np.ndarray:
    """[17, L] candidate vertices per jaw landmark, inner to outer, padded with -1.

    Args:
        vertices: [V, 3] neutral mesh vertices (project conventions).
        landmark_index: [68] landmark vertex indices.
        face: int indices of the vertices a line may use (the skin part: in front of the ears,
            above the jaw line).
        max_len: most candidates per line (the line is binned by angle into this many bins).
        band: half height of the line's slab, as a fraction of the inter-ocular distance.
        inner: the line starts at this fraction of the landmark's distance from the face midline.
    Returns:
        int64 [17, L]; each row contains the landmark's own vertex.
    """
    frame = line_frame(vertices, landmark_index)
    rows = []
    for j in range(17):
        own = int(landmark_index[j])
        if j == CHIN:
            rows.append(np.array([own], dtype=np.int64))
        else:
            rows.append(contour_line(vertices, own, face, frame, max_len=max_len, band=band, inner=inner))
    return pad_lines(rows)
