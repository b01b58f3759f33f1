"""The model fitted to a 3D scan of the face itself: the floor under any fit from a photo.

A fit from one photo can describe a face only as well as its model can. To tell the model's limit
from the photo's, :func:`fit_to_scan` fits the model's identity and expression coefficients and a
similarity directly to the ground-truth scan (the scan points that ``fitter.metrics_3d.now_error``
scores), minimizing the mean squared scan-to-surface distance, mm²:

    E(c_id, c_exp, s, R, t) = mean_i ‖x_i − p_i(c_id, c_exp, s, R, t)‖² + λ ‖c_id / σ_id‖²

where p_i is scan point x_i's closest point on the transformed model surface. Each of ``rounds``
rounds finds p_i anew (a triangle and barycentric weights, so p_i is linear in the coefficients),
solves the similarity for those pairs (Umeyama), then the coefficients in closed form: distances
along the surface normal at p_i (point-to-plane, which lets the surface slide along itself) plus
the full offsets at ``TANGENT_WEIGHT`` (so the slide stays determined), expression weights inside
the model's bounds (bounded least squares). This is ICP with the shape free. λ (``prior``, mm² per
squared standard deviation) is small: it only keeps the identity directions the scan does not
reach (the back of the head) near the mean. Scored with the same protocol as a fit, the result is
an upper bound on the best a fit of this model could score (the solve stops after its rounds):
"oracle" in ``scripts/bench_cross_model.py``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import lsq_linear

from fitter.metrics_3d import Similarity, SurfaceQuery, umeyama
from morphable_models.model import MorphableModel

#: weight of the point-to-point rows beside the point-to-plane ones in the coefficient solve.
TANGENT_WEIGHT = 0.1


@dataclass
class ScanFit:
    """Result of :func:`fit_to_scan`.

    Attributes:
        vertices_mm: [V_mesh, 3] the fitted mesh in model space (no similarity), mm.
        id_coeffs: [K_id]; exp_coeffs: [K_exp] the fitted coefficients.
        mean_mm: mean scan-to-surface distance at the end of the fit (the fit's own alignment), mm.
    """

    vertices_mm: np.ndarray
    id_coeffs: np.ndarray
    exp_coeffs: np.ndarray
    mean_mm: float


def fit_to_scan(model: MorphableModel, scan_mm: np.ndarray, start: Similarity, rounds: int = 20,
                prior: float = 1e-3, expressions: bool = True) -> ScanFit:
    """Fit ``model`` (identity, expression and a similarity) to ``scan_mm`` (see the module docstring).

    Each round finds every scan point's closest point on the posed model surface (a triangle and
    barycentric weights, so the point is linear in the coefficients), then solves the similarity
    for those pairs (Umeyama) and the coefficients for the scan in the model's frame (bounded
    linear least squares, the expression weights inside the model's bounds).

    Args:
        model: the morphable model; its mesh vertices are fitted.
        scan_mm: [N, 3] scan points, mm (the frame of the ground truth).
        start: the similarity that takes the model's mean (mm) onto the scan's frame (e.g. Umeyama on
            landmarks, as ``now_error`` starts).
        rounds: closest-point searches; prior: λ (mm² per squared identity standard deviation).
        expressions: False holds every expression weight at 0 (the identity space's own floor).
    Returns:
        :class:`ScanFit`.
    """
    scan = np.asarray(scan_mm, np.float64)
    if scan.ndim != 2 or scan.shape[1] != 3 or len(scan) == 0:
        raise ValueError(f"scan_mm must be [N, 3] with N > 0, got {scan.shape}")
    nv = model.num_mesh_vertices
    mm = float(model.mm_per_unit)
    mean = model.mean[:nv].detach().cpu().double().numpy() * mm  # [V, 3]
    k_id, k_exp = model.num_id, (model.num_exp if expressions else 0)
    basis = np.concatenate([model.id_basis[:, :nv].detach().cpu().double().numpy(),
                            model.exp_basis[:k_exp, :nv].detach().cpu().double().numpy()]) * mm  # [K, V, 3]
    id_std = model.id_std.detach().cpu().double().numpy()
    lower = np.r_[np.full(k_id, -np.inf), model.exp_lower[:k_exp].detach().cpu().double().numpy()]
    upper = np.r_[np.full(k_id, np.inf), model.exp_upper[:k_exp].detach().cpu().double().numpy()]
    ridge = np.r_[np.sqrt(prior) / id_std, np.zeros(k_exp)]  # rows of the prior, per coefficient
    tris = model.triangles.detach().cpu().numpy().astype(np.int64)
    coeffs = np.zeros(k_id + k_exp)
    sim = start
    for _ in range(rounds):
        shape = mean + np.einsum("k,kvc->vc", coeffs, basis)
        tri_id, uv = SurfaceQuery(sim.apply(shape), tris).closest_barycentric(scan)
        corner = tris[tri_id]  # [N, 3]
        bary = np.c_[1.0 - uv.sum(1), uv]  # [N, 3]
        base = np.einsum("nj,njc->nc", bary, mean[corner])  # [N, 3] model-space point at c = 0
        moves = np.einsum("nj,knjc->nck", bary, basis[:, corner])  # [N, 3, K]
        sim = umeyama(base + moves @ coeffs, scan)
        local = (scan - sim.t) @ sim.R / sim.scale  # the scan in the model's frame
        a, b_, c = (shape[corner[:, j]] for j in range(3))
        normal = np.cross(b_ - a, c - a)
        normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)  # [N, 3], model frame
        # point-to-plane rows (the distance along the surface normal), plus the full offset at
        # TANGENT_WEIGHT so that the sliding along the surface stays determined
        A = np.concatenate([np.einsum("nc,nck->nk", normal, moves),
                            TANGENT_WEIGHT * moves.reshape(-1, k_id + k_exp), np.diag(ridge)])
        b = np.concatenate([((local - base) * normal).sum(1), TANGENT_WEIGHT * (local - base).ravel(),
                            np.zeros(k_id + k_exp)])
        # the same least squares through its K × K normal equations (U^T U = A^T A): fast for any N
        gram = A.T @ A
        U = np.linalg.cholesky(gram + 1e-9 * np.trace(gram) / len(gram) * np.eye(len(gram))).T
        coeffs = lsq_linear(U, np.linalg.solve(U.T, A.T @ b), bounds=(lower, upper), method="bvls").x
    shape = mean + np.einsum("k,kvc->vc", coeffs, basis)
    err = float(SurfaceQuery(sim.apply(shape), tris).distance(scan).mean())
    exp_coeffs = np.zeros(model.num_exp)
    exp_coeffs[:k_exp] = coeffs[k_id:]
    return ScanFit(shape, coeffs[:k_id], exp_coeffs, err)
