"""The model's brows, nose and lips drawn with the front end's polygons (morphable_models.frontend_parts)."""
import numpy as np
import pytest
import torch
from conftest import make_fake_model

from morphable_models.frontend_parts import DRAWN_PARTS, draw_parts, frontend_parts, own_parts
from morphable_models.model import PART_NAMES

SQUARE = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])


def _grid(n=10):
    """[n*n, 2] points on the unit square's cell centres, row-major."""
    c = (np.arange(n) + 0.5) / n
    return np.stack(np.meshgrid(c, c), -1).reshape(-1, 2)


def test_draw_parts_claims_inside_polygons_and_gives_the_rest_to_skin():
    xy = _grid()  # 100 vertices
    V = len(xy)
    left = np.flatnonzero(xy[:, 0] < 0.5)
    own = {p: np.zeros(0, np.int64) for p in PART_NAMES}
    own["right_eye"] = np.array([0, 1, 100, 101])  # two virtual points (>= V) stay with the eye
    own["up_lip"] = np.setdiff1d(left, [0, 1])     # the rules gave the whole left half to the upper lip
    own["skin"] = np.flatnonzero(xy[:, 0] >= 0.5)
    box = lambda x0, y0, x1, y1: np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])  # noqa: E731
    polys = {"up_lip": box(0.0, 0.0, 0.3, 0.3), "down_lip": box(0.0, 0.7, 0.3, 1.0),
             "right_brow": box(0.6, 0.6, 1.0, 1.0), "left_brow": box(5, 5, 6, 6), "nose": box(0.0, 0.0, 1.0, 1.0),
             "mouth": box(0.0, 0.4, 0.3, 0.6)}
    out = draw_parts(xy, own, polys, V)
    assert list(out) == list(PART_NAMES)
    everything = np.concatenate(list(out.values()))
    assert len(everything) == len(np.unique(everything))  # disjoint
    np.testing.assert_array_equal(out["right_eye"], [0, 1, 100, 101])  # eyes claim first, untouched
    inside = lambda i, p: np.all((xy[i] >= polys[p][0]) & (xy[i] <= polys[p][2]), axis=1)  # noqa: E731
    assert len(out["up_lip"]) == 9 - 2 and inside(out["up_lip"], "up_lip").all()  # 3x3 cells less the eye's
    assert len(out["down_lip"]) == 9 and inside(out["down_lip"], "down_lip").all()
    assert len(out["right_brow"]) == 16  # drawn into what the rules called skin
    assert len(out["left_brow"]) == 0
    # the nose polygon covers everything: it gets what brows, lips and eyes left, in that order
    mouth = np.flatnonzero(inside(np.arange(V), "mouth"))
    assert set(out["nose"]) == set(range(V)) - set(out["right_eye"]) - set(out["up_lip"]) - set(
        out["down_lip"]) - set(out["right_brow"])
    assert set(mouth) <= set(out["nose"])


def test_draw_parts_leaves_the_mouth_opening_unlabelled_and_the_rest_to_skin():
    xy = _grid()
    V = len(xy)
    own = {p: np.zeros(0, np.int64) for p in PART_NAMES}
    own["up_lip"] = np.flatnonzero(xy[:, 1] < 0.5)
    own["down_lip"] = np.flatnonzero(xy[:, 1] >= 0.5)
    far = np.array([[5.0, 5.0], [6.0, 5.0], [6.0, 6.0]])
    polys = {p: far for p in DRAWN_PARTS}
    polys["up_lip"] = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 0.3], [0.0, 0.3]])
    polys["mouth"] = np.array([[0.0, 0.4], [1.0, 0.4], [1.0, 0.6], [0.0, 0.6]])
    out = draw_parts(xy, own, polys, V)
    assert len(out["up_lip"]) == 30 and len(out["down_lip"]) == 0
    # 20 vertices in the opening belong to no part; the other 50 became skin
    assert len(out["skin"]) == 50
    labelled = np.concatenate(list(out.values()))
    unlabelled = np.setdiff1d(np.arange(V), labelled)
    assert len(unlabelled) == 20 and np.all(np.abs(xy[unlabelled, 1] - 0.5) < 0.1)


def _frontal(model, size=256):
    """Orthographic frontal image [V, 2] and depth [V] of the neutral mean."""
    P = model.mean
    lm = P[model.landmarks68]
    c = lm.mean(0)
    s = 0.6 * size / float(lm[:, 0].max() - lm[:, 0].min())
    return torch.stack([(P[:, 0] - c[0]) * s + size / 2, -(P[:, 1] - c[1]) * s + size / 2], -1), -P[:, 2]


def test_ict_parts_are_the_front_ends_polygons(ict_model):
    """Render the neutral ICT mean from the front and label its MediaPipe points with the front end's
    own rasterizer: the drawn brows, nose and lips cover what the front end would label there (IoU
    ≥ 0.75, the mesh's resolution is the limit), far better than the rule-drawn parts."""
    import morphable_models
    from fitter.metrics import part_ious, render_part_labels
    from fitter.targets.mesh_parts import rasterize_mesh_parts

    rules = morphable_models.load("ict", parts="rules")
    assert ict_model.own_parts is not None and rules.own_parts is None
    for name in PART_NAMES:
        assert torch.equal(ict_model.own_parts[name], rules.parts[name])
    ious = {}
    for kind, model in (("frontend", ict_model), ("rules", rules)):
        img, z = _frontal(model)
        rendered = render_part_labels(model, img[None], z[None], (256, 256))[0]
        mesh = np.full((478, 3), np.nan)
        ids = model.mesh_landmark_ids.numpy()
        mesh[ids, :2] = img[model.mesh_landmarks].numpy()
        mesh[ids, 2] = z[model.mesh_landmarks].numpy()
        labels = rasterize_mesh_parts(mesh, (256, 256))  # the face oval is not in the table: no skin
        ious[kind] = dict(zip(PART_NAMES, part_ious(np.asarray(rendered), labels)))
    for name in ("right_brow", "left_brow", "nose", "up_lip", "down_lip"):
        assert ious["frontend"][name] >= 0.75, (name, ious)
        assert ious["frontend"][name] >= ious["rules"][name] + 0.05, (name, ious)
    for name in ("right_eye", "left_eye"):  # outlined by the eye landmarks: nearer the lid polygon than the opening
        assert ious["frontend"][name] > ious["rules"][name], (name, ious)
    everything = torch.cat(list(ict_model.parts.values()))
    assert len(everything) == len(torch.unique(everything))
    ict_model.validate()


def test_own_parts_and_models_without_a_mesh_table(ict_model):
    fake = make_fake_model()
    assert fake.mesh_landmarks is None
    assert frontend_parts(fake) is fake
    back = own_parts(ict_model)
    assert back.own_parts is None and torch.equal(back.parts["right_brow"], ict_model.own_parts["right_brow"])
    assert own_parts(back) is back
    again = frontend_parts(back)  # drawing twice gives the same sets
    for name in PART_NAMES:
        assert torch.equal(again.parts[name], ict_model.parts[name])


def test_fit_config_picks_the_part_definition(ict_model):
    from fitter.config import PAPER_FIT_OPTIONS, FitConfig
    from fitter.optimize import Fitter, model_as_fitted

    assert PAPER_FIT_OPTIONS["model_parts"] == "rules"
    with pytest.raises(ValueError, match="model_parts"):
        FitConfig(model_parts="paper")
    ruled = Fitter(ict_model, FitConfig(model_parts="rules", device="cpu")).model
    drawn = Fitter(ict_model, FitConfig(device="cpu")).model
    assert torch.equal(ruled.parts["nose"], ict_model.own_parts["nose"])
    assert torch.equal(drawn.parts["nose"], ict_model.parts["nose"])
    assert model_as_fitted(ict_model, FitConfig(model_parts="rules")).own_parts is None


def test_load_rejects_an_unknown_part_definition():
    import morphable_models
    from morphable_models.errors import ModelError

    with pytest.raises(ModelError, match="parts must be one of frontend, rules"):
        morphable_models.load("ict", parts="paper")
