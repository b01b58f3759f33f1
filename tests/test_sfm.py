"""Surrey Face Model 3448: conversion through eos-py, conventions, landmarks, parts."""
import numpy as np
import pytest
import torch

import morphable_models
from morphable_models import sfm
from morphable_models.model import PART_NAMES


@pytest.fixture(scope="module")
def sfm_model(model_cache, eos_py):
    return morphable_models.load("sfm")


def test_loads_and_validates(sfm_model):
    m = sfm_model
    m.validate()
    assert m.num_mesh_vertices == m.num_points == 3448  # no eye holes: no virtual points
    assert m.hole_triangles.shape == (0, 3)
    assert m.id_basis.shape == (63, 3448, 3) and m.exp_basis.shape == (6, 3448, 3)
    assert m.exp_names == ["anger", "disgust", "fear", "happiness", "sadness", "surprise"]
    assert m.mean.dtype == torch.float32 and m.triangles.shape == (6736, 3)
    assert m.units == "mm" and m.mm_per_unit == 1.0
    assert "non-commercial" in m.license


def test_matches_eos(sfm_model, shared, eos_py):
    eos = eos_py
    shape = eos.morphablemodel.load_model(str(shared / "models" / "sfm-3448" / "sfm_shape_3448.bin")).get_shape_model()
    coeffs = [1.5, -1.0, 0.5]
    expected = np.asarray(shape.draw_sample(coeffs)).reshape(-1, 3)
    ours = sfm_model.vertices(torch.tensor([coeffs]), None)[0].numpy()
    assert np.allclose(ours, expected, atol=1e-2)


def test_conventions_and_landmarks(sfm_model):
    m = sfm_model
    v, lm = m.mean, m.landmarks68
    assert float(v[m.parts["left_eye"], 0].mean()) > 0 > float(v[m.parts["right_eye"], 0].mean())
    assert int(torch.argmax(v[lm, 2])) == 30
    y = v[lm, 1]
    assert y[19] > y[37] > y[33] > y[51] > y[57] > y[8]
    # jaw: 17 distinct vertices, mirror-symmetric, running down to the chin
    jaw = lm[:17]
    assert len(set(jaw.tolist())) == 17
    assert torch.allclose(v[jaw[:8], 0], -v[jaw.flip(0)[:8], 0], atol=5.0)
    assert bool((v[jaw[:8], 1].diff() < 0).all())
    assert int(lm[60]) == int(lm[48]) and int(lm[64]) == int(lm[54])  # inner corners reuse outer ones


def test_parts_and_contours(sfm_model):
    m = sfm_model
    counts = torch.zeros(m.num_points, dtype=torch.long)
    for name in PART_NAMES:
        assert m.parts[name].numel() > 0, name
        counts[m.parts[name]] += 1
    assert int(counts.max()) == 1
    assert float(m.mean[m.parts["up_lip"], 1].mean()) > float(m.mean[m.parts["down_lip"], 1].mean())
    for j in range(17):
        row = m.contour_candidates[j]
        assert int(m.landmarks68[j]) in row[row >= 0].tolist()


def test_jaw_from_contour_is_even_in_the_front_view():
    # a straight vertical contour from y=10 down to y=-70 with a chin at y=-80
    mean = np.zeros((20, 3))
    mean[:17, 1] = np.linspace(10, -70, 17)
    mean[19] = [0, -80, 0]
    picked = sfm.jaw_from_contour(mean, list(range(17)), chin=19, top_y=0.0)
    ys = mean[picked, 1]
    assert len(picked) == 8 and ys[0] <= 10 and np.all(np.diff(ys) < 0)
    assert np.ptp(np.diff(ys)) <= 5.0 + 1e-9  # evenly spaced up to one contour step
