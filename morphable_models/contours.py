"""Contour lines for landmark marching, derived from a mesh.

For each jaw landmark j (0..16) we collect a horizontal line of face vertices at the landmark's
height, on its side of the face, running from part-way towards the nose out past the frontal
silhouette to the front of the ear. The optimizer's landmark marching picks on each line the
vertex with the extreme projected x (the silhouette in the current pose). Lines are ordered from
the inner face outwards by the angle around a vertical axis behind the face, so a line that wraps
around the cheek stays in surface order. The chin (8) has only its own vertex.
"""
from __future__ import annotations

import numpy as np

from morphable_models.parts import PartRules, inter_ocular

CHIN = 8


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
    lm = vertices[landmark_index]
    iod = inter_ocular(lm)
    x_mid = lm[27, 0]
    half_width = 0.5 * (lm[16, 0] - lm[0, 0])
    z_axis = lm[[0, 16], 2].mean() - half_width  # a vertical axis roughly at the head's centre
    face = np.asarray(face, dtype=np.int64)
    p = vertices[face]
    angle = np.arctan2(np.abs(p[:, 0] - x_mid), p[:, 2] - z_axis)

    rows = []
    for j in range(17):
        own = int(landmark_index[j])
        if j == CHIN:
            rows.append(np.array([own], dtype=np.int64))
            continue
        side = np.sign(lm[j, 0] - x_mid)
        dist_j = abs(lm[j, 0] - x_mid)
        sel = ((np.sign(p[:, 0] - x_mid) == side) & (np.abs(p[:, 1] - lm[j, 1]) <= band * iod)
               & (np.abs(p[:, 0] - x_mid) >= inner * dist_j))
        cand, ang, dy = face[sel], angle[sel], np.abs(p[sel, 1] - lm[j, 1])
        own_angle = float(np.arctan2(dist_j, lm[j, 2] - z_axis))
        keep = cand != own
        cand, ang, dy = cand[keep], ang[keep], dy[keep]
        if len(cand) == 0:
            rows.append(np.array([own], dtype=np.int64))
            continue
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
        rows.append(np.array([v for _, v in picked], dtype=np.int64))
    L = max(len(r) for r in rows)
    out = np.full((17, L), -1, dtype=np.int64)
    for j, r in enumerate(rows):
        out[j, :len(r)] = r
    return out
