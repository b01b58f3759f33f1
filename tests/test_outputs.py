"""fitter/outputs: the files one fit writes, checked on a small synthetic model and fit.

The fake model is a sphere (radius 5 cm) with the 8 parts painted on its front; the fake fit poses it
80 cm in front of the fitting camera of a 224×224 crop cut from a 320×240 "photo".
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fitter.outputs.atomic import write_with_atomic
from fitter.result import Camera, FitResult, LossHistory
from fitter.targets.types import CropTransform, Targets
from morphable_models.model import PART_NAMES, MorphableModel

ORIGINAL_SIZE = (320, 240)  # (W, H) of the fake photo
CROP = CropTransform(scale=0.7, offset=(-0.5, 27.5), size=(224, 224), original_size=ORIGINAL_SIZE)
FOCAL = 1015.0
DEPTH = 80.0


def _sphere(radius: float, n_lat: int = 32, n_lon: int = 64):
    """UV sphere: [V, 3] vertices (poles included) and [F, 3] outward-wound triangles."""
    verts = [[0.0, radius, 0.0]]
    for i in range(1, n_lat):
        th = np.pi * i / n_lat
        for j in range(n_lon):
            ph = 2 * np.pi * j / n_lon
            verts.append([radius * np.sin(th) * np.sin(ph), radius * np.cos(th), radius * np.sin(th) * np.cos(ph)])
    verts.append([0.0, -radius, 0.0])
    V = len(verts)
    ring = lambda i, j: 1 + (i - 1) * n_lon + (j % n_lon)  # noqa: E731
    tris = []
    for j in range(n_lon):
        tris.append([0, ring(1, j), ring(1, j + 1)])
        tris.append([V - 1, ring(n_lat - 1, j + 1), ring(n_lat - 1, j)])
    for i in range(1, n_lat - 1):
        for j in range(n_lon):
            a, b, c, d = ring(i, j), ring(i, j + 1), ring(i + 1, j), ring(i + 1, j + 1)
            tris += [[a, c, b], [b, c, d]]
    return np.array(verts, np.float32), np.array(tris, np.int64)


def make_fake_model() -> MorphableModel:
    """A sphere 'face' with parts: eyes, brows, nose, lips on the front (+Z), skin around, the back unlabelled.

    One virtual point (the right eye's centre) follows the mesh vertices, covered by hole triangles.
    """
    verts, tris = _sphere(5.0)
    n_mesh = len(verts)
    x, y, z = verts.T
    front = z > 1.0
    centres = {  # model space: +X is the person's left
        "right_eye": (-1.8, 1.2), "left_eye": (1.8, 1.2), "right_brow": (-1.8, 2.9), "left_brow": (1.8, 2.9),
        "nose": (0.0, 0.0), "up_lip": (0.0, -1.6), "down_lip": (0.0, -2.6),
    }
    label = np.zeros(n_mesh, np.int64)
    label[z > -0.5] = PART_NAMES.index("skin") + 1
    for name, (cx, cy) in centres.items():
        label[front & ((x - cx) ** 2 + (y - cy) ** 2 < 0.8 ** 2)] = PART_NAMES.index(name) + 1
    eye = np.nonzero(label == 1)[0]
    virtual = verts[eye].mean(0, keepdims=True)
    mean = np.concatenate([verts, virtual])
    V = len(mean)
    hole = np.array([[eye[0], eye[1], n_mesh], [eye[1], eye[2], n_mesh]], np.int64)
    parts = {name: torch.from_numpy(np.nonzero(label == i + 1)[0]) for i, name in enumerate(PART_NAMES)}
    parts["right_eye"] = torch.cat([parts["right_eye"], torch.tensor([n_mesh])])
    front_idx = np.nonzero(front)[0]
    gen = torch.Generator().manual_seed(0)
    model = MorphableModel(
        name="fake-sphere", mean=torch.from_numpy(mean),
        id_basis=0.1 * torch.randn(2, V, 3, generator=gen), exp_basis=0.1 * torch.randn(1, V, 3, generator=gen),
        exp_names=["jawOpen"], triangles=torch.from_numpy(tris),
        landmarks68=torch.from_numpy(front_idx[np.linspace(0, len(front_idx) - 1, 68).astype(int)]),
        parts=parts, num_mesh_vertices=n_mesh,
        contour_candidates=torch.from_numpy(np.tile(front_idx[:2], (17, 1))),
        id_std=torch.ones(2), exp_std=torch.ones(1), exp_lower=torch.zeros(1), exp_upper=torch.ones(1),
        hole_triangles=torch.from_numpy(hole), units="cm", mm_per_unit=10.0, license="test only",
    )
    model.validate()
    return model


def _project(points_cam: np.ndarray) -> np.ndarray:
    c = (CROP.size[0] - 1) / 2.0
    return (FOCAL * points_cam[:, :2] / points_cam[:, 2:3] + c).astype(np.float32)


def make_fake_fit(model: MorphableModel, snapshots: bool = True) -> FitResult:
    """A FitResult of ``model`` posed frontally DEPTH cm in front of the camera, with a 10-row history."""
    vm = model.mean.numpy()
    flip = np.array([1.0, -1.0, -1.0], np.float32)
    t = np.array([0.0, 0.0, DEPTH], np.float32)
    vc = vm * flip + t
    vi = _project(vc)
    lmk = model.landmarks68.numpy()
    rng = np.random.default_rng(0)
    targets = Targets(
        landmarks=(vi[lmk] + rng.normal(0, 1.5, (68, 2))).astype(np.float32),
        landmark_valid=np.ones(68, bool),
        part_points={p: vi[model.parts[p].numpy()] for p in PART_NAMES},
        part_masks=np.zeros((224, 224), np.uint8), occlusion=np.zeros((224, 224), bool), crop=CROP,
        image=np.full((224, 224, 3), 90, np.uint8), source="fake.png",
        meta={"backend": "test"},
    )
    rows = []
    for i in range(1, 11):
        stage = "rigid" if i <= 3 else "full"
        row = {"iteration": i, "stage": stage, "total": 10.0 / i, "lmk": 4.0 / i,
               "prdl": 0.0 if stage == "rigid" else 5.0 / i, "id_prior": 0.0 if stage == "rigid" else 1.0 / i}
        row.update({f"prdl/{p}": (0.0 if stage == "rigid" else 5.0 / i / 8) for p in PART_NAMES})
        rows.append(row)
    return FitResult(
        model_name=model.name, exp_names=list(model.exp_names),
        id_coeffs=np.zeros(model.num_id, np.float32), exp_coeffs=np.zeros(model.num_exp, np.float32),
        rotation=np.eye(3, dtype=np.float32), translation=t, euler_deg=np.zeros(3, np.float32),
        camera=Camera("perspective", FOCAL, 111.5, 111.5, 224, 224),
        vertices_model=vm, vertices_camera=vc.astype(np.float32), vertices_image=vi,
        visible=vc[:, 2] < DEPTH, landmarks2d=vi[lmk], landmarks3d=vc[lmk].astype(np.float32),
        part_points={p: vi[model.parts[p].numpy()] for p in PART_NAMES},
        history=LossHistory(rows=rows), converged=True, iterations=10, seconds=0.5,
        final_losses={"total": 1.0, "lmk": 0.4, "prdl": 0.5, "id_prior": 0.1}, targets=targets,
        config={"optimizer": "adam", "iters": 7, "anchors": [32, 32]},
        snapshots=[(0, vi + 3.0), (5, vi + 1.0), (10, vi)] if snapshots else [],
    )


def fake_photo() -> np.ndarray:
    """[240, 320, 3] uint8 RGB: a horizontal gradient."""
    W, H = ORIGINAL_SIZE
    g = np.linspace(40, 220, W).astype(np.uint8)
    return np.repeat(np.repeat(g[None, :, None], H, 0), 3, 2)


@pytest.fixture(scope="module")
def fake_model():
    return make_fake_model()


@pytest.fixture(scope="module")
def written(fake_model, tmp_path_factory):
    """(out_dir, paths) of one write_fit_outputs call on the fake fit."""
    from fitter.outputs.writer import write_fit_outputs

    out = tmp_path_factory.mktemp("fit") / "photo"
    paths = write_fit_outputs(make_fake_fit(fake_model), fake_model, out, original_image=fake_photo())
    return out, paths


def _parse_obj(path: Path):
    verts, cols, faces = [], [], []
    for line in path.read_text().splitlines():
        if line.startswith("v "):
            vals = [float(v) for v in line.split()[1:]]
            verts.append(vals[:3])
            cols.append(vals[3:])
        elif line.startswith("f "):
            faces.append([int(v) for v in line.split()[1:]])
    return np.array(verts), np.array(cols), np.array(faces)


# ------------------------------------------------------------------ layout
def test_every_output_written_and_no_temp_files(written):
    out, paths = written
    expected = {"mesh.obj", "mesh.ply", "fit.npz", "fit.json", "landmarks2d.npy", "landmarks3d.npy", "parts.png",
                "overlay.png", "curves.csv", "curves.png", "snapshots.npz", "neutral.obj", "face.glb",
                "blendshapes.json"}
    assert {p.name for p in out.iterdir()} == expected
    assert {p.name for p in paths.values()} == expected
    assert all(p.stat().st_size > 0 for p in paths.values())


# ------------------------------------------------------------------ meshes
def test_obj_parses_back_with_part_colours(written, fake_model):
    from fitter.palette import PART_COLORS

    out, _ = written
    verts, cols, faces = _parse_obj(out / "mesh.obj")
    n = fake_model.num_mesh_vertices
    assert verts.shape == (n, 3) and cols.shape == (n, 3)  # virtual point not in the mesh
    assert faces.shape == tuple(fake_model.triangles.shape) and faces.min() == 1 and faces.max() == n
    np.testing.assert_allclose(verts, fake_model.mean.numpy()[:n] * [1, -1, -1] + [0, 0, DEPTH], atol=1e-5)
    labels = fake_model.part_labels().numpy()[:n]
    np.testing.assert_allclose(cols, PART_COLORS[labels] / 255.0, atol=1e-4)


def test_ply_parses_back_binary_with_colours(written, fake_model):
    from fitter.outputs.mesh_io import read_ply
    from fitter.palette import PART_COLORS

    out, _ = written
    assert (out / "mesh.ply").read_bytes().startswith(b"ply\nformat binary_little_endian 1.0\n")
    v, f, c = read_ply(out / "mesh.ply")
    n = fake_model.num_mesh_vertices
    assert v.shape == (n, 3) and f.shape == tuple(fake_model.triangles.shape)
    np.testing.assert_array_equal(f, fake_model.triangles.numpy())
    np.testing.assert_array_equal(c, PART_COLORS[fake_model.part_labels().numpy()[:n]])


def test_mesh_writers_reject_bad_shapes(tmp_path):
    from fitter.outputs.mesh_io import write_obj

    with pytest.raises(ValueError, match="triangles index"):
        write_obj(tmp_path / "m.obj", np.zeros((3, 3)), np.array([[0, 1, 3]]))
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------------------ arrays and summary
def test_npz_and_landmark_arrays(written, fake_model):
    out, _ = written
    with np.load(out / "fit.npz") as z:
        keys = set(z.files)
        for k in ("id_coeffs", "exp_coeffs", "exp_names", "rotation", "translation", "euler_deg", "camera_K",
                  "vertices_model", "vertices_camera", "vertices_image", "visible", "landmarks2d",
                  "landmarks3d", "crop_matrix", "original_size"):
            assert k in keys, k
        assert {f"part_points.{p}" for p in PART_NAMES} <= keys
        assert z["vertices_camera"].shape == (fake_model.num_points, 3)
        assert list(z["exp_names"]) == ["jawOpen"]
    lmk2 = np.load(out / "landmarks2d.npy")
    lmk3 = np.load(out / "landmarks3d.npy")
    assert lmk2.shape == (68, 2) and lmk2.dtype == np.float32 and lmk3.shape == (68, 3)
    # original pixels: crop -> original undoes crop = 0.7 * orig + offset
    fit = make_fake_fit(fake_model)
    np.testing.assert_allclose(lmk2 * 0.7 + np.array([-0.5, 27.5]), fit.landmarks2d, atol=1e-3)


def test_fit_json_is_readable_and_complete(written):
    from fitter.outputs.fit_files import read_fit_json

    out, _ = written
    data = read_fit_json(out / "fit.json")
    assert data["model"]["name"] == "fake-sphere" and data["model"]["units"] == "cm"
    assert set(data["versions"]) >= {"prdlfit", "torch", "numpy"}
    assert data["config"]["optimizer"] == "adam"
    assert data["pose"]["euler_deg"] == {"pitch": 0.0, "yaw": 0.0, "roll": 0.0}
    assert data["camera"]["focal"] == FOCAL and data["crop"]["original_size"] == list(ORIGINAL_SIZE)
    assert "camera space" in data["mesh"]["space"]
    assert data["converged"] is True and data["iterations"] == 10 and data["image"] == "fake.png"
    assert data["files"]["parts"] == "parts.png" and "json" not in data["files"]
    assert data["parts"]["1"] == "right_eye" and data["parts"]["8"] == "skin"


def test_read_fit_json_rejects_other_json(tmp_path):
    from fitter.outputs.fit_files import read_fit_json

    (tmp_path / "fit.json").write_text('{"a": 1}')
    with pytest.raises(ValueError, match="not a prdlfit fit.json"):
        read_fit_json(tmp_path / "fit.json")


# ------------------------------------------------------------------ pictures
def test_parts_png_labels_at_original_size(written, fake_model):
    out, _ = written
    parts = cv2.imread(str(out / "parts.png"), cv2.IMREAD_UNCHANGED)
    W, H = ORIGINAL_SIZE
    assert parts.shape == (H, W) and parts.dtype == np.uint8
    assert set(np.unique(parts).tolist()) <= set(range(9))
    assert set(np.unique(parts).tolist()) == set(range(9))  # all 8 parts visible on the frontal sphere
    # The sphere (radius 5 at 80 cm: ~63 crop px = 90 original px) is centred on the photo; the
    # person's right eye (model -X) appears on the image's left.
    ys, xs = np.nonzero(parts == 1)
    assert xs.mean() < W / 2 - 10 and ys.mean() < H / 2
    ys, xs = np.nonzero(parts == 2)
    assert xs.mean() > W / 2 + 10
    ys, xs = np.nonzero(parts > 0)
    assert abs(xs.mean() - W / 2) < 5 and abs(ys.mean() - H / 2) < 5
    radius = np.sqrt((parts > 0).sum() / np.pi)
    assert 60 < radius < 95
    assert parts[0, 0] == 0 and parts[H // 2, 5] == 0


def test_overlay_three_panels(written):
    out, _ = written
    img = cv2.imread(str(out / "overlay.png"))
    W, H = ORIGINAL_SIZE
    assert img.shape == (H, 3 * W, 3)
    photo = cv2.cvtColor(fake_photo(), cv2.COLOR_RGB2BGR).astype(int)
    p1, p2, p3 = (img[:, i * W:(i + 1) * W].astype(int) for i in range(3))
    assert np.abs(p1 - photo).max() <= 1
    changed2 = (np.abs(p2 - photo).sum(-1) > 10).mean()
    changed3 = (np.abs(p3 - photo).sum(-1) > 10).mean()
    disc = np.pi * (0.9 * 63 / 0.7) ** 2 / (W * H)  # the projected sphere's share of the photo
    assert disc * 0.5 < changed2 < disc * 1.5
    assert disc * 0.7 < changed3 < disc * 1.5
    # fitted landmarks are green in panel 2
    green = (p2[..., 1] > 200) & (p2[..., 0] < 80) & (p2[..., 2] < 80)
    assert green.sum() > 68


def test_overlay_scales_down_big_photos_and_checks_aspect(fake_model):
    from fitter.outputs.overlay import overlay_image

    fit = make_fake_fit(fake_model)
    big = cv2.resize(fake_photo(), (640, 480))
    img = overlay_image(fit, fake_model, big, max_height=120)
    assert img.shape == (120, 3 * 160, 3)
    with pytest.raises(ValueError, match="photo is 320x240"):
        overlay_image(fit, fake_model, np.zeros((100, 100, 3), np.uint8))


def test_render_shaded_brightest_facing_camera(fake_model):
    from fitter.outputs.mesh_render import render_shaded

    fit = make_fake_fit(fake_model)
    rgb, mask = render_shaded(fit.vertices_image, fit.vertices_camera, fake_model.triangles.numpy(), (224, 224))
    assert mask[112, 112] and not mask[0, 0]
    lum = rgb.astype(float).sum(-1)
    assert lum[112, 112] > lum[112, 112 - 60] > 0  # centre faces the camera, the rim is grazing


# ------------------------------------------------------------------ curves
def test_curves_csv_columns_and_roundtrip(written):
    from fitter.outputs.curves import read_curves_csv

    out, _ = written
    with open(out / "curves.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][:3] == ["iteration", "stage", "total"]
    assert {"lmk", "prdl", "id_prior"} <= set(rows[0])
    assert {f"prdl/{p}" for p in PART_NAMES} <= set(rows[0])
    assert len(rows) == 11 and rows[1][1] == "rigid" and rows[-1][1] == "full"
    h = read_curves_csv(out / "curves.csv")
    np.testing.assert_allclose(h.column("total"), 10.0 / np.arange(1, 11), rtol=1e-6)
    png = cv2.imread(str(out / "curves.png"))
    assert png is not None and png.shape[1] > 500


def test_compare_curves_one_figure(fake_model, tmp_path):
    from fitter.outputs.curves import compare_curves, save_figure

    h = make_fake_fit(fake_model).history
    fig = compare_curves([("adam", h), ("lbfgs", h)], columns=("total", "prdl"), normalize=True)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 2
    save_figure(fig, tmp_path / "cmp.png")
    assert cv2.imread(str(tmp_path / "cmp.png")) is not None
    with pytest.raises(ValueError, match="no fit has a column 'nope'"):
        compare_curves([("a", h)], columns=("nope",))


# ------------------------------------------------------------------ animation
def test_snapshots_npz_and_gif(written, tmp_path):
    from PIL import Image

    from fitter.outputs.animation import animation_frames, load_snapshots, write_animation
    from fitter.outputs.curves import read_curves_csv

    out, _ = written
    snaps = load_snapshots(out / "snapshots.npz")
    assert snaps.iterations.tolist() == [0, 5, 10] and snaps.points.shape[0] == 3 and snaps.image is not None
    frames = animation_frames(snaps, read_curves_csv(out / "curves.csv"), stride=2)
    assert len(frames) == 2 and frames[0].shape == (448, 448, 3)
    assert not np.array_equal(frames[0], frames[1])  # the parts moved between snapshots
    gif = write_animation(frames, tmp_path / "fit.gif", fps=4)
    with Image.open(gif) as im:
        assert im.n_frames == 2
    with pytest.raises(ValueError, match="must be .gif or .mp4"):
        write_animation(frames, tmp_path / "fit.avi")


# ------------------------------------------------------------------ atomicity
def test_failed_write_leaves_no_partial_file(tmp_path):
    def half_then_fail(p: Path) -> None:
        p.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_with_atomic(tmp_path / "x.png", half_then_fail)
    assert list(tmp_path.iterdir()) == []


def test_failing_writer_leaves_folder_incomplete(fake_model, tmp_path, monkeypatch):
    import fitter.outputs.writer as writer

    out = tmp_path / "photo"
    writer.write_fit_outputs(make_fake_fit(fake_model), fake_model, out, original_image=fake_photo())
    assert writer.is_complete(out)

    def broken(*a, **k):
        raise RuntimeError("plot failed")

    monkeypatch.setattr(writer, "plot_history", broken)
    with pytest.raises(RuntimeError, match="plot failed"):
        writer.write_fit_outputs(make_fake_fit(fake_model), fake_model, out, original_image=fake_photo())
    assert not writer.is_complete(out)  # the old fit.json went first
    assert not [p for p in out.iterdir() if ".tmp" in p.name]


def test_rewrite_drops_stale_outputs(fake_model, tmp_path):
    from fitter.outputs.writer import write_fit_outputs

    out = tmp_path / "photo"
    write_fit_outputs(make_fake_fit(fake_model), fake_model, out, original_image=fake_photo())
    paths = write_fit_outputs(make_fake_fit(fake_model, snapshots=False), fake_model, out, overlay=False)
    assert not (out / "overlay.png").exists() and not (out / "snapshots.npz").exists()
    assert "overlay" not in json.loads((out / "fit.json").read_text())["files"]
    assert set(paths) == {"mesh_obj", "mesh_ply", "npz", "landmarks2d", "landmarks3d", "parts", "curves_csv",
                          "curves_png", "neutral_obj", "glb", "blendshapes", "json"}


def test_writer_refuses_failed_fit_and_wrong_model(fake_model, tmp_path):
    from dataclasses import replace

    from fitter.errors import FitError
    from fitter.outputs.writer import write_fit_outputs

    fit = make_fake_fit(fake_model)
    with pytest.raises(FitError, match="NaN"):
        write_fit_outputs(replace(fit, failure="the loss became NaN"), fake_model, tmp_path / "a")
    other = replace(fake_model, mean=fake_model.mean[:-1])
    with pytest.raises(ValueError, match="pass the model that was fitted"):
        write_fit_outputs(fit, other, tmp_path / "b")
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").iterdir())
