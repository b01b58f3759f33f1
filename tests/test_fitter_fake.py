"""Fitter end to end on the small fake sphere model: no shared data, a few seconds.

The targets are the fake model's own projection at known parameters, so the fit has a known
answer; the tests check that it moves towards it, that early stopping fires before the cap, that
each face ends at its best logged iterate, and that a batch fits each face as if alone.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FAKE_EULER, FAKE_SIZE, projected_targets

from fitter.config import FitConfig
from fitter.optimize import Fitter
from morphable_models import registry
from morphable_models.model import PART_NAMES

SIZE = FAKE_SIZE
TRUE_EULER = FAKE_EULER


@pytest.fixture(scope="module")
def model(fake_model_file):
    return registry.load(fake_model_file)


def _lmk_error(result, target) -> float:
    """Mean pixel error of the inner 51 landmarks (the fake model's jaw contour is degenerate)."""
    return float(np.linalg.norm(result.landmarks2d[17:] - target.landmarks[17:], axis=1).mean())


CFG = FitConfig(device="cpu", iters=300, rigid_iters=30, max_skin_points=300, max_part_points=100,
                rel_tol=1e-4, patience=5)


def test_fit_moves_to_the_known_answer_and_stops_early(model):
    target = projected_targets(model)
    start = Fitter(model, replace(CFG, iters=0, rigid_iters=0)).fit(target)
    fit = Fitter(model, CFG).fit(target)
    assert _lmk_error(fit, target) < 0.7 * _lmk_error(start, target)
    assert fit.converged and fit.iterations < CFG.rigid_iters + CFG.iters  # early stopping fired
    stages = [row["stage"] for row in fit.history.rows]
    assert stages[0] == "rigid" and stages[-1] == "full"
    assert np.allclose(fit.euler_deg, TRUE_EULER, atol=4.0)
    assert fit.camera.kind == "perspective" and fit.camera.focal == pytest.approx(1015.0)


def test_each_face_ends_at_its_best_logged_iterate(model):
    """With a rate that makes Adam overshoot, the last step is not the best: the result is.

    (Visibility refreshed every iteration, so that the logged objectives and the final one are
    the same function; with stale visibility between refreshes they differ slightly.)"""
    target = projected_targets(model)
    # the closure terms off and the jaw at 0.5 (its weight before session 20): with the jaw at 1 or
    # the closure terms on this overshooting run happens to end on its best step
    cfg = replace(CFG, lr=0.3, iters=40, rel_tol=0.0, visibility_every=1, jaw_landmark_weight=0.5,
                  loss_weights={"eye_closure": 0.0, "lip_closure": 0.0})
    fit = Fitter(model, cfg).fit(target)
    full = [row["total"] for row in fit.history.rows if row["stage"] == "full"]
    assert len(full) == 40 and full[-1] > min(full)  # it wobbled and did not stop early
    assert fit.final_losses["total"] == pytest.approx(min(full), rel=1e-6)


def test_jaw_landmark_weight_reaches_the_landmark_term(model):
    from fitter.losses import JAW_WEIGHT

    assert float(Fitter(model, CFG).forward.landmark_weights[0]) == JAW_WEIGHT
    assert float(Fitter(model, replace(CFG, jaw_landmark_weight=3.0)).forward.landmark_weights[3]) == 3.0
    with pytest.raises(ValueError):
        replace(CFG, jaw_landmark_weight=-1.0)


def test_profile_id_prior_scales_the_identity_prior_by_the_head_yaw(model):
    """At ~45° yaw a gain of 8 nearly triples the identity prior (profile_factor of the fitted
    yaw); a frontal face keeps it as it is; the fit then lands nearer the mean identity."""
    turned = projected_targets(model, euler=(0.0, 45.0, 0.0))
    frontal = projected_targets(model, euler=(0.0, 0.0, 0.0))
    cfg = replace(CFG, loss_weights={**CFG.loss_weights, "id_prior": 0.05}, iters=40, profile_id_prior=0.0)
    base, prof = Fitter(model, cfg), Fitter(model, replace(cfg, profile_id_prior=8.0))
    fit = base.fit(turned)
    assert 35.0 < fit.euler_deg[1] < 55.0
    args = (fit.id_coeffs, fit.exp_coeffs, fit.rotation, fit.translation)
    plain = base.evaluate(turned, *args)["id_prior"]
    factor = 1.0 + 8.0 * ((abs(fit.euler_deg[1]) - 30.0) / 30.0) ** 2
    assert prof.evaluate(turned, *args)["id_prior"] == pytest.approx(plain * factor, rel=1e-4)
    flat = base.fit(frontal)
    flat_args = (flat.id_coeffs, flat.exp_coeffs, flat.rotation, flat.translation)
    assert prof.evaluate(frontal, *flat_args)["id_prior"] == pytest.approx(base.evaluate(frontal, *flat_args)["id_prior"])
    assert np.linalg.norm(prof.fit(turned).id_coeffs) < np.linalg.norm(fit.id_coeffs)
    with pytest.raises(ValueError, match="profile_id_prior"):
        replace(CFG, profile_id_prior=-1.0)


def test_profile_exp_prior_scales_both_expression_priors_by_the_head_yaw(model):
    """The expression priors' own gain: the same factor of the fitted yaw on exp_prior and
    exp_sparse, none on a frontal face, none on the identity prior; the turned fit's expression
    shrinks."""
    turned = projected_targets(model, euler=(0.0, 45.0, 0.0))
    frontal = projected_targets(model, euler=(0.0, 0.0, 0.0))
    weights = {**CFG.loss_weights, "exp_prior": 0.01, "exp_sparse": 0.05}
    cfg = replace(CFG, loss_weights=weights, iters=40, profile_exp_prior=0.0)
    base, prof = Fitter(model, cfg), Fitter(model, replace(cfg, profile_exp_prior=8.0))
    fit = base.fit(turned)
    assert 35.0 < fit.euler_deg[1] < 55.0
    args = (fit.id_coeffs, fit.exp_coeffs, fit.rotation, fit.translation)
    plain, scaled = base.evaluate(turned, *args), prof.evaluate(turned, *args)
    factor = 1.0 + 8.0 * ((abs(fit.euler_deg[1]) - 30.0) / 30.0) ** 2
    for term in ("exp_prior", "exp_sparse"):
        assert plain[term] > 0
        assert scaled[term] == pytest.approx(plain[term] * factor, rel=1e-4)
    assert scaled["id_prior"] == pytest.approx(plain["id_prior"])
    flat = base.fit(frontal)
    flat_args = (flat.id_coeffs, flat.exp_coeffs, flat.rotation, flat.translation)
    assert prof.evaluate(frontal, *flat_args)["exp_sparse"] == pytest.approx(base.evaluate(frontal, *flat_args)["exp_sparse"])
    assert np.abs(prof.fit(turned).exp_coeffs).sum() < np.abs(fit.exp_coeffs).sum()
    with pytest.raises(ValueError, match="profile_exp_prior"):
        replace(CFG, profile_exp_prior=-1.0)


def test_profile_jaw_weight_fades_the_jaw_landmarks_of_a_turned_face_only(model):
    """The landmark term of a face turned 45° with its jaw points off: at profile_jaw_weight f the
    jaw's share of the term is scaled by 1 − (1 − f)·r² (the priors' ramp), and a frontal face's
    term is untouched."""
    turned = projected_targets(model, euler=(0.0, 45.0, 0.0))
    frontal = projected_targets(model, euler=(0.0, 0.0, 0.0))
    cfg = replace(CFG, iters=30, profile_jaw_weight=1.0)
    flat_fitter, faded = Fitter(model, cfg), Fitter(model, replace(cfg, profile_jaw_weight=0.25))
    fit = flat_fitter.fit(turned)
    jaw = [i for i in range(17) if i != 8]
    moved = replace(turned, landmarks=turned.landmarks.copy())
    moved.landmarks[jaw] += 6.0  # every fading jaw point 6 px off in x and y
    args = (fit.id_coeffs, fit.exp_coeffs, fit.rotation, fit.translation)
    plain = flat_fitter.evaluate(moved, *args)["lmk"] - flat_fitter.evaluate(turned, *args)["lmk"]
    scaled = faded.evaluate(moved, *args)["lmk"] - faded.evaluate(turned, *args)["lmk"]  # the jaw's change only
    ramp = ((abs(fit.euler_deg[1]) - 30.0) / 30.0) ** 2
    assert 0.1 < ramp < 0.5 and plain > 0.05  # weighted values: the offsets add ~17 px² × λ_lmk
    assert scaled == pytest.approx(plain * (1.0 - 0.75 * ramp), rel=0.02)
    flat = flat_fitter.fit(frontal)
    flat_args = (flat.id_coeffs, flat.exp_coeffs, flat.rotation, flat.translation)
    moved_front = replace(frontal, landmarks=frontal.landmarks.copy())
    moved_front.landmarks[jaw] += 6.0
    assert faded.evaluate(moved_front, *flat_args)["lmk"] == pytest.approx(
        flat_fitter.evaluate(moved_front, *flat_args)["lmk"])
    with pytest.raises(ValueError, match="profile_jaw_weight"):
        replace(CFG, profile_jaw_weight=-1.0)


def test_a_batch_fits_each_face_as_if_alone(model):
    a, b = projected_targets(model), projected_targets(model, id_c=(-1.0, 0.5), exp_c=0.8, euler=(-5.0, 20.0, 0.0))
    cfg = replace(CFG, iters=30)
    both = Fitter(model, cfg).fit([a, b])
    alone = Fitter(model, cfg).fit(b)
    assert both[1].iterations == alone.iterations
    np.testing.assert_allclose(both[1].exp_coeffs, alone.exp_coeffs, atol=1e-4)
    np.testing.assert_allclose(both[1].rotation, alone.rotation, atol=1e-4)


def test_converged_faces_leave_the_batch_compute(model, monkeypatch):
    """Once a face has converged, the batch's evaluations run on the live faces only (fitter.fit.live),
    and each face still ends where it would alone."""
    from fitter.fit.forward import ForwardPass

    a, b = projected_targets(model), projected_targets(model, id_c=(-1.0, 0.5), exp_c=0.8, euler=(-5.0, 20.0, 0.0))
    cfg = replace(CFG, iters=100)  # both faces converge, at different iterations
    sizes = []
    real = ForwardPass.__call__

    def spy(self, params, tb, *args, **kwargs):
        sizes.append(tb.batch_size)
        assert params.z_id.shape[0] == tb.batch_size
        return real(self, params, tb, *args, **kwargs)

    monkeypatch.setattr(ForwardPass, "__call__", spy)
    both = Fitter(model, cfg).fit([a, b])
    assert both[0].iterations != both[1].iterations  # one face stopped first ...
    assert 1 in sizes and 2 in sizes  # ... and the batch went on without it
    for fit, target in zip(both, (a, b)):
        alone = Fitter(model, cfg).fit(target)
        assert fit.iterations == alone.iterations
        np.testing.assert_allclose(fit.exp_coeffs, alone.exp_coeffs, atol=1e-4)
        np.testing.assert_allclose(fit.landmarks2d, alone.landmarks2d, atol=1e-3)


def test_live_batch_spreads_rows_back_and_merges_visibility():
    from fitter.fit.forward import Visibility
    from fitter.fit.live import spread

    idx = torch.tensor([0, 2])
    torch.testing.assert_close(spread(torch.tensor([1.0, 3.0]), idx, 3, fill=torch.tensor([9.0, 8.0, 7.0])),
                               torch.tensor([1.0, 8.0, 3.0]))
    assert torch.isnan(spread(torch.tensor([1.0, 3.0]), idx, 3)[1])
    full = Visibility(torch.tensor([[True, True], [True, False], [False, False]]), None)
    part = Visibility(torch.tensor([[False, True], [True, True]]), torch.ones(2, 1, 1, dtype=torch.bool))
    merged = full.merged(idx, part, 3)
    assert merged.points.tolist() == [[False, True], [True, False], [True, True]]
    assert merged.support[:, 0, 0].tolist() == [True, False, True]  # never computed: False
    assert full.points[0].tolist() == [True, True]  # the original is not modified
    assert full.select(torch.tensor([1])).points.tolist() == [[True, False]]


def test_weak_camera_and_lr_decay_run_through_the_fitter(model):
    target = projected_targets(model)
    fit = Fitter(model, replace(CFG, camera="weak", lr_decay=0.1, iters=60)).fit(target)
    assert fit.camera.kind == "weak" and fit.camera.focal > 0  # focal = the scale, px per model unit
    assert fit.translation[2] == 0.0
    assert _lmk_error(fit, target) < 2.5


def test_fit_refuses_bytes():
    with pytest.raises(TypeError, match="fit"):
        Fitter.fit(object.__new__(Fitter), b"abc")


def test_adam_matches_torch_adam_bit_for_bit():
    from fitter.fit.adam import Adam

    gen = torch.Generator().manual_seed(0)
    ours = [torch.randn(4, 3, generator=gen).requires_grad_(True), torch.randn(2, generator=gen).requires_grad_(True)]
    ref = [t.detach().clone().requires_grad_(True) for t in ours]
    opt = Adam([{"params": [ours[0]], "lr": 0.03}, {"params": [ours[1]], "lr": 0.01}])
    topt = torch.optim.Adam([{"params": [ref[0]], "lr": 0.03}, {"params": [ref[1]], "lr": 0.01}])
    for it in range(30):
        for o, ts in ((opt, ours), (topt, ref)):
            if it == 15:  # a schedule changes the rates between steps
                for g in o.param_groups:
                    g["lr"] *= 0.5
            o.zero_grad()
            (ts[0].sin().pow(2).sum() + ts[1].exp().sum()).backward()
            o.step()
    assert all(torch.equal(a, b) for a, b in zip(ours, ref))


def test_a_fit_does_not_import_the_compiler_stack(fake_model_file):
    """Building torch.optim.Adam imports torch._dynamo (seconds of startup); the fit must not."""
    code = (
        "import sys\n"
        "from morphable_models import registry\n"
        "from fitter.config import FitConfig\n"
        "from fitter.optimize import Fitter\n"
        "import test_fitter_fake as t\n"
        f"m = registry.load({str(fake_model_file)!r})\n"
        "Fitter(m, FitConfig(device='cpu', iters=3, rigid_iters=2, max_skin_points=50)).fit(t.projected_targets(m))\n"
        "assert 'torch._dynamo' not in sys.modules, 'torch._dynamo was imported'\n"
    )
    here = Path(__file__).resolve().parent
    out = subprocess.run([sys.executable, "-c", code], cwd=here, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": f"{here}{os.pathsep}{here.parent}"})
    assert out.returncode == 0, out.stderr[-2000:]


def test_photometric_and_silhouette_terms_run_through_the_fitter(model):
    target = projected_targets(model)
    target.image = np.full((SIZE, SIZE, 3), 120, np.uint8)
    weights = {**CFG.loss_weights, "pho": 1e-2, "sil_iou": 1e-2}
    fit = Fitter(model, replace(CFG, iters=5, rigid_iters=2, loss_weights=weights)).fit(target)
    assert {"pho", "sil_iou"} <= set(fit.final_losses) and np.isfinite(fit.final_losses["total"])
    assert {"pho", "sil_iou"} <= set(fit.history.rows[-1])


def test_rigid_stage_computes_the_shape_once_and_leaves_the_coefficients_trainable(model, monkeypatch):
    """In the rigid stage the coefficients do not move: the shape is computed once and reused,
    and no gradient flows to the coefficients; the main stage then moves them as before."""
    calls = []
    vertices = type(model).vertices

    def counted(self, id_c=None, exp_c=None):
        calls.append(bool(id_c is not None and id_c.requires_grad))
        return vertices(self, id_c, exp_c)

    monkeypatch.setattr(type(model), "vertices", counted)
    target = projected_targets(model)
    counts = []
    for n in (2, 12):
        calls.clear()
        rigid = Fitter(model, replace(CFG, iters=0, rigid_iters=n, rel_tol=0.0)).fit(target)
        assert rigid.iterations == n
        assert not any(calls), "no coefficient gradient in the rigid stage"
        counts.append(len(calls))
    assert counts[0] == counts[1]  # not one shape per iteration
    calls.clear()
    full = Fitter(model, replace(CFG, iters=5, rigid_iters=3, rel_tol=0.0, visibility_every=1)).fit(target)
    assert calls.count(True) == 5  # each main-stage iteration differentiates through the shape
    assert not np.allclose(full.id_coeffs, 0.0)


@pytest.mark.parametrize("which", ["fake", "ict"])
def test_passes_between_refreshes_compute_only_the_rows_they_read(which, request):
    """Between visibility refreshes the forward pass blends and projects only the points its terms
    read: every term value and every gradient equals the all-points pass, the other rows are NaN,
    and a refresh or a term that reads every point (sil_iou) uses all rows. On the fake sphere and
    on ICT-FaceKit (its contour lines, dense-mesh landmarks, sampled skin and the shading term's
    triangles)."""
    model = request.getfixturevalue("model" if which == "fake" else "ict_model")
    cfg = replace(CFG, loss_weights={**CFG.loss_weights, "chamfer": 1e-3, "eye_closure": 1e-2, "shading": 1.0})
    targets = [projected_targets(model), projected_targets(model, id_c=(-0.5, 0.8), euler=(-5.0, 20.0, 0.0))]
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    shade = np.stack([xs, ys, xs + ys], -1) * (255.0 / (2 * SIZE))  # colours the shading term must explain
    skin = np.full((SIZE, SIZE), PART_NAMES.index("skin") + 1, np.uint8)
    targets = [replace(t, image=shade.astype(np.uint8), part_masks=skin) for t in targets]
    if which == "ict":  # uniform point weights: no part triangle corners among the rows to hide a miss
        cfg = replace(cfg, max_skin_points=1500, max_part_points=10**9, point_weights="uniform")
        rng = np.random.default_rng(0)
        targets = [replace(t, mesh_points=rng.uniform(60, 160, (478, 2)).astype(np.float32)) for t in targets]
    fitter = Fitter(model, cfg)
    fp = fitter.forward
    terms = cfg.active_losses()
    tb, camera = fitter._batch(targets, terms)
    params = fitter.space.initial(tb.landmarks, tb.landmark_valid, camera)
    with torch.no_grad():
        params.z_id += 0.3  # away from 0: a generic point
        params.z_exp += 0.2
    seen = fp(params, tb, camera, terms, refresh=True).visibility
    V = model.num_points
    rows = fp.read_rows().index
    assert 0 < rows.numel() < V

    def run(all_rows: bool):
        fp._rows = fitter.model.rows(torch.arange(V)) if all_rows else None  # the model as fitted
        for t in params.tensors():
            t.grad = None
        ev = fp(params, tb, camera, terms, visibility=seen, refresh=False)
        ev.total.sum().backward()
        return ev, [t.grad.clone() for t in params.tensors()]

    full, full_grads = run(True)
    part, part_grads = run(False)
    assert torch.isnan(part.context.points_img).any(-1).sum().item() == 2 * (V - rows.numel())
    assert not torch.isnan(part.context.points_img[:, rows]).any()
    assert set(part.values) == set(full.values) and float(full.values["shading"].min()) > 0
    for k in full.values:
        torch.testing.assert_close(part.values[k], full.values[k], rtol=1e-5, atol=1e-6, msg=k)
    for a, b in zip(part_grads, full_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    with torch.no_grad():
        assert not torch.isnan(fp(params, tb, camera, terms, visibility=seen, refresh=True).context.points_img).any()
        sil = {**terms, "sil_iou": 1.0}
        tb_sil, _ = fitter._batch([projected_targets(model)] * 2, sil)
        assert not torch.isnan(fp(params, tb_sil, camera, sil, visibility=seen, refresh=False).context.points_img).any()


def test_between_refreshes_the_point_masks_are_the_refreshs(model):
    """The part points' occluder and forehead masks are taken at the visibility refresh and held
    until the next, like the z-buffer: a pass between refreshes reads them from the refresh's
    :class:`Visibility` (here: a forehead mask cut in half after the refresh thins the skin's point
    set), and the refresh itself computes them anew."""
    fitter = Fitter(model, CFG)
    terms = CFG.active_losses()
    tb, camera = fitter._batch([projected_targets(model)], terms)
    params = fitter.space.initial(tb.landmarks, tb.landmark_valid, camera)
    seen = fitter.forward(params, tb, camera, terms, refresh=True).visibility
    assert seen.kept is not None and seen.below is not None and bool(seen.below.any())
    skin = PART_NAMES.index("skin")
    counted = fitter.forward(params, tb, camera, terms, visibility=seen, refresh=False).context.pred_valid[:, skin]
    assert bool(counted.any())
    half = seen.below.clone()
    half[:, ::2] = False
    cut = replace(seen, below=half)
    thinned = fitter.forward(params, tb, camera, terms, visibility=cut, refresh=False).context.pred_valid[:, skin]
    assert 0 < int(thinned.sum()) < int(counted.sum()) and not bool((thinned & ~counted).any())
    again = fitter.forward(params, tb, camera, terms, visibility=cut, refresh=True)
    assert torch.equal(again.visibility.below, seen.below)
    assert torch.equal(again.context.pred_valid[:, skin], counted)
