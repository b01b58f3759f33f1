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
from conftest import DEPTH, FOCAL, ORIGINAL_SIZE, fake_photo, make_fake_fit, make_fake_model, parse_obj

from fitter.outputs.atomic import write_with_atomic
from morphable_models.model import PART_NAMES


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
    verts, cols, faces = parse_obj(out / "mesh.obj")
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

    monkeypatch.setattr(writer, "history_chart", broken)
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


def test_curves_chart_ticks_are_plain_numbers_and_cover_narrow_ranges():
    """curves.png's log axis is labelled with plain decade numbers (1, 0.1, 0.001, 1e-05), and an
    axis whose data spans less than a decade still gets labelled ticks (2-9 × 10^k)."""
    from fitter.outputs.line_chart import log_ticks, nice_ticks, tick_label

    ticks, minor = log_ticks(1e-5, 2.0)
    assert not minor and [tick_label(v) for v in ticks] == ["1e-05", "0.0001", "0.001", "0.01", "0.1", "1"]
    ticks, minor = log_ticks(0.25, 0.55)
    assert minor and len(ticks) >= 2 and all(0.25 <= v <= 0.55 for v in ticks)
    assert [tick_label(v) for v in ticks] == ["0.3", "0.4", "0.5"]
    assert list(nice_ticks(1, 125)) == [20, 40, 60, 80, 100, 120]
    assert list(nice_ticks(0.0, 1.0, target=5)) == [0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]


def test_curves_chart_draws_every_series_and_breaks_lines_at_gaps():
    from fitter.outputs.curves import history_chart
    from fitter.outputs.line_chart import PALETTE, Panel, Series, render_chart
    from fitter.result import LossHistory

    rows = [{"iteration": i, "stage": "rigid" if i <= 10 else "full", "total": 1.0 / i, "lmk": 0.5 / i,
             "prdl": 0.0 if i <= 10 else 0.2 / i, "prdl/nose": 0.0 if i <= 10 else 0.1 / i} for i in range(1, 40)]
    img = history_chart(LossHistory(rows=rows), "photo")
    assert img.dtype == np.uint8 and img.shape == (428, 1000, 3)  # two panels of 500 x 400 under a title

    def has(colour, part):
        return bool((np.abs(part.astype(int) - np.asarray(colour)).sum(-1) < 40).any())

    left, right = img[:, :500], img[:, 500:]
    assert has((0, 0, 0), left) and has(PALETTE[0], left) and has(PALETTE[1], left)  # total, lmk, prdl
    assert has(PALETTE[0], right) and not has(PALETTE[1], right)  # one part: the first colour only
    one = history_chart(LossHistory(rows=[{k: v for k, v in r.items() if k in ("iteration", "stage", "total")}
                                          for r in rows]))
    assert one.shape == (400, 600, 3)  # one panel without PRDL, no title
    # a NaN breaks the line: no ink on the plot between the two halves' x ranges
    x = np.arange(10, dtype=float)
    y = np.where((x > 3) & (x < 7), np.nan, 1.0)
    flat = render_chart([Panel(series=[Series("a", x, y, color=(255, 0, 0), width=3)], log_y=False)])
    red = (flat[..., 0] > 200) & (flat[..., 1] < 80) & (flat[..., 2] < 80)
    cols = np.nonzero(red.any(0))[0]
    assert len(cols) and np.diff(cols).max() > 100  # a gap of several iterations' width
    with pytest.raises(ValueError):
        render_chart([])


