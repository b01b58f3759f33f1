"""fitter/scan_oracle.py: the model fitted to a scan of a face (the floor of a photo's fit)."""
import numpy as np
import pytest
import torch

pytest.importorskip("open3d")

import morphable_models  # noqa: E402
from fitter.metrics_3d import NOSE_TIP, crop_scan, now_error, sample_surface, umeyama  # noqa: E402
from fitter.scan_oracle import fit_to_scan  # noqa: E402


@pytest.fixture(scope="module")
def ict():
    return morphable_models.load("ict", landmarks="vertices")


def test_the_oracle_recovers_a_face_of_its_own_model(ict):
    """A scan of an ICT face with a random identity and a smile, moved by a similarity: the fit
    scores far below the mean face under the scoring protocol (about 0.07 of it after 20 rounds) and
    finds the smile (the rest of it is taken by identity directions that look alike in the crop)."""
    nv = ict.num_mesh_vertices
    rng = np.random.default_rng(3)
    c_id = torch.tensor(rng.normal(0, 1, (1, ict.num_id)), dtype=torch.float32) * ict.id_std
    c_exp = torch.zeros(1, ict.num_exp)
    smile = [ict.exp_names.index(n) for n in ("mouthSmile_L", "mouthSmile_R")]
    c_exp[0, smile] = 0.8
    truth = ict.vertices(c_id, c_exp)[0, :nv].double().numpy() * ict.mm_per_unit
    tris = ict.triangles.numpy()
    lmk = ict.landmarks68.numpy()
    angle = np.deg2rad(20.0)
    R = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    gt = 1.1 * truth @ R.T + np.array([5.0, -3.0, 40.0])
    scan = crop_scan(sample_surface(gt, tris, 6000, seed=0), gt[lmk[NOSE_TIP]])
    mean = ict.mean[:nv].double().numpy() * ict.mm_per_unit
    fit = fit_to_scan(ict, scan, umeyama(mean[lmk[17:]], gt[lmk[17:]]), rounds=20)
    score = now_error(fit.vertices_mm, tris, lmk[17:], gt, tris, lmk[17:], lmk[NOSE_TIP], scan=scan).mean_mm
    base = now_error(mean, tris, lmk[17:], gt, tris, lmk[17:], lmk[NOSE_TIP], scan=scan).mean_mm
    assert score < 0.15 * base, (score, base)
    assert fit.mean_mm < 0.15 * base
    assert fit.exp_coeffs[smile].min() > 0.3
    assert fit.exp_coeffs.min() >= 0.0 and fit.vertices_mm.shape == (nv, 3)
    # identity alone: no expression weight, and the smile it cannot make costs accuracy
    still = fit_to_scan(ict, scan, umeyama(mean[lmk[17:]], gt[lmk[17:]]), rounds=20, expressions=False)
    assert not still.exp_coeffs.any() and still.exp_coeffs.shape == (ict.num_exp,)
    assert still.mean_mm > 1.2 * fit.mean_mm, (still.mean_mm, fit.mean_mm)


def test_a_bad_scan_is_refused(ict):
    from fitter.metrics_3d import Similarity

    with pytest.raises(ValueError, match="scan_mm"):
        fit_to_scan(ict, np.zeros((0, 3)), Similarity(1.0, np.eye(3), np.zeros(3)))
