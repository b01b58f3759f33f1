"""NoW-style 3D scoring (fitter/metrics_3d.py) on small synthetic meshes; no shared data needed."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from fitter.metrics_3d import SurfaceQuery, crop_scan, now_error, rigid_icp, sample_surface, umeyama


@pytest.fixture
def o3d():
    """Open3D (the surface queries); skips where it cannot load (e.g. without libusb-1.0)."""
    return pytest.importorskip("open3d")


def grid_mesh(n: int = 61, half: float = 150.0, height=None):
    """A square grid in the z = height(x, y) surface, mm: ([n*n, 3] vertices, [2(n-1)^2, 3] triangles)."""
    xs = np.linspace(-half, half, n)
    x, y = np.meshgrid(xs, xs)
    z = np.zeros_like(x) if height is None else height(x, y)
    v = np.stack([x.ravel(), y.ravel(), z.ravel()], 1)
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    tri = np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)])
    return v, tri


def bumpy(x, y):
    """A face-sized surface with no symmetry an alignment could slide along."""
    return 40 * np.exp(-(x**2 + y**2) / 80.0**2) + 8 * np.exp(-((x - 30) ** 2 + (y + 20) ** 2) / 25.0**2) + 0.05 * x


def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(30, 3))
    R = Rotation.from_euler("xyz", [20, -35, 10], degrees=True).as_matrix()
    dst = 1.7 * src @ R.T + np.array([3.0, -1.0, 2.0])
    T = umeyama(src, dst)
    assert T.scale == pytest.approx(1.7, rel=1e-9)
    np.testing.assert_allclose(T.R, R, atol=1e-9)
    np.testing.assert_allclose(T.apply(src), dst, atol=1e-9)
    assert umeyama(src, dst, with_scale=False).scale == 1.0


def test_sample_surface_is_uniform_by_area():
    v, tri = grid_mesh(n=3, half=1.0)  # 8 equal triangles over [-1, 1]^2
    pts = sample_surface(v, tri, 40000, seed=1)
    assert np.abs(pts[:, :2]).max() <= 1.0 + 1e-12 and np.allclose(pts[:, 2], 0)
    counts = np.histogram2d(pts[:, 0], pts[:, 1], bins=4, range=[[-1, 1], [-1, 1]])[0]
    assert counts.min() > 0.9 * 2500 and counts.max() < 1.1 * 2500


def test_similarity_transformed_copy_scores_zero(o3d):
    gv, tri = grid_mesh(height=bumpy)
    R = Rotation.from_euler("xyz", [10, 40, -5], degrees=True).as_matrix()
    pv = (0.1 * gv) @ R.T + np.array([5.0, 2.0, -30.0])  # e.g. cm, rotated and moved
    lm = np.arange(0, len(gv), 97)
    nose = int(np.argmax(gv[:, 2]))
    score = now_error(pv, tri, lm, gv, tri, lm, nose, scan_points=5000)
    assert score.mean_mm < 1e-3 and score.landmark_only_mm < 1e-3
    assert 0 < score.scan_points < 5000  # the 95 mm crop removed the corners of the 300 mm square


def test_known_normal_offset_gives_its_distance(o3d):
    """The predicted surface is the truth raised by 2 mm everywhere within 110 mm of the centre
    (beyond the 95 mm scan) and unmoved at the far edges, where the landmarks are: the landmark
    similarity is the identity and every scan point lies 2 mm below the plateau."""
    d = 2.0
    gv, tri = grid_mesh()
    r = np.linalg.norm(gv[:, :2], axis=1)
    pv = gv.copy()
    pv[:, 2] += d * np.clip((130.0 - r) / 20.0, 0.0, 1.0)
    lm = np.flatnonzero(r > 140)
    centre = int(np.argmin(r))
    score = now_error(pv, tri, lm, gv, tri, lm, centre, scan_points=8000, icp_iters=0)
    assert score.mean_mm == pytest.approx(d, abs=1e-4)
    assert score.median_mm == pytest.approx(d, abs=1e-4)
    # Rigid ICP is allowed to take the constant offset out (a translation along the normal).
    assert now_error(pv, tri, lm, gv, tri, lm, centre, scan_points=8000, icp_iters=10).mean_mm < 0.05


def test_icp_removes_a_misalignment_the_landmarks_leave(o3d):
    gv, tri = grid_mesh(height=bumpy)
    lm_gt = np.arange(0, len(gv), 131)
    rng = np.random.default_rng(3)
    # Wrong correspondences: each predicted landmark is a neighbour of the true vertex.
    lm_pred = np.clip(lm_gt + rng.choice([-3, 3, -183, 183], size=len(lm_gt)), 0, len(gv) - 1)
    nose = int(np.argmax(gv[:, 2]))
    score = now_error(gv, tri, lm_pred, gv, tri, lm_gt, nose, scan_points=5000, icp_iters=10)
    assert score.landmark_only_mm > 1.0
    assert score.mean_mm < 0.1 * score.landmark_only_mm  # what is left is the scale error, which rigid ICP keeps


def test_crop_and_distance_helpers(o3d):
    v, tri = grid_mesh(n=11, half=10.0)
    q = SurfaceQuery(v, tri)
    pts = np.array([[0.0, 0.0, 3.0], [2.5, -1.0, -1.5], [20.0, 0.0, 0.0]])
    np.testing.assert_allclose(q.distance(pts), [3.0, 1.5, 10.0], atol=1e-5)
    points, normals = q.closest(pts)
    np.testing.assert_allclose(points[2], [10.0, 0.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(np.abs(normals[:, 2]), 1.0, atol=1e-6)
    assert len(crop_scan(pts, np.zeros(3), radius=5.0)) == 2
    T = rigid_icp(pts[:2] + np.array([0, 0, 0.0]), q, iters=0)
    np.testing.assert_allclose(T.R, np.eye(3))


def test_closest_barycentric_rebuilds_the_closest_point(o3d):
    v, tri = grid_mesh(height=bumpy)
    q = SurfaceQuery(v, tri)
    pts = np.random.default_rng(0).uniform(-100, 100, (50, 3))
    ids, uv = q.closest_barycentric(pts)
    corners = v[tri[ids]]  # [N, 3, 3]
    rebuilt = (1 - uv.sum(1, keepdims=True)) * corners[:, 0] + uv[:, :1] * corners[:, 1] + uv[:, 1:] * corners[:, 2]
    closest, _ = q.closest(pts)
    np.testing.assert_allclose(rebuilt, closest, atol=1e-3)
