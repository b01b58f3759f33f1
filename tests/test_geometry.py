"""fitter.geometry: rotations, camera, z-buffer visibility, label raster, soft silhouettes."""
import gzip
import math

import pytest
import torch

from fitter.geometry import (
    MODEL_TO_CAMERA,
    default_focal,
    euler_to_matrix,
    label_support,
    lumped_point_weights,
    masks_to_resolution,
    matrix_to_euler,
    matrix_to_rotation_6d,
    model_to_camera,
    part_iou,
    project_perspective,
    project_weak,
    rasterize_depth,
    rasterize_labels,
    rotation_6d_to_matrix,
    soft_silhouettes,
    splat_depth,
    triangle_areas_2d,
    triangle_labels,
    zbuffer_visibility,
)
from fitter.losses.photometric import vertex_normals


# ----------------------------------------------------------------------------- helpers
def uv_sphere(n_lat: int, n_lon: int, radius: float):
    """Closed UV sphere, outward counter-clockwise triangles: ([V, 3], [F, 3])."""
    lat = torch.linspace(0, math.pi, n_lat + 1, dtype=torch.float64)[1:-1]
    lon = torch.linspace(0, 2 * math.pi, n_lon + 1, dtype=torch.float64)[:-1]
    la, lo = torch.meshgrid(lat, lon, indexing="ij")
    ring = torch.stack([torch.sin(la) * torch.cos(lo), torch.cos(la), torch.sin(la) * torch.sin(lo)], -1)
    v = torch.cat([ring.reshape(-1, 3), torch.tensor([[0, 1.0, 0], [0, -1.0, 0]], dtype=torch.float64)]) * radius
    top, bot = v.shape[0] - 2, v.shape[0] - 1
    i = torch.arange(n_lat - 2).view(-1, 1)
    j = torch.arange(n_lon).view(1, -1)
    a, b = i * n_lon + j, (i + 1) * n_lon + j
    c, d = (i + 1) * n_lon + (j + 1) % n_lon, i * n_lon + (j + 1) % n_lon
    quads = torch.cat([torch.stack([a, b, c], -1).reshape(-1, 3), torch.stack([a, c, d], -1).reshape(-1, 3)])
    jj = torch.arange(n_lon)
    caps = torch.cat([
        torch.stack([torch.full_like(jj, top), jj, (jj + 1) % n_lon], -1),
        torch.stack([torch.full_like(jj, bot), (n_lat - 2) * n_lon + (jj + 1) % n_lon, (n_lat - 2) * n_lon + jj], -1),
    ])
    return v.float(), torch.cat([quads, caps])


def pose_and_project(v, yaw_deg, distance, size=224):
    R = euler_to_matrix(torch.tensor([[0.0, math.radians(yaw_deg), 0.0]]))
    centre = v.mean(0) * torch.tensor([1.0, -1.0, -1.0])
    t = torch.tensor([[0.0, 0.0, distance]]) - (R[0] @ centre)[None]
    pc = model_to_camera(v[None], R, t)
    pi = project_perspective(pc, default_focal(size), torch.tensor([[(size - 1) / 2, (size - 1) / 2]]))
    return pc, pi


# ----------------------------------------------------------------------------- rotations
def test_6d_round_trip_and_orthonormal():
    torch.manual_seed(0)
    r6 = torch.randn(50, 6, dtype=torch.float64)
    R = rotation_6d_to_matrix(r6)
    eye = torch.eye(3, dtype=torch.float64).expand(50, 3, 3)
    assert torch.allclose(R @ R.transpose(-1, -2), eye, atol=1e-12)
    assert torch.allclose(torch.linalg.det(R), torch.ones(50, dtype=torch.float64), atol=1e-12)
    R2 = rotation_6d_to_matrix(matrix_to_rotation_6d(R))
    assert torch.allclose(R, R2, atol=1e-12)
    # the first column is the normalized first half
    assert torch.allclose(R[:, :, 0], r6[:, :3] / r6[:, :3].norm(dim=-1, keepdim=True))


def test_euler_matches_elementary_product_and_round_trips():
    torch.manual_seed(1)
    ang = torch.stack([torch.empty(40).uniform_(-3, 3), torch.empty(40).uniform_(-1.5, 1.5),
                       torch.empty(40).uniform_(-3, 3)], -1).double()
    R = euler_to_matrix(ang)
    p, y, r = ang[0]
    c, s = math.cos, math.sin
    Rx = torch.tensor([[1, 0, 0], [0, c(p), -s(p)], [0, s(p), c(p)]], dtype=torch.float64)
    Ry = torch.tensor([[c(y), 0, s(y)], [0, 1, 0], [-s(y), 0, c(y)]], dtype=torch.float64)
    Rz = torch.tensor([[c(r), -s(r), 0], [s(r), c(r), 0], [0, 0, 1]], dtype=torch.float64)
    assert torch.allclose(R[0], Rz @ Ry @ Rx, atol=1e-12)
    assert torch.allclose(matrix_to_euler(R), ang, atol=1e-9)
    # gimbal lock still gives back the same matrix
    locked = torch.tensor([[0.3, math.pi / 2, 0.2], [0.3, -math.pi / 2, -0.4]], dtype=torch.float64)
    assert torch.allclose(euler_to_matrix(matrix_to_euler(euler_to_matrix(locked))), euler_to_matrix(locked), atol=1e-7)


def test_euler_axis_meaning():
    nose = torch.tensor([0.0, 0.0, -1.0])  # a frontal face's nose direction in camera space
    yawed = euler_to_matrix(torch.tensor([0.0, 0.3, 0.0])) @ nose
    pitched = euler_to_matrix(torch.tensor([0.3, 0.0, 0.0])) @ nose
    rolled = euler_to_matrix(torch.tensor([0.0, 0.0, 0.3])) @ torch.tensor([1.0, 0.0, 0.0])
    assert yawed[0] < -0.2 and abs(yawed[1]) < 1e-6  # towards image left
    assert pitched[1] > 0.2 and abs(pitched[0]) < 1e-6  # towards image bottom
    assert rolled[1] > 0.2  # +x turns towards +y (clockwise on screen)


# ----------------------------------------------------------------------------- camera
def test_model_to_camera_and_projection_of_known_points():
    assert torch.equal(MODEL_TO_CAMERA, torch.diag(torch.tensor([1.0, -1.0, -1.0])))
    X = torch.tensor([[[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]])
    R = torch.eye(3)[None]
    t = torch.tensor([[0.0, 0.0, 10.0]])
    pc = model_to_camera(X, R, t)
    assert torch.allclose(pc, torch.tensor([[[1.0, -2.0, 7.0], [0.0, 0.0, 10.0]]]))
    f = default_focal(224)
    assert f == pytest.approx(1015.0) and default_focal(448) == pytest.approx(2030.0)
    uv = project_perspective(pc, f, torch.tensor([[111.5, 111.5]]))
    assert torch.allclose(uv[0, 0], torch.tensor([111.5 + f / 7.0, 111.5 - 2 * f / 7.0]))
    assert torch.allclose(uv[0, 1], torch.tensor([111.5, 111.5]))
    uvw = project_weak(pc, torch.tensor([5.0]), torch.tensor([[100.0, 50.0]]))
    assert torch.allclose(uvw[0, 0], torch.tensor([105.0, 40.0]))
    # a frontal face's tip (model +Z) is nearer the camera than its centre
    assert pc[0, 0, 2] < pc[0, 1, 2]
    # behind the camera: finite
    behind = project_perspective(torch.tensor([[[1.0, 1.0, -5.0]]]), f, torch.zeros(1, 2))
    assert torch.isfinite(behind).all()


def test_camera_float64_and_bad_shapes():
    pc = torch.rand(2, 5, 3, dtype=torch.float64) + torch.tensor([0, 0, 3.0], dtype=torch.float64)
    uv = project_perspective(pc, torch.tensor([500.0, 600.0], dtype=torch.float64), torch.zeros(2, 2, dtype=torch.float64))
    assert uv.dtype == torch.float64 and uv.shape == (2, 5, 2)
    with pytest.raises(ValueError, match="points_cam"):
        project_perspective(torch.rand(5, 3), 1.0, torch.zeros(1, 2))
    with pytest.raises(ValueError, match="R must be"):
        model_to_camera(torch.rand(2, 5, 3), torch.eye(3)[None], torch.zeros(2, 3))


# ----------------------------------------------------------------------------- visibility
def test_visibility_yawed_sphere_back_hidden_front_visible():
    v, f = uv_sphere(60, 60, 8.0)
    pc, pi = pose_and_project(v, 60.0, 110.0)
    vis = zbuffer_visibility(pi, pc[..., 2], f, (224, 224))[0]
    normal = (pc[0] - pc[0].mean(0))
    cos = -(normal / normal.norm(dim=-1, keepdim=True) * pc[0] / pc[0].norm(dim=-1, keepdim=True)).sum(-1)
    assert vis[cos > 0.2].all()
    assert not vis[cos < -0.2].any()


def test_visibility_occluder_in_front():
    # a small square at depth 5 in front of a big square at depth 10 (both facing the camera)
    big = torch.tensor([[-4.0, -4, 10], [4, -4, 10], [4, 4, 10], [-4, 4, 10], [0, 0, 10], [3.5, 0, 10]])
    small = torch.tensor([[-1.0, -1, 5], [1, -1, 5], [1, 1, 5], [-1, 1, 5]])
    pts = torch.cat([big, small])[None]
    tris = torch.tensor([[0, 1, 2], [0, 2, 3], [6, 7, 8], [6, 8, 9]])
    uv = project_perspective(pts, 100.0, torch.tensor([[64.0, 64.0]]))
    vis = zbuffer_visibility(uv, pts[..., 2], tris, (128, 128), tol=0.1)[0]
    assert not vis[4]  # centre of the big square is behind the small one
    assert vis[5] and vis[:4].all() and vis[6:].all()
    vis_s = zbuffer_visibility(uv, pts[..., 2], tris, (128, 128), tol=0.1, samples_per_edge=40)[0]
    assert not vis_s[4] and vis_s[5]


def test_visibility_real_head_yaw60(shared):
    path = shared / "models/ict-facekit/FaceXModel/generic_neutral_mesh.obj.gz"
    if not path.is_file():
        pytest.skip("ICT-FaceKit mesh not found")
    vs, fs = [], []
    with gzip.open(path, "rt") as fh:
        for line in fh:
            if line.startswith("v "):
                vs.append([float(x) for x in line.split()[1:4]])
            elif line.startswith("f "):
                idx = [int(t.split("/")[0]) - 1 for t in line.split()[1:]]
                fs += [(idx[0], idx[k], idx[k + 1]) for k in range(1, len(idx) - 1)]
    n_head = 11248  # face, head and neck (no eyeballs, teeth, mouth socket)
    v = torch.tensor(vs[:n_head], dtype=torch.float32)
    f = torch.tensor(fs)
    f = f[(f < n_head).all(1)]
    pc, pi = pose_and_project(v, 60.0, 170.0)
    vis = zbuffer_visibility(pi, pc[..., 2], f, (224, 224))[0]
    n = vertex_normals(pc, f)[0]
    cos = -(n * pc[0] / pc[0].norm(dim=-1, keepdim=True)).sum(-1)
    used = torch.zeros(n_head, dtype=torch.bool)
    used[f.reshape(-1)] = True
    face_area = torch.arange(n_head) < 9409
    # back side (facing away) is hidden; the near (person's left, +X) face is visible
    assert (~vis[used & (cos < -0.3)]).float().mean() > 0.95
    near = used & face_area & (cos > 0.5) & (v[:, 0] > 2.0)
    assert vis[near].float().mean() > 0.95
    # the far cheek behind the nose is mostly hidden
    far = used & face_area & (v[:, 0] < -4.0) & (v[:, 2] > 5.0)
    assert (~vis[far]).float().mean() > 0.8


# ----------------------------------------------------------------------------- raster
def test_rasterize_two_overlapping_triangles_depth_order():
    pts = torch.tensor([[[2.0, 2], [30, 2], [2, 30], [10, 10], [38, 10], [10, 38]]])
    tris = torch.tensor([[0, 1, 2], [3, 4, 5]])
    labels = torch.tensor([1, 2])
    near_first = torch.tensor([[1.0, 1, 1, 2, 2, 2]])
    lab = rasterize_labels(pts, near_first, tris, labels, (40, 40))[0]
    assert lab[5, 5] == 1 and lab[12, 12] == 1 and lab[30, 30] == 0 and lab[12, 30] == 2 and lab[39, 39] == 0
    lab2 = rasterize_labels(pts, 3.0 - near_first, tris, labels, (40, 40))[0]
    assert lab2[12, 12] == 2 and lab2[5, 5] == 1
    # pixel centres: (x=2..16) row y=2 lies on the first triangle's edge and is covered
    assert (lab[2, 2:29] == 1).all() and lab[1, 5] == 0
    depth, face = rasterize_depth(pts, near_first, tris, (40, 40))
    assert face[0, 12, 12] == 0 and depth[0, 12, 12] == 1.0 and torch.isinf(depth[0, 39, 39])


def test_splat_depth_approximates_exact_on_fine_mesh():
    v, f = uv_sphere(80, 80, 8.0)
    pc, pi = pose_and_project(v, 20.0, 110.0, size=128)
    d_exact, _ = rasterize_depth(pi, pc[..., 2], f, (128, 128))
    d_splat, _ = splat_depth(pi, pc[..., 2], f, (128, 128), samples_per_edge=4)
    both = torch.isfinite(d_exact) & torch.isfinite(d_splat)
    assert both.sum() > 0.9 * torch.isfinite(d_exact).sum()
    err = (d_exact[both] - d_splat[both]).abs()
    # samples land up to half a pixel from the pixel centre: small errors, larger on grazing slopes
    assert torch.quantile(err, 0.5) < 0.1 and torch.quantile(err, 0.9) < 0.5


def test_triangle_labels_and_part_iou():
    tris = torch.tensor([[0, 1, 2], [2, 3, 4], [0, 3, 5]])
    pl = torch.tensor([1, 1, 2, 2, 2, 3])
    assert triangle_labels(tris, pl).tolist() == [1, 2, 0]
    a = torch.zeros(4, 4, dtype=torch.long)
    b = torch.zeros(4, 4, dtype=torch.long)
    a[:2, :2] = 1
    b[:2, :] = 1
    a[3, 3] = 8
    iou = part_iou(a, b)
    assert iou.shape == (8,)
    assert iou[0] == pytest.approx(0.5) and iou[7] == 0.0 and torch.isnan(iou[1:7]).all()


# ----------------------------------------------------------------------------- soft silhouettes
def test_soft_silhouette_values_gradient_and_chunking():
    pts = torch.tensor([[[8.0, 8], [56, 8], [8, 56], [40, 40], [60, 40], [40, 60]]], requires_grad=True)
    parts = [torch.tensor([[0, 1, 2]]), torch.tensor([[3, 4, 5]]), torch.zeros(0, 3, dtype=torch.long)]
    sil = soft_silhouettes(pts, parts, (64, 64), sigma=1.0, resolution=32)
    assert sil.shape == (1, 3, 32, 32)
    assert 0.0 <= float(sil.detach().min()) and float(sil.detach().max()) <= 1.0
    assert sil[0, 0, 8, 8] > 0.99 and sil[0, 0, 28, 28] < 1e-3 and (sil[0, 2] == 0).all()
    # chunked evaluation (tiny max_pairs) gives the same values
    sil_c = soft_silhouettes(pts, parts, (64, 64), sigma=1.0, resolution=32, max_pairs=50)
    assert torch.allclose(sil, sil_c, atol=1e-6)
    sil[:, :2].sum().backward()
    assert pts.grad.abs().sum() > 0 and torch.isfinite(pts.grad).all()
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., :32, :32] = 1.0
    low = masks_to_resolution(mask, 32)
    assert low.shape == (1, 1, 32, 32) and low[0, 0, :16, :16].eq(1).all() and low[0, 0, 16:].eq(0).all()


def test_triangle_areas_and_lumped_weights_cover_the_projected_area():
    # a unit-spaced 3x3 grid of points = 8 triangles of area 0.5, total 4 px²
    xs, ys = torch.meshgrid(torch.arange(3.0), torch.arange(3.0), indexing="xy")
    pts = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1)[None] * 2.0  # spacing 2 px: total 16 px²
    tris = []
    for r in range(2):
        for c in range(2):
            i = r * 3 + c
            tris += [[i, i + 1, i + 4], [i, i + 4, i + 3]]
    tris = torch.tensor(tris)
    area = triangle_areas_2d(pts, tris)
    assert torch.allclose(area, torch.full((1, 8), 2.0))
    owner = tris.clone()
    owner[0, 0] = -1  # corner owned by nobody: its share goes to the triangle's other corners
    w = lumped_point_weights(area, torch.ones(1, 8, dtype=torch.bool), owner, 9)
    assert torch.isclose(w.sum(), torch.tensor(16.0))
    # the centre touches 6 triangles; in the first it shares with one other owner only
    assert torch.isclose(w[0, 4], torch.tensor(5 * 2.0 / 3 + 1.0))
    hidden = torch.ones(1, 8, dtype=torch.bool)
    hidden[0, :2] = False
    w2 = lumped_point_weights(area, hidden, owner, 9)
    assert torch.isclose(w2.sum(), torch.tensor(12.0)) and w2[0, 0] == 0  # vertex 0 is only in those two


def test_label_support_finds_points_without_their_part_nearby():
    labels = torch.zeros(1, 10, 10, dtype=torch.long)
    labels[0, 4:6, 2:5] = 1  # part 0 covers x 2..4, y 4..5
    labels[0, 0:3, 7:10] = 2  # part 1
    pts = torch.tensor([[[[3.0, 4.2], [5.4, 5.0], [7.0, 5.0], [-3.0, 5.0]],
                         [[8.0, 1.0], [8.0, 3.4], [3.0, 4.0], [8.0, 8.0]]]])
    got = label_support(labels, pts, radius=1)
    assert got.tolist() == [[[True, True, False, True], [True, True, False, False]]]
    assert label_support(labels, pts, radius=0)[0, 0, 1].item() is False
    nan = torch.full((1, 2, 1, 2), float("nan"))
    assert not label_support(labels, nan).any()


def test_farthest_point_sample_loops_agree():
    """The CPU loop (numpy in place) and the accelerator loop (torch) pick the same points, also on
    ties (a grid of pixels, many equal distances)."""
    from fitter.geometry.sampling import _fps_torch, farthest_point_sample

    yy, xx = torch.meshgrid(torch.arange(30.0), torch.arange(40.0), indexing="ij")
    grid = torch.stack((xx.reshape(-1), yy.reshape(-1)), -1)
    pts = torch.stack((grid, grid.flip(0)))  # [2, 1200, 2]
    assert torch.equal(farthest_point_sample(pts, 300, start=5), _fps_torch(pts, 300, 5))
    cloud = torch.randn(2, 400, 3, dtype=torch.float64)
    assert torch.equal(farthest_point_sample(cloud, 100), _fps_torch(cloud, 100, 0))
