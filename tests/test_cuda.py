"""CUDA paths: the same numbers as on the CPU. Every test skips where no CUDA device is present
(CI has none; these run on a lent GPU machine)."""
import numpy as np
import pytest
import torch

from fitter.config import FitConfig
from fitter.geometry.visibility import zbuffer_visibility
from fitter.losses import make_anchors, prdl_descriptors, prdl_descriptors_naive, prdl_part_losses
from fitter.metrics import part_ious, render_part_labels
from fitter.optimize import Fitter
from fitter.synthetic import random_case

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def _sets(seed, B=2, P=3, N=300, size=128.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    pts = torch.rand(B, P, N, 2, generator=g, dtype=dtype) * size
    valid = torch.rand(B, P, N, generator=g) > 0.3
    valid[-1, -1] = False  # one empty set
    return pts, valid


@pytest.mark.parametrize("grid", [True, False])
@pytest.mark.parametrize("keep", [0, 1 << 30])
def test_prdl_descriptors_and_gradient_match_cpu(grid, keep):
    pts, valid = _sets(0)
    anchors = make_anchors((16, 16), (128, 128), dtype=torch.float64)
    if not grid:
        anchors = anchors + 0.01 * torch.randn(anchors.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    outs = {}
    for dev in ("cpu", "cuda"):
        p = pts.detach().to(dev).requires_grad_(True)  # a new leaf per device (pts.to("cpu") is pts)
        d = prdl_descriptors(p, anchors.to(dev), valid.to(dev), chunk_size=64, keep_pairs=keep)
        (d * torch.linspace(0.5, 1.5, 3, dtype=d.dtype, device=dev)).sum().backward()
        outs[dev] = (d.detach().cpu(), p.grad.cpu())
    assert torch.allclose(outs["cpu"][0], outs["cuda"][0], atol=1e-9)
    assert torch.allclose(outs["cpu"][1], outs["cuda"][1], atol=1e-9)
    assert (outs["cuda"][0][-1, -1] == 0).all()


def test_prdl_gradcheck_on_cuda():
    pts, valid = _sets(2, B=1, P=2, N=12, size=16.0)
    anchors = make_anchors((3, 4), (16, 16), dtype=torch.float64).cuda()
    p = pts.cuda().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: prdl_descriptors(x, anchors, valid.cuda(), chunk_size=5), (p,))


def test_prdl_float32_matches_naive_on_cuda():
    pts, valid = _sets(3, dtype=torch.float32, N=2000, size=224.0)
    anchors = make_anchors((32, 32), (224, 224)).cuda()
    p1 = pts.cuda().requires_grad_(True)
    p2 = pts.cuda().requires_grad_(True)
    ours = prdl_descriptors(p1, anchors, valid.cuda())
    naive = prdl_descriptors_naive(p2, anchors, valid.cuda())
    assert torch.allclose(ours, naive, rtol=1e-4, atol=1e-3)
    ours.sum().backward()
    naive.sum().backward()
    assert torch.allclose(p1.grad, p2.grad, rtol=1e-3, atol=1e-3)


def test_prdl_part_losses_match_cpu():
    pts, valid = _sets(4, dtype=torch.float32, P=8, N=500, size=224.0)
    anchors = make_anchors((32, 32), (224, 224))
    target = prdl_descriptors(pts.flip(-1), anchors, valid)
    got = {}
    for dev in ("cpu", "cuda"):
        got[dev] = prdl_part_losses(pts.to(dev), valid.to(dev), target.to(dev), anchors.to(dev)).cpu()
    assert got["cpu"].shape == (2, 8) and (got["cpu"][0] > 0).all()
    assert torch.allclose(got["cpu"], got["cuda"], rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def model(ict_model):
    return ict_model


def _posed(result):
    """[1, V, 2] pixels, [1, V] depth and (W, H) of a fit result."""
    pts = torch.from_numpy(result.vertices_image).float()[None]
    depth = torch.from_numpy(result.vertices_camera[:, 2]).float()[None]
    return pts, depth, (result.camera.width, result.camera.height)


def test_zbuffer_visibility_and_labels_match_cpu(model):
    case = random_case(model, seed=5, max_yaw=50)
    pts, depth, size = _posed(Fitter(model, FitConfig(iters=0, rigid_iters=20, device="cpu")).fit(case.targets))
    out = {}
    for dev in ("cpu", "cuda"):
        v, faces = zbuffer_visibility(pts.to(dev), depth.to(dev), model.triangles.to(dev), size, return_faces=True)
        out[dev] = (v.cpu(), faces.cpu(), render_part_labels(model, pts.to(dev), depth.to(dev), size))
    assert 0.3 < out["cpu"][0].float().mean() < 0.95  # a real occlusion test, not all visible
    assert (out["cpu"][0] == out["cuda"][0]).float().mean().item() > 0.999
    assert (out["cpu"][1] == out["cuda"][1]).float().mean().item() > 0.999
    assert (out["cpu"][2] == out["cuda"][2]).mean() > 0.999


@pytest.mark.parametrize("loss", ["prdl", "chamfer", "icp_t2p", "icp_p2t", "dcd", "sil_iou"])
def test_each_loss_fits_on_cuda_like_on_cpu(model, loss):
    """A short fit per loss on CUDA: no failure, the loss decreases, and the result is close to the
    CPU fit (same iterations; float32 reductions differ in order, so only closeness)."""
    case = random_case(model, seed=7, preset="mouth_open", max_yaw=30)
    weights = {"prdl": 0.8e-3, "sil_iou": 0.06, "icp_t2p": 3.5e-3, "icp_p2t": 6e-3, "chamfer": 2e-3, "dcd": 0.07}
    w = {"lmk": 1.6e-3, "prdl": 0.0, loss: weights[loss]}
    res = {}
    for dev in ("cpu", "cuda"):
        cfg = FitConfig(iters=20, rigid_iters=10, device=dev, rel_tol=0.0, loss_weights=w)
        res[dev] = Fitter(model, cfg).fit(case.targets)
        assert res[dev].failure is None
    full = [row["total"] for row in res["cuda"].history.rows if row["stage"] == "full"]
    assert full[-1] < full[0]
    assert isinstance(res["cuda"].vertices_image, np.ndarray)
    err = np.abs(res["cuda"].vertices_image - res["cpu"].vertices_image).max()
    assert err < 1.0, err  # pixels


def test_batched_fit_on_cuda_reaches_cpu_part_iou(model):
    cases = [random_case(model, s, max_yaw=45) for s in (0, 1, 2, 3)]
    ious = {}
    for dev in ("cpu", "cuda"):
        results = Fitter(model, FitConfig(iters=60, rigid_iters=30, device=dev)).fit([c.targets for c in cases])
        ious[dev] = []
        for c, r in zip(cases, results):
            assert r.failure is None
            pts, depth, size = _posed(r)
            ious[dev].append(np.nanmean(part_ious(render_part_labels(model, pts, depth, size)[0], c.labels)))
    assert abs(np.mean(ious["cuda"]) - np.mean(ious["cpu"])) < 0.02, ious
