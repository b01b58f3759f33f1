"""The model's eyes drawn inside its own eye landmarks (morphable_models.eye_outline)."""
import numpy as np
import torch

from morphable_models.eye_outline import EYE_ARCS_68, lagrange_weights
from morphable_models.frontend_parts import own_parts
from morphable_models.model import PART_NAMES


def test_lagrange_weights_interpolate_their_points():
    u = np.array([0.0, 0.3, 0.7, 1.0])
    W = lagrange_weights(u, u)
    np.testing.assert_allclose(W, np.eye(4), atol=1e-12)
    t = np.linspace(0, 1, 9)
    W = lagrange_weights(u, t)
    np.testing.assert_allclose(W.sum(1), 1.0, atol=1e-12)
    P = np.stack([u, 2 * u ** 3 - u], 1)  # a cubic is reproduced exactly
    np.testing.assert_allclose(W @ P, np.stack([t, 2 * t ** 3 - t], 1), atol=1e-12)


def _frontal_labels(model, points, size=256, scale=20.0):
    from fitter.geometry.raster import rasterize_labels

    p = torch.as_tensor(points, dtype=torch.float64)
    img = torch.stack([p[:, 0] * scale + size / 2, -p[:, 1] * scale + size / 2 + 50], 1).float()
    lab = rasterize_labels(img[None], (-p[:, 2]).float()[None], model.all_triangles, model.triangle_part_labels,
                           (size, size))
    return lab[0].numpy(), img.numpy()


def test_ict_eyes_fill_their_landmark_outline_and_close_with_a_blink(ict_model):
    from fitter.metrics import annotated_part_labels

    m, fill = ict_model, own_parts(ict_model)  # the outlined eyes and the filled openings
    open_, closed = m.mean.numpy(), None
    lab, img = _frontal_labels(m, open_)
    lab0, _ = _frontal_labels(fill, open_)
    outline = annotated_part_labels(img[m.landmarks68.numpy()], (256, 256))
    w = torch.zeros(len(m.exp_names), dtype=m.mean.dtype)
    for n in ("eyeBlink_L", "eyeBlink_R"):
        w[m.exp_names.index(n)] = 1.0
    closed = (m.mean + torch.einsum("k,kvc->vc", w, m.exp_basis)).numpy()
    shut, _ = _frontal_labels(m, closed)
    for name, _, _ in EYE_ARCS_68:
        k = PART_NAMES.index(name) + 1
        a, a0, g = lab == k, lab0 == k, outline == k
        iou = (a & g).sum() / (a | g).sum()
        assert iou > 0.97, (name, iou)  # the filled opening: ~0.86
        assert (a0 & g).sum() / (a0 | g).sum() < iou - 0.08
        assert (shut == k).sum() < 0.1 * a.sum()  # the blink closes the grid
    assert not np.any(lab[60:130, 60:200] == 0)  # no hole where the opening was


def test_own_parts_restore_the_fill_and_models_without_calibrated_eyes_stay(ict_model):
    import morphable_models

    rules = morphable_models.load("ict", parts="rules")
    back = own_parts(ict_model)
    assert torch.equal(back.hole_triangles, rules.hole_triangles)
    assert all(torch.equal(back.parts[k], rules.parts[k]) for k in PART_NAMES)
    own_landmarks = morphable_models.load("ict", landmarks="vertices")  # eye landmarks are mesh vertices
    assert torch.equal(own_landmarks.hole_triangles, rules.hole_triangles)
    everything = torch.cat([ict_model.parts[k] for k in PART_NAMES])
    assert everything.numel() == torch.unique(everything).numel()
