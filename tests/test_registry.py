"""Model registry: names, cache files, listing, stale and corrupt caches."""
import shutil

import numpy as np
import pytest

import morphable_models
from fitter.errors import ModelError
from morphable_models import cache, registry, sfm
from morphable_models.model import PART_NAMES


def test_list_and_info(ict_model, model_cache):
    infos = {i.name: i for i in registry.list_models()}
    assert set(infos) == {"ict", "sfm", "bfm"}
    ict = infos["ict"]
    assert ict.installed and ict.path == registry.cache_path("ict")
    raw = registry.load("ict", landmarks="vertices")  # the converted file, without the landmark embedding
    assert raw.mesh_landmarks is not None  # but with the MediaPipe mesh table's points, after the file's
    assert ict.num_points == raw.num_points - len(raw.mesh_landmarks) and ict.num_mesh_vertices == 11248
    assert ict.num_id == 100 and ict.num_exp == 53 and ict.units == "cm"
    assert set(ict.part_sizes) == set(PART_NAMES) and "MIT" in ict.license
    assert "non-commercial" in infos["sfm"].license


def test_info_of_an_empty_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("PRDLFIT_SFM_SOURCE", raising=False)
    monkeypatch.delenv("PRDLFIT_ICT_SOURCE", raising=False)
    info = registry.model_info("sfm", cache_dir=tmp_path)
    assert not info.installed and info.path is None and "PRDLFIT_SFM_SOURCE" in info.note
    ict_info = registry.model_info("ict", cache_dir=tmp_path)  # the package's embedded copy
    assert ict_info.installed and "embedded" in ict_info.note and ict_info.path.parent.name == "data"


def test_unknown_name_and_missing_source(tmp_path, monkeypatch):
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        morphable_models.load("nope", cache_dir=tmp_path)
    monkeypatch.delenv("PRDLFIT_SFM_SOURCE", raising=False)
    with pytest.raises(ModelError, match="PRDLFIT_SFM_SOURCE"):
        morphable_models.load("sfm", cache_dir=tmp_path)
    with pytest.raises(ModelError, match="not a model file"):
        morphable_models.load(str(tmp_path), cache_dir=tmp_path)


def test_prepare_from_a_folder_and_load_by_path(model_cache, eos_py, shared, tmp_path, monkeypatch):
    monkeypatch.delenv("PRDLFIT_SFM_SOURCE", raising=False)
    out = registry.prepare("sfm", source=shared / "models" / "sfm-3448", cache_dir=tmp_path, progress=False)
    assert out == registry.cache_path("sfm", tmp_path) and out.with_suffix(".json").is_file()
    m = morphable_models.load(str(out), device="cpu")
    assert m.name == "sfm" and m.num_points == 3448
    # a folder of original files loads too (reusing the cache converted from it)
    again = morphable_models.load(str(shared / "models" / "sfm-3448"), cache_dir=tmp_path)
    assert again.num_points == 3448 and out.stat().st_mtime_ns == registry.cache_path("sfm", tmp_path).stat().st_mtime_ns


def test_corrupt_cache_is_a_model_error(model_cache, eos_py, tmp_path):
    registry.prepare("sfm", cache_dir=tmp_path, progress=False)
    path = registry.cache_path("sfm", tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated archive
    path.with_suffix(".json").unlink()
    with pytest.raises(ModelError, match="corrupt") as err:
        morphable_models.load("sfm", cache_dir=tmp_path)
    assert "\n" not in str(err.value)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK\x03\x04 nonsense")
    with pytest.raises(ModelError, match="not a usable prdlfit model file"):
        morphable_models.load(str(junk))
    assert "corrupt" in registry.model_info("sfm", cache_dir=tmp_path).note


def test_stale_cache_is_rebuilt(model_cache, eos_py, tmp_path):
    m = morphable_models.load("sfm")
    path = registry.cache_path("sfm", tmp_path)
    path.parent.mkdir(parents=True)
    cache.save_model(m, path, "sfm", sfm.CONVERTER_VERSION - 1)
    assert not registry.model_info("sfm", cache_dir=tmp_path).installed
    morphable_models.load("sfm", cache_dir=tmp_path)
    assert cache.read_meta(path).converter_version == sfm.CONVERTER_VERSION


def test_foreign_format_version_is_refused(model_cache, eos_py, tmp_path):
    src = registry.prepare("sfm", progress=False)
    path = tmp_path / "other.npz"
    shutil.copy(src, path)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = cache.CacheMeta.from_json(bytes(arrays["meta"]).decode())
    meta.format_version = cache.FORMAT_VERSION + 1
    arrays["meta"] = np.frombuffer(meta.to_json().encode(), dtype=np.uint8)
    np.savez(path, **arrays)
    with pytest.raises(ModelError, match="format version"):
        morphable_models.load(str(path))
