"""Animation outputs: ``blendshapes.json`` (ARKit weights), ``face.glb`` (morph targets), ``neutral.obj``
and ``prdlfit export --format arkit-csv``.

Fast tests use the sphere model of test_outputs (with its one ARKit-named shape, with ICT-FaceKit's
53 names on random shapes, and with non-ARKit names); ``face.glb`` is read back with pygltflib. The
side rule of the ARKit table is checked on the real ICT-FaceKit model (skips without it).
"""
from __future__ import annotations

import csv
import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import fake_photo, fit_with, make_fake_model, model_with_expressions

from fitter.cli import main
from fitter.outputs.writer import write_fit_outputs
from fitter.palette import PART_COLORS
from morphable_models.arkit import ARKIT_NAMES, ARKIT_SOURCES, ICT_EXP_NAMES, arkit_sources

pygltflib = pytest.importorskip("pygltflib")

ICT_NAMES_SORTED = sorted(ICT_EXP_NAMES)


# ------------------------------------------------------------------ glb reading (pygltflib + accessor decoding)
_DTYPES = {5121: "u1", 5123: "<u2", 5125: "<u4", 5126: "<f4"}
_WIDTH = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}


def _view_bytes(gltf, blob, view_index):
    v = gltf.bufferViews[view_index]
    return blob[(v.byteOffset or 0):(v.byteOffset or 0) + v.byteLength]


def read_accessor(gltf, blob, index):
    """Decode accessor ``index`` (dense, sparse or all-zero) to [count, width]."""
    a = gltf.accessors[index]
    width = _WIDTH[a.type]
    if a.bufferView is None:
        out = np.zeros((a.count, width), _DTYPES[a.componentType])
    else:
        data = _view_bytes(gltf, blob, a.bufferView)
        out = np.frombuffer(data, _DTYPES[a.componentType], count=a.count * width,
                            offset=a.byteOffset or 0).reshape(a.count, width).copy()
    if a.sparse is not None:
        idx = np.frombuffer(_view_bytes(gltf, blob, a.sparse.indices.bufferView),
                            _DTYPES[a.sparse.indices.componentType], count=a.sparse.count)
        assert np.all(np.diff(idx.astype(np.int64)) > 0), "sparse indices must increase strictly"
        out[idx] = np.frombuffer(_view_bytes(gltf, blob, a.sparse.values.bufferView), _DTYPES[a.componentType],
                                 count=a.sparse.count * width).reshape(-1, width)
    return out


def load_glb(path):
    gltf = pygltflib.GLTF2().load(str(path))
    return gltf, gltf.binary_blob()


def srgb_to_linear(c):
    c = c / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


# ------------------------------------------------------------------ the ARKit table
def test_arkit_table_has_52_names_and_53_ict_shapes():
    assert len(ARKIT_NAMES) == 52 == len(set(ARKIT_NAMES))
    srcs = [n for names in ARKIT_SOURCES.values() for n in names]
    assert len(srcs) == 53 == len(set(srcs)) == len(ICT_EXP_NAMES)
    splits = {a: s for a, s in ARKIT_SOURCES.items() if len(s) == 2}
    assert splits == {"browInnerUp": ("browInnerUp_L", "browInnerUp_R"),
                      "cheekPuff": ("cheekPuff_L", "cheekPuff_R")}
    assert ARKIT_SOURCES["tongueOut"] == ()
    for a, s in ARKIT_SOURCES.items():  # the side words agree with the ICT suffixes
        if len(s) == 2:
            assert s == (a + "_L", a + "_R")
        elif s and s[0][-2:] in ("_L", "_R"):
            assert a == s[0][:-2] + {"_L": "Left", "_R": "Right"}[s[0][-2:]]
        elif s:
            assert a == s[0]


def test_arkit_sources_by_names():
    src = arkit_sources(ICT_NAMES_SORTED)
    assert list(src) == list(ARKIT_NAMES)
    assert [ICT_NAMES_SORTED[i] for i in src["cheekPuff"]] == ["cheekPuff_L", "cheekPuff_R"]
    assert src["tongueOut"] == ()
    ident = arkit_sources(["jawOpen", "eyeBlinkLeft"])
    assert ident["jawOpen"] == (0,) and ident["eyeBlinkLeft"] == (1,) and ident["cheekPuff"] == ()
    assert arkit_sources(["anger", "disgust"]) is None  # SFM
    assert arkit_sources([f"exp{k:02d}" for k in range(64)]) is None  # BFM
    assert arkit_sources(ICT_NAMES_SORTED[:-1]) is None  # not the whole ICT set
    assert make_fake_model().arkit_sources()["jawOpen"] == (0,)


def test_arkit_weights_mean_of_splits_and_clipped():
    from fitter.outputs.blendshapes import arkit_weights

    exp = np.zeros(53)
    idx = {n: i for i, n in enumerate(ICT_NAMES_SORTED)}
    exp[idx["cheekPuff_L"]], exp[idx["cheekPuff_R"]] = 0.8, 0.2
    exp[idx["eyeBlink_L"]], exp[idx["eyeBlink_R"]] = 0.9, 0.1
    exp[idx["jawOpen"]], exp[idx["mouthClose"]] = 1.3, -0.2
    w = arkit_weights(exp, arkit_sources(ICT_NAMES_SORTED))
    assert list(w) == list(ARKIT_NAMES)
    assert w["cheekPuff"] == pytest.approx(0.5) and w["browInnerUp"] == 0.0 and w["tongueOut"] == 0.0
    assert w["eyeBlinkLeft"] == pytest.approx(0.9) and w["eyeBlinkRight"] == pytest.approx(0.1)
    assert w["jawOpen"] == 1.0 and w["mouthClose"] == 0.0


# ------------------------------------------------------------------ written by the writer
@pytest.fixture(scope="module")
def ict_like(tmp_path_factory):
    """(model, fit, out_dir) of a sphere model with ICT-FaceKit's 53 names, written."""
    model = model_with_expressions(ICT_NAMES_SORTED)
    fit = fit_with(model)
    out = tmp_path_factory.mktemp("anim") / "photo"
    write_fit_outputs(fit, model, out, original_image=fake_photo(), overlay=False)
    return model, fit, out


def test_blendshapes_json(ict_like):
    model, fit, out = ict_like
    data = json.loads((out / "blendshapes.json").read_text())
    assert data["format"] == "prdlfit-blendshapes" and data["model"] == "fake-sphere"
    assert list(data["blendshapes"]) == list(ARKIT_NAMES)
    exp = dict(zip(model.exp_names, fit.exp_coeffs.astype(float)))
    w = data["blendshapes"]
    assert w["eyeBlinkLeft"] == pytest.approx(exp["eyeBlink_L"], abs=1e-6)
    assert w["mouthSmileRight"] == pytest.approx(exp["mouthSmile_R"], abs=1e-6)
    assert w["browInnerUp"] == pytest.approx((exp["browInnerUp_L"] + exp["browInnerUp_R"]) / 2, abs=1e-6)
    assert w["tongueOut"] == 0.0 and all(0.0 <= v <= 1.0 for v in w.values())
    assert data["sources"]["cheekPuff"] == ["cheekPuff_L", "cheekPuff_R"] and data["split_rule"] == "mean"
    pose = data["head_pose"]
    assert (pose["pitch"], pose["yaw"], pose["roll"]) == pytest.approx((5.0, -20.0, 3.0)) and pose["units"] == "degrees"
    fit_json = json.loads((out / "fit.json").read_text())
    assert fit_json["pose"]["euler_deg"] == {k: pose[k] for k in ("pitch", "yaw", "roll")}
    assert {"neutral_obj": "neutral.obj", "glb": "face.glb", "blendshapes": "blendshapes.json"}.items() \
        <= fit_json["files"].items()


def test_neutral_obj_is_identity_at_zero_expression(ict_like):
    from conftest import parse_obj

    model, fit, out = ict_like
    verts, cols, faces = parse_obj(out / "neutral.obj")
    n = model.num_mesh_vertices
    neutral = model.vertices(torch.from_numpy(fit.id_coeffs)[None], None)[0, :n].numpy()
    np.testing.assert_allclose(verts, neutral, atol=1e-5)  # model space, model units (cm), no pose
    assert np.abs(verts - fit.vertices_model[:n]).max() > 0.1  # the expression is not in it
    np.testing.assert_allclose(cols, PART_COLORS[model.part_labels().numpy()[:n]] / 255.0, atol=1e-4)
    assert faces.shape == tuple(model.triangles.shape)


def test_glb_reads_back_with_pygltflib(ict_like):
    model, fit, out = ict_like
    gltf, blob = load_glb(out / "face.glb")
    assert gltf.asset.version == "2.0"
    mesh = gltf.meshes[gltf.nodes[gltf.scenes[gltf.scene].nodes[0]].mesh]
    prim = mesh.primitives[0]
    names = mesh.extras["targetNames"]
    # 49 one-to-one ARKit shapes + 2 whole split shapes + their 2 asymmetries; no tongueOut
    assert len(names) == len(prim.targets) == len(mesh.weights) == 53
    assert set(names) == (set(ARKIT_NAMES) - {"tongueOut"}) | {"browInnerUp_leftMinusRight",
                                                              "cheekPuff_leftMinusRight"}
    n, m = model.num_mesh_vertices, model.mm_per_unit / 1000.0
    pos = read_accessor(gltf, blob, prim.attributes.POSITION)
    neutral = model.vertices(torch.from_numpy(fit.id_coeffs)[None], None)[0, :n].numpy()
    np.testing.assert_allclose(pos, neutral * m, atol=1e-7)  # metres
    acc = gltf.accessors[prim.attributes.POSITION]
    np.testing.assert_allclose(acc.min, pos.min(0), atol=1e-7)
    np.testing.assert_allclose(acc.max, pos.max(0), atol=1e-7)
    tri = read_accessor(gltf, blob, prim.indices).reshape(-1, 3)
    np.testing.assert_array_equal(tri, model.triangles.numpy())
    col = read_accessor(gltf, blob, prim.attributes.COLOR_0)
    np.testing.assert_allclose(col, srgb_to_linear(PART_COLORS[model.part_labels().numpy()[:n]]), atol=1e-6)
    # the fitted weights on the ARKit names, and the mesh they make is the fitted one
    w = dict(zip(names, mesh.weights))
    exp = dict(zip(model.exp_names, fit.exp_coeffs.astype(float)))
    assert w["jawOpen"] == pytest.approx(exp["jawOpen"], abs=1e-6)
    assert w["cheekPuff"] == pytest.approx((exp["cheekPuff_L"] + exp["cheekPuff_R"]) / 2, abs=1e-6)
    assert w["cheekPuff_leftMinusRight"] == pytest.approx((exp["cheekPuff_L"] - exp["cheekPuff_R"]) / 2, abs=1e-6)
    posed = pos.astype(np.float64)
    sparse = 0
    for t, wk in zip(prim.targets, mesh.weights):
        a = gltf.accessors[t["POSITION"]]
        sparse += a.sparse is not None
        d = read_accessor(gltf, blob, t["POSITION"])
        np.testing.assert_allclose(a.min, d.min(0), atol=1e-7)
        np.testing.assert_allclose(a.max, d.max(0), atol=1e-7)
        posed += wk * d
    assert sparse == 53  # a third of the vertices never move
    # within the 1 µm per target that face.glb drops, times the weights
    np.testing.assert_allclose(posed, fit.vertices_model[:n] * m, atol=1e-6 * sum(map(abs, mesh.weights)) + 1e-6)


def test_glb_layout_aligned_and_padded(ict_like):
    _, _, out = ict_like
    data = (out / "face.glb").read_bytes()
    magic, version, length = struct.unpack_from("<III", data, 0)
    assert (magic, version, length) == (0x46546C67, 2, len(data)) and length % 4 == 0
    js_len, js_type = struct.unpack_from("<II", data, 12)
    assert js_type == 0x4E4F534A and js_len % 4 == 0
    doc = json.loads(data[20:20 + js_len])
    bin_len, bin_type = struct.unpack_from("<II", data, 20 + js_len)
    assert bin_type == 0x004E4942 and bin_len % 4 == 0 and 28 + js_len + bin_len == len(data)
    assert doc["buffers"] == [{"byteLength": bin_len}]
    assert all(v["byteOffset"] % 4 == 0 and v["byteOffset"] + v["byteLength"] <= bin_len for v in doc["bufferViews"])


def test_model_without_arkit_names_writes_glb_with_its_own_names(tmp_path):
    model = model_with_expressions(["anger", "surprise"])
    fit = fit_with(model)
    out = tmp_path / "photo"
    (out).mkdir()
    (out / "blendshapes.json").write_text("{}")  # stale, from a fit with another model
    paths = write_fit_outputs(fit, model, out, overlay=False)
    assert "blendshapes" not in paths and not (out / "blendshapes.json").exists()
    assert (out / "neutral.obj").is_file()
    gltf, blob = load_glb(out / "face.glb")
    mesh = gltf.meshes[0]
    assert mesh.extras["targetNames"] == ["anger", "surprise"]
    np.testing.assert_allclose(mesh.weights, fit.exp_coeffs, atol=1e-6)
    r = CliRunner().invoke(main, ["export", str(out), "--format", "arkit-csv"])
    assert r.exit_code != 0
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "no ARKit blendshape names" in errors[0] and "fake-sphere" in errors[0]


def test_animation_files_come_before_fit_json(tmp_path, monkeypatch):
    import fitter.outputs.writer as writer

    seen = {}
    real = writer.write_fit_json

    def check(path, summary):
        seen.update({n: (Path(path).parent / n).is_file() for n in ("neutral.obj", "face.glb", "blendshapes.json")})
        return real(path, summary)

    monkeypatch.setattr(writer, "write_fit_json", check)
    model = make_fake_model()
    writer.write_fit_outputs(fit_with(model), model, tmp_path / "p", overlay=False)
    assert seen == {"neutral.obj": True, "face.glb": True, "blendshapes.json": True}


def test_batch_backend_writes_them(tmp_path):
    from fitter.batch.backend import BackendSpec, PrdlBackend
    from fitter.config import FitConfig

    model = make_fake_model()
    backend = object.__new__(PrdlBackend)  # the real writer, without loading a model or a fitter
    backend.model, backend.spec = model, BackendSpec(model="fake", fit_config=FitConfig(), overlay=False)
    backend.write(fit_with(model), tmp_path / "img")
    assert {"neutral.obj", "face.glb", "blendshapes.json", "fit.json"} <= {p.name for p in (tmp_path / "img").iterdir()}


# ------------------------------------------------------------------ prdlfit export
@pytest.fixture(scope="module")
def track(tmp_path_factory):
    """A folder of three results (frames b, a, c written in that order) and their fits."""
    model = make_fake_model()
    root = tmp_path_factory.mktemp("track") / "out"
    fits = {}
    for k, name in enumerate(["frame_b", "frame_a", "frame_c"]):
        fits[name] = fit_with(model, seed=10 + k, euler=(k, 10.0 * k, -k))
        write_fit_outputs(fits[name], model, root / name, overlay=False)
    (root / "report").mkdir()  # a batch's report folder is not a frame
    return root, fits


def test_export_arkit_csv(track, tmp_path):
    from fitter.outputs.arkit_csv import LIVE_LINK_FACE_ORDER

    root, fits = track
    out = tmp_path / "take.csv"
    r = CliRunner().invoke(main, ["export", str(root), "--format", "arkit-csv", "-o", str(out), "--fps", "2"])
    assert r.exit_code == 0, r.output
    rows = list(csv.reader(io.StringIO(out.read_text())))
    head = rows[0]
    assert head[:4] == ["Timecode", "BlendShapeCount", "EyeBlinkLeft", "EyeLookDownLeft"]
    assert head[-9:-6] == ["HeadYaw", "HeadPitch", "HeadRoll"] and head[-1] == "RightEyeRoll"
    assert len(head) == 2 + 61 and sorted(h[0].lower() + h[1:] for h in head[2:54]) == sorted(ARKIT_NAMES)
    assert sorted(LIVE_LINK_FACE_ORDER) == sorted(ARKIT_NAMES)
    assert [r[0] for r in rows[1:]] == ["00:00:00:00.000", "00:00:00:01.000", "00:00:01:00.000"]
    assert all(r[1] == "61" for r in rows[1:])
    for row, name in zip(rows[1:], ["frame_a", "frame_b", "frame_c"]):  # sorted by name
        vals = dict(zip(head, row))
        assert float(vals["JawOpen"]) == pytest.approx(float(fits[name].exp_coeffs[0]), abs=1e-6)
        assert float(vals["EyeBlinkLeft"]) == 0.0
        pitch, yaw, roll = np.deg2rad(fits[name].euler_deg.astype(float))
        assert (float(vals["HeadYaw"]), float(vals["HeadPitch"]), float(vals["HeadRoll"])) == \
            pytest.approx((yaw, pitch, roll), abs=1e-6)
    # one result folder, to stdout, degrees
    r = CliRunner().invoke(main, ["export", str(root / "frame_c"), "--format", "arkit-csv", "--head-units", "degrees"])
    assert r.exit_code == 0
    rows = list(csv.reader(io.StringIO(r.stdout)))
    assert len(rows) == 2 and float(dict(zip(rows[0], rows[1]))["HeadYaw"]) == pytest.approx(20.0)


def test_export_bad_input(track, tmp_path):
    root, _ = track
    runner = CliRunner()
    (tmp_path / "empty").mkdir()
    r = runner.invoke(main, ["export", str(tmp_path / "empty"), "--format", "arkit-csv"])
    assert r.exit_code == 1 and r.stderr.strip().startswith("error: ") and "no fit.json" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    (tmp_path / "mixed" / "x").mkdir(parents=True)
    r = runner.invoke(main, ["export", str(tmp_path / "mixed"), "--format", "arkit-csv", "-o", str(tmp_path / "o.csv")])
    assert r.exit_code == 1 and "x: no fit.json" in r.stderr and not (tmp_path / "o.csv").exists()
    r = runner.invoke(main, ["export", str(root), "--format", "fbx"])
    assert r.exit_code == 2


# ------------------------------------------------------------------ the real ICT-FaceKit model
@pytest.fixture(scope="module")
def ict(request):
    """ICT-FaceKit from $PRDLFIT_CACHE when converted there, else the conftest fixture (needs shared data)."""
    from morphable_models.registry import model_info

    try:
        if model_info("ict").installed:
            import morphable_models

            return morphable_models.load("ict")
    except Exception:  # noqa: BLE001 - fall back to converting from the shared sources
        pass
    return request.getfixturevalue("ict_model")


def test_ict_mapping_and_side_rule_from_geometry(ict):
    src = ict.arkit_sources()
    assert src is not None and list(src) == list(ARKIT_NAMES)
    assert sorted(i for idx in src.values() for i in idx) == list(range(53))  # every ICT shape mapped once
    mean = ict.mean.numpy()
    for i, name in enumerate(ict.exp_names):
        if name[-2:] not in ("_L", "_R"):
            continue
        disp = np.linalg.norm(ict.exp_basis[i].numpy(), axis=1)
        x = float((mean[:, 0] * disp).sum() / disp.sum())  # displacement-weighted mean x
        # +X is the person's own left (model.py); ARKit's Left is the person's own left
        assert (x > 0.5) if name.endswith("_L") else (x < -0.5), (name, x)
        arkit = next(a for a, s in ARKIT_SOURCES.items() if name in s)
        if len(ARKIT_SOURCES[arkit]) == 1:
            assert arkit.endswith("Left" if name.endswith("_L") else "Right"), (name, arkit)
