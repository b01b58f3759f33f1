"""NoW-style 3D error of a fitted mesh against a ground-truth mesh of another topology.

The protocol (after the NoW benchmark, Sanyal et al. 2019), in millimetres throughout:

1. **landmark similarity**: Umeyama scale + rotation + translation that takes the prediction's
   3D landmark vertices onto the ground truth's (only landmarks both define, no jaw contour);
2. **the scan**: points sampled uniformly by area on the ground-truth triangles, kept within
   ``radius`` (95 mm) of the ground-truth nose tip;
3. **rigid ICP**: rotation + translation refining the alignment (point-to-plane), each iteration
   pairing every scan point with its closest point on the predicted *surface* (so parts of the
   prediction the scan does not cover, such as the back of the head, pull on nothing);
4. **error**: mean distance from each scan point to the aligned predicted surface.

Everything is numpy in, numpy out; the point-to-triangle queries use Open3D's
``RaycastingScene`` (``compute_closest_points`` / ``compute_distance``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

#: iBUG-68 (0-based) index of the nose tip (iBUG 31 1-based): the centre of the scan crop.
NOSE_TIP = 30
#: NoW's crop radius around the nose tip, mm.
SCAN_RADIUS_MM = 95.0


@dataclass
class Similarity:
    """x -> scale * R @ x + t, acting on row vectors as ``scale * x @ R.T + t``."""

    scale: float
    R: np.ndarray  # [3, 3]
    t: np.ndarray  # [3]

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Transform points [N, 3]."""
        return self.scale * np.asarray(x, np.float64) @ self.R.T + self.t


def umeyama(src: np.ndarray, dst: np.ndarray, with_scale: bool = True) -> Similarity:
    """Least-squares similarity (or rigid, ``with_scale=False``) transform taking ``src`` [N, 3] onto
    ``dst`` [N, 3] (Umeyama 1991, reflections excluded)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3 or len(src) < 3:
        raise ValueError(f"umeyama needs two [N>=3, 3] point sets, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    U, S, Vt = np.linalg.svd(d0.T @ s0 / len(src))
    D = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        D[2, 2] = -1
    R = U @ D @ Vt
    scale = float(np.trace(np.diag(S) @ D) / ((s0**2).sum() / len(src))) if with_scale else 1.0
    return Similarity(scale, R, mu_d - scale * R @ mu_s)


def sample_surface(vertices: np.ndarray, triangles: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """``count`` points [count, 3] uniformly distributed by area on a triangle mesh (seeded)."""
    v = np.asarray(vertices, np.float64)
    tri = np.asarray(triangles, np.int64)
    a, b, c = v[tri[:, 0]], v[tri[:, 1]], v[tri[:, 2]]
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    rng = np.random.default_rng(seed)
    f = rng.choice(len(tri), size=count, p=area / area.sum())
    r1, r2 = rng.random(count), rng.random(count)
    s = np.sqrt(r1)  # uniform on the triangle: (1 - s, s (1 - r2), s r2)
    return (1 - s)[:, None] * a[f] + (s * (1 - r2))[:, None] * b[f] + (s * r2)[:, None] * c[f]


def crop_scan(points: np.ndarray, centre: np.ndarray, radius: float = SCAN_RADIUS_MM) -> np.ndarray:
    """The points [N, 3] within ``radius`` of ``centre`` [3]."""
    p = np.asarray(points, np.float64)
    return p[np.linalg.norm(p - np.asarray(centre, np.float64), axis=1) <= radius]


class SurfaceQuery:
    """Closest-point and distance queries against one triangle mesh (Open3D ``RaycastingScene``)."""

    def __init__(self, vertices: np.ndarray, triangles: np.ndarray):
        import open3d as o3d

        self._o3d = o3d
        self.scene = o3d.t.geometry.RaycastingScene()
        self.scene.add_triangles(o3d.core.Tensor(np.asarray(vertices, np.float32)),
                                 o3d.core.Tensor(np.asarray(triangles, np.uint32)))

    def _q(self, points: np.ndarray):
        return self._o3d.core.Tensor(np.asarray(points, np.float32))

    def distance(self, points: np.ndarray) -> np.ndarray:
        """[N] unsigned distance of each point [N, 3] to the surface."""
        return self.scene.compute_distance(self._q(points)).numpy().astype(np.float64)

    def closest(self, points: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Closest surface point [N, 3] of each point [N, 3] and the unit normal [N, 3] of the
        triangle it lies on."""
        ans = self.scene.compute_closest_points(self._q(points))
        return (ans["points"].numpy().astype(np.float64), ans["primitive_normals"].numpy().astype(np.float64))

    def closest_barycentric(self, points: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """The closest surface point of each point [N, 3] as its triangle [N] (int64, row of the
        triangles) and barycentric (u, v) [N, 2]: the point is (1 − u − v)·a + u·b + v·c of that
        triangle's corners (a, b, c)."""
        ans = self.scene.compute_closest_points(self._q(points))
        return (ans["primitive_ids"].numpy().astype(np.int64), ans["primitive_uvs"].numpy().astype(np.float64))


def _rotation_from_vector(w: np.ndarray) -> np.ndarray:
    """Rodrigues: the rotation [3, 3] by angle |w| about w / |w| (radians)."""
    a = float(np.linalg.norm(w))
    if a < 1e-15:
        return np.eye(3)
    k = w / a
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(a) * K + (1 - np.cos(a)) * K @ K


def rigid_icp(scan: np.ndarray, surface: SurfaceQuery, iters: int = 10, tol: float = 1e-6) -> Similarity:
    """Rigid transform T (scale 1) that brings the ``scan`` points [N, 3] onto ``surface``
    (point-to-plane ICP): each iteration pairs T(scan) with its closest surface points and solves
    the linearized least squares of the distances along those points' triangle normals for a small
    rotation and translation. Stops after ``iters`` iterations or when the mean distance improves
    by less than ``tol``. Returns T (apply it to the scan)."""
    R, t = np.eye(3), np.zeros(3)
    scan = np.asarray(scan, np.float64)
    prev = np.inf
    for _ in range(iters):
        moved = scan @ R.T + t
        target, normal = surface.closest(moved)
        err = float(np.linalg.norm(moved - target, axis=1).mean())
        if prev - err < tol:
            break
        prev = err
        r = ((moved - target) * normal).sum(1)  # [N] signed distance along the normal
        A = np.concatenate([np.cross(moved, normal), normal], 1)  # d r / d (w, t)
        x, *_ = np.linalg.lstsq(A, -r, rcond=None)
        dR = _rotation_from_vector(x[:3])
        R, t = dR @ R, dR @ t + x[3:]
    return Similarity(1.0, R, t)


@dataclass
class Scan3DScore:
    """Result of :func:`now_error`.

    Attributes:
        mean_mm: mean scan-to-predicted-surface distance after alignment, mm.
        median_mm: its median, mm.
        landmark_only_mm: the same mean before the ICP refinement (landmark similarity only), mm.
        scan_points: number of scan points scored.
        aligned: [V, 3] the predicted vertices after the landmark similarity, mm, in the
            ground truth's frame (the ICP moves the scan instead, see ``icp``).
        icp: rigid transform that was applied to the scan points.
    """

    mean_mm: float
    median_mm: float
    landmark_only_mm: float
    scan_points: int
    aligned: np.ndarray
    icp: Similarity


def now_error(
    pred_vertices: np.ndarray,
    pred_triangles: np.ndarray,
    pred_landmarks: np.ndarray,
    gt_vertices: np.ndarray,
    gt_triangles: np.ndarray,
    gt_landmarks: np.ndarray,
    gt_nose_tip: int,
    scan_points: int = 20000,
    radius: float = SCAN_RADIUS_MM,
    icp_iters: int = 10,
    seed: int = 0,
    scan: Optional[np.ndarray] = None,
) -> Scan3DScore:
    """NoW-style error of a predicted mesh against a ground-truth mesh (see module docstring).

    Args:
        pred_vertices: [Vp, 3] predicted mesh, mm; pred_triangles: [Fp, 3].
        pred_landmarks: [L] vertex indices of the landmarks used for the similarity.
        gt_vertices: [Vg, 3] ground-truth mesh, mm; gt_triangles: [Fg, 3].
        gt_landmarks: [L] the corresponding ground-truth vertex indices.
        gt_nose_tip: ground-truth vertex at the centre of the scan crop.
        scan_points: points sampled on the ground truth before the crop.
        radius: crop radius around the nose tip, mm.
        icp_iters: rigid ICP iterations (0 = landmark similarity only).
        seed: sampling seed.
        scan: precomputed cropped scan [N, 3] (mm); when given, sampling is skipped.
    Returns:
        :class:`Scan3DScore`.
    """
    pv = np.asarray(pred_vertices, np.float64)
    gv = np.asarray(gt_vertices, np.float64)
    pl, gl = np.asarray(pred_landmarks, np.int64), np.asarray(gt_landmarks, np.int64)
    if pl.shape != gl.shape:
        raise ValueError(f"landmark index lists differ in length: {pl.shape} vs {gl.shape}")
    sim = umeyama(pv[pl], gv[gl])
    aligned = sim.apply(pv)
    if scan is None:
        scan = crop_scan(sample_surface(gv, gt_triangles, scan_points, seed), gv[int(gt_nose_tip)], radius)
    surface = SurfaceQuery(aligned, pred_triangles)
    before = surface.distance(scan)
    T = rigid_icp(scan, surface, icp_iters) if icp_iters > 0 else Similarity(1.0, np.eye(3), np.zeros(3))
    d = surface.distance(T.apply(scan))
    return Scan3DScore(mean_mm=float(d.mean()), median_mm=float(np.median(d)), landmark_only_mm=float(before.mean()),
                       scan_points=int(len(scan)), aligned=aligned, icp=T)
