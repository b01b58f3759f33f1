"""3DDFA-V3 face_model.npy: safe reading, conversion round trip, errors (synthetic file)."""
import os
import pickle

import numpy as np
import pytest
import torch

import morphable_models
from fitter.errors import ModelError
from morphable_models import bfm, registry
from morphable_models.model import PART_NAMES
from morphable_models.safe_npy import load_npy_object


def _template_landmarks():
    """Rough iBUG-68 layout on a unit face: [68, 2] (x = person's left, y up)."""
    p = np.zeros((68, 2))
    t = np.pi + np.pi * np.arange(17) / 16
    p[:17] = np.stack([0.7 * np.cos(t), 0.1 + 0.8 * np.sin(t)], 1)
    p[17:22] = np.stack([np.linspace(-0.55, -0.1, 5), np.full(5, 0.45)], 1)
    p[22:27] = np.stack([np.linspace(0.1, 0.55, 5), np.full(5, 0.45)], 1)
    p[27:31] = np.stack([np.zeros(4), [0.3, 0.2, 0.1, 0.0]], 1)
    p[31:36] = np.stack([np.linspace(-0.15, 0.15, 5), np.full(5, -0.1)], 1)
    a = np.linspace(np.pi, -np.pi, 6, endpoint=False)
    p[36:42] = np.stack([-0.3 + 0.12 * np.cos(a), 0.3 + 0.05 * np.sin(a)], 1)
    p[42:48] = np.stack([0.3 + 0.12 * np.cos(a), 0.3 + 0.05 * np.sin(a)], 1)
    a = np.linspace(np.pi, -np.pi, 12, endpoint=False)
    p[48:60] = np.stack([0.25 * np.cos(a), -0.35 + 0.1 * np.sin(a)], 1)
    a = np.linspace(np.pi, -np.pi, 8, endpoint=False)
    p[60:68] = np.stack([0.2 * np.cos(a), -0.35 + 0.02 * np.sin(a)], 1)
    return p


def make_face_model(n=21, mirror=False, seed=0):
    """A small dict with the layout of 3DDFA-V3's face_model.npy (units ~ decimetres)."""
    rng = np.random.default_rng(seed)
    g = np.linspace(-0.8, 0.8, n)
    x, y = np.meshgrid(g, g)
    verts = np.stack([x.ravel(), y.ravel(), 0.3 - 0.5 * (x.ravel() ** 2 + y.ravel() ** 2)], 1)
    V = len(verts)
    tri = []
    for r in range(n - 1):
        for c in range(n - 1):
            i = r * n + c
            tri += [[i, i + 1, i + n + 1], [i, i + n + 1, i + n]]
    tri = np.asarray(tri)
    lm2 = _template_landmarks()
    ldm68 = np.argmin(((verts[None, :, :2] - lm2[:, None]) ** 2).sum(-1), axis=1)
    centers = {"right_eye": (-0.3, 0.3), "left_eye": (0.3, 0.3), "right_brow": (-0.33, 0.45),
               "left_brow": (0.33, 0.45), "nose": (0, 0.1), "up_lip": (0, -0.3), "down_lip": (0, -0.42)}
    annotation, used = [], np.zeros(V, bool)
    for name in PART_NAMES[:-1]:
        d = np.linalg.norm(verts[:, :2] - centers[name], axis=1)
        idx = np.flatnonzero((d < 0.09) & ~used)
        used[idx] = True
        annotation.append(idx)
    annotation.append(np.flatnonzero(~used & (np.linalg.norm(verts[:, :2], axis=1) < 0.7)))
    parallel = [np.unique(np.r_[ldm68[min(i // 2, 16)], rng.integers(0, V, 4)]) for i in range(33)]
    if mirror:
        verts = verts * [-1, 1, 1]
    u = verts.reshape(-1).astype(np.float32)
    return {
        "u": u.reshape(-1, 1),
        "id": rng.normal(size=(3 * V, 80)).astype(np.float32) * 0.01,
        "exp": rng.normal(size=(3 * V, 64)).astype(np.float32) * 0.01,
        "u_alb": rng.uniform(0, 255, size=(3 * V, 1)).astype(np.float32),
        "alb": np.zeros((3 * V, 80), np.float32),
        "point_buf": np.zeros((V, 8), np.int64),
        "tri": tri,
        "uv_coords": np.zeros((V, 3), np.float32),
        "ldm68": ldm68,
        "ldm106": np.zeros(106, np.int64),
        "annotation": annotation,
        "annotation_tri": [tri[:2] for _ in range(8)],
        "parallel": [list(map(int, p)) for p in parallel],
    }


@pytest.fixture
def face_model_file(tmp_path):
    data = make_face_model()
    path = tmp_path / "face_model.npy"
    np.save(path, data, allow_pickle=True)
    return path, data


def test_round_trip(face_model_file, tmp_path):
    path, data = face_model_file
    m = morphable_models.load(str(path), cache_dir=tmp_path / "cache")
    V = len(data["u"]) // 3
    assert m.name == "bfm" and m.num_points == m.num_mesh_vertices == V
    assert m.id_basis.shape == (80, V, 3) and m.exp_basis.shape == (64, V, 3)
    rng = np.random.default_rng(1)
    a_id, a_exp = rng.normal(size=(1, 80)), rng.normal(size=(1, 64))
    expected = (data["u"].reshape(-1) + data["id"] @ a_id[0] + data["exp"] @ a_exp[0]).reshape(V, 3)
    got = m.vertices(torch.tensor(a_id, dtype=torch.float32), torch.tensor(a_exp, dtype=torch.float32))[0]
    assert np.allclose(got.numpy(), expected, atol=1e-5)
    assert np.array_equal(m.triangles.numpy(), data["tri"])
    assert np.array_equal(m.landmarks68.numpy(), data["ldm68"])
    for name, idx in zip(PART_NAMES, data["annotation"]):
        assert np.array_equal(m.parts[name].numpy(), np.sort(idx)), name
    assert m.albedo is not None and float(m.albedo.min()) >= 0 and float(m.albedo.max()) <= 1
    assert np.allclose(m.albedo.numpy(), data["u_alb"].reshape(V, 3) / 255.0, atol=1e-6)
    for j in range(17):
        row = m.contour_candidates[j][m.contour_candidates[j] >= 0].tolist()
        assert int(data["ldm68"][j]) in row and set(data["parallel"][2 * j]) <= set(row)
    assert m.units == "dm" and m.mm_per_unit == 100.0
    assert torch.isinf(m.exp_upper).all()


def test_cache_is_reused_and_refreshed(face_model_file, tmp_path):
    path, data = face_model_file
    cache = tmp_path / "cache"
    morphable_models.load(str(path), cache_dir=cache)
    out = registry.cache_path("bfm", cache)
    first = out.stat().st_mtime_ns
    morphable_models.load(str(path), cache_dir=cache)
    assert out.stat().st_mtime_ns == first  # same source: no reconversion
    assert morphable_models.load("bfm", cache_dir=cache).num_points == len(data["u"]) // 3
    data2 = make_face_model(n=15, seed=3)
    np.save(path, data2, allow_pickle=True)
    os.utime(path, ns=(first + 10**9, first + 10**9))
    assert morphable_models.load(str(path), cache_dir=cache).num_points == 15 * 15  # changed file: reconverted


def test_mirrored_file_is_flipped_to_project_axes(tmp_path):
    path = tmp_path / "face_model.npy"
    np.save(path, make_face_model(mirror=True), allow_pickle=True)
    m = morphable_models.load(str(path), cache_dir=tmp_path / "cache")
    lm = m.landmarks68
    assert float(m.mean[lm[45], 0]) > float(m.mean[lm[36], 0])
    assert float(m.mean[m.parts["left_eye"], 0].mean()) > 0


def test_missing_keys_are_listed(tmp_path):
    data = make_face_model()
    del data["parallel"], data["ldm68"]
    path = tmp_path / "face_model.npy"
    np.save(path, data, allow_pickle=True)
    with pytest.raises(ModelError, match=r"missing keys \['ldm68', 'parallel'\]") as err:
        morphable_models.load(str(path), cache_dir=tmp_path / "cache")
    assert "\n" not in str(err.value)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo should-not-run",))


def test_untrusted_pickles_are_refused(tmp_path):
    path = tmp_path / "face_model.npy"
    np.save(path, {"u": _Evil()}, allow_pickle=True)
    with pytest.raises(pickle.UnpicklingError):
        load_npy_object(path)
    with pytest.raises(ModelError, match="refused to unpickle"):
        bfm.read_face_model(path)


def test_not_a_dict_or_not_npy(tmp_path):
    arr = tmp_path / "arr.npy"
    np.save(arr, np.zeros(3))
    with pytest.raises(ModelError, match="expected a pickled dict"):
        bfm.read_face_model(arr)
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"not numpy at all")
    with pytest.raises(ModelError, match="not a readable .npy"):
        morphable_models.load(str(junk), cache_dir=tmp_path / "cache")
