"""MediaPipe mesh points on the model's surface (morphable_models.mesh_landmarks) and the mesh_lmk term."""
import json

import numpy as np
import pytest
import torch
from conftest import make_fake_model

from fitter.objective import TERM_NEEDS, TERMS
from morphable_models.mesh_landmarks import (
    MEDIAPIPE_MESH_POINTS,
    MeshLandmarkEmbedding,
    embed_mesh_landmarks,
    packaged_mesh_landmarks,
)


def _table(model, ids=(1, 200, 13)):
    tri = model.triangles[[10, 40, 7]]
    w = torch.tensor([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.0, 0.5, 0.5]])
    return MeshLandmarkEmbedding(ids=torch.tensor(ids), triangles=tri, weights=w, model=model.name)


def test_mesh_points_follow_the_surface_and_name_their_mesh_indices():
    model = make_fake_model()
    table = _table(model)
    out = embed_mesh_landmarks(model, table)
    out.validate()
    assert out.num_points == model.num_points + 3
    assert out.mesh_landmarks.tolist() == [model.num_points + k for k in range(3)]
    assert out.mesh_landmark_ids.tolist() == [1, 200, 13]
    assert torch.equal(out.landmarks68, model.landmarks68)
    gen = torch.Generator().manual_seed(2)
    idc, exc = torch.randn(2, model.num_id, generator=gen), torch.rand(2, model.num_exp, generator=gen)
    v_old, v_new = model.vertices(idc, exc), out.vertices(idc, exc)
    want = (v_old[:, table.triangles] * table.weights[None, :, :, None]).sum(2)
    assert torch.allclose(v_new[:, out.mesh_landmarks], want, atol=1e-6)
    assert (out.part_labels()[model.num_points:] == 0).all()


def test_mesh_table_checks_its_inputs(tmp_path):
    model = make_fake_model()
    one = torch.tensor([[1.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="sum to 1"):
        MeshLandmarkEmbedding(torch.tensor([3]), model.triangles[:1], torch.tensor([[0.5, 0.2, 0.2]]))
    with pytest.raises(ValueError, match=f"0..{MEDIAPIPE_MESH_POINTS - 1}"):
        MeshLandmarkEmbedding(torch.tensor([MEDIAPIPE_MESH_POINTS]), model.triangles[:1], one)
    with pytest.raises(ValueError, match="distinct"):
        MeshLandmarkEmbedding(torch.tensor([3, 3]), model.triangles[:2], one.repeat(2, 1))
    with pytest.raises(ValueError, match="outside"):
        embed_mesh_landmarks(model, MeshLandmarkEmbedding(torch.tensor([3]),
                                                          torch.tensor([[0, 1, model.num_mesh_vertices]]), one))
    table = _table(model)
    table.save(tmp_path / "t.json")
    back = MeshLandmarkEmbedding.from_json(json.loads((tmp_path / "t.json").read_text()))
    assert torch.equal(back.ids, table.ids) and torch.equal(back.triangles, table.triangles)
    assert torch.allclose(back.weights, table.weights, atol=1e-6)


def _ctx(model, points_img, mesh_points, mesh_valid, weights=None):
    class T:  # the two fields the term reads
        pass

    t = T()
    t.mesh_points, t.mesh_valid = mesh_points, mesh_valid

    class C:
        pass

    c = C()
    c.model, c.target, c.points_img, c.mesh_point_weights = model, t, points_img, weights
    return c


def test_mesh_lmk_scores_the_counterparts_against_the_front_ends_points():
    model = embed_mesh_landmarks(make_fake_model(), _table(make_fake_model()))
    gen = torch.Generator().manual_seed(0)
    img = torch.rand(2, model.num_points, 2, generator=gen) * 224
    mesh = torch.rand(2, MEDIAPIPE_MESH_POINTS, 2, generator=gen) * 224
    mesh[:, model.mesh_landmark_ids] = img[:, model.mesh_landmarks]
    valid = torch.ones(2, MEDIAPIPE_MESH_POINTS, dtype=torch.bool)
    assert TERM_NEEDS["mesh_lmk"] == frozenset()
    assert torch.allclose(TERMS["mesh_lmk"](_ctx(model, img, mesh, valid)), torch.zeros(2))
    moved = mesh.clone()
    moved[0, 200] += torch.tensor([3.0, 4.0])  # one of the three points, 5 px off: 25 / 3
    assert torch.allclose(TERMS["mesh_lmk"](_ctx(model, img, moved, valid)), torch.tensor([25 / 3, 0.0]))
    valid[0, 200] = False  # an invalid point weighs nothing
    assert torch.allclose(TERMS["mesh_lmk"](_ctx(model, img, moved, valid)), torch.zeros(2))
    # a model without a table, or targets without a mesh: 0
    plain = make_fake_model()
    assert torch.equal(TERMS["mesh_lmk"](_ctx(plain, img[:, : plain.num_points], mesh, valid)), torch.zeros(2))
    assert torch.equal(TERMS["mesh_lmk"](_ctx(model, img, None, None)), torch.zeros(2))
    # per-point weights, by the front end's mesh index: point 200 counts 4 times
    valid[0, 200] = True
    w = torch.ones(MEDIAPIPE_MESH_POINTS)
    w[200] = 4.0
    assert torch.allclose(TERMS["mesh_lmk"](_ctx(model, img, moved, valid, w)), torch.tensor([100 / 3, 0.0]))


def test_mesh_regions_are_mediapipes_outlines_and_weight_their_points():
    from fitter.config import FitConfig
    from fitter.targets.mediapipe_regions import MESH_REGIONS, mesh_point_weights, region_ids

    eyes, lips, brows, nose, rest = (set(region_ids(r)) for r in ("eyes", "lips", "brows", "nose", "rest"))
    assert {33, 133, 362, 263, 159, 145} <= eyes  # the eye corners and lid middles of MediaPipe's mesh
    assert {61, 291, 13, 14} <= lips and {70, 300} <= brows and 4 not in eyes
    assert len(eyes) == 32 and len(lips) == 40 and len(brows) == 20
    assert not (eyes & lips) and not (rest & (eyes | lips | brows | nose))
    assert len(rest | eyes | lips | brows | nose) == MEDIAPIPE_MESH_POINTS
    w = mesh_point_weights({"eyes": 4.0, "rest": 0.5})
    assert w.shape == (MEDIAPIPE_MESH_POINTS,) and w[33] == 4.0 and w[61] == 1.0 and w[list(rest)].max() == 0.5
    with pytest.raises(ValueError, match="unknown mesh region"):
        region_ids("ears")
    with pytest.raises(ValueError, match="unknown mesh region 'ears'"):
        FitConfig(mesh_region_weights={"ears": 2.0})
    with pytest.raises(ValueError, match="mesh region weight eyes"):
        FitConfig(mesh_region_weights={"eyes": -1.0})
    assert set(MESH_REGIONS) == {"eyes", "brows", "lips", "nose", "rest"}


def test_packaged_ict_table_covers_mediapipes_inner_mesh(ict_model):
    """The shipped table: MediaPipe's 468 points less the face oval, each on a triangle of the mesh
    near the face's front, loaded with the model whichever 68-point landmarks it uses."""
    import morphable_models

    table = packaged_mesh_landmarks("ict")
    assert table is not None
    assert 400 <= len(table.ids) <= 432 and int(table.ids.max()) < 468
    assert torch.equal(ict_model.mesh_landmark_ids, table.ids)
    raw = morphable_models.load("ict", landmarks="vertices")
    assert torch.equal(raw.mesh_landmark_ids, table.ids)
    tris = {tuple(sorted(t)) for t in raw.triangles.tolist()}
    assert all(tuple(sorted(t)) in tris for t in table.triangles.tolist())
    pts = ict_model.mean[ict_model.mesh_landmarks]
    # MediaPipe's nose tip (1) is the table's most forward point; its outer eye corners (33, 263)
    # sit at the person's right (-x) and left (+x)
    ids = table.ids.tolist()
    assert int(pts[:, 2].argmax()) == ids.index(1) or float(pts[ids.index(1), 2]) > float(pts[:, 2].max()) - 0.3
    assert float(pts[ids.index(33), 0]) < 0 < float(pts[ids.index(263), 0])


def test_front_end_targets_carry_mediapipes_mesh_in_crop_pixels(shared):
    """build_targets hands over the 478 points in the same crop frame as the 68 landmarks: the
    front end's 68 are a linear read-out of them."""
    from fitter.targets.mediapipe_68 import mesh_to_ibug68
    from fitter.targets.pipeline import TargetConfig, build_targets

    photo = shared / "images" / "ffhq-dev" / "00000.png"
    if not photo.is_file():
        pytest.skip("no ffhq-dev photo")
    t = build_targets(str(photo), TargetConfig())[0]
    assert t.mesh_points is not None and t.mesh_points.shape == (478, 2)
    t.validate()
    err = np.linalg.norm(mesh_to_ibug68(t.mesh_points) - t.landmarks, axis=1)
    assert float(err[t.landmark_valid].max()) < 0.5


def test_fitter_weights_the_mesh_term_by_region():
    from fitter.config import DEFAULT_MESH_REGION_WEIGHTS, FitConfig
    from fitter.optimize import Fitter
    from fitter.targets.mediapipe_regions import region_ids

    model = embed_mesh_landmarks(make_fake_model(), _table(make_fake_model()))
    w = Fitter(model, FitConfig(device="cpu")).forward.mesh_point_weights
    eye, rest = region_ids("eyes")[0], region_ids("rest")[0]
    assert float(w[eye]) == DEFAULT_MESH_REGION_WEIGHTS["eyes"] and float(w[rest]) == 1.0
    assert Fitter(model, FitConfig(device="cpu", mesh_region_weights={})).forward.mesh_point_weights is None
    off = FitConfig(device="cpu", loss_weights={"mesh_lmk": 0.0})
    assert Fitter(model, off).forward.mesh_point_weights is None  # no term, no table to build
