"""ICT-FaceKit conversion: arrays, conventions, part annotation, eye fill, expressions, download."""
import gzip
import http.server
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from fitter.errors import ModelError
from morphable_models import ict, registry
from morphable_models.annotate import annotate_mesh
from morphable_models.cache import read_meta, read_virtual_weights
from morphable_models.download import fetch_all
from morphable_models.model import PART_NAMES


def _iod(v, lm):
    return float((v[lm[45], :2] - v[lm[36], :2]).norm())


def _area(v, tris):
    """Frontal projected area covered by triangles (sum of |shoelace|), differentiable."""
    a, b, c = v[tris[:, 0], :2], v[tris[:, 1], :2], v[tris[:, 2], :2]
    return (0.5 * ((b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0]).abs()).sum()


def _shoelace(v, tris):
    return float(_area(v, tris))


def _with_exp(model, **values):
    exp = torch.zeros(1, model.num_exp)
    for name, val in values.items():
        exp[0, model.exp_index(name)] = val
    return model.vertices(None, exp)[0]


@pytest.fixture(scope="module")
def ict_model(model_cache):
    """The converted model as the converter writes it: its own landmark vertices (no embedding)."""
    import morphable_models

    return morphable_models.load("ict", landmarks="vertices")


def test_arrays_shapes_and_dtypes(ict_model):
    m = ict_model
    m.validate()
    V = m.num_points
    assert m.num_mesh_vertices == ict.NUM_KEPT == 11248
    assert V > m.num_mesh_vertices  # eye-fill virtual points follow the mesh
    assert m.mean.shape == (V, 3) and m.mean.dtype == torch.float32
    assert m.id_basis.shape == (100, V, 3) and m.exp_basis.shape == (53, V, 3)
    assert m.id_basis.dtype == m.exp_basis.dtype == torch.float32
    assert m.triangles.dtype == torch.int64 and int(m.triangles.max()) < m.num_mesh_vertices
    assert m.hole_triangles.shape[1] == 3 and int(m.hole_triangles.max()) >= m.num_mesh_vertices
    assert m.landmarks68.shape == (68,)
    assert m.contour_candidates.shape[0] == 17
    assert m.exp_names[:2] == ["browDown_L", "browDown_R"] and "jawOpen" in m.exp_names
    assert torch.all(m.exp_lower == 0) and torch.all(m.exp_upper == 1)
    assert torch.all(m.id_std == 1)
    assert m.units == "cm" and m.mm_per_unit == 10.0 and "MIT" in m.license


def test_cache_metadata_records_the_pinned_commit(ict_model, model_cache):
    meta = read_meta(registry.cache_path("ict"))
    assert meta.provenance["commit"] == ict.COMMIT and len(ict.COMMIT) == 40
    assert meta.provenance["num_inputs"] == 155
    # the prepared annotation (the rules); brows, nose and lips are drawn anew at load time
    assert meta.part_sizes == {k: int(ict_model.own_parts[k].numel()) for k in PART_NAMES}


def test_conventions_left_right_up_front(ict_model):
    m = ict_model
    v = m.mean
    lm = m.landmarks68
    # +X is the person's left: eyeBlink_L moves points with x > 0
    delta = m.exp_basis[m.exp_index("eyeBlink_L")].norm(dim=1)
    assert float(v[delta > 0.3 * delta.max(), 0].mean()) > 1.0
    assert float(v[m.parts["left_eye"], 0].mean()) > 0 > float(v[m.parts["right_eye"], 0].mean())
    assert float(v[m.parts["left_brow"], 0].mean()) > 0 > float(v[m.parts["right_brow"], 0].mean())
    # +Y up: brows above eyes above nose base above lips above chin
    y = v[lm, 1]
    assert y[19] > y[37] > y[33] > y[51] > y[57] > y[8]
    # +Z towards the viewer: the nose tip is the frontmost landmark
    assert int(torch.argmax(v[lm, 2])) == 30


def test_parts_disjoint_nonempty_and_plausible(ict_model):
    m = ict_model
    v = m.mean
    lm = m.landmarks68
    seen = torch.zeros(m.num_points, dtype=torch.long)
    for name in PART_NAMES:
        idx = m.parts[name]
        assert idx.numel() > 0, name
        seen[idx] += 1
    assert int(seen.max()) == 1  # disjoint
    # each small part lies around its own landmarks
    for name, group in (("right_eye", range(36, 42)), ("left_eye", range(42, 48)), ("right_brow", range(17, 22)),
                        ("left_brow", range(22, 27)), ("nose", range(27, 36)), ("up_lip", range(48, 55)),
                        ("down_lip", range(54, 60))):
        c = v[m.parts[name], :2].mean(0)
        dist = (v[lm[list(group)], :2] - c).norm(dim=1).min()
        assert float(dist) < 0.2 * _iod(v, lm), name
    assert float(v[m.parts["up_lip"], 1].mean()) > float(v[m.parts["down_lip"], 1].mean())
    # skin: no neck (nothing below the chin), no scalp/back of the head, no ears
    skin = v[m.parts["skin"]]
    assert float(skin[:, 1].min()) > float(v[lm[8], 1]) - 0.05 * _iod(v, lm)
    assert bool((m.parts["skin"] < ict.NUM_FACE_AREA).all())
    assert float(skin[:, 2].min()) > float(v[lm[[0, 16]], 2].min()) - 0.2 * _iod(v, lm)
    # eyes: the virtual fill points belong to the eye parts (the MediaPipe mesh table's, appended
    # after them, to none)
    virtual = torch.arange(m.num_mesh_vertices, m.num_points)
    if m.mesh_landmarks is not None:
        assert bool((m.part_labels()[m.mesh_landmarks] == 0).all())
        virtual = virtual[~torch.isin(virtual, m.mesh_landmarks)]
    eyes = torch.cat([m.parts["right_eye"], m.parts["left_eye"]])
    assert bool(torch.isin(virtual, eyes).all())


def test_contour_candidates_contain_their_landmark_and_run_outwards(ict_model):
    m = ict_model
    cc = m.contour_candidates
    v = m.mean
    for j in range(17):
        row = cc[j][cc[j] >= 0]
        assert int(m.landmarks68[j]) in row.tolist()
        if j != 8:
            assert len(row) >= 4, j
            # the first candidate is nearer the midline than the last one
            assert float(v[row[0], 0].abs()) < float(v[row[-1], 0].abs()), j


def test_virtual_points_are_fixed_linear_combinations(ict_model, model_cache):
    m = ict_model
    widx, w = read_virtual_weights(registry.cache_path("ict"))
    extra = 0 if m.mesh_landmarks is None else len(m.mesh_landmarks)  # the mesh table's, appended after the file's
    assert widx.shape == (m.num_points - m.num_mesh_vertices - extra, 4)
    assert np.allclose(w.sum(axis=1), 1.0, atol=1e-5) and (w >= 0).all()
    gen = torch.Generator().manual_seed(0)
    id_c = torch.randn(2, m.num_id, generator=gen)
    exp_c = torch.rand(2, m.num_exp, generator=gen)
    pts = m.vertices(id_c, exp_c)
    expected = (pts[:, torch.from_numpy(widx)] * torch.from_numpy(w)[None, :, :, None]).sum(dim=2)
    assert torch.allclose(pts[:, m.num_mesh_vertices : m.num_mesh_vertices + len(widx)], expected, atol=1e-4)
    # and vertices() is mean + c . basis
    direct = m.mean + torch.einsum("k,kvc->vc", exp_c[0], m.exp_basis) + torch.einsum("k,kvc->vc", id_c[0], m.id_basis)
    assert torch.allclose(pts[0], direct, atol=1e-4)


def test_jaw_open_separates_the_lips(ict_model):
    m = ict_model
    lm = m.landmarks68
    iod = _iod(m.mean, lm)

    def central_gap(v):
        up, lo = v[m.parts["up_lip"]], v[m.parts["down_lip"]]
        w = 0.15 * iod
        return float(up[up[:, 0].abs() < w, 1].min() - lo[lo[:, 0].abs() < w, 1].max())

    closed = central_gap(_with_exp(m))
    opened = central_gap(_with_exp(m, jawOpen=1.0))
    assert abs(closed) < 0.05 * iod  # lips touch on the neutral face
    assert opened - closed > 1.0  # cm: the mouth opens by more than a centimetre between the lips


def test_eye_blink_closes_the_left_eye_part(ict_model):
    m = ict_model
    v0 = _with_exp(m)
    v1 = _with_exp(m, eyeBlink_L=1.0)
    left = m.hole_triangles[v0[m.hole_triangles][:, :, 0].mean(dim=1) > 0]
    right = m.hole_triangles[v0[m.hole_triangles][:, :, 0].mean(dim=1) < 0]
    ratio = _shoelace(v1, left) / _shoelace(v0, left)
    assert ratio < 0.15
    assert _shoelace(v1, right) / _shoelace(v0, right) > 0.9  # the right eye stays open
    # the fill triangles use exactly the eye-part points
    assert set(left.unique().tolist()) <= set(m.parts["left_eye"].tolist())
    # the closing is differentiable in the coefficient
    exp = torch.full((1, m.num_exp), 0.5).requires_grad_(True)
    _area(m.vertices(None, exp)[0], left).backward()
    assert float(exp.grad[0, m.exp_index("eyeBlink_L")]) < 0


def test_annotation_is_deterministic(ict_model):
    m = ict_model
    V = m.num_mesh_vertices
    region = np.zeros(V, dtype=bool)
    region[:ict.NUM_FACE_AREA] = True
    closing = tuple(m.exp_basis[m.exp_index(n), :V].double().numpy() for n in ("eyeBlink_R", "eyeBlink_L"))
    args = (m.mean[:V].double().numpy(), m.triangles.numpy(), m.landmarks68.numpy(), region)
    a = annotate_mesh(*args, eye_closing=closing)
    b = annotate_mesh(*args, eye_closing=closing)
    for name in PART_NAMES:
        assert np.array_equal(a.parts[name], b.parts[name])
        assert np.array_equal(a.parts[name], m.own_parts[name].numpy()), name  # the cached conversion (the rules)
    assert np.array_equal(a.hole_triangles, m.hole_triangles.numpy())
    assert np.array_equal(a.contour_candidates, m.contour_candidates.numpy())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_model_runs_on_cuda(ict_model):
    m = ict_model.to("cuda")
    exp = torch.zeros(2, m.num_exp, device="cuda")
    exp[:, m.exp_index("jawOpen")] = 0.5
    v = m.vertices(torch.zeros(2, m.num_id, device="cuda"), exp)
    assert v.device.type == "cuda" and v.shape == (2, m.num_points, 3)
    assert m.part_labels().device.type == "cuda"
    assert torch.allclose(v.cpu(), ict_model.vertices(torch.zeros(2, m.num_id), exp.cpu()), atol=1e-4)


# ---------------------------------------------------------------- download


class _Server:
    """A local HTTP server over a folder, serving ``X.obj`` from ``X.obj.gz`` decompressed."""

    def __init__(self, root: Path):
        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                rel = self.path.lstrip("/")
                p = Path(root) / rel
                gz = p.with_name(p.name + ".gz")
                if p.is_file():
                    data = p.read_bytes()
                elif gz.is_file():
                    data = gzip.decompress(gz.read_bytes())
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_download_checks_sha256(shared, tmp_path):
    pinned = ict.pinned_checksums()
    names = ["FaceXModel/vertex_indices.json", "FaceXModel/generic_neutral_mesh.obj"]
    with _Server(shared / "models" / "ict-facekit") as srv:
        fetch_all(srv.url, pinned, tmp_path / "ok", names=names, progress=False)
        for n in names:
            assert (tmp_path / "ok" / n).is_file()
        # the same files, when re-fetched, are reused (no download needed)
        fetch_all("http://127.0.0.1:9/unreachable", pinned, tmp_path / "ok", names=names, progress=False)
        bad = dict(pinned, **{names[0]: "0" * 64})
        with pytest.raises(ModelError, match="checksum mismatch"):
            fetch_all(srv.url, bad, tmp_path / "bad", names=names[:1], progress=False)
        assert not (tmp_path / "bad" / names[0]).exists()  # nothing half-written is left


def test_download_failure_says_what_to_do(tmp_path):
    with pytest.raises(ModelError, match="PRDLFIT_ICT_SOURCE") as err:
        ict.download_source(tmp_path, progress=False, base_url="http://127.0.0.1:9", timeout=2)
    assert "\n" not in str(err.value)


def test_missing_source_files_error(tmp_path):
    (tmp_path / "FaceXModel").mkdir()
    (tmp_path / "FaceXModel" / "vertex_indices.json").write_text(json.dumps({"expressions": ["jawOpen"]}))
    with pytest.raises(ModelError, match="generic_neutral_mesh.obj"):
        ict.locate_source(tmp_path)


@pytest.mark.slow
def test_prepare_downloads_and_converts(shared, tmp_path, monkeypatch):
    """The rebuild path without a local source (``prepare --force``; a plain first use takes the
    embedded model instead): download (from a local server) + convert."""
    monkeypatch.delenv("PRDLFIT_ICT_SOURCE", raising=False)
    with _Server(shared / "models" / "ict-facekit") as srv:
        monkeypatch.setenv("PRDLFIT_ICT_URL", srv.url)
        registry.prepare("ict", cache_dir=tmp_path, force=True, progress=False)
        model = registry.load("ict", cache_dir=tmp_path)
    assert model.num_mesh_vertices == ict.NUM_KEPT
    assert read_meta(registry.cache_path("ict", tmp_path)).provenance["commit"] == ict.COMMIT


def test_model_triangle_part_labels(ict_model):
    """The model's all_triangles / triangle_part_labels: mesh triangles then hole triangles, each
    labelled with the part two of its points share; they follow .to()."""
    from morphable_models.model import PART_NAMES
    from morphable_models.part_labels import triangle_labels

    m = ict_model
    tris = torch.cat([m.triangles, m.hole_triangles.to(m.triangles)], 0)
    assert torch.equal(m.all_triangles, tris) and m.all_triangles.dtype == torch.long
    labels = m.triangle_part_labels
    assert torch.equal(labels, triangle_labels(tris, m.part_labels()))
    assert labels.shape == (len(tris),) and labels.dtype == torch.long
    assert set(labels.unique().tolist()) == set(range(len(PART_NAMES) + 1))
    assert (labels[len(m.triangles):] > 0).all()  # the hole fills belong to the eyes
    moved = m.to(dtype=torch.float64)
    assert torch.equal(moved.all_triangles, tris) and torch.equal(moved.triangle_part_labels, labels)
