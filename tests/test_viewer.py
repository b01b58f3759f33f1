"""fitter/outputs/viewer: the headless Open3D render of an output folder (coverage, not pixels) and
the geometry helpers behind both the window and the render."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import fake_photo, make_fake_fit, make_fake_model

from fitter.outputs.viewer import (
    RENDERER_UNAVAILABLE,
    ViewerError,
    load_scene,
    render_offscreen,
    scene_meshes,
    shaded_colors,
    uv_sphere,
    view_camera,
)
from fitter.palette import PART_COLORS


@pytest.fixture(scope="module")
def fake_result(tmp_path_factory):
    from fitter.outputs.writer import write_fit_outputs

    model = make_fake_model()
    out = tmp_path_factory.mktemp("view") / "photo"
    write_fit_outputs(make_fake_fit(model), model, out, original_image=fake_photo(), overlay=False)
    return out


@pytest.fixture(scope="module")
def render(fake_result, tmp_path_factory):
    """[400, 400, 3] RGB render of the fake result by `prdlfit view --offscreen` (skips when no
    offscreen renderer can start on this machine)."""
    from click.testing import CliRunner

    from fitter.cli import main

    pytest.importorskip("open3d.visualization.rendering")
    png = tmp_path_factory.mktemp("render") / "view.png"
    r = CliRunner().invoke(main, ["view", str(fake_result), "--offscreen", str(png), "--size", "400x400"])
    if r.exit_code != 0 and f"error: {RENDERER_UNAVAILABLE}" in r.stderr:
        pytest.skip(f"no Open3D offscreen renderer on this machine: {r.stderr.strip()}")
    assert r.exit_code == 0, r.output
    return cv2.cvtColor(cv2.imread(str(png)), cv2.COLOR_BGR2RGB)


def _near(img: np.ndarray, rgb, tol: int = 40) -> np.ndarray:
    return np.abs(img.astype(int) - np.asarray(rgb)).max(-1) <= tol


def test_offscreen_render_coverage(render):
    assert render.shape == (400, 400, 3)
    background = (render == 255).all(-1)
    coverage = 1.0 - background.mean()
    # The view frames the sphere to 1/1.1 of the half-height: a disc of ~65 % of the square.
    assert 0.5 < coverage < 0.8, coverage
    assert background[0, 0] and background[-1, -1] and not background[200, 200]


def test_offscreen_render_shows_parts_and_landmarks_as_seen_by_the_camera(render):
    nose = _near(render, PART_COLORS[5])  # orange, shaded: brightest at the centre facing the camera
    ys, xs = np.nonzero(nose)
    assert nose.sum() > 200 and abs(xs.mean() - 200) < 30
    right_eye = _near(render, PART_COLORS[1], tol=60)
    left_eye = _near(render, PART_COLORS[2], tol=60)
    # the person's right eye is on the image's left, as in the photo; eyes above the nose (y down)
    assert np.nonzero(right_eye)[1].mean() < 180 < 220 < np.nonzero(left_eye)[1].mean()
    assert np.nonzero(right_eye)[0].mean() < ys.mean()
    green = (render[..., 1] > 120) & (render[..., 0] < 80) & (render[..., 2] < 80)
    assert green.sum() > 68 * 5  # 68 landmark spheres


def test_offscreen_rejects_non_result_folder(tmp_path):
    with pytest.raises(ViewerError, match="no mesh.ply here"):
        render_offscreen(tmp_path, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_scene_geometry_helpers(fake_result):
    scene = load_scene(fake_result)
    assert scene.landmarks.shape == (68, 3) and scene.colors.dtype == np.uint8
    cam = view_camera(scene.vertices)
    np.testing.assert_allclose(cam.center, [0, 0, 80], atol=1e-3)
    assert cam.eye[2] < cam.center[2] and np.allclose(cam.up, [0, -1, 0])  # camera side, y down
    v, t = uv_sphere()
    edges = {tuple(sorted(e)) for tri in t for e in ((tri[0], tri[1]), (tri[1], tri[2]), (tri[2], tri[0]))}
    assert len(v) - len(edges) + len(t) == 2 and np.allclose(np.linalg.norm(v, axis=1), 1)
    face, spheres = scene_meshes(scene, shade_eye=cam.eye)
    assert len(spheres.vertices) == 68 * len(v) and spheres.triangles.max() < len(spheres.vertices)
    assert face.colors.min() >= 0 and face.colors.max() <= 1
    shade = shaded_colors(scene.vertices, scene.triangles, np.full_like(scene.colors, 255), cam.eye)
    front = np.argmin(scene.vertices[:, 2])  # the vertex nearest the camera faces it: full light
    rim = np.argmin(np.abs(scene.vertices[:, 2] - 80))
    assert shade[front].min() > 0.95 and shade[rim].max() < 0.5


_SHOW_SMOKE = """
import sys
import numpy as np
import open3d as o3d
from fitter.outputs import viewer

Real = o3d.visualization.VisualizerWithKeyCallback


class Recorder:  # wraps the real visualizer; run() presses the keys instead of waiting for a user
    def __init__(self):
        self.v, self.keys = Real(), {}

    def __getattr__(self, name):
        return getattr(self.v, name)

    def register_key_callback(self, key, fn):
        self.keys[chr(key)] = fn
        return self.v.register_key_callback(key, fn)

    def run(self):
        opt = self.v.get_render_option()
        print("fov", self.v.get_view_control().get_field_of_view())
        self.keys["W"](self.v)
        print("wireframe", opt.mesh_show_wireframe)
        self.keys["P"](self.v)
        self.v.poll_events()
        self.v.update_renderer()
        shot = np.asarray(self.v.capture_screen_float_buffer(True))
        print("drawn", float((shot.min(-1) < 0.99).mean()))


o3d.visualization.VisualizerWithKeyCallback = Recorder
viewer.show(sys.argv[1], size=(300, 300))
"""


def test_show_window_keys(fake_result, tmp_path):
    """The interactive viewer's set-up and its W/P keys, on Open3D's EGL fallback (no real window).

    Runs in a subprocess with a fake DISPLAY; skips where Open3D cannot create even that context.
    """
    import os
    import subprocess
    import sys

    env = dict(os.environ, DISPLAY=":987", XDG_RUNTIME_DIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", _SHOW_SMOKE, str(fake_result)], capture_output=True, text=True,
                          env=env, timeout=120)
    if proc.returncode != 0 or "drawn" not in proc.stdout:
        pytest.skip(f"no Open3D window or EGL fallback here: {proc.stderr.strip().splitlines()[-1:]}")
    lines = dict(ln.split(" ", 1) for ln in proc.stdout.splitlines() if ln.split(" ", 1)[0] in
                 ("fov", "wireframe", "drawn"))
    assert float(lines["fov"]) == pytest.approx(30.0)
    assert lines["wireframe"] == "True"
    assert 0.05 < float(lines["drawn"]) < 0.9
