"""The paper's 8-part vertex annotation, computed from the neutral mesh and its 68 landmarks.

Pure functions over numpy arrays. Everything works on the frontal orthographic projection (x, y) of
the neutral mean shape in the project's conventions (+Y up, +Z towards the viewer, +X the person's
left) and is scaled by the outer inter-ocular distance ``iod`` (|landmark 36 - landmark 45|), so
the same rules annotate meshes in centimetres or millimetres. The rules imitate what a face parser
labels on a photo:

* eyes: the eye opening (its rim and the virtual fill points of :mod:`morphable_models.eye_fill`),
  or the landmark eye polygon on meshes without openings;
* brows: a band along landmarks 17-21 / 22-26 (iBUG brow points follow the brow's upper edge), about
  1.1 cm thick at the head of the brow and thinner at the tail;
* nose: from the bridge (27) down to the nostril base (31-35), widening to the alae;
* lips: the red lip area inside the outer lip contour (48-59), split into upper and lower lip along
  the mouth opening (by mesh topology when the mesh has a mouth hole, else along the inner contour);
* skin: the rest of the face inside the jaw line (0-16) and a forehead arc up to the hairline, in
  front of the ears, not hidden in the frontal view: no neck, ears or scalp.

This is the annotation a prepared model carries. A model with a table of MediaPipe's mesh points
gets its brows, nose and lips drawn anew at load time with the front end's own polygons
(:mod:`morphable_models.frontend_parts`), and with calibrated landmarks its eyes inside them
(:mod:`morphable_models.eye_outline`); these rules stay its ``own_parts``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence

import numpy as np

from morphable_models.model import PART_NAMES
from morphable_models.polygons import offset_outward, points_in_polygon, polyline_band
from morphable_models.visibility import frontal_visible

# Landmark groups (iBUG-68, 0-based).
JAW = np.arange(0, 17)
RIGHT_BROW = np.arange(17, 22)  # person's right: outer (17) -> inner (21)
LEFT_BROW = np.arange(22, 27)   # inner (22) -> outer (26)
NOSE_BRIDGE = np.arange(27, 31)
NOSE_BASE = np.arange(31, 36)
RIGHT_EYE = np.arange(36, 42)
LEFT_EYE = np.arange(42, 48)
OUTER_LIPS = np.arange(48, 60)
INNER_LIPS = np.arange(60, 68)


@dataclass(frozen=True)
class PartRules:
    """Sizes of the landmark-guided regions, as fractions of the outer inter-ocular distance."""

    brow_above: float = 0.03          # band above the brow landmarks
    brow_below_inner: float = 0.10    # band below, at the head of the brow
    brow_below_outer: float = 0.06    # band below, at the tail
    brow_extend: float = 0.03         # extension past the first/last brow landmark
    nose_top_half_width: float = 0.09
    nose_alar_margin: float = 0.07    # alae reach this far past landmarks 31/35
    nose_base_drop: float = 0.015     # below the nostril-base landmarks
    lip_margin: float = 0.012         # outward offset of the outer lip contour
    eye_margin: float = 0.01          # for meshes without eye openings
    forehead_height: float = 0.62     # hairline above the mean brow height
    side_margin: float = 0.06         # skin reaches this far past the jaw line at the temples/cheeks
    ear_depth: float = 0.12           # skin stops this far behind the depth of landmarks 0/16
    part_depth: float = 0.25          # parts keep vertices at most this far behind their landmarks
    visibility_tol: float = 0.01


@dataclass(frozen=True)
class Openings:
    """Filled openings and their vertices (model indices).

    Attributes:
        right_eye / left_eye: rim vertices plus virtual fill points of each eye opening, or None.
        mouth_upper / mouth_lower: the two arcs of the mouth hole's rim, or None without a hole.
        hidden: vertices covered by an opening's fill (e.g. the inner eyelid surfaces behind the lid
            margin); they belong to no part.
    """

    right_eye: Optional[np.ndarray] = None
    left_eye: Optional[np.ndarray] = None
    mouth_upper: Optional[np.ndarray] = None
    mouth_lower: Optional[np.ndarray] = None
    hidden: Optional[np.ndarray] = None


def inter_ocular(landmarks: np.ndarray) -> float:
    """Outer-corner eye distance |lm36 - lm45| in the frontal plane (model units)."""
    return float(np.linalg.norm(landmarks[45, :2] - landmarks[36, :2]))


def brow_polygon(landmarks: np.ndarray, brow: np.ndarray, iod: float, rules: PartRules) -> np.ndarray:
    """[M, 2] band around one brow's landmarks, thicker at the inner end (towards the nose)."""
    pts = landmarks[brow, :2]
    order = np.argsort(pts[:, 0])
    pts = pts[order]
    d0 = pts[0] - pts[1]
    d1 = pts[-1] - pts[-2]
    pts = np.concatenate([pts[:1] + d0 / np.linalg.norm(d0) * rules.brow_extend * iod, pts,
                          pts[-1:] + d1 / np.linalg.norm(d1) * rules.brow_extend * iod])
    # inner end = the end nearer x = mid-face
    mid = landmarks[27, 0]
    dist = np.abs(pts[:, 0] - mid)
    u = (dist - dist.min()) / max(np.ptp(dist), 1e-12)  # 0 at the inner end, 1 at the tail
    below = (rules.brow_below_inner * (1 - u) + rules.brow_below_outer * u) * iod
    above = np.full(len(pts), rules.brow_above * iod)
    return polyline_band(pts, above, below)


def nose_polygon(landmarks: np.ndarray, iod: float, rules: PartRules) -> np.ndarray:
    """[M, 2] nose outline: bridge top (27), sides widening to the alae, nostril base (31-35)."""
    lm = landmarks[:, :2]
    top = lm[27]
    half_top = rules.nose_top_half_width * iod
    base = lm[NOSE_BASE]
    right_alar = base[0] + np.array([-rules.nose_alar_margin * iod, 0.0])
    left_alar = base[-1] + np.array([rules.nose_alar_margin * iod, 0.0])
    tip_y = lm[30, 1]
    ala_y = 0.5 * (tip_y + base[[0, -1], 1].mean())
    drop = np.array([0.0, -rules.nose_base_drop * iod])
    # the sides: bridge top -> beside landmark 29 (60% of the way out to the alae) -> widest alae
    right_side = [top + [-half_top, 0.0], [right_alar[0] * 0.6 + top[0] * 0.4 - 0.02 * iod, lm[29, 1]],
                  [right_alar[0], ala_y], right_alar + drop]
    left_side = [top + [half_top, 0.0], [left_alar[0] * 0.6 + top[0] * 0.4 + 0.02 * iod, lm[29, 1]],
                 [left_alar[0], ala_y], left_alar + drop]
    bottom = base + drop  # right to left
    return np.asarray(right_side + list(bottom) + left_side[::-1], dtype=np.float64)


def lip_polygon(landmarks: np.ndarray, iod: float, rules: PartRules) -> np.ndarray:
    """[12, 2] outer lip contour (48-59), pushed outwards by ``lip_margin``."""
    return offset_outward(landmarks[OUTER_LIPS, :2], rules.lip_margin * iod)


def eye_polygon(landmarks: np.ndarray, eye: np.ndarray, iod: float, rules: PartRules) -> np.ndarray:
    return offset_outward(landmarks[eye, :2], rules.eye_margin * iod)


def face_outline(landmarks: np.ndarray, iod: float, rules: PartRules, arc_points: int = 24) -> np.ndarray:
    """[M, 2] face outline: jaw 0..16 (pushed out sideways) then a forehead arc up to the hairline."""
    jaw = landmarks[JAW, :2].copy()
    # push the upper jaw points (the near-vertical part of the contour) outwards in x so the side of
    # the face in front of the ears is included; nothing moves at the chin
    cx = landmarks[27, 0]
    weight = np.clip((jaw[:, 1] - landmarks[8, 1]) / max(landmarks[[0, 16], 1].mean() - landmarks[8, 1], 1e-12), 0, 1)
    jaw[:, 0] += np.sign(jaw[:, 0] - cx) * weight * rules.side_margin * iod
    brow_y = landmarks[np.r_[RIGHT_BROW, LEFT_BROW], 1].mean()
    top_y = brow_y + rules.forehead_height * iod
    y_c = 0.5 * (jaw[0, 1] + jaw[-1, 1])
    a = 0.5 * (jaw[-1, 0] - jaw[0, 0])
    x_c = 0.5 * (jaw[-1, 0] + jaw[0, 0])
    theta = np.linspace(0.0, np.pi, arc_points)[1:-1]
    arc = np.stack([x_c + a * np.cos(theta), y_c + (top_y - y_c) * np.sin(theta)], axis=1)
    # jaw runs from the right (x<0) through the chin to the left; the arc from the left over the top
    return np.concatenate([jaw, arc], axis=0)


def _graph(vertices: np.ndarray, triangles: np.ndarray, keep: np.ndarray):
    """Sparse edge-length graph over the vertices where ``keep`` is True."""
    from scipy.sparse import coo_matrix  # here: loading a prepared model needs no scipy
    e = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    e = e[keep[e[:, 0]] & keep[e[:, 1]]]
    w = np.linalg.norm(vertices[e[:, 0]] - vertices[e[:, 1]], axis=1)
    n = len(vertices)
    g = coo_matrix((np.r_[w, w], (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])), shape=(n, n))
    return g.tocsr()


def split_lips(vertices: np.ndarray, triangles: np.ndarray, lips: np.ndarray, landmark_index: np.ndarray,
               openings: Openings):
    """Split lip vertices into (upper, lower) index arrays.

    With a mouth hole, each vertex goes to the rim arc nearer along the lip surface (the hole keeps
    the lips apart topologically). Without one, the split follows the mouth line through the inner
    lip landmarks (midway between 61-63 and 65-67).
    """
    pts = vertices[lips]
    if openings.mouth_upper is not None and openings.mouth_lower is not None:
        keep = np.zeros(len(vertices), dtype=bool)
        keep[lips] = True
        keep[openings.mouth_upper] = True
        keep[openings.mouth_lower] = True
        from scipy.sparse.csgraph import dijkstra

        g = _graph(vertices, triangles, keep)
        d_up = dijkstra(g, indices=openings.mouth_upper, min_only=True)[lips]
        d_lo = dijkstra(g, indices=openings.mouth_lower, min_only=True)[lips]
        upper = d_up < d_lo
        tie = ~np.isfinite(d_up) & ~np.isfinite(d_lo)
        if tie.any():
            upper[tie] = pts[tie, 1] > vertices[landmark_index[[62, 66]], 1].mean()
    else:
        line_x = np.r_[vertices[landmark_index[48], 0], vertices[landmark_index[[61, 62, 63]], 0],
                       vertices[landmark_index[54], 0]]
        up_y = vertices[landmark_index[[61, 62, 63]], 1]
        lo_y = vertices[landmark_index[[67, 66, 65]], 1]
        line_y = np.r_[vertices[landmark_index[48], 1], 0.5 * (up_y + lo_y), vertices[landmark_index[54], 1]]
        order = np.argsort(line_x)
        upper = pts[:, 1] > np.interp(pts[:, 0], line_x[order], line_y[order])
    return lips[upper], lips[~upper]


def annotate_parts(vertices: np.ndarray, triangles: np.ndarray, landmark_index: np.ndarray,
                   region: np.ndarray, openings: Openings, num_points: int,
                   rules: PartRules = PartRules()) -> Dict[str, np.ndarray]:
    """Assign mesh vertices (and opening fill points) to the 8 parts.

    Args:
        vertices: [V, 3] neutral mesh vertices (mesh only, no virtual points).
        triangles: [F, 3] mesh triangles.
        landmark_index: [68] vertex index of each iBUG landmark.
        region: [V] bool, vertices that may belong to the face at all (e.g. ICT's face area).
        openings: filled eye openings / mouth hole (indices may be >= V for virtual points).
        num_points: V plus the number of virtual points (upper bound of returned indices).
        rules: region sizes.
    Returns:
        dict part name -> sorted int64 indices, keys in PART_NAMES order, pairwise disjoint.
    """
    V = len(vertices)
    lm = vertices[landmark_index]
    iod = inter_ocular(lm)
    xy = vertices[:, :2]
    z = vertices[:, 2]
    taken = np.zeros(num_points, dtype=bool)
    parts: Dict[str, np.ndarray] = {}

    def claim(name: str, mask_or_idx) -> None:
        idx = np.flatnonzero(mask_or_idx) if mask_or_idx.dtype == bool else np.unique(mask_or_idx)
        idx = idx[~taken[idx]]
        taken[idx] = True
        parts[name] = np.sort(idx).astype(np.int64)

    def near_front(group: Sequence[int]) -> np.ndarray:
        return z > lm[group, 2].min() - rules.part_depth * iod

    if openings.hidden is not None:
        taken[openings.hidden] = True
    # eyes
    for name, group, fill in (("right_eye", RIGHT_EYE, openings.right_eye), ("left_eye", LEFT_EYE, openings.left_eye)):
        if fill is not None:
            claim(name, np.asarray(fill, dtype=np.int64))
        else:
            inside = np.zeros(num_points, dtype=bool)
            inside[:V] = region & points_in_polygon(xy, eye_polygon(lm, group, iod, rules)) & near_front(group)
            claim(name, inside)

    def region_mask(mask: np.ndarray) -> np.ndarray:
        full = np.zeros(num_points, dtype=bool)
        full[:V] = region & mask
        return full

    # brows
    claim("right_brow", region_mask(points_in_polygon(xy, brow_polygon(lm, RIGHT_BROW, iod, rules)) & near_front(RIGHT_BROW)))
    claim("left_brow", region_mask(points_in_polygon(xy, brow_polygon(lm, LEFT_BROW, iod, rules)) & near_front(LEFT_BROW)))
    # lips (before the nose: the nose polygon's base must not eat the upper lip)
    lips = np.flatnonzero(region_mask(points_in_polygon(xy, lip_polygon(lm, iod, rules)) & near_front(OUTER_LIPS)) & ~taken)
    up, down = split_lips(vertices, triangles, lips, landmark_index, openings)
    claim("up_lip", up)
    claim("down_lip", down)
    claim("nose", region_mask(points_in_polygon(xy, nose_polygon(lm, iod, rules)) & near_front(np.r_[NOSE_BASE, 27])))
    # skin: inside the outline, in front of the ears, seen from the front
    visible = frontal_visible(vertices, triangles, pixel=iod / 200.0, tol=rules.visibility_tol * iod)
    z_ear = lm[[0, 16], 2].min() - rules.ear_depth * iod
    skin = points_in_polygon(xy, face_outline(lm, iod, rules)) & visible & (z > z_ear)
    claim("skin", region_mask(skin))
    return {name: parts[name] for name in PART_NAMES}
