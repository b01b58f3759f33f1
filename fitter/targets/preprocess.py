"""The paper's target cleaning: label map (crop pixels) -> :class:`Targets`.

Steps (Wang et al. 2024, Sec. 3.2), in :func:`targets_from_label_map`:

1. ears, neck and the inner mouth are dropped (they are not fitting parts);
2. noise: each part keeps its largest *plausible* connected component (one per part; each eye and
   brow is its own part), plausible = centroid within ``plausible_distance`` inter-ocular
   distances of the part's landmarks; skin also keeps pieces at least ``skin_keep_fraction`` of
   its largest (hair strands can split a cheek off);
3. forehead: the skin above a line through the top of the brows (fitted to the brow landmarks,
   or the brow masks, raised by ``forehead_offset`` inter-ocular distances) is removed; the line is
   returned as ``Targets.forehead_line`` (a, b, c), a*x + b*y + c >= 0 below it;
4. occlusion: hair / eyeglasses / other occluders, dilated by ``occlusion_dilate`` pixels, become
   ``Targets.occlusion`` (predicted points there are dropped by the loss);
5. point sets C_p: pixel centres of each cleaned mask, thinned by farthest point sampling to
   ``max_skin_points`` (skin) / ``max_part_points`` (other parts); with ``outline`` also the
   mask's outline (:func:`mask_outline`: where the area the pixels cover ends, half a pixel beyond
   the outer pixel centres), which PRDL's nearest and furthest distances reach
   (``Targets.part_outline``).

Works on any label map of :mod:`fitter.targets.labels`, including synthetic ones with labels 0..8
only and no photo.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from fitter.geometry.sampling import farthest_point_sample
from fitter.targets import labels as L
from fitter.targets.types import CropTransform, Targets
from morphable_models.model import PART_NAMES

#: iBUG-68 landmarks describing where each part should be (for the plausibility test)
PART_LANDMARKS: Dict[str, Tuple[int, ...]] = {
    "right_eye": tuple(range(36, 42)),
    "left_eye": tuple(range(42, 48)),
    "right_brow": tuple(range(17, 22)),
    "left_brow": tuple(range(22, 27)),
    "nose": tuple(range(27, 36)),
    "up_lip": (48, 49, 50, 51, 52, 53, 54, 60, 61, 62, 63, 64),
    "down_lip": (48, 54, 55, 56, 57, 58, 59, 60, 64, 65, 66, 67),
    "skin": tuple(range(0, 17)),
}
BROW_LANDMARKS = tuple(range(17, 27))


@dataclass
class PreprocessConfig:
    """Target cleaning settings (see the module docstring for each step).

    Attributes:
        max_skin_points: farthest-point-sample skin to at most this many points (paper: 3000).
        max_part_points: the same for the other seven parts.
        min_part_pixels: a part with fewer pixels after cleaning is absent (empty point set).
        plausible_distance: a component counts only if its centroid lies within this many
            inter-ocular distances of its part's landmark centroid (when those landmarks are valid).
        skin_keep_fraction: skin keeps every component at least this fraction of its largest.
        forehead_cut: remove skin above the brows.
        forehead_offset: the cut sits this many inter-ocular distances above the brows' top.
        occlusion_dilate: grow the occluder mask by this many crop pixels.
        occluder_labels: labels that count as occluders.
        outline: also give each part's outline (``Targets.part_outline``); False = pixel centres
            only, as in the paper.
    """

    max_skin_points: int = 3000
    max_part_points: int = 800
    min_part_pixels: int = 3
    plausible_distance: float = 1.0
    skin_keep_fraction: float = 0.25
    forehead_cut: bool = True
    forehead_offset: float = 0.05
    occlusion_dilate: int = 2
    occluder_labels: Tuple[int, ...] = L.OCCLUDER_LABELS
    outline: bool = True


# ---------------------------------------------------------------------------- point sampling
def thin_points(points: np.ndarray, k: int) -> np.ndarray:
    """Which ``k`` of the points to keep: farthest point sampling
    (:func:`fitter.geometry.sampling.farthest_point_sample`) from the point nearest the centroid.

    Args:
        points: [N, 2] (or [N, D]) float points (compared in float32).
        k: how many to keep.
    Returns:
        [min(k, N)] int64 indices into ``points``: the first is the point nearest the centroid
        (the lowest index on a tie), each next one the point farthest from those chosen so far.
    """
    P = np.asarray(points, dtype=np.float32).reshape(len(points), -1)
    n = P.shape[0]
    if k >= n:
        return np.arange(n, dtype=np.int64)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    start = int(np.argmin(((P - P.mean(0)) ** 2).sum(1)))
    return farthest_point_sample(torch.from_numpy(P), k, start=start).numpy()


def pixel_counts(pixels: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """[K] float32: how many of ``pixels`` [N, 2] have each of ``kept`` [K, 2] as their nearest
    kept point (ties to the lower index). Farthest point sampling thins a region unevenly (it
    starts on the boundary); these counts restore the pixel density in PRDL's mean distance."""
    pix, kp = np.asarray(pixels, np.float64), np.asarray(kept, np.float64)
    if np.array_equal(pix, np.round(pix)) and np.array_equal(kp, np.round(kp)):
        nearest = nearest_on_grid(pix.astype(np.int64), kp.astype(np.int64))
    else:  # points off the pixel grid: a k-d tree
        from scipy.spatial import cKDTree

        nearest = cKDTree(kp).query(pix, k=1)[1]
    return np.bincount(nearest, minlength=len(kept)).astype(np.float32)


def nearest_on_grid(pixels: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """[N] int64 index of the nearest of ``kept`` [K, 2] (integer x, y) to each of ``pixels`` [N, 2]
    (integer x, y), exactly; on a tie the lower index.

    A raster holds each kept point's index at its pixel; every pixel then looks at the offsets
    (dx, dy) in rings of growing dx² + dy² (exact integers) and stops at the first ring that holds
    a kept point, taking the lowest index there. Farthest point sampling leaves every pixel of its
    region within a few pixels of a kept point, so a few rings resolve every pixel: ~1 ms for a
    20,000-pixel skin mask thinned to 3000 points, where a k-d tree needed scipy (0.26 s to import).
    """
    N, K = len(pixels), len(kept)
    if K == 0:
        raise ValueError("nearest_on_grid needs at least one kept point")
    lo = np.minimum(pixels.min(0), kept.min(0))
    hi = np.maximum(pixels.max(0), kept.max(0))
    W, H = (hi - lo + 1).tolist()
    raster = np.full((H, W), K, np.int64)  # K: no kept point here
    order = np.arange(K - 1, -1, -1)  # written last to first: a repeated point keeps its lowest index
    raster[kept[order, 1] - lo[1], kept[order, 0] - lo[0]] = order
    px, py = pixels[:, 0] - lo[0], pixels[:, 1] - lo[1]
    nearest = np.full(N, -1, np.int64)
    open_ = np.arange(N)
    done_r2, radius = -1, 4
    while len(open_):
        r = np.arange(-radius, radius + 1)
        dx, dy = (a.ravel() for a in np.meshgrid(r, r))
        d2 = dx * dx + dy * dy
        ring = (d2 > done_r2) & (d2 <= radius * radius)
        for value in np.unique(d2[ring]):  # rings in order of distance
            ox, oy = dx[d2 == value], dy[d2 == value]
            x = px[open_, None] + ox[None]
            y = py[open_, None] + oy[None]
            inside = (x >= 0) & (x < W) & (y >= 0) & (y < H)
            found = np.where(inside, raster[np.clip(y, 0, H - 1), np.clip(x, 0, W - 1)], K).min(1)
            hit = found < K
            nearest[open_[hit]] = found[hit]
            open_ = open_[~hit]
            if not len(open_):
                break
        done_r2, radius = radius * radius, radius * 2
    return nearest


def mask_points(mask: np.ndarray) -> np.ndarray:
    """[N, 2] float32 (x, y) pixel centres of a [H, W] bool mask, row-major order."""
    ys, xs = np.nonzero(mask)
    return np.stack([xs, ys], axis=1).astype(np.float32)


def mask_outline(mask: np.ndarray) -> np.ndarray:
    """[K, 2] float32 (x, y) midpoints of the pixel edges between ``mask`` and the rest.

    A pixel stands for the unit square around its centre, so the region a mask covers ends half a
    pixel beyond its outer pixel centres: these midpoints (the mask's 0.5 level line, sampled once
    per boundary edge; the image border counts as outside) are where it ends. Pixel centres alone
    put a part's nearest and furthest points about half a pixel inside the region, which for a
    lip or an eye a few pixels tall is a sizeable bias of PRDL's f_min and f_max.

    Args:
        mask: [H, W] bool.
    Returns:
        [K, 2] float32, ordered by direction (+x, -x, +y, -y) then row-major; [0, 2] if empty.
    """
    m = np.asarray(mask, dtype=bool)
    H, W = m.shape
    pad = np.pad(m, 1)
    out = []
    for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        beyond = pad[1 + dy : 1 + dy + H, 1 + dx : 1 + dx + W]
        ys, xs = np.nonzero(m & ~beyond)
        out.append(np.stack([xs + 0.5 * dx, ys + 0.5 * dy], axis=1))
    return np.concatenate(out, axis=0).astype(np.float32).reshape(-1, 2)


# ---------------------------------------------------------------------------- components
def _components(mask: np.ndarray):
    import cv2

    n, comp, stats, cent = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return n, comp, stats[:, cv2.CC_STAT_AREA], cent


def largest_plausible_component(mask: np.ndarray, anchor: Optional[np.ndarray] = None,
                                max_distance: float = np.inf) -> np.ndarray:
    """The largest connected component of ``mask`` whose centroid is within ``max_distance`` of
    ``anchor`` ([2] pixels; None = any component). Returns a [H, W] bool mask (empty if none)."""
    n, comp, area, cent = _components(mask)
    best, best_area = 0, 0
    for c in range(1, n):
        if anchor is not None and np.linalg.norm(cent[c] - anchor) > max_distance:
            continue
        if area[c] > best_area:
            best, best_area = c, area[c]
    return comp == best if best else np.zeros(mask.shape, dtype=bool)


def large_components(mask: np.ndarray, keep_fraction: float) -> np.ndarray:
    """Components of ``mask`` with at least ``keep_fraction`` of the largest one's area."""
    n, comp, area, _ = _components(mask)
    if n <= 1:
        return np.zeros(mask.shape, dtype=bool)
    big = area[1:].max()
    keep = np.nonzero(area >= keep_fraction * big)[0]
    keep = keep[keep > 0]
    return np.isin(comp, keep)


# ---------------------------------------------------------------------------- geometry helpers
def inter_ocular(landmarks: np.ndarray, valid: np.ndarray) -> Optional[float]:
    """Outer-eye-corner distance |p36 - p45| in pixels, or None if either is invalid."""
    if valid[36] and valid[45]:
        d = float(np.linalg.norm(landmarks[36] - landmarks[45]))
        return d if d > 0 else None
    return None


def forehead_line(labels: np.ndarray, landmarks: np.ndarray, valid: np.ndarray, offset_px: float) -> Optional[np.ndarray]:
    """Line (a, b, c), unit normal (a, b) pointing to the chin, through the top of the brows.

    The direction follows the brow landmarks (17..26; least-squares line), else the eye corners,
    else the brow masks' principal axis. The line passes ``offset_px`` pixels above the highest
    brow point (landmark or brow-mask pixel). Returns None without any brow evidence.
    """
    bl = [i for i in BROW_LANDMARKS if valid[i]]
    brow_pix = mask_points((labels == L.RIGHT_BROW) | (labels == L.LEFT_BROW)).astype(np.float64)
    pts = np.concatenate([landmarks[bl].astype(np.float64), brow_pix], 0)
    if pts.shape[0] == 0:
        return None
    direction = None
    if len(bl) >= 3:
        q = landmarks[bl] - landmarks[bl].mean(0)
        direction = np.linalg.svd(q, full_matrices=False)[2][0]
    elif valid[36] and valid[45]:
        direction = landmarks[45] - landmarks[36]
    elif brow_pix.shape[0] >= 3 and len(np.unique(brow_pix[:, 0])) > 1:
        q = brow_pix - brow_pix.mean(0)
        direction = np.linalg.svd(q, full_matrices=False)[2][0]
    if direction is None or np.linalg.norm(direction) < 1e-9:
        direction = np.array([1.0, 0.0])
    direction = direction / np.linalg.norm(direction)
    n = np.array([-direction[1], direction[0]])
    # Orient the normal towards the chin: mouth/nose/jaw landmarks or lower-face labels, else image down.
    below = [i for i in (8, 30, 33, 51, 57, 62, 66) if valid[i]]
    ref = landmarks[below].mean(0) if below else None
    if ref is None:
        low = mask_points(np.isin(labels, (L.NOSE, L.UP_LIP, L.DOWN_LIP)))
        ref = low.mean(0) if low.shape[0] else None
    if ref is not None:
        if np.dot(ref - pts.mean(0), n) < 0:
            n = -n
    elif n[1] < 0:
        n = -n
    top = float((pts @ n).min())  # highest brow point along the normal
    c = -(top - offset_px)
    return np.array([n[0], n[1], c], dtype=np.float64)


def below_line(shape: Tuple[int, int], line: np.ndarray) -> np.ndarray:
    """[H, W] bool: pixel centres with a*x + b*y + c >= 0."""
    H, W = shape
    yy, xx = np.mgrid[0:H, 0:W]
    return line[0] * xx + line[1] * yy + line[2] >= 0


def occlusion_mask(labels: np.ndarray, occluder_labels: Sequence[int], dilate: int) -> np.ndarray:
    """[H, W] bool occluder pixels (hair, glasses, ...) grown by ``dilate`` pixels."""
    import cv2

    occ = np.isin(labels, tuple(occluder_labels))
    if dilate > 0 and occ.any():
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate + 1, 2 * dilate + 1))
        occ = cv2.dilate(occ.astype(np.uint8), k) > 0
    return occ


# ---------------------------------------------------------------------------- main entry
def clean_label_map(labels: np.ndarray, landmarks: np.ndarray, landmark_valid: np.ndarray,
                    config: PreprocessConfig = PreprocessConfig()) -> Tuple[np.ndarray, Optional[np.ndarray], Dict[str, str]]:
    """Steps 1-3 of the module docstring.

    Returns:
        ([H, W] uint8 cleaned part map with labels 0..8, forehead line or None,
        {part: note} for parts that were dropped as implausible or too small).
    """
    lab = L.check_label_map(labels)
    valid = np.asarray(landmark_valid, dtype=bool)
    lm = np.asarray(landmarks, dtype=np.float64)
    iod = inter_ocular(lm, valid)
    if iod is None:
        face = L.face_region(lab)
        ys, xs = np.nonzero(face)
        iod = 0.4 * max(np.ptp(xs), np.ptp(ys)) if xs.size else 0.25 * max(lab.shape)
    out = np.zeros(lab.shape, dtype=np.uint8)
    notes: Dict[str, str] = {}
    for i, name in enumerate(PART_NAMES):
        label = i + 1
        mask = lab == label
        if not mask.any():
            continue
        if name == "skin":
            keep = large_components(mask, config.skin_keep_fraction)
        else:
            group = [j for j in PART_LANDMARKS[name] if valid[j]]
            anchor = lm[group].mean(0) if group else None
            keep = largest_plausible_component(mask, anchor, config.plausible_distance * iod)
            if not keep.any():
                notes[name] = "implausible"
        out[keep] = label
    line = None
    if config.forehead_cut:
        line = forehead_line(out, lm, valid, config.forehead_offset * iod)
        if line is not None:
            above = ~below_line(out.shape, line)
            out[above & (out == L.SKIN)] = L.BACKGROUND
    for i, name in enumerate(PART_NAMES):
        m = out == i + 1
        if 0 < m.sum() < config.min_part_pixels:
            out[m] = L.BACKGROUND
            notes[name] = "too small"
    return out, line, notes


def targets_from_label_map(labels: np.ndarray, landmarks: np.ndarray, landmark_valid: np.ndarray,
                           crop: CropTransform, image: Optional[np.ndarray] = None,
                           config: PreprocessConfig = PreprocessConfig(), source: str = "",
                           face_index: int = 0, meta: Optional[dict] = None,
                           mesh_points: Optional[np.ndarray] = None) -> Targets:
    """Clean a label map into fitting targets (all five steps of the module docstring).

    Args:
        labels: [H, W] uint8 label map in crop pixels (label set of :mod:`fitter.targets.labels`);
            H, W must equal ``crop.size`` (height, width).
        landmarks: [68, 2] iBUG-68 landmarks, crop pixels.
        landmark_valid: [68] bool.
        crop: the crop transform (original photo <-> crop).
        image: [H, W, 3] uint8 RGB crop, or None (synthetic targets).
        config: cleaning settings.
        source, face_index, meta: provenance copied into the result.
        mesh_points: [N, 2] the front end's dense mesh, crop pixels, or None (copied as float32).
    Returns:
        :class:`Targets` (float32 coordinates in crop pixels).
    """
    lab = L.check_label_map(labels)
    W, H = crop.size
    if lab.shape != (H, W):
        raise ValueError(f"labels are {lab.shape[1]}x{lab.shape[0]} but the crop is {W}x{H}")
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"landmarks must be [68, 2], got {lm.shape}")
    valid = np.asarray(landmark_valid, dtype=bool) & np.all(np.isfinite(lm), axis=1)
    lm = np.where(valid[:, None], lm, 0.0)
    if image is not None and tuple(image.shape[:2]) != (H, W):
        raise ValueError(f"image is {image.shape[1]}x{image.shape[0]} but the crop is {W}x{H}")

    cleaned, line, notes = clean_label_map(lab, lm, valid, config)
    occ = occlusion_mask(lab, config.occluder_labels, config.occlusion_dilate)
    points: Dict[str, np.ndarray] = {}
    weights: Dict[str, np.ndarray] = {}
    outline: Dict[str, np.ndarray] = {}
    counts: Dict[str, int] = {}
    for i, name in enumerate(PART_NAMES):
        mask = cleaned == i + 1
        pts = mask_points(mask)
        if config.outline:
            outline[name] = mask_outline(mask)
        counts[name] = int(pts.shape[0])
        cap = config.max_skin_points if name == "skin" else config.max_part_points
        w = np.ones(pts.shape[0], np.float32)
        if pts.shape[0] > cap:
            kept = pts[np.sort(thin_points(pts, cap))]
            w = pixel_counts(pts, kept)
            pts = kept
        points[name] = np.ascontiguousarray(pts, dtype=np.float32).reshape(-1, 2)
        weights[name] = w
    info = dict(meta or {})
    info.update({"mask_pixels": counts, "dropped_parts": notes})
    return Targets(
        landmarks=lm.astype(np.float32),
        landmark_valid=valid,
        part_points=points,
        part_point_weights=weights,
        part_outline=outline if config.outline else None,
        part_masks=cleaned,
        occlusion=occ,
        crop=crop,
        forehead_line=None if line is None else line.astype(np.float32),
        image=None if image is None else np.ascontiguousarray(image, dtype=np.uint8),
        mesh_points=None if mesh_points is None else np.ascontiguousarray(mesh_points, dtype=np.float32).reshape(-1, 2),
        source=source,
        face_index=face_index,
        meta=info,
    )
