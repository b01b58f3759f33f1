"""The ICT-FaceKit model embedded in the package: small, complete, loaded with no download, and
equal to a fresh float32 conversion of the upstream files within float16 precision."""
import numpy as np
import pytest

import morphable_models
from fitter.config import FitConfig
from fitter.optimize import Fitter
from fitter.synthetic import random_case
from morphable_models import cache, ict, registry
from morphable_models.embedded import EMBEDDED_FILES, HALF_FIELDS, LICENSE_FILES, write_embedded

EMBEDDED = EMBEDDED_FILES["ict"]


def test_the_package_ships_a_small_embedded_model_with_its_licence():
    assert EMBEDDED.is_file() and EMBEDDED.stat().st_size <= 12 * 1024 * 1024
    assert "MIT License" in LICENSE_FILES["ict"].read_text("utf-8")
    with np.load(EMBEDDED) as z:
        assert all(z[k].dtype == np.float16 for k in HALF_FIELDS)
        assert z["mean"].dtype == np.float32 and z["triangles"].dtype == np.int32
    meta = cache.read_meta(EMBEDDED)
    assert (meta.converter, meta.converter_version) == ("ict", ict.CONVERTER_VERSION)
    assert meta.provenance["commit"] == ict.COMMIT and "source_folder" not in meta.provenance


def test_load_uses_the_embedded_model_when_nothing_is_prepared(tmp_path, monkeypatch):
    monkeypatch.delenv(ict.SOURCE_ENV, raising=False)
    monkeypatch.setenv(ict.URL_ENV, "http://127.0.0.1:9/nowhere")  # a download would fail
    assert registry.prepare("ict", cache_dir=tmp_path, progress=False) == EMBEDDED
    m = morphable_models.load("ict", cache_dir=tmp_path)
    assert m.id_basis.dtype.is_floating_point and str(m.id_basis.dtype) == "torch.float32"
    assert str(m.triangles.dtype) == "torch.int64" and (m.num_id, m.num_exp) == (100, 53)
    info = registry.model_info("ict", cache_dir=tmp_path)
    assert info.installed and info.path == EMBEDDED and "embedded" in info.note
    assert not any(tmp_path.iterdir())  # nothing written into the cache


def test_a_source_folder_still_wins_over_the_embedded_model(tmp_path, monkeypatch):
    monkeypatch.setenv(ict.SOURCE_ENV, str(tmp_path / "missing"))
    info = registry.model_info("ict", cache_dir=tmp_path)
    assert not info.installed and "missing" in info.note


@pytest.fixture(scope="module")
def rebuilt(shared, tmp_path_factory):
    """(float32 conversion, embedded file) freshly made from the shared upstream files."""
    src = shared / "models" / "ict-facekit"
    if not src.is_dir():
        pytest.skip(f"no ICT-FaceKit sources at {src}")
    tmp = tmp_path_factory.mktemp("embed")
    full = tmp / "ict.npz"
    ict.convert(src, full, progress=False)
    return full, write_embedded(full, tmp / "ict_facekit.npz")


def test_rebuild_matches_the_committed_file_within_float16_precision(rebuilt):
    full, fresh = rebuilt
    with np.load(full) as f32, np.load(fresh) as new, np.load(EMBEDDED) as old:
        assert set(new.files) == set(old.files)
        for k in new.files:
            if k == "meta":
                continue
            a, b = new[k], old[k]
            assert a.dtype == b.dtype and a.shape == b.shape, k
            if k in HALF_FIELDS:
                # the rounding of the float32 conversion, and at most one float16 step from the committed file
                np.testing.assert_array_equal(a, f32[k].astype(np.float16))
                np.testing.assert_array_max_ulp(a, b, maxulp=1)
            elif np.issubdtype(a.dtype, np.integer):
                np.testing.assert_array_equal(a, b, err_msg=k)
            else:
                np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6, err_msg=k)
        err = np.abs(new["id_basis"].astype(np.float32) - f32["id_basis"]).max()
        assert err <= 1e-3  # cm: half a float16 step at the largest entries (1.3 cm)


def test_a_short_fit_with_the_embedded_model_matches_the_float32_one(rebuilt):
    full, fresh = rebuilt
    m32, m16 = cache.load_model(full), cache.load_model(fresh)
    case = random_case(m32, 5, preset="asymmetric", max_yaw=40)
    cfg = FitConfig(iters=25, rigid_iters=10, device="cpu", seed=0)
    r32, r16 = (Fitter(m, cfg).fit(case.targets) for m in (m32, m16))
    assert r32.iterations == r16.iterations
    px = np.abs(r32.vertices_image - r16.vertices_image).max()
    # measured (2-core VM): 0.0023 px, total loss 9e-5 relative, identity coefficients 1.2e-4
    assert px < 0.02, px  # crop pixels (224 px crop)
    np.testing.assert_allclose(r16.final_losses["total"], r32.final_losses["total"], rtol=1e-3)
    np.testing.assert_allclose(r16.id_coeffs, r32.id_coeffs, atol=2e-3)
