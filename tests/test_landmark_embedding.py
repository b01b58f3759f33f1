"""Barycentric landmark embedding (morphable_models.landmark_embedding) and the sparse expression prior."""
import pytest
import torch
from conftest import make_fake_model

from fitter import losses as L
from fitter.config import FitConfig
from fitter.objective import TERM_NEEDS, TERMS
from morphable_models.landmark_embedding import LandmarkEmbedding, embed_landmarks, packaged_embedding


def _table(model, landmarks=(8, 30)):
    tri = model.triangles[[10, 40]]
    w = torch.tensor([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    return LandmarkEmbedding(landmarks=torch.tensor(landmarks), triangles=tri, weights=w, model=model.name)


def test_embedded_landmarks_follow_the_surface_for_any_coefficients():
    model = make_fake_model()
    emb = _table(model)
    out = embed_landmarks(model, emb)
    out.validate()
    assert out.num_points == model.num_points + 2
    assert out.landmarks68[8] == model.num_points and out.landmarks68[30] == model.num_points + 1
    keep = [k for k in range(68) if k not in (8, 30)]
    assert torch.equal(out.landmarks68[keep], model.landmarks68[keep])
    gen = torch.Generator().manual_seed(1)
    idc, exc = torch.randn(3, model.num_id, generator=gen), torch.rand(3, model.num_exp, generator=gen)
    v_old, v_new = model.vertices(idc, exc), out.vertices(idc, exc)
    assert torch.allclose(v_new[:, : model.num_points], v_old)
    want = (v_old[:, emb.triangles] * emb.weights[None, :, :, None]).sum(2)  # [B, 2, 3]
    assert torch.allclose(v_new[:, out.landmarks68[[8, 30]]], want, atol=1e-6)
    # the new points belong to no part
    assert (out.part_labels()[model.num_points:] == 0).all()


def test_embedding_checks_its_inputs():
    model = make_fake_model()
    with pytest.raises(ValueError, match="sum to 1"):
        LandmarkEmbedding(torch.tensor([8]), model.triangles[:1], torch.tensor([[0.5, 0.2, 0.2]]))
    with pytest.raises(ValueError, match="0..67"):
        LandmarkEmbedding(torch.tensor([68]), model.triangles[:1], torch.tensor([[1.0, 0.0, 0.0]]))
    bad = LandmarkEmbedding(torch.tensor([8]), torch.tensor([[0, 1, model.num_mesh_vertices]]),
                            torch.tensor([[1.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="outside"):
        embed_landmarks(model, bad)


def test_embedding_json_round_trip(tmp_path):
    model = make_fake_model()
    emb = _table(model)
    emb.save(tmp_path / "t.json")
    import json

    back = LandmarkEmbedding.from_json(json.loads((tmp_path / "t.json").read_text()))
    assert torch.equal(back.landmarks, emb.landmarks) and torch.equal(back.triangles, emb.triangles)
    assert torch.allclose(back.weights, emb.weights, atol=1e-6)


def test_packaged_ict_table_places_points_near_the_models_own(ict_model):
    """The shipped table: chin + 51 inner points, each on a face triangle of the mesh, within 1.5 cm
    of the hand-picked vertex on the mean face, and the 16 marching jaw points' lines;
    load(landmarks="vertices") keeps the vertices."""
    import morphable_models

    emb = packaged_embedding("ict")
    assert emb is not None
    assert emb.landmarks.tolist() == [8] + list(range(17, 68))
    raw = morphable_models.load("ict", landmarks="vertices")
    calibrated = morphable_models.load("ict", parts="rules")  # (the drawn eyes add points of their own)
    assert raw.num_points + len(emb.landmarks) == calibrated.num_points
    tris = {tuple(sorted(t)) for t in raw.triangles.tolist()}
    assert all(tuple(sorted(t)) in tris for t in emb.triangles.tolist())
    old = raw.mean[raw.landmarks68[emb.landmarks]]
    new = ict_model.mean[ict_model.landmarks68[emb.landmarks]]
    moved = (new - old).norm(dim=1)
    assert float(moved.max()) < 1.5
    assert float(moved.mean()) > 0.05  # the table does move the points (cm)
    # its jaw lines: the 16 marching points, each line holding its anchor, which load() puts in place
    assert emb.jaw_landmarks.tolist() == [j for j in range(17) if j != 8]
    assert torch.equal(ict_model.landmarks68[emb.jaw_landmarks], emb.jaw_anchors)
    for j, line in zip(emb.jaw_landmarks.tolist(), emb.jaw_lines):
        assert torch.equal(ict_model.contour_candidates[j][ict_model.contour_candidates[j] >= 0], line[line >= 0])
    # the upper jaw's anchors sit lower than ICT's own jaw vertices (towards the chin): the iBUG convention
    upper = [0, 1, 2, 16, 15, 14]
    assert bool((ict_model.mean[ict_model.landmarks68[upper], 1] < raw.mean[raw.landmarks68[upper], 1]).all())


def test_l1_prior_pulls_equally_at_every_magnitude():
    c = torch.tensor([[0.01, 0.5, -0.2]], requires_grad=True)
    v = L.l1_prior(c, torch.tensor([1.0, 2.0, 1.0]))
    assert torch.allclose(v, torch.tensor([0.01 + 0.25 + 0.2]))
    v.sum().backward()
    assert torch.allclose(c.grad, torch.tensor([[1.0, 0.5, -1.0]]))
    g = torch.tensor([[0.01, 0.5, -0.2]], requires_grad=True)
    L.gaussian_prior(g, torch.ones(3)).sum().backward()
    assert float(g.grad[0, 0].abs()) < 0.05  # the Gaussian prior barely pulls a small weight
    with pytest.raises(ValueError):
        L.l1_prior(torch.zeros(3), torch.ones(3))


def test_mcp_sparse_prior_pulls_like_l1_at_zero_and_not_past_gamma():
    c = torch.tensor([[0.01, 0.25, 0.5, 1.0, 1.5]], requires_grad=True)
    std = torch.tensor([1.0, 1.0, 2.0, 1.0, 1.0])
    v = L.l1_prior(c, std, gamma=1.0)  # ρ(z) = z - z²/2 below 1, 1/2 from 1 on (z = |c| / std)
    assert torch.allclose(v, torch.tensor([(0.01 - 0.00005) + (0.25 - 0.03125) + (0.25 - 0.03125) + 0.5 + 0.5]))
    v.sum().backward()
    assert torch.allclose(c.grad, torch.tensor([[0.99, 0.75, 0.375, 0.0, 0.0]]))
    # one strong weight costs less than two medium ones moving the same amount (L1: the same)
    one, two = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.5, 0.5]])
    assert float(L.l1_prior(one, torch.ones(2), gamma=1.0)) < float(L.l1_prior(two, torch.ones(2), gamma=1.0))
    assert float(L.l1_prior(one, torch.ones(2))) == float(L.l1_prior(two, torch.ones(2)))
    with pytest.raises(ValueError, match="gamma"):
        L.l1_prior(one, torch.ones(2), gamma=0.0)


def test_exp_sparse_is_a_visibility_free_term():
    assert "exp_sparse" in TERMS and TERM_NEEDS["exp_sparse"] == frozenset()
    assert FitConfig(loss_weights={"exp_sparse": 1e-3}).loss_weights["exp_sparse"] == 1e-3


def test_fit_config_reaches_the_models_own_vertices():
    """FitConfig(model_landmarks="vertices") makes the Fitter pull the model's own landmark vertices."""
    from fitter.optimize import Fitter

    model = make_fake_model()
    emb = embed_landmarks(model, _table(model))
    assert torch.equal(emb.landmark_vertices, model.landmarks68)
    assert torch.equal(Fitter(emb, FitConfig(device="cpu")).model.landmarks68, emb.landmarks68)
    assert torch.equal(Fitter(emb, FitConfig(device="cpu", model_landmarks="vertices")).model.landmarks68,
                       model.landmarks68)
    with pytest.raises(ValueError, match="model_landmarks"):
        FitConfig(model_landmarks="paper")


def test_exp_sparse_scale_weights_each_shape():
    """FitConfig.exp_sparse_scale reaches the term: a factor 0 frees that shape from the L1 pull."""
    from fitter.objective import LossContext
    from fitter.optimize import Fitter

    model = make_fake_model()  # one expression, "jawOpen"
    free = Fitter(model, FitConfig(device="cpu", exp_sparse_scale={"jawOpen": 0.0, "notAShape": 2.0}))
    assert free.forward.exp_sparse_weights.tolist() == [0.0]
    assert Fitter(model, FitConfig(device="cpu")).forward.exp_sparse_weights.tolist() == [1.0]
    c = torch.tensor([[0.5]])
    ctx = LossContext.__new__(LossContext)
    ctx.model, ctx.exp_coeffs, ctx.exp_sparse_weights = model, c, free.forward.exp_sparse_weights
    assert float(TERMS["exp_sparse"](ctx)) == 0.0
    ctx.exp_sparse_weights = None
    assert float(TERMS["exp_sparse"](ctx)) == 0.5
    with pytest.raises(ValueError, match="exp_sparse_scale"):
        FitConfig(exp_sparse_scale={"jawOpen": -1.0})


def _jaw_table(model):
    """A table that sets the lines of jaw points 2 and 12 (anchors = the lines' second vertex)."""
    lines = torch.tensor([[5, 6, 7], [9, 10, -1]])
    return LandmarkEmbedding(landmarks=torch.tensor([30]), triangles=model.triangles[[10]],
                             weights=torch.tensor([[1.0, 0.0, 0.0]]), model=model.name,
                             jaw_landmarks=torch.tensor([2, 12]), jaw_anchors=torch.tensor([6, 10]), jaw_lines=lines)


def test_jaw_lines_replace_the_models_contour_rows_and_own_landmarks_undoes_them(tmp_path):
    from morphable_models.landmark_embedding import own_landmarks

    model = make_fake_model()
    table = _jaw_table(model)
    out = embed_landmarks(model, table)
    out.validate()
    assert out.contour_candidates[2][out.contour_candidates[2] >= 0].tolist() == [5, 6, 7]
    assert out.contour_candidates[12][out.contour_candidates[12] >= 0].tolist() == [9, 10]
    other = [j for j in range(17) if j not in (2, 12)]
    width = model.contour_candidates.shape[1]
    assert torch.equal(out.contour_candidates[other, :width], model.contour_candidates[other])
    assert out.landmarks68[2] == 6 and out.landmarks68[12] == 10 and out.landmarks68[30] == model.num_points
    back = own_landmarks(out)
    assert torch.equal(back.landmarks68, model.landmarks68)
    assert torch.equal(back.contour_candidates, model.contour_candidates)
    # the JSON keeps the lines
    table.save(tmp_path / "t.json")
    import json

    again = LandmarkEmbedding.from_json(json.loads((tmp_path / "t.json").read_text()))
    assert torch.equal(again.jaw_landmarks, table.jaw_landmarks) and torch.equal(again.jaw_anchors, table.jaw_anchors)
    assert torch.equal(again.jaw_lines, table.jaw_lines)
    # the Fitter's model_landmarks="vertices" reaches the model's own lines too
    from fitter.optimize import Fitter

    own = Fitter(out, FitConfig(device="cpu", model_landmarks="vertices")).model
    assert torch.equal(own.contour_candidates, model.contour_candidates)


def test_jaw_lines_are_checked():
    model = make_fake_model()
    ok = _jaw_table(model)
    with pytest.raises(ValueError, match="contain its anchor"):
        LandmarkEmbedding(ok.landmarks, ok.triangles, ok.weights, jaw_landmarks=ok.jaw_landmarks,
                          jaw_anchors=torch.tensor([6, 11]), jaw_lines=ok.jaw_lines)
    with pytest.raises(ValueError, match="0-7 and 9-16"):
        LandmarkEmbedding(ok.landmarks, ok.triangles, ok.weights, jaw_landmarks=torch.tensor([2, 8]),
                          jaw_anchors=ok.jaw_anchors, jaw_lines=ok.jaw_lines)
    with pytest.raises(ValueError, match="jaw_anchors"):
        LandmarkEmbedding(ok.landmarks, ok.triangles, ok.weights, jaw_landmarks=ok.jaw_landmarks,
                          jaw_anchors=ok.jaw_anchors[:1], jaw_lines=ok.jaw_lines)
    far = LandmarkEmbedding(ok.landmarks, ok.triangles, ok.weights, jaw_landmarks=ok.jaw_landmarks,
                            jaw_anchors=torch.tensor([6, model.num_mesh_vertices]),
                            jaw_lines=torch.tensor([[5, 6, 7], [9, model.num_mesh_vertices, -1]]))
    with pytest.raises(ValueError, match="jaw line indexes"):
        embed_landmarks(model, far)
