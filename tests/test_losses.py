"""fitter.losses: landmarks + contour marching, priors, comparison losses, photometric term."""
import math

import numpy as np
import pytest
import torch

from fitter.geometry import soft_silhouettes
from fitter.losses import (
    EYE_PAIRS,
    LIP_PAIRS,
    chamfer_loss,
    closure_loss,
    dcd_loss,
    default_landmark_weights,
    fade_jaw_weights,
    gaussian_prior,
    icp_p2t_loss,
    icp_t2p_loss,
    l2_prior,
    landmark_loss,
    march_contour_landmarks,
    photometric_loss,
    sample_image,
    sh_basis,
    sh_shading,
    soft_iou_loss,
    vertex_normals,
)


# ----------------------------------------------------------------------------- landmarks
def test_landmark_loss_value_mask_and_weights():
    pred = torch.zeros(2, 68, 2)
    target = torch.zeros(2, 68, 2)
    target[0, 0] = torch.tensor([3.0, 4.0])  # 25 px²
    target[1, 5] = float("nan")  # invalid entry may be NaN
    valid = torch.ones(2, 68, dtype=torch.bool)
    valid[1, 5] = False
    out = landmark_loss(pred, target, valid)
    assert out[0].item() == pytest.approx(25.0 / 68) and out[1].item() == 0.0
    w = torch.ones(68)
    w[0] = 2.0
    assert landmark_loss(pred, target, valid, w)[0].item() == pytest.approx(50.0 / 68)
    p = pred.clone().requires_grad_(True)
    landmark_loss(p, target, valid).sum().backward()
    assert torch.isfinite(p.grad).all() and p.grad[0, 0].abs().sum() > 0
    assert landmark_loss(pred, target, torch.zeros(2, 68, dtype=torch.bool)).eq(0).all()


def _face_upright(batch: int = 1) -> torch.Tensor:
    """[B, 68, 2] points with the chin (8) below the top of the nose (27), every eye pair closed."""
    pts = torch.zeros(batch, 68, 2)
    pts[:, 8] = torch.tensor([50.0, 90.0])
    pts[:, 27] = torch.tensor([50.0, 40.0])
    for k, (u, lo) in enumerate(EYE_PAIRS):
        pts[:, u] = pts[:, lo] = torch.tensor([20.0 + 10 * k, 45.0])
    return pts


def test_one_sided_eye_closure_lets_lids_pass_each_other_but_not_open():
    target = _face_upright()
    valid = torch.ones(1, 68, dtype=torch.bool)
    u, lo = EYE_PAIRS[2]
    crossed, opened, sideways = target.clone(), target.clone(), target.clone()
    crossed[0, u, 1] += 3.0  # the upper lid 3 px below the lower one (image y grows downwards)
    opened[0, u, 1] -= 3.0  # 3 px open
    sideways[0, u, 0] += 3.0  # 3 px along the lid line
    per_pair = 9.0 / len(EYE_PAIRS)
    assert closure_loss(crossed, target, valid, one_sided=True)[0].abs() < 1e-6
    assert closure_loss(crossed, target, valid)[0].item() == pytest.approx(per_pair)  # plain: charged
    for p in (opened, sideways):
        assert closure_loss(p, target, valid, one_sided=True)[0].item() == pytest.approx(per_pair)
    # A target whose lids cross counts as closed too; an open fit is charged its whole opening.
    assert closure_loss(opened, crossed, valid, one_sided=True)[0].item() == pytest.approx(per_pair)
    # Upside down (the chin above the nose) the same crossing is an opening.
    flipped = crossed.clone()
    flipped[0, 8, 1], flipped[0, 27, 1] = 0.0, 50.0
    assert closure_loss(flipped, target, valid, one_sided=True)[0].item() == pytest.approx(per_pair)
    p = opened.clone().requires_grad_(True)
    closure_loss(p, target, valid, one_sided=True).sum().backward()
    assert p.grad[0, u, 1] < 0 and torch.isfinite(p.grad).all()


def test_closure_loss_scores_openings_not_positions():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(2, 68, 2, generator=g) * 100
    valid = torch.ones(2, 68, dtype=torch.bool)
    shifted = target + torch.tensor([5.0, -3.0])  # every point off by the same offset: same openings
    assert closure_loss(shifted, target, valid).abs().max() < 1e-4
    assert closure_loss(shifted, target, valid, LIP_PAIRS).abs().max() < 1e-4
    opened = target.clone()
    u, lo = EYE_PAIRS[0]
    opened[0, u, 1] -= 4.0  # one lid pair 4 px wider on face 0
    out = closure_loss(opened, target, valid)
    assert out[0].item() == pytest.approx(16.0 / len(EYE_PAIRS), rel=1e-4) and out[1].abs() < 1e-4
    valid[0, lo] = False  # that pair no longer counts; the mean is over the valid pairs
    assert closure_loss(opened, target, valid)[0].abs() < 1e-4
    p = opened.clone().requires_grad_(True)
    closure_loss(p, target, torch.ones(2, 68, dtype=torch.bool)).sum().backward()
    assert p.grad[0, u, 1] < 0 < p.grad[0, lo, 1] and p.grad[0, 0].abs().sum() == 0
    with pytest.raises(ValueError):
        closure_loss(target[:, :10], target, valid)


def test_default_landmark_weights():
    w = default_landmark_weights()
    assert w.shape == (68,) and (w > 0).all()
    assert w[0] <= w[8] and w[36] > w[30] and w[48] > w[17]
    assert default_landmark_weights(jaw=0.5)[0] < w[8]
    heavy = default_landmark_weights(jaw=2.0)
    assert heavy[0] == heavy[16] == heavy[8] == 2.0 and torch.equal(heavy[17:], w[17:])
    assert default_landmark_weights(jaw=0.25)[8] == 1.0  # the chin keeps at least 1


def test_fade_jaw_weights_scales_the_jaw_but_the_chin_along_the_ramp():
    w = default_landmark_weights(jaw=1.0)
    faded = fade_jaw_weights(w, torch.tensor([0.0, 0.5, 1.0]), 0.4)
    assert faded.shape == (3, 68) and torch.equal(faded[0], w)
    jaw = [i for i in range(17) if i != 8]
    assert torch.allclose(faded[1, jaw], w[jaw] * 0.7) and torch.allclose(faded[2, jaw], w[jaw] * 0.4)
    assert (faded[:, 8] == w[8]).all() and torch.equal(faded[:, 17:], w[17:].expand(3, -1))
    pred, target = torch.zeros(3, 68, 2), torch.ones(3, 68, 2)
    valid = torch.ones(3, 68, dtype=torch.bool)
    per_face = landmark_loss(pred, target, valid, faded)
    assert torch.allclose(per_face, 2.0 * faded.sum(1) / 68)
    with pytest.raises(ValueError, match="weights"):
        landmark_loss(pred, target, valid, faded[:2])


def test_march_contour_picks_the_outermost_point_along_the_jaw_normal():
    """On the cheeks the outline is the extreme x; beside the chin, where the jaw runs almost
    horizontally, it is the lowest point, not a higher candidate further out in x (the old rule
    moved landmark 7 onto 6 this way); the choice turns with the head's roll."""
    V = 80
    pts = torch.zeros(1, V, 2)
    lmk = torch.arange(68) + 100
    lmk[:17] = torch.arange(17)
    a = torch.linspace(-torch.pi / 2, torch.pi / 2, 17)
    pts[0, :17, 0] = 50 * torch.sin(a)           # a U: 0 at image left, 8 the chin at the bottom
    pts[0, :17, 1] = 100 * torch.cos(a)
    cand = torch.full((17, 4), -1, dtype=torch.long)
    for j in range(17):
        normal = torch.stack([torch.sin(a[j]), torch.cos(a[j]) * 2])  # outward (ellipse normal, unnormalized)
        normal = normal / normal.norm()
        pts[0, 20 + j] = pts[0, j] - 4 * normal   # inside the outline
        pts[0, 40 + j] = pts[0, j] - 3 * normal   # inside, but further out in x:
        pts[0, 40 + j, 0] += 4 * torch.sign(a[j])
        cand[j, :3] = torch.tensor([20 + j, j, 40 + j])
    cand[3] = -1  # no candidates: keeps the fixed vertex
    pts = torch.cat([pts, torch.zeros(1, 100, 2)], 1)  # room for the landmarks 17-67 (vertices 117-167)
    out = march_contour_landmarks(pts, cand, lmk)
    assert out.shape == (1, 68)
    assert torch.equal(out[0, 17:], lmk[17:]) and out[0, 8] == lmk[8] and out[0, 3] == lmk[3]
    near_chin = [6, 7, 9, 10]
    for j in near_chin:
        assert out[0, j] == j, j  # the lowest point, though 40 + j has the more extreme x
    # the old extreme-x rule would have taken the higher point beside the chin
    x = pts[0, cand[7, :3], 0]
    assert int(cand[7, int(torch.argmin(x))]) == 47
    # roll the whole image by 35 degrees: the same vertices are chosen
    th = torch.tensor(0.61)
    rot = torch.stack([torch.stack([th.cos(), -th.sin()]), torch.stack([th.sin(), th.cos()])])
    rolled = pts @ rot.T
    assert torch.equal(march_contour_landmarks(rolled, cand, lmk), out)
    # flip the image left-right: each side's choice follows
    flipped = pts.clone()
    flipped[..., 0] = -flipped[..., 0]
    out_f = march_contour_landmarks(flipped, cand, lmk)
    assert out_f[0, 0] == 20 and out_f[0, 16] == 36


# ----------------------------------------------------------------------------- priors
def test_priors():
    c = torch.tensor([[1.0, 2.0], [0.0, -3.0]])
    std = torch.tensor([2.0, 1.0, 5.0])
    assert torch.allclose(gaussian_prior(c, std), torch.tensor([0.25 + 4.0, 9.0]))
    assert torch.allclose(l2_prior(c), torch.tensor([5.0, 9.0]))


def test_profile_factor_rises_from_30_to_60_degrees_of_yaw():
    from fitter.losses import PROFILE_YAW_DEG, profile_factor

    assert PROFILE_YAW_DEG == (30.0, 60.0)
    yaw = torch.deg2rad(torch.tensor([0.0, -30.0, 45.0, -45.0, 60.0, 85.0], dtype=torch.float64))
    f = profile_factor(yaw, 8.0)
    assert f.dtype == torch.float64
    torch.testing.assert_close(f, torch.tensor([1.0, 1.0, 3.0, 3.0, 9.0, 9.0], dtype=torch.float64))
    assert torch.equal(profile_factor(yaw, 0.0), torch.ones_like(yaw))
    torch.testing.assert_close(profile_factor(yaw[2:3], 8.0, yaw_deg=(40.0, 50.0)), torch.tensor([3.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="yaw"):
        profile_factor(yaw[None], 1.0)
    with pytest.raises(ValueError, match="rise"):
        profile_factor(yaw, 1.0, yaw_deg=(60.0, 30.0))


# ----------------------------------------------------------------------------- point-set losses
def _brute(X, xv, Y, yv):
    """per-part (p2t mean d², t2p mean d², dcd) with numpy."""
    x, y = X[xv], Y[yv]
    d = np.sqrt(((x[:, None] - y[None]) ** 2).sum(-1))
    p2t, t2p = (d.min(1) ** 2).mean(), (d.min(0) ** 2).mean()
    return p2t, t2p, d


def _sets(seed=0, B=2, P=3, N=70, M=90):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 50, (B, P, N, 2))
    Y = rng.uniform(0, 50, (B, P, M, 2))
    xv = rng.uniform(size=(B, P, N)) > 0.3
    yv = rng.uniform(size=(B, P, M)) > 0.3
    yv[1, 2] = False  # absent target part
    w = rng.uniform(0.5, 2.0, (B, P))
    return X, xv, Y, yv, w


def _t(*arrs):
    return [torch.tensor(a) for a in arrs]


def test_chamfer_and_icp_match_brute_force():
    X, xv, Y, yv, w = _sets()
    tX, txv, tY, tyv, tw = _t(X, xv, Y, yv, w)
    want_p2t, want_t2p = np.zeros(2), np.zeros(2)
    for b in range(2):
        for p in range(3):
            if not (xv[b, p].any() and yv[b, p].any()):
                continue
            p2t, t2p, _ = _brute(X[b, p], xv[b, p], Y[b, p], yv[b, p])
            want_p2t[b] += w[b, p] * p2t
            want_t2p[b] += w[b, p] * t2p
    np.testing.assert_allclose(icp_p2t_loss(tX, txv, tY, tyv, tw).numpy(), want_p2t, rtol=1e-9)
    np.testing.assert_allclose(icp_t2p_loss(tX, txv, tY, tyv, tw).numpy(), want_t2p, rtol=1e-9)
    np.testing.assert_allclose(chamfer_loss(tX, txv, tY, tyv, tw, chunk_size=7).numpy(), want_p2t + want_t2p, rtol=1e-9)


def test_dcd_matches_brute_force():
    X, xv, Y, yv, w = _sets(1)
    tX, txv, tY, tyv, tw = _t(X, xv, Y, yv, w)
    alpha, lam = 0.3, 1.0
    want = np.zeros(2)
    for b in range(2):
        for p in range(3):
            if not (xv[b, p].any() and yv[b, p].any()):
                continue
            _, _, d = _brute(X[b, p], xv[b, p], Y[b, p], yv[b, p])
            nn_y, nn_x = d.argmin(1), d.argmin(0)
            n_y = np.bincount(nn_y, minlength=d.shape[1])[nn_y]
            n_x = np.bincount(nn_x, minlength=d.shape[0])[nn_x]
            t1 = (1 - np.exp(-alpha * d.min(1)) / n_y**lam).mean()
            t2 = (1 - np.exp(-alpha * d.min(0)) / n_x**lam).mean()
            want[b] += w[b, p] * 0.5 * (t1 + t2)
    got = dcd_loss(tX, txv, tY, tyv, tw, alpha=alpha, n_lambda=lam, chunk_size=5)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-9)


def test_point_losses_gradient_and_zero_at_match():
    X, xv, Y, yv, w = _sets(2)
    tX = torch.tensor(X, requires_grad=True)
    args = (torch.tensor(xv), torch.tensor(Y), torch.tensor(yv), torch.tensor(w))
    for fn in (chamfer_loss, icp_p2t_loss, icp_t2p_loss, dcd_loss):
        tX.grad = None
        fn(tX, *args).sum().backward()
        assert tX.grad.abs().sum() > 0 and torch.isfinite(tX.grad).all()
        assert (tX.grad[torch.tensor(~xv)] == 0).all()
    same = torch.tensor(Y)
    v = torch.tensor(yv)
    assert chamfer_loss(same, v, same, v, torch.tensor(w)).abs().max() < 1e-12


# ----------------------------------------------------------------------------- soft IoU
def test_soft_iou_loss_value_and_gradient():
    m = torch.zeros(1, 2, 8, 8)
    m[0, 0, :4] = 1.0
    w = torch.ones(1, 2)
    assert soft_iou_loss(m, m, w).item() == pytest.approx(0.0)  # part 1 empty in both: IoU 1
    half = m.clone()
    half[0, 0, 2:4] = 0.0
    assert soft_iou_loss(half, m, w).item() == pytest.approx(0.5)
    pts = torch.tensor([[[4.0, 4], [40, 4], [4, 40]]], requires_grad=True)
    sil = soft_silhouettes(pts, [torch.tensor([[0, 1, 2]])], (64, 64), resolution=32)
    target = torch.zeros(1, 1, 32, 32)
    target[..., 4:28, 4:28] = 1.0
    loss = soft_iou_loss(sil, target, torch.ones(1, 1))
    loss.sum().backward()
    assert 0 < loss.item() < 1 and pts.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- photometric
def test_vertex_normals_and_sh():
    pts = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]]])
    tris = torch.tensor([[0, 1, 2], [1, 3, 2]])
    n = vertex_normals(pts, tris)
    assert torch.allclose(n, torch.tensor([0.0, 0, 1]).expand(1, 4, 3))
    basis = sh_basis(n)
    assert basis.shape == (1, 4, 9)
    assert basis[0, 0, 0].item() == pytest.approx(math.pi * 0.2820948, rel=1e-6)
    sh = torch.zeros(1, 9, 3)
    sh[:, 0] = 1.0 / (math.pi * 0.2820948)
    albedo = torch.rand(1, 4, 3)
    assert torch.allclose(sh_shading(albedo, n, sh), albedo, atol=1e-6)
    # light from +z brightens a +z normal more than a -z normal
    sh[:, 2] = 0.5
    assert (sh_shading(albedo, n, sh) > sh_shading(albedo, -n, sh)).all()


def test_sample_image_and_photometric_zero_when_colours_match():
    torch.manual_seed(0)
    img = torch.rand(1, 3, 10, 12)
    pts = torch.tensor([[[0.0, 0.0], [11.0, 9.0], [5.0, 3.0], [5.5, 3.0]]])
    got = sample_image(img, pts)
    assert torch.allclose(got[0, 0], img[0, :, 0, 0]) and torch.allclose(got[0, 1], img[0, :, 9, 11])
    assert torch.allclose(got[0, 2], img[0, :, 3, 5])
    assert torch.allclose(got[0, 3], 0.5 * (img[0, :, 3, 5] + img[0, :, 3, 6]))
    vis = torch.tensor([[True, True, True, False]])
    assert photometric_loss(img, pts, vis, got).item() == pytest.approx(0.0, abs=1e-6)
    assert photometric_loss(img, pts, vis, got, robust=False).item() == pytest.approx(0.0, abs=1e-12)
    colors = got.clone().requires_grad_(True)
    off = colors + torch.tensor([0.1, 0.0, 0.0])
    loss = photometric_loss(img, pts, vis, off)
    assert loss.item() == pytest.approx(0.1, rel=1e-4)
    loss.backward()
    assert colors.grad[0, 3].abs().sum() == 0 and colors.grad[0, 0].abs().sum() > 0


def test_closure_terms_are_landmark_terms_off_in_the_paper_setting():
    from fitter.config import DEFAULT_LOSS_WEIGHTS, PAPER_LOSS_WEIGHTS
    from fitter.objective import TERM_NEEDS, TERMS

    for name in ("eye_closure", "lip_closure"):
        assert name in TERMS and TERM_NEEDS[name] == frozenset()  # no visibility or point sets needed
        assert DEFAULT_LOSS_WEIGHTS[name] > 0 and PAPER_LOSS_WEIGHTS[name] == 0.0
