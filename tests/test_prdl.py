"""fitter.losses.prdl: anchors, descriptors (custom autograd op), PRDL loss, FPS, padding."""
import numpy as np
import pytest
import torch

from fitter.losses import (
    farthest_point_sample,
    make_anchors,
    pad_point_sets,
    prdl_descriptors,
    prdl_descriptors_naive,
    prdl_loss,
    prdl_part_losses,
)
from fitter.losses.prdl import PrdlDescriptorsFn, _hull_candidates


def brute_force(points: np.ndarray, anchors: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(min, max, mean) distance from every anchor to the valid points of one set."""
    out = np.zeros((len(anchors), 3))
    p = points[valid]
    if len(p) == 0:
        return out
    for i, a in enumerate(anchors):
        d = np.sqrt(((p - a) ** 2).sum(-1))
        out[i] = (d.min(), d.max(), d.mean())
    return out


def test_make_anchors_cell_centres():
    a = make_anchors((4, 2), (8, 4))
    assert a.shape == (8, 2) and a.dtype == torch.float32
    # cells of 2 px: centres at 0.5, 2.5, 4.5, 6.5 (pixel centres at integers)
    assert torch.allclose(a[:4, 0], torch.tensor([0.5, 2.5, 4.5, 6.5]))
    assert torch.allclose(a[:4, 1], torch.full((4,), 0.5)) and torch.allclose(a[4:, 1], torch.full((4,), 2.5))
    assert make_anchors((3, 3), (9, 9), dtype=torch.float64).dtype == torch.float64


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_descriptors_equal_brute_force_with_mask(dtype):
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 64, size=(2, 3, 40, 2))
    valid = rng.uniform(size=(2, 3, 40)) > 0.4
    valid[1, 2] = False  # an empty set
    anchors = make_anchors((5, 6), (64, 64), dtype=torch.float64).numpy()
    got = prdl_descriptors(torch.tensor(pts, dtype=dtype), torch.tensor(anchors), torch.tensor(valid), chunk_size=4)
    assert got.shape == (2, 3, 30, 3) and got.dtype == dtype
    for b in range(2):
        for p in range(3):
            want = brute_force(pts[b, p], anchors, valid[b, p])
            np.testing.assert_allclose(got[b, p].numpy(), want, rtol=1e-5, atol=1e-4)
    assert (got[1, 2] == 0).all()
    # a masked point moved far away changes nothing
    pts2 = pts.copy()
    pts2[~valid] = 1e4
    got2 = prdl_descriptors(torch.tensor(pts2, dtype=dtype), torch.tensor(anchors), torch.tensor(valid))
    assert torch.allclose(got, got2, atol=1e-4)
    # no mask = all valid, and chunking does not change the result
    full = prdl_descriptors(torch.tensor(pts), torch.tensor(anchors))
    np.testing.assert_allclose(full[0, 0].numpy(), brute_force(pts[0, 0], anchors, np.ones(40, bool)), rtol=1e-10)
    assert torch.allclose(full, prdl_descriptors(torch.tensor(pts), torch.tensor(anchors), chunk_size=1))


def test_gradcheck_float64():
    torch.manual_seed(0)
    pts = (torch.rand(2, 9, 2, dtype=torch.float64) * 20).requires_grad_(True)
    valid = torch.rand(2, 9) > 0.3
    anchors = make_anchors((3, 4), (20, 20), dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: prdl_descriptors(x, anchors, valid, chunk_size=5), (pts,))
    assert torch.autograd.gradcheck(lambda x: prdl_descriptors(x, anchors), (pts,))


def test_gradient_matches_naive_float32_medium():
    torch.manual_seed(1)
    pts = (torch.rand(2, 3, 500, 2) * 224).requires_grad_(True)
    valid = torch.rand(2, 3, 500) > 0.2
    anchors = make_anchors((16, 16), (224, 224))
    g = torch.randn(2, 3, 256, 3)
    ours = prdl_descriptors(pts, anchors, valid, chunk_size=37)
    (g_ours,) = torch.autograd.grad(ours, pts, g)
    ref = prdl_descriptors_naive(pts, anchors, valid)
    (g_ref,) = torch.autograd.grad(ref, pts, g)
    assert torch.allclose(ours, ref, atol=1e-4)
    assert torch.allclose(g_ours, g_ref, atol=1e-4, rtol=1e-4)
    assert (g_ours[~valid] == 0).all()


@pytest.mark.parametrize("keep", [0, 1 << 30])
def test_kept_and_recomputed_distances_give_the_same_gradient(keep):
    torch.manual_seed(5)
    pts = (torch.rand(3, 400, 2) * 224).requires_grad_(True)
    valid = torch.rand(3, 400) > 0.3
    w = torch.rand(3, 400)
    anchors = make_anchors((12, 12), (224, 224))
    g = torch.randn(3, 144, 3)
    ours = prdl_descriptors(pts, anchors, valid, chunk_size=50, weights=w, keep_pairs=keep)
    (g_ours,) = torch.autograd.grad(ours, pts, g)
    ref = prdl_descriptors_naive(pts, anchors, valid, weights=w)
    (g_ref,) = torch.autograd.grad(ref, pts, g)
    assert torch.allclose(ours, ref, atol=1e-4)
    assert torch.allclose(g_ours, g_ref, atol=1e-4, rtol=1e-4)


def test_grid_and_general_anchor_paths_agree():
    """make_anchors' grid takes the separable path; the same anchors shuffled take the product path."""
    from fitter.losses.prdl import _grid_width

    torch.manual_seed(6)
    anchors = make_anchors((9, 7), (64, 48), dtype=torch.float64)
    perm = torch.randperm(anchors.shape[0])
    assert _grid_width(anchors) == 9 and _grid_width(anchors[perm]) == 0
    pts = (torch.rand(2, 150, 2, dtype=torch.float64) * 64).requires_grad_(True)
    valid = torch.rand(2, 150) > 0.2
    g = torch.randn(2, anchors.shape[0], 3, dtype=torch.float64)
    grid = prdl_descriptors(pts, anchors, valid, chunk_size=20)
    (g_grid,) = torch.autograd.grad(grid, pts, g)
    general = prdl_descriptors(pts, anchors[perm], valid, chunk_size=20)
    (g_general,) = torch.autograd.grad(general, pts, g[:, perm])
    assert torch.allclose(grid[:, perm], general, atol=1e-9)
    assert torch.allclose(g_grid, g_general, atol=1e-9)
    assert torch.autograd.gradcheck(lambda x: prdl_descriptors(x, anchors[perm][:30], valid, keep_pairs=0), (pts,))


@pytest.mark.parametrize("grid", [True, False])
def test_dense_search_used_on_gpus_matches_naive(monkeypatch, grid):
    """The GPU variant (plain argmin / argmax passes, no hull search) gives the naive values and
    gradients; forced here on the CPU."""
    import fitter.losses.prdl as prdl_mod

    monkeypatch.setattr(prdl_mod, "_dense_search", lambda device: True)
    rng = np.random.default_rng(5)
    pts = torch.tensor(rng.uniform(0, 64, size=(3, 70, 2)))
    valid = torch.tensor(rng.uniform(size=(3, 70)) > 0.3)
    valid[2] = False
    anchors = make_anchors((6, 5), (64, 64), dtype=torch.float64)
    if not grid:
        anchors = anchors + torch.tensor(rng.normal(0, 0.1, size=anchors.shape))
    p1, p2 = pts.clone().requires_grad_(True), pts.clone().requires_grad_(True)
    ours = prdl_descriptors(p1, anchors, valid, chunk_size=7)
    naive = prdl_descriptors_naive(p2, anchors, valid)
    assert torch.allclose(ours, naive, atol=1e-8)
    w = torch.tensor(rng.normal(size=ours.shape))
    (ours * w).sum().backward()
    (naive * w).sum().backward()
    assert torch.allclose(p1.grad, p2.grad, atol=1e-8)
    small = pts[:2, :12].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: prdl_descriptors(x, anchors, valid[:2, :12], chunk_size=7), (small,))


def test_hull_candidates_contain_every_hull_vertex():
    from scipy.spatial import ConvexHull

    rng = np.random.default_rng(0)
    sets = [rng.normal(size=(300, 2)) * [40, 15],  # ellipse-like cloud
            rng.uniform(0, 50, size=(200, 2)).round(),  # integer pixels: many collinear hull points
            np.c_[np.cos(np.linspace(0, 6.2, 90)), np.sin(np.linspace(0, 6.2, 90))] * 30]  # all on the hull
    for pts in sets:
        cand = _hull_candidates(torch.tensor(pts[None], dtype=torch.float64), torch.ones(1, len(pts), dtype=torch.bool))[0]
        hull = ConvexHull(pts).vertices
        assert cand[hull].all()
        if len(pts) >= 200:
            assert cand.sum() < len(pts) / 2  # and it prunes
    # degenerate sets: one point, repeated points, collinear points, an invalid-only set
    one = torch.tensor([[[3.0, 4.0], [3.0, 4.0], [9.0, 9.0]]])
    assert _hull_candidates(one, torch.tensor([[True, True, False]])).any()
    line = torch.tensor([[[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]])
    assert _hull_candidates(line, torch.ones(1, 3, dtype=torch.bool))[0, [0, 2]].all()
    assert not _hull_candidates(one, torch.zeros(1, 3, dtype=torch.bool)).any()


def test_farthest_point_is_exact_on_degenerate_sets():
    anchors = make_anchors((5, 5), (10, 10), dtype=torch.float64)
    for pts in ([[2.0, 2.0]], [[2.0, 2.0]] * 4, [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]],
                [[0.0, 0.0], [4.0, 0.0], [4.0, 4.0], [0.0, 4.0], [2.0, 2.0]]):
        x = torch.tensor([pts], dtype=torch.float64)
        assert torch.allclose(prdl_descriptors(x, anchors), prdl_descriptors_naive(x, anchors))


def test_saved_tensors_are_linear_in_anchors_plus_points():
    A, N = 300, 400
    pts = (torch.rand(1, N, 2) * 100).requires_grad_(True)
    anchors = make_anchors((20, 15), (100, 100))
    valid = torch.ones(1, N, dtype=torch.bool)
    out = PrdlDescriptorsFn.apply(pts, anchors, valid, valid.float(), 64)
    saved = out.grad_fn.saved_tensors
    assert max(t.numel() for t in saved) <= 2 * max(A, N)
    assert sum(t.numel() for t in saved) <= 4 * (A + N)  # never anything like A * N = 120000


def test_weighted_mean_matches_naive_and_gradcheck():
    torch.manual_seed(3)
    pts = (torch.rand(2, 9, 2, dtype=torch.float64) * 10).requires_grad_(True)
    anchors = make_anchors((3, 2), (10, 10), dtype=torch.float64)
    valid = torch.rand(2, 9) > 0.2
    w = torch.rand(2, 9, dtype=torch.float64) * 3
    ours = prdl_descriptors(pts, anchors, valid, weights=w)
    ref = prdl_descriptors_naive(pts, anchors, valid, weights=w)
    assert torch.allclose(ours, ref, atol=1e-10)
    # the weighted mean differs from the plain one, and equals it for constant weights
    plain = prdl_descriptors(pts, anchors, valid)
    assert not torch.allclose(ours[..., 2], plain[..., 2])
    assert torch.allclose(prdl_descriptors(pts, anchors, valid, weights=torch.full_like(w, 7.0)), plain)
    assert torch.autograd.gradcheck(lambda p: prdl_descriptors(p, anchors, valid, weights=w, chunk_size=4), (pts,))


def test_weighted_mean_with_pixel_counts_recovers_the_full_region():
    """A region thinned by farthest point sampling, weighted by the pixels each kept point stands
    for, has the full region's mean distances (unweighted thinning does not)."""
    from fitter.targets.preprocess import pixel_counts, thin_points

    yy, xx = np.mgrid[0:60, 0:90]
    inside = ((xx - 30) ** 2 / 900 + (yy - 30) ** 2 / 400 < 1) | ((xx > 50) & (yy > 20) & (yy < 28))
    pix = np.stack([xx[inside], yy[inside]], 1).astype(np.float32)
    kept = pix[np.sort(thin_points(pix, len(pix) // 2))]
    w = pixel_counts(pix, kept)
    assert w.sum() == len(pix)
    anchors = make_anchors((16, 16), (90, 60))
    full = prdl_descriptors(torch.from_numpy(pix), anchors)[..., 2]
    thin_w = prdl_descriptors(torch.from_numpy(kept), anchors, weights=torch.from_numpy(w))[..., 2]
    thin = prdl_descriptors(torch.from_numpy(kept), anchors)[..., 2]
    err_w = (thin_w - full).abs().mean()
    err = (thin - full).abs().mean()
    assert err_w < 0.1 and err_w < err / 3


def test_empty_prediction_has_zero_descriptors_and_gradient():
    pts = torch.rand(1, 10, 2, requires_grad=True)
    d = prdl_descriptors(pts, make_anchors((2, 2), (1, 1)), torch.zeros(1, 10, dtype=torch.bool))
    assert (d == 0).all()
    d.sum().backward()
    assert (pts.grad == 0).all()


def _square(n=20, centre=(100.0, 100.0), half=30.0):
    t = torch.linspace(-half, half, n)
    xx, yy = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([xx.reshape(-1) + centre[0], yy.reshape(-1) + centre[1]], -1)


def test_prdl_zero_at_target_and_descent_moves_towards_target():
    anchors = make_anchors((16, 16), (224, 224))
    target = _square()[None, None]  # [1, 1, N, 2]
    valid = torch.ones(1, 1, target.shape[2], dtype=torch.bool)
    t_desc = prdl_descriptors(target, anchors, valid)
    w = torch.ones(1, 1)
    assert prdl_loss(target, valid, t_desc, anchors, w).item() == pytest.approx(0.0, abs=1e-8)
    # shifted and scaled prediction: gradient descent on (shift, scale) reduces loss and error
    shift = torch.tensor([12.0, -8.0], requires_grad=True)
    log_scale = torch.tensor(0.2, requires_grad=True)
    opt = torch.optim.Adam([shift, log_scale], lr=0.5)
    centre = torch.tensor([100.0, 100.0])

    def pred():
        return (target - centre) * log_scale.exp() + centre + shift

    first = prdl_loss(pred(), valid, t_desc, anchors, w).item()
    for _ in range(60):
        opt.zero_grad()
        loss = prdl_loss(pred(), valid, t_desc, anchors, w).sum()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05 * first
    assert shift.detach().norm() < 2.0 and abs(log_scale.item()) < 0.03


def test_absent_target_part_with_zero_weight_contributes_nothing():
    torch.manual_seed(2)
    anchors = make_anchors((8, 8), (64, 64))
    pred = (torch.rand(1, 2, 30, 2) * 64).requires_grad_(True)
    valid = torch.ones(1, 2, 30, dtype=torch.bool)
    t_pts = torch.rand(1, 2, 30, 2) * 64
    t_valid = torch.ones(1, 2, 30, dtype=torch.bool)
    t_valid[0, 1] = False  # target part 1 absent -> its descriptors are 0
    t_desc = prdl_descriptors(t_pts, anchors, t_valid)
    w = torch.tensor([[1.0, 0.0]])
    loss = prdl_loss(pred, valid, t_desc, anchors, w)
    parts = prdl_part_losses(pred, valid, t_desc, anchors)
    assert parts.shape == (1, 2) and parts[0, 1] > 0  # would be large if weighted
    assert loss.item() == pytest.approx(parts[0, 0].item())
    loss.sum().backward()
    assert (pred.grad[0, 1] == 0).all() and pred.grad[0, 0].abs().sum() > 0


def test_part_losses_normalized_by_anchor_count():
    anchors = make_anchors((4, 4), (16, 16))
    pts = torch.rand(1, 1, 10, 2) * 16
    valid = torch.ones(1, 1, 10, dtype=torch.bool)
    t_desc = prdl_descriptors(pts, anchors, valid) + 1.0  # every entry off by 1
    assert prdl_part_losses(pts, valid, t_desc, anchors).item() == pytest.approx(3.0)


def test_farthest_point_sample():
    line = torch.tensor([[0.0, 0], [1, 0], [2, 0], [3, 0], [10, 0], [5, 0]])
    idx = farthest_point_sample(line, 3, start=1)
    assert idx.tolist() == [1, 4, 5]  # farthest from x=1 is x=10, then x=5 (4 from both picks)
    torch.manual_seed(3)
    pts = torch.rand(2, 200, 2)
    batched = farthest_point_sample(pts, 50)
    assert batched.shape == (2, 50)
    assert torch.equal(batched[1], farthest_point_sample(pts[1], 50))
    assert len(set(batched[0].tolist())) == 50
    assert torch.equal(batched, farthest_point_sample(pts, 50))  # deterministic
    with pytest.raises(ValueError):
        farthest_point_sample(pts, 201)


def test_pad_point_sets():
    pts, valid = pad_point_sets([torch.ones(3, 2), torch.zeros(0, 2), torch.full((5, 2), 2.0)])
    assert pts.shape == (3, 5, 2) and valid.sum(1).tolist() == [3, 0, 5]
    assert (pts[0, :3] == 1).all() and (pts[0, 3:] == 0).all()
    with pytest.raises(ValueError):
        pad_point_sets([torch.ones(3, 2)], length=2)


def test_nan_padding_is_ignored():
    pts = torch.rand(1, 6, 2) * 10
    valid = torch.tensor([[True, True, True, False, True, False]])
    nan_pts = pts.clone()
    nan_pts[~valid] = float("nan")
    nan_pts.requires_grad_(True)
    anchors = make_anchors((3, 3), (10, 10))
    d = prdl_descriptors(nan_pts, anchors, valid)
    assert torch.allclose(d, prdl_descriptors(pts, anchors, valid))
    d.sum().backward()
    assert torch.isfinite(nan_pts.grad).all() and (nan_pts.grad[~valid] == 0).all()


def test_part_losses_compaction_matches_padded_descriptors():
    from fitter.losses import compact_point_sets

    torch.manual_seed(4)
    pts = (torch.rand(2, 3, 50, 2) * 64).requires_grad_(True)
    valid = torch.rand(2, 3, 50) > 0.5
    valid[:, 2] = False  # a part empty in the whole batch
    anchors = make_anchors((6, 6), (64, 64))
    target = torch.rand(2, 3, 36, 3) * 30
    got = prdl_part_losses(pts, valid, target, anchors)
    want = (prdl_descriptors(pts, anchors, valid) - target).square().sum((-1, -2)) / 36
    assert torch.allclose(got, want, atol=1e-4)
    (g1,) = torch.autograd.grad(got.sum(), pts)
    (g2,) = torch.autograd.grad(want.sum(), pts)
    assert torch.allclose(g1, g2, atol=1e-5) and (g1[:, 2] == 0).all()
    cp, cv = compact_point_sets(pts[:, 0], valid[:, 0])
    assert cp.shape[1] == int(valid[:, 0].sum(1).max()) and cv[:, 0].all()
    assert torch.equal(cp[0, : int(valid[0, 0].sum())], pts[0, 0][valid[0, 0]])


def test_size_groups_bound_the_padding():
    from fitter.losses.prdl import _size_groups

    counts = [100, 90, 40, 300, 1745, 0, 60, 210]
    groups = _size_groups(counts)
    assert sorted(p for g in groups for p in g) == list(range(len(counts)))
    for g in groups:
        sizes = [counts[p] for p in g]
        assert max(sizes) <= 2 * min(sizes) or max(sizes) == 0 or len(g) == 1
    assert [4] in groups  # the skin alone


def test_grid_width_is_cached_per_anchor_tensor_and_follows_edits():
    from fitter.losses.prdl import _LastGrid

    grid = make_anchors((4, 3), (64, 48))
    assert _LastGrid.width_of(grid) == 4 and _LastGrid.width_of(grid) == 4
    grid[5, 0] += 0.5  # edited in place: no longer a grid, and the cache sees it (_version)
    assert _LastGrid.width_of(grid) == 0
    assert _LastGrid.width_of(make_anchors((6, 2), (60, 20))) == 6
