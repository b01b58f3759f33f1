"""The shading term (fitter.losses.shading): the light solve, what the term tells apart, which
points count, and that through the fitter it moves the identity and never the expression."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import _sphere, projected_targets

from fitter import losses as L
from fitter.config import PAPER_LOSS_WEIGHTS, FitConfig
from fitter.optimize import Fitter
from morphable_models import registry
from morphable_models.model import PART_NAMES

SIZE, FOCAL, DEPTH, RADIUS = 224, 1015.0, 80.0, 5.0
#: a key light from the upper left plus ambient, as SH coefficients per channel (warm skin)
M_TRUE = torch.tensor([[0.55, 0.42, 0.36], [-0.20, -0.15, -0.13], [-0.25, -0.19, -0.16], [-0.12, -0.09, -0.08],
                       [0.03, 0.02, 0.02], [0.04, 0.03, 0.03], [-0.05, -0.04, -0.03], [0.02, 0.01, 0.01],
                       [0.01, 0.01, 0.0]])


def _sphere_photo(m: torch.Tensor = M_TRUE) -> torch.Tensor:
    """[1, 3, H, W] a sphere of RADIUS at DEPTH on the optical axis, each pixel b(n)ᵀ M at its
    surface point (ray-traced), the background 0."""
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    c = (SIZE - 1) / 2.0
    ray = np.stack([(xs - c) / FOCAL, (ys - c) / FOCAL, np.ones_like(xs)], -1)
    ray /= np.linalg.norm(ray, axis=-1, keepdims=True)
    centre = np.array([0.0, 0.0, DEPTH])
    b = ray @ centre
    disc = b * b - (centre @ centre - RADIUS**2)
    hit = disc > 0
    t = b - np.sqrt(np.clip(disc, 0, None))
    n = torch.from_numpy((ray * t[..., None] - centre) / RADIUS).float()
    colour = torch.einsum("hwk,kc->hwc", L.sh_basis(n.unsqueeze(0))[0], m) * torch.from_numpy(hit)[..., None]
    return colour.permute(2, 0, 1).unsqueeze(0)


def _posed_sphere(z_scale: torch.Tensor):
    """(points_cam [1, V, 3], points_img [1, V, 2], triangles) of the sphere stretched along the view
    axis by ``z_scale`` (1 = the photo's sphere)."""
    verts, tris = _sphere(RADIUS, 48, 96)
    v = torch.from_numpy(verts).double()
    # model +Z towards the viewer -> camera -z; the axis flip diag(1, -1, -1) keeps the winding
    cam = torch.stack([v[:, 0], -v[:, 1], -v[:, 2] * z_scale], -1) + torch.tensor([0.0, 0.0, DEPTH], dtype=v.dtype)
    c = (SIZE - 1) / 2.0
    img = FOCAL * cam[:, :2] / cam[:, 2:] + c
    return cam.unsqueeze(0).float(), img.unsqueeze(0).float(), torch.from_numpy(tris)


def _term(image, skin, z_scale):
    cam, img, tris = _posed_sphere(z_scale)
    normals = L.vertex_normals(cam, tris)
    visible = cam[..., 2] < DEPTH  # the near half
    return L.shading_loss(image, skin, img, cam, normals, visible)


def test_solve_light_recovers_the_light_and_ignores_what_one_colour_cannot_explain():
    gen = torch.Generator().manual_seed(0)
    n = torch.randn(1, 2000, 3, generator=gen)
    n[..., 2] = -n[..., 2].abs()
    n = n / n.norm(dim=-1, keepdim=True)
    basis = L.sh_basis(n)
    colours = torch.einsum("bvk,kc->bvc", basis, M_TRUE)
    w = torch.ones(1, 2000)
    M, u = L.solve_light(basis, colours, w)
    assert torch.allclose(M[0], M_TRUE, atol=2e-3) and float(u.min()) > 0.99
    dark = colours.clone()
    dark[:, :500] = 0.05  # a quarter of the points under a beard
    plain, _ = L.solve_light(basis, dark, w, rounds=1)
    robust, u = L.solve_light(basis, dark, w)
    shade = lambda m: torch.einsum("bvk,bkc->bvc", basis, m)  # noqa: E731
    err = lambda m: float((shade(m) - colours)[:, 500:].abs().mean())  # noqa: E731
    assert err(plain) > 0.05 and err(robust) < 0.01
    assert float(u[:, :500].mean()) < 0.1 and float(u[:, 500:].mean()) > 0.9
    with pytest.raises(ValueError, match="basis"):
        L.solve_light(basis[..., :4], colours, w)


def test_the_term_prefers_the_true_depth_and_its_gradient_points_there():
    image = _sphere_photo()
    skin = (image.sum(1, keepdim=True) > 0).float()
    true = float(_term(image, skin, torch.tensor(1.0)))
    for s in (0.6, 1.4):
        z = torch.tensor(s, requires_grad=True)
        value = _term(image, skin, z)
        value.backward()
        assert float(value.detach()) > 3 * true
        assert np.sign(float(z.grad)) == np.sign(s - 1.0)  # descent moves the depth towards 1
    assert true < 0.01


def test_only_points_inside_the_skin_mask_count():
    image = _sphere_photo()
    skin = (image.sum(1, keepdim=True) > 0).float()
    spoiled = image.clone()
    spoiled[:, :, :, : SIZE // 2] = torch.rand(3, SIZE, SIZE // 2, generator=torch.Generator().manual_seed(1))
    half = skin.clone()
    half[..., : SIZE // 2 + 2] = 0  # the spoiled half (and the seam) is not skin
    one = torch.tensor(1.0)
    assert float(_term(spoiled, half, one)) == pytest.approx(float(_term(image, half, one)), abs=1e-6)
    assert float(_term(spoiled, skin, one)) > float(_term(image, skin, one)) + 0.01
    assert float(_term(image, torch.zeros_like(skin), one)) == 0.0


def test_a_point_weighs_its_share_of_the_image():
    counted = torch.tensor([[True, True, True, True, False]])
    facing = torch.tensor([[1.0, 0.6, 0.31, 0.29, 1.0]])
    w = L.point_weights(counted, facing)
    assert torch.allclose(w, torch.tensor([[1.0, 0.6, 0.31, 0.0, 0.0]]))
    assert torch.equal(L.point_weights(counted, facing, power=0.0), torch.tensor([[1.0, 1.0, 1.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="one shape"):
        L.point_weights(counted, facing[:, :4])


def test_the_rim_of_the_sphere_counts_for_what_the_photo_shows_of_it(monkeypatch):
    """The sphere's samples are spread evenly over its surface, so its rim (cos θ < 0.6) holds more
    of them than of the photo's pixels. Weighted by their share of the image, a rim whose colours the
    light cannot explain moves the term less than with every point alike, and the front more."""
    image = _sphere_photo()
    skin = (image.sum(1, keepdim=True) > 0).float()
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    r = np.hypot(xs - (SIZE - 1) / 2.0, ys - (SIZE - 1) / 2.0) / (FOCAL * RADIUS / DEPTH)  # 1 at the outline
    cos = torch.from_numpy(np.sqrt(np.clip(1 - r**2, 0, 1))).float()  # about the facing there

    def rise(region, power):
        monkeypatch.setattr(L.shading, "FACING_POWER", power)
        spoiled = image + 0.03 * region.float() * skin
        one = torch.tensor(1.0)
        return float(_term(spoiled, skin, one)) - float(_term(image, skin, one))

    rim, front = (cos > 0.35) & (cos < 0.6), cos > 0.9
    assert rise(rim, 1.0) < 0.9 * rise(rim, 0.0)
    assert rise(front, 1.0) > 1.2 * rise(front, 0.0) > 0


def test_the_table_reads_its_triangles_from_their_corner_rows():
    verts, tris = _sphere(RADIUS, 48, 96)
    chosen = torch.from_numpy(tris[::7])
    exp_basis = torch.randn(2, len(verts), 3, generator=torch.Generator().manual_seed(0))
    table = L.ShadingTable.build(chosen, exp_basis)
    assert torch.equal(table.rows[table.triangles], chosen)
    assert torch.equal(table.exp_basis, exp_basis[:, table.rows])
    corners = torch.from_numpy(verts)[table.rows].unsqueeze(0) + torch.tensor([0.0, 0.0, DEPTH])
    centres = table.centroids(corners) - torch.tensor([0.0, 0.0, DEPTH])
    cos = (table.normals(corners) * centres / centres.norm(dim=-1, keepdim=True)).sum(-1)
    assert float(cos.min()) > 0.99  # outward, along the radius
    seen = torch.ones(1, len(table.rows), dtype=torch.bool)
    seen[0, table.triangles[0, 1]] = False
    vis = table.visible(seen)
    assert not vis[0, 0] and int(vis.sum()) == len(chosen) - int((table.triangles == table.triangles[0, 1]).any(1).sum())


@pytest.fixture(scope="module")
def model(fake_model_file):
    return registry.load(fake_model_file)


def test_through_the_fitter_the_term_moves_the_identity_and_neither_expression_nor_pose(model):
    """The fake sphere with the shading term alone: its gradient reaches the identity, and the
    expression and the pose only by rounding (the expression's displacement is taken out of the
    normals, the rotation out of their gradient; colours are read at detached projections)."""
    target = projected_targets(model)
    target.image = (_sphere_photo()[0].permute(1, 2, 0).numpy() * 255).clip(0, 255).astype(np.uint8)
    target.part_masks = np.where(target.image.sum(-1) > 0, PART_NAMES.index("skin") + 1, 0).astype(np.uint8)
    weights = {k: 0.0 for k in FitConfig().loss_weights} | {"shading": 10.0}
    fitter = Fitter(model, FitConfig(device="cpu", loss_weights=weights, max_skin_points=300, max_part_points=100))
    tb, camera = fitter._batch([target], weights)
    params = fitter.space.initial(tb.landmarks, tb.landmark_valid, camera)
    with torch.no_grad():
        params.z_id += 0.5  # a generic shape
        params.z_exp += 0.3
    ev = fitter.forward(params, tb, camera, weights, refresh=True)
    assert float(ev.values["shading"].detach()) > 0
    ev.total.sum().backward()
    g_id, g_exp = float(params.z_id.grad.abs().max()), float(params.z_exp.grad.abs().max())
    assert g_id > 1e-4 and g_exp < 1e-5 * g_id
    for pose in (params.rot6d, params.trans_xy, params.log_depth):
        assert pose.grad is None or float(pose.grad.abs().max()) < 1e-5 * g_id


def test_the_paper_setup_has_no_shading_term():
    assert PAPER_LOSS_WEIGHTS["shading"] == 0.0 and FitConfig().loss_weights["shading"] > 0
