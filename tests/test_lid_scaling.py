"""Blinks scaled by the identity's lid gap (morphable_models.lid_scaling) and the model's expression scale."""
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import fit_with, make_fake_model, model_with_expressions

from fitter.config import PAPER_FIT_OPTIONS, FitConfig
from fitter.optimize import model_as_fitted
from fitter.outputs.face_rig import face_rig
from morphable_models.arkit import ICT_EXP_NAMES
from morphable_models.lid_scaling import BLINK_LIDS, lid_gap_gains, with_lid_scaled_blinks, without_exp_scale
from morphable_models.model import EXP_SCALE_MAX, EXP_SCALE_MIN, scale_expressions


def test_scale_expressions_scales_only_its_coefficients_and_clamps():
    exp = torch.full((3, 5), 0.5)
    idc = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 100.0]])
    index, gain = torch.tensor([1, 3, 9]), torch.tensor([[0.2, 0.0], [0.0, -0.1], [1.0, 1.0]])  # 9: not there
    out = scale_expressions(idc, exp, index, gain)
    assert torch.equal(out[0], exp[0])  # the mean identity: unchanged
    assert out[1].tolist() == pytest.approx([0.5, 0.6, 0.5, 0.5, 0.5])
    assert out[2].tolist() == pytest.approx([0.5, 0.5, 0.5, 0.5 * EXP_SCALE_MIN, 0.5])
    assert scale_expressions(-idc, exp, index, gain)[2, 3].item() == pytest.approx(0.5 * EXP_SCALE_MAX)
    assert scale_expressions(None, exp, index, gain) is exp
    i = idc.clone().requires_grad_(True)
    scale_expressions(i, exp, index, gain)[1].sum().backward()
    assert i.grad[1, 0].item() == pytest.approx(0.1)  # d(0.5 (1 + 0.2 id0)) / d id0


def test_a_linear_model_is_untouched():
    model = make_fake_model()
    assert lid_gap_gains(model) is None and with_lid_scaled_blinks(model) is model
    assert model.exp_scale is None
    exp = torch.rand(2, model.num_exp)
    assert torch.equal(model.effective_exp(torch.rand(2, model.num_id), exp), exp)


def test_scaled_model_blends_rows_and_bakes_the_rig_consistently():
    model = model_with_expressions(ICT_EXP_NAMES)
    idx = torch.tensor([model.exp_names.index(n) for n in BLINK_LIDS])
    gain = 0.3 * torch.randn(len(idx), model.num_id, generator=torch.Generator().manual_seed(0))
    scaled = replace(model, exp_scale_index=idx, exp_scale_gain=gain)
    scaled.validate()
    fit = fit_with(scaled)
    idc, exp = torch.from_numpy(fit.id_coeffs)[None], torch.from_numpy(fit.exp_coeffs)[None]
    full = scaled.vertices(idc, exp)
    assert not torch.allclose(full, model.vertices(idc, exp))  # the blinks did scale
    rows = torch.tensor([0, 5, 17, scaled.num_points - 1])
    torch.testing.assert_close(scaled.rows(rows).vertices(idc, exp), full[:, rows])
    # the rig: the fitted weights on targets with the identity's factors baked in give the fitted mesh
    rig = face_rig(fit, scaled)
    n = scaled.num_mesh_vertices
    np.testing.assert_allclose(rig.posed(), full[0, :n].numpy(), atol=1e-5)
    assert torch.equal(without_exp_scale(scaled).vertices(idc, exp), model.vertices(idc, exp))
    with pytest.raises(ValueError, match="exp_scale"):
        replace(scaled, exp_scale_gain=gain[:1]).validate()  # one gain row for two shapes


def test_fit_config_picks_the_scaled_or_the_linear_blinks():
    assert FitConfig().blink_scale == "identity" and PAPER_FIT_OPTIONS["blink_scale"] == "none"
    with pytest.raises(ValueError, match="blink_scale"):
        FitConfig(blink_scale="sometimes")


def _lid_gaps(model, idc, exp):
    lids = model.landmark_vertices if model.landmark_vertices is not None else model.landmarks68
    V = model.vertices(idc, exp)[0]
    return torch.stack([(V[lids[[u for u, _ in p]], 1] - V[lids[[lo for _, lo in p]], 1]).mean()
                        for p in BLINK_LIDS.values()])  # [2] (right, left)


def test_ict_blinks_close_every_identitys_eye_as_the_mean_faces(ict_model):
    scaled = model_as_fitted(ict_model, FitConfig())
    assert scaled.exp_scale is not None and model_as_fitted(ict_model, FitConfig(blink_scale="none")).exp_scale is None
    blink = torch.zeros(1, scaled.num_exp)
    blink[0, [scaled.exp_names.index(n) for n in BLINK_LIDS]] = 1.0
    zero = torch.zeros(1, scaled.num_id)
    mean_left = _lid_gaps(scaled, zero, blink) / _lid_gaps(scaled, zero, None)  # what a blink leaves open
    torch.testing.assert_close(_lid_gaps(scaled, zero, blink), _lid_gaps(ict_model, zero, blink))
    gen = torch.Generator().manual_seed(3)
    spread_linear, spread_scaled = [], []
    for _ in range(6):
        idc = torch.randn(1, scaled.num_id, generator=gen)
        s = scaled.effective_exp(idc, torch.ones(1, scaled.num_exp))[0, scaled.exp_scale_index]
        if not bool(((s > EXP_SCALE_MIN) & (s < EXP_SCALE_MAX)).all()):
            continue
        neutral = _lid_gaps(scaled, idc, None)
        spread_scaled.append((_lid_gaps(scaled, idc, blink) / neutral - mean_left).abs().max().item())
        spread_linear.append((_lid_gaps(ict_model, idc, blink) / neutral - mean_left).abs().max().item())
    assert len(spread_scaled) >= 4
    # scaled: each identity's eye closes to the mean face's fraction; linear: off by up to ~10 % of the gap
    assert max(spread_scaled) < 1e-4 < 0.02 < max(spread_linear)
