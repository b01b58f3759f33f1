"""Look at a fit's mesh with Open3D: an interactive window, or a headless render to PNG.

Both read a per-image output folder (``mesh.ply`` with part colours, ``landmarks3d.npy``) and use
the same view: from the fitting camera's side (looking along +z of camera space, y down), framed
on the mesh. Landmarks are small green spheres.

Headless renders use ``open3d.visualization.rendering.OffscreenRenderer`` (EGL or a software
Vulkan/OpenGL driver) in a fresh Python process: Filament is slow to start a second renderer in one
process and can hang when a scene changes after a frame, so each render gets its own process, and
a crash or a missing driver becomes one clear error instead of killing the caller.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from fitter.errors import PrdlfitError
from fitter.outputs.atomic import PathLike
from fitter.outputs.mesh_io import read_ply

#: vertical field of view of the view, degrees
FOV_DEG = 30.0
#: RGB of the mesh when part colours are off, and of landmark spheres
PLAIN_COLOR = (0.85, 0.82, 0.78)
LANDMARK_COLOR = (0.1, 0.85, 0.1)
#: RGB background of renders
BACKGROUND = (1.0, 1.0, 1.0)


#: start of the message of a ViewerError raised because no offscreen renderer could run here
RENDERER_UNAVAILABLE = "cannot start Open3D's offscreen renderer"


class ViewerError(PrdlfitError):
    """The folder is not a fit output, or Open3D cannot open a window / start its renderer."""

    exit_code = 1


@dataclass
class ViewScene:
    """What the viewer shows (camera space of the fit, model units).

    Attributes:
        vertices: [N, 3] float32. triangles: [F, 3] int64. colors: [N, 3] uint8 part colours.
        landmarks: [68, 3] float32 (or [0, 3] when the folder has none).
        name: the folder's name (window title).
    """

    vertices: np.ndarray
    triangles: np.ndarray
    colors: np.ndarray
    landmarks: np.ndarray
    name: str = ""


@dataclass
class ViewCamera:
    """A look-at camera: ``center`` looked at from ``eye`` with ``up``; ``fov_deg`` vertical."""

    center: np.ndarray
    eye: np.ndarray
    up: np.ndarray
    fov_deg: float = FOV_DEG


def load_scene(result_dir: PathLike) -> ViewScene:
    """Read ``mesh.ply`` and ``landmarks3d.npy`` of an output folder.

    Raises:
        ViewerError: the folder has no (readable) ``mesh.ply``.
    """
    d = Path(result_dir)
    ply = d / "mesh.ply"
    if not ply.is_file():
        raise ViewerError(f"{d}: no mesh.ply here; pass a folder written by `prdlfit fit` (DIR/<image>/)")
    try:
        v, f, c = read_ply(ply)
    except (ValueError, KeyError, IndexError) as err:
        raise ViewerError(f"{ply}: unreadable mesh ({err})") from None
    lmk_path = d / "landmarks3d.npy"
    lmk = np.load(lmk_path).astype(np.float32) if lmk_path.is_file() else np.zeros((0, 3), np.float32)
    return ViewScene(vertices=v, triangles=f, colors=c, landmarks=lmk.reshape(-1, 3), name=d.name)


def view_camera(vertices: np.ndarray, fov_deg: float = FOV_DEG, margin: float = 1.1) -> ViewCamera:
    """A camera on the fitting camera's side of the mesh that frames it.

    Looks along +z (camera space) at the centre of the mesh's bounding box, with image up = -y,
    from far enough that the mesh's extent (98th percentile of the radius) fills ``1 / margin``
    of the view.
    """
    v = np.asarray(vertices, dtype=np.float64)
    center = (v.min(0) + v.max(0)) / 2.0
    radius = float(np.percentile(np.linalg.norm(v - center, axis=1), 98)) or 1.0
    dist = margin * radius / np.tan(np.radians(fov_deg) / 2.0)
    eye = center - np.array([0.0, 0.0, dist])
    return ViewCamera(center=center, eye=eye, up=np.array([0.0, -1.0, 0.0]), fov_deg=fov_deg)


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """[N, 3] unit vertex normals (area-weighted face normals); zero for unused vertices."""
    v = np.asarray(vertices, dtype=np.float64)
    t = np.asarray(triangles)
    fn = np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, t[:, k], fn)
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return np.where(norm > 0, n / np.maximum(norm, 1e-300), 0.0)


def shaded_colors(vertices: np.ndarray, triangles: np.ndarray, colors: np.ndarray, eye: np.ndarray,
                  ambient: float = 0.3) -> np.ndarray:
    """[N, 3] float colours in [0, 1]: ``colors`` ([N, 3] uint8 or float) lit by a light at ``eye``.

    Two-sided Lambert shading (independent of triangle winding), for unlit rendering.
    """
    c = np.asarray(colors, dtype=np.float64)
    c = c / 255.0 if c.max() > 1.0 else c
    n = vertex_normals(vertices, triangles)
    to_eye = np.asarray(eye, dtype=np.float64) - np.asarray(vertices, dtype=np.float64)
    to_eye /= np.maximum(np.linalg.norm(to_eye, axis=1, keepdims=True), 1e-12)
    light = ambient + (1.0 - ambient) * np.abs((n * to_eye).sum(1))
    return (c * light[:, None]).clip(0.0, 1.0)


def landmark_radius(vertices: np.ndarray) -> float:
    """Sphere radius for landmarks: 0.8 % of the mesh's bounding-box diagonal."""
    v = np.asarray(vertices, dtype=np.float64)
    return 0.008 * float(np.linalg.norm(v.max(0) - v.min(0)))


def uv_sphere(n_lat: int = 6, n_lon: int = 8) -> Tuple[np.ndarray, np.ndarray]:
    """A unit UV sphere: ([N, 3] float64 vertices, [F, 3] int64 outward-wound triangles)."""
    th = np.pi * np.arange(1, n_lat) / n_lat
    ph = 2 * np.pi * np.arange(n_lon) / n_lon
    ring = np.stack([np.outer(np.sin(th), np.cos(ph)), np.outer(np.sin(th), np.sin(ph)),
                     np.repeat(np.cos(th)[:, None], n_lon, 1)], -1).reshape(-1, 3)
    verts = np.concatenate([[[0.0, 0.0, 1.0]], ring, [[0.0, 0.0, -1.0]]])
    last = len(verts) - 1
    idx = lambda i, j: 1 + i * n_lon + (j % n_lon)  # noqa: E731
    tris = []
    for j in range(n_lon):
        tris.append([0, idx(0, j), idx(0, j + 1)])
        tris.append([last, idx(n_lat - 2, j + 1), idx(n_lat - 2, j)])
    for i in range(n_lat - 2):
        for j in range(n_lon):
            a, b, c, d = idx(i, j), idx(i, j + 1), idx(i + 1, j), idx(i + 1, j + 1)
            tris += [[a, c, b], [b, c, d]]
    return verts, np.array(tris, dtype=np.int64)


@dataclass
class MeshArrays:
    """A coloured triangle mesh as arrays: [N, 3] float64, [F, 3] int64, [N, 3] float64 RGB in [0, 1]."""

    vertices: np.ndarray
    triangles: np.ndarray
    colors: np.ndarray


def scene_meshes(scene: ViewScene, shade_eye: Optional[np.ndarray] = None) -> Tuple[MeshArrays, MeshArrays]:
    """(face mesh, all landmark spheres as one mesh), coloured; pure numpy.

    With ``shade_eye`` the colours are pre-shaded by a light at that point (for unlit rendering);
    without it they are flat (the interactive window lights the scene itself).
    """
    v = scene.vertices.astype(np.float64)
    face_cols = scene.colors.astype(np.float64) / 255.0
    sv, st = uv_sphere()
    r = landmark_radius(v)
    L = len(scene.landmarks)
    lv = (sv[None] * r + scene.landmarks.astype(np.float64)[:, None]).reshape(-1, 3)
    lt = (st[None] + len(sv) * np.arange(L)[:, None, None]).reshape(-1, 3)
    lc = np.tile(np.asarray(LANDMARK_COLOR, dtype=np.float64), (len(lv), 1))
    if shade_eye is not None:
        face_cols = shaded_colors(v, scene.triangles, face_cols, shade_eye)
        if L:
            lc = shaded_colors(lv, lt, lc, shade_eye)
    return MeshArrays(v, scene.triangles.astype(np.int64), face_cols), MeshArrays(lv, lt, lc)


def _o3d_mesh(m: MeshArrays):
    """An Open3D TriangleMesh (with vertex normals) from :class:`MeshArrays`."""
    import open3d as o3d

    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(m.vertices),
                                     o3d.utility.Vector3iVector(m.triangles.astype(np.int32)))
    mesh.vertex_colors = o3d.utility.Vector3dVector(m.colors)
    mesh.compute_vertex_normals()
    return mesh


# ------------------------------------------------------------------ headless
_ERROR_TAG = "prdlfit-render-error:"


def _render_png(result_dir: str, png_path: str, width: int, height: int) -> None:
    """Render an output folder to a PNG in *this* process (run by :func:`render_offscreen`'s child)."""
    try:
        import open3d as o3d
        from open3d.visualization import rendering
    except ImportError as err:
        raise ViewerError(f"{RENDERER_UNAVAILABLE}: {err}") from None

    from fitter.outputs.writer import write_png

    o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)
    scene = load_scene(result_dir)
    cam = view_camera(scene.vertices)
    face, spheres = scene_meshes(scene, shade_eye=cam.eye)
    # Order matters with Filament's software (llvmpipe) path here: numpy work after the renderer
    # exists, or Open3D geometry calls before it, made the render 20-1000x slower. So: arrays
    # first, then the renderer, then the Open3D meshes.
    try:
        renderer = rendering.OffscreenRenderer(width, height)
    except Exception as err:
        raise ViewerError(f"{RENDERER_UNAVAILABLE}: {' '.join(str(err).split())}") from None
    mesh, sphere_mesh = _o3d_mesh(face), _o3d_mesh(spheres)
    renderer.scene.view.set_post_processing(False)  # exact colours, no tone mapping
    renderer.scene.set_background([*BACKGROUND, 1.0])
    mat = rendering.MaterialRecord()
    mat.shader = "defaultUnlit"  # colours are pre-shaded by shaded_colors
    renderer.scene.add_geometry("mesh", mesh, mat)
    if len(scene.landmarks):
        renderer.scene.add_geometry("landmarks", sphere_mesh, mat)
    renderer.setup_camera(cam.fov_deg, cam.center.astype(np.float32), cam.eye.astype(np.float32),
                          cam.up.astype(np.float32))
    image = np.asarray(renderer.render_to_image())[..., :3].copy()
    write_png(png_path, image)


def _render_child_main(argv: List[str]) -> int:
    """Entry of the render child: ``RESULT_DIR PNG WIDTH HEIGHT``; errors as one tagged stderr line."""
    try:
        _render_png(argv[0], argv[1], int(argv[2]), int(argv[3]))
        return 0
    except BaseException as err:  # report anything, including import errors, to the parent
        what = str(err) if isinstance(err, PrdlfitError) else f"{type(err).__name__}: {err}"
        print(f"{_ERROR_TAG} {' '.join(what.split())}", file=sys.stderr, flush=True)
        return 1


def render_offscreen(result_dir: PathLike, png_path: PathLike, size: Tuple[int, int] = (800, 800),
                     timeout: float = 300.0) -> Path:
    """Render an output folder's mesh (parts coloured, landmarks as spheres) to a PNG, headless.

    Runs Open3D's OffscreenRenderer in a fresh Python process (see the module docstring).

    Args:
        result_dir: a per-image output folder of ``prdlfit fit``.
        png_path: the PNG to write (atomically).
        size: (width, height) in pixels.
        timeout: seconds before the render is abandoned (the first render of a process with a
            software driver takes ~10 s).
    Raises:
        ViewerError: not an output folder, or the renderer is unavailable, crashed or timed out.
    """
    load_scene(result_dir)  # fail fast, in this process, on a folder that is not a fit output
    W, H = (int(s) for s in size)
    if W < 1 or H < 1:
        raise ViewerError(f"render size must be positive, got {W}x{H}")
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    code = ("import sys; from fitter.outputs.viewer import _render_child_main; "
            "sys.exit(_render_child_main(sys.argv[1:]))")
    cmd = [sys.executable, "-c", code, str(result_dir), str(png_path), str(W), str(H)]
    try:
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, timeout=timeout,
                              text=True, errors="replace")
    except subprocess.TimeoutExpired:
        raise ViewerError(f"Open3D offscreen rendering timed out after {timeout:.0f} s") from None
    if proc.returncode != 0:
        tagged = [ln[len(_ERROR_TAG):].strip() for ln in proc.stderr.splitlines() if ln.startswith(_ERROR_TAG)]
        if tagged and tagged[-1].startswith(RENDERER_UNAVAILABLE):
            raise ViewerError(tagged[-1])
        if tagged:
            raise ViewerError(f"Open3D offscreen rendering failed: {tagged[-1]}")
        raise ViewerError(f"{RENDERER_UNAVAILABLE}: it crashed (exit code {proc.returncode}); it needs EGL or a "
                          "Vulkan/OpenGL driver such as Mesa (Debian: libegl1 mesa-vulkan-drivers)")
    return Path(png_path)


# ------------------------------------------------------------------ interactive
def has_display() -> bool:
    """False on Linux/BSD without an X11 or Wayland display (Open3D would then render to nowhere
    and never return)."""
    if sys.platform.startswith(("win", "darwin")):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def show(result_dir: PathLike, size: Tuple[int, int] = (1024, 1024)) -> None:
    """Open an Open3D window on an output folder. Keys: W wireframe, P part colours / plain, Q quit.

    Raises:
        ViewerError: not an output folder, or no window can be opened (no display).
    """
    scene = load_scene(result_dir)
    if not has_display():
        raise ViewerError("no display to open a window on (DISPLAY/WAYLAND_DISPLAY unset); "
                          "use `prdlfit view RESULT --offscreen out.png`")
    import open3d as o3d

    face, sphere_arrays = scene_meshes(scene)
    mesh, spheres = _o3d_mesh(face), _o3d_mesh(sphere_arrays)
    part_colors = face.colors
    plain = np.tile(np.asarray(PLAIN_COLOR), (len(part_colors), 1))
    vis = o3d.visualization.VisualizerWithKeyCallback()
    if not vis.create_window(window_name=f"prdlfit view: {scene.name}", width=size[0], height=size[1]):
        raise ViewerError("cannot open an Open3D window (no display?); use `prdlfit view RESULT --offscreen out.png`")
    vis.add_geometry(mesh)
    if len(scene.landmarks):
        vis.add_geometry(spheres)
    opt = vis.get_render_option()
    opt.mesh_show_back_face = True
    opt.background_color = np.asarray(BACKGROUND)
    state = {"parts": True}

    def toggle_wireframe(v):
        opt.mesh_show_wireframe = not opt.mesh_show_wireframe
        return True

    def toggle_parts(v):
        state["parts"] = not state["parts"]
        mesh.vertex_colors = o3d.utility.Vector3dVector(part_colors if state["parts"] else plain)
        v.update_geometry(mesh)
        return True

    vis.register_key_callback(ord("W"), toggle_wireframe)
    vis.register_key_callback(ord("P"), toggle_parts)
    cam = view_camera(scene.vertices)
    ctl = vis.get_view_control()
    ctl.set_lookat(cam.center)
    ctl.set_front(cam.eye - cam.center)  # direction from the look-at point towards the eye
    ctl.set_up(cam.up)
    ctl.change_field_of_view(step=(cam.fov_deg - ctl.get_field_of_view()) / 5.0)  # one step = 5 degrees
    print("prdlfit view: W wireframe, P parts/plain, mouse to orbit, Q or Esc to close", flush=True)
    vis.run()
    vis.destroy_window()
