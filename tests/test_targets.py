"""Image front end end-to-end: crop maths, backends' label mapping, the pipeline on real photos
and every bad-input case of build_targets."""
import io
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from fitter.errors import ImageReadError, NoFaceError, PrdlfitError
from fitter.targets import labels as L
from fitter.targets.crop import compose, labels_to_original, landmark_box, square_crop, warp_labels, warp_to_crop
from fitter.targets.draw import draw_targets
from fitter.targets.facer_backend import FACER_CELEBM_NAMES, FACER_LAPA_NAMES, fix_left_right, map_facer_labels
from fitter.targets.landmark_files import LandmarkFileError, read_landmark_file
from fitter.targets.mediapipe_68 import TABLE, mesh_to_ibug68
from fitter.targets.mediapipe_views import DEFAULT_VIEWS, MIRROR, View, back_to_photo, view_matrix
from fitter.targets.metrics import landmark_nme, mask_iou
from fitter.targets.pipeline import TargetConfig, analyze_faces, build_targets
from fitter.targets.types import CropTransform
from morphable_models.model import PART_NAMES


# ============================================================ pure parts (no detector)
def test_crop_round_trip():
    c = square_crop((100.0, 50.0, 300.0, 290.0), (640, 480), size=224, margin=0.3, shift=0.1)
    assert c.size == (224, 224) and c.original_size == (640, 480)
    pts = np.random.RandomState(0).rand(50, 2) * [640, 480]
    assert np.allclose(c.to_original(c.to_crop(pts)), pts)
    # the box centre (shifted up by 0.1 x side) lands on the crop's centre pixel
    centre = np.array([200.0, 170.0 - 0.1 * 240.0])
    assert np.allclose(c.to_crop(centre), [111.5, 111.5])
    # side = 240 * (1 + 2 * 0.3) original pixels
    assert c.scale == pytest.approx(224 / (240 * 1.6))
    M = c.matrix()
    assert np.allclose(M[:, :2] @ pts.T + M[:, 2:], c.to_crop(pts).T)


def test_crop_compose_and_label_warps():
    inner = CropTransform(0.5, (-3.0, 4.0), (100, 100), (300, 200))
    outer = CropTransform(2.0, (1.0, -2.0), (224, 224), (100, 100))
    both = compose(outer, inner)
    p = np.array([[10.0, 20.0], [150.0, 90.0]])
    assert np.allclose(both.to_crop(p), outer.to_crop(inner.to_crop(p)))
    assert both.original_size == (300, 200)
    # a label map survives crop -> original -> crop (nearest neighbour, scale 2)
    lab = np.zeros((200, 300), np.uint8)
    lab[50:120, 80:200] = L.SKIN
    c = CropTransform(1.5, (-100.0, -60.0), (224, 224), (300, 200))  # the block fits inside
    lc = warp_labels(lab, c)
    assert set(np.unique(lc)) <= {0, L.SKIN}
    back = labels_to_original(lc, c)
    assert mask_iou(back == L.SKIN, lab == L.SKIN) > 0.97
    img = np.dstack([lab * 20] * 3).astype(np.uint8)
    assert warp_to_crop(img, c).shape == (224, 224, 3)


def test_landmark_box_uses_valid_points_only():
    lm = np.array([[0, 0], [10, 5], [1000, 1000]] + [[5, 5]] * 65, float)
    v = np.ones(68, bool)
    v[2] = False
    assert landmark_box(lm, v) == (0.0, 0.0, 10.0, 5.0)


def test_mediapipe_68_table_is_complete():
    assert len(TABLE) == 68
    for row in TABLE:
        assert abs(sum(w for _, w in row) - 1.0) < 0.02
        assert all(0 <= v < 478 for v, _ in row)
    mesh = np.random.RandomState(1).rand(478, 3) * 100
    assert mesh_to_ibug68(mesh).shape == (68, 2)


def test_mirror_table_pairs_the_mesh_parts_left_and_right():
    from morphable_models import mediapipe_topology as T

    m = np.asarray(MIRROR)
    assert m.shape == (478,) and np.array_equal(m[m], np.arange(478))  # an involution
    assert np.array_equal(m[list(T.RIGHT_EYE)], T.LEFT_EYE)
    assert np.array_equal(m[list(T.RIGHT_BROW_UPPER)], T.LEFT_BROW_UPPER)
    assert np.array_equal(m[list(T.LIPS_OUTER_UPPER)], T.LIPS_OUTER_UPPER[::-1])
    assert m[468] == 473  # the iris centres
    assert set(np.flatnonzero(m == np.arange(478))) >= {0, 1, 4, 152, 10}  # mid-line points stay


@pytest.mark.parametrize("view", DEFAULT_VIEWS + (View(-20.0, True),))
def test_a_view_maps_its_mesh_back_onto_the_photo(view):
    rng = np.random.default_rng(0)
    photo = np.c_[rng.uniform(50, 450, (478, 2)), rng.normal(0, 20, 478)]  # [478, 3] points in the photo
    M = view_matrix((260.0, 240.0), 300.0, view, 384)
    seen = photo[:, :2] @ M[:, :2].T + M[:, 2]  # where each photo point lands in the view's input
    if view.mirror:  # the mesh names the mirror image's points: its point i is the photo's MIRROR[i]
        seen = seen[np.asarray(MIRROR)]
    z = photo[np.asarray(MIRROR), 2] if view.mirror else photo[:, 2]
    back = back_to_photo(np.c_[seen, z * 384 / 300.0], M, view)
    assert np.allclose(back, photo, atol=1e-9)
    # the square's centre lands mid-input in every view, its side fills the input
    assert np.allclose(M[:, :2] @ [260.0, 240.0] + M[:, 2], [192.0, 192.0])
    assert np.isclose(abs(np.linalg.det(M[:, :2])), (384 / 300.0) ** 2)


def test_mesh_in_box_averages_the_views_that_found_the_same_face(monkeypatch):
    from fitter.targets import mediapipe_mesh as mm

    base = np.c_[np.random.default_rng(1).uniform(100, 200, (478, 2)), np.zeros(478)]  # 100 px wide
    found = {View(): base, View(mirror=True): base + [2.0, 0.0, 0.0], View(8.0): None,  # no face there
             View(-8.0): base + [60.0, 0.0, 0.0],  # another face: its centre 60 px away
             View(8.0, True): base - [2.0, 0.0, 0.0], View(-8.0, True): base + [0.0, 3.0, 0.0]}
    monkeypatch.setattr(mm, "_mesh_of_view", lambda rgb, centre, side, view, crop_px: found[view])
    rgb = np.zeros((300, 300, 3), np.uint8)
    out = mm.mesh_in_box(rgb, (100, 100, 200, 200))
    assert np.allclose(out, base + [0.0, 0.75, 0.0])  # the photo's, two mirrored and one turned view
    found[View()] = None  # the photo's own view decides whether there is a face
    assert mm.mesh_in_box(rgb, (100, 100, 200, 200)) is None
    with pytest.raises(ValueError, match="at least one view"):
        mm.mesh_in_box(rgb, (100, 100, 200, 200), views=())


def test_mediapipe_face_solutions_import_light_and_leave_the_package_whole():
    """The face solutions come without matplotlib (mediapipe's drawing utilities import pyplot:
    ~1 s of startup); later code that imports mediapipe in full still gets the whole package."""
    code = (
        "import sys\n"
        "from fitter.targets.mediapipe_import import face_solutions\n"
        "det, mesh = face_solutions()\n"
        "assert det.FaceDetection and mesh.FaceMesh\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib was imported'\n"
        "assert 'mediapipe.tasks' not in sys.modules, 'the tasks API was imported'\n"
        "import mediapipe as mp\n"
        "assert mp.solutions.face_mesh is mesh and mp.__version__\n"
        "from mediapipe.python.solutions import drawing_utils, hands\n"
        "assert mp.solutions.drawing_utils is drawing_utils and mp.tasks\n"
        "assert face_solutions()[1] is mesh\n"
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(root)})
    assert out.returncode == 0, out.stderr[-2000:]


def test_facer_label_mapping_lapa_and_celebm():
    lapa = np.arange(len(FACER_LAPA_NAMES)).reshape(1, -1)
    ours = map_facer_labels(lapa, FACER_LAPA_NAMES)[0]
    want = dict(zip(FACER_LAPA_NAMES, ours))
    assert want["face"] == L.SKIN and want["rb"] == L.RIGHT_BROW and want["le"] == L.LEFT_EYE
    assert want["ulip"] == L.UP_LIP and want["llip"] == L.DOWN_LIP and want["imouth"] == L.INNER_MOUTH
    assert want["hair"] == L.HAIR and want["nose"] == L.NOSE
    cm = np.arange(len(FACER_CELEBM_NAMES)).reshape(-1, 1)
    got = dict(zip(FACER_CELEBM_NAMES, map_facer_labels(cm, FACER_CELEBM_NAMES)[:, 0]))
    assert got["rr"] == got["lr"] == L.EAR and got["neck"] == L.NECK and got["glass"] == L.EYEGLASSES
    assert got["cloth"] == L.BACKGROUND and got["hat"] == L.OCCLUDER
    with pytest.raises(ValueError):
        map_facer_labels(np.array([[len(FACER_LAPA_NAMES)]]), FACER_LAPA_NAMES)
    with pytest.raises(ValueError, match="no mapping"):
        map_facer_labels(np.zeros((2, 2), int), ("background", "tail"))


def test_fix_left_right_swaps_mirrored_labels():
    lab = np.zeros((100, 100), np.uint8)
    lab[40:45, 20:30] = L.LEFT_EYE  # labelled "left" but on the image left = the person's right
    lab[40:45, 70:80] = L.RIGHT_EYE
    lab[30:33, 20:30] = L.LEFT_BROW
    lm = np.zeros((68, 2))
    lm[36:42] = [25, 42]
    lm[42:48] = [75, 42]
    fixed = fix_left_right(lab, lm)
    assert np.all(fixed[40:45, 20:30] == L.RIGHT_EYE) and np.all(fixed[30:33, 20:30] == L.RIGHT_BROW)
    assert np.all(fixed[40:45, 70:80] == L.LEFT_EYE)
    assert fix_left_right(fixed, lm) is fixed  # already right: untouched


def test_celebamask_mapping():
    gt = np.array([[0, 1, 2, 4, 5, 6, 7, 8, 10, 11, 12, 13, 17, 18]])
    assert list(L.from_celebamask_hq(gt)[0]) == [0, L.SKIN, L.NOSE, L.LEFT_EYE, L.RIGHT_EYE, L.LEFT_BROW,
                                                 L.RIGHT_BROW, L.EAR, L.INNER_MOUTH, L.UP_LIP, L.DOWN_LIP,
                                                 L.HAIR, L.NECK, 0]


def test_landmark_files(tmp_path):
    pts = np.random.RandomState(0).rand(68, 2) * 100
    np.save(tmp_path / "a.npy", pts)
    p, v = read_landmark_file(tmp_path / "a.npy")
    assert np.allclose(p, pts) and v.all()
    body = "\n".join(f"{x + 1:.3f} {y + 1:.3f}" for x, y in pts)
    (tmp_path / "b.pts").write_text(f"version: 1\nn_points: 68\n{{\n{body}\n}}\n")
    p, _ = read_landmark_file(tmp_path / "b.pts")
    assert np.allclose(p, pts, atol=1e-3)  # 1-based file -> 0-based
    bad = pts.copy()
    bad[5] = np.nan
    np.save(tmp_path / "c.npy", bad)
    _, v = read_landmark_file(tmp_path / "c.npy")
    assert not v[5] and v.sum() == 67
    np.save(tmp_path / "d.npy", pts[:10])
    with pytest.raises(LandmarkFileError, match="68"):
        read_landmark_file(tmp_path / "d.npy")
    with pytest.raises(LandmarkFileError, match="not found"):
        read_landmark_file(tmp_path / "zzz.npy")


def test_optional_backends_fail_with_one_line_error(tmp_path):
    pytest.importorskip("mediapipe")
    img = np.full((64, 64, 3), 128, np.uint8)
    try:
        import facer  # noqa: F401
    except Exception:
        with pytest.raises(PrdlfitError, match="pyfacer") as e:
            build_targets(img, TargetConfig(parser="facer"))
        assert "\n" not in str(e.value)
    try:
        import dlib  # noqa: F401
    except ImportError:
        with pytest.raises(PrdlfitError, match="dlib") as e:
            build_targets(img, TargetConfig(landmarks="dlib"))  # no face needed: fails on first use
        assert "\n" not in str(e.value)


def test_registering_a_backend_keeps_the_builtins(monkeypatch):
    from fitter.targets import backends
    from fitter.targets.landmark_files import FileLandmarks

    monkeypatch.setattr(backends, "_PARSERS", {})
    monkeypatch.setattr(backends, "_LANDMARKS", {})

    class Mine:
        name = "mine"

        def __init__(self, **options):
            self.options = options

    backends.register_parser("mine", Mine)  # before any built-in was asked for
    backends.register_landmarks("mine", Mine)
    assert backends.get_parser("mine", a=1).options == {"a": 1}
    assert set(backends.BUILTIN_PARSERS) < set(backends.parser_names())
    assert isinstance(backends.get_landmark_source("file", folder=None), FileLandmarks)
    with pytest.raises(ValueError, match=r"unknown landmark source 'nope'; choose from \['dlib', 'facer', 'file'"):
        backends.get_landmark_source("nope")


def test_config_validation():
    with pytest.raises(ValueError, match="parser"):
        TargetConfig(parser="magic").validate()
    with pytest.raises(ValueError, match="mesh_views must be one of averaged, single"):
        TargetConfig(mesh_views="several")
    with pytest.raises(ValueError, match="landmarks"):
        TargetConfig(landmarks="magic").validate()


# ============================================================ real photos (MediaPipe)
@pytest.fixture(scope="module")
def examples(shared):
    paths = sorted((shared / "images" / "3ddfa-v3-examples").iterdir())
    return {p.name: (p, build_targets(str(p))[0]) for p in paths}


#: the examples that wink: the closed eye's lids meet (fitter.targets.mediapipe_lids), and its slit is
#: left to the skin (fitter.targets.mesh_parts.MIN_EYE_HEIGHT_PX)
WINKS = {"1.jpg": "left_eye", "2.png": "right_eye"}


def _open_eye(name: str) -> str:
    return "right_eye" if WINKS.get(name) == "left_eye" else "left_eye" if name in WINKS else "right_eye"


def test_examples_give_complete_targets(examples):
    for name, (path, t) in examples.items():
        t.validate()
        assert t.size == (224, 224) and t.image.shape == (224, 224, 3)
        closed = {WINKS[name]} if name in WINKS else set()
        assert {p for p, on in t.present_parts().items() if not on} == closed, (name, t.present_parts())
        assert len(t.part_points["skin"]) == 3000
        assert t.source == str(path) and t.face_index == 0
        assert t.forehead_line is not None


def test_examples_landmarks_inside_face_box(examples):
    for name, (path, t) in examples.items():
        x0, y0, x1, y1 = t.meta["face_box"]
        lm = t.crop.to_original(t.landmarks)
        w, h = x1 - x0, y1 - y0
        assert np.all(lm[:, 0] > x0 - 0.05 * w) and np.all(lm[:, 0] < x1 + 0.05 * w), name
        assert np.all(lm[:, 1] > y0 - 0.05 * h) and np.all(lm[:, 1] < y1 + 0.05 * h), name
        # the person's right eye is on the image left
        assert lm[36:42, 0].mean() < lm[42:48, 0].mean()
        eye = _open_eye(name)
        pr = t.part_points[eye].mean(0)
        lids = slice(36, 42) if eye == "right_eye" else slice(42, 48)
        assert np.linalg.norm(pr - t.landmarks[lids].mean(0)) < 10, name


def test_examples_parts_are_in_anatomical_order(examples):
    for name, (_, t) in examples.items():
        y = {p: t.part_points[p][:, 1].mean() for p in PART_NAMES if len(t.part_points[p])}
        eye = _open_eye(name)
        brow = eye.replace("eye", "brow")
        assert y[brow] < y[eye] < y["nose"] < y["up_lip"] < y["down_lip"], name
        a, b, c = t.forehead_line
        sk = t.part_points["skin"]
        assert np.all(a * sk[:, 0] + b * sk[:, 1] + c >= -1e-3)


def test_overlay_drawing(examples):
    t = next(iter(examples.values()))[1]
    img = draw_targets(t)
    assert img.shape == (448, 448, 3) and img.dtype == np.uint8
    assert not np.array_equal(cv2.resize(t.image, (448, 448), interpolation=cv2.INTER_NEAREST), img)


def test_a_mirrored_view_of_the_mirrored_photo_is_the_photos_own_mesh(examples):
    """The mirrored view of a mirrored photo shows MediaPipe the photo's own pixels: its mesh, mapped
    back and re-indexed through MIRROR, is the photo's single-view mesh mirrored point for point."""
    from fitter.targets.mediapipe_mesh import detect_faces, mesh_in_box

    path, _ = examples["2.png"]
    rgb = np.array(Image.open(path).convert("RGB"))
    W = rgb.shape[1]
    box = detect_faces(rgb)[0].box
    own = mesh_in_box(rgb, box, views=(View(),))
    flipped = np.ascontiguousarray(rgb[:, ::-1])
    fbox = (W - 1 - box[2], box[1], W - 1 - box[0], box[3])
    seen = mesh_in_box(flipped, fbox, views=(View(mirror=True),))
    back = seen[np.asarray(MIRROR)]  # the flipped photo's point i is the photo's point MIRROR[i]
    back[:, 0] = W - 1 - back[:, 0]
    assert np.abs(back - own).max() < 0.05
    # the default views average to a mesh within a few pixels of the single view's
    averaged = mesh_in_box(rgb, box)
    width = own[:, 0].max() - own[:, 0].min()
    shift = np.linalg.norm(averaged[:, :2] - own[:, :2], axis=1)
    assert 0 < shift.mean() < 0.02 * width and shift.max() < 0.08 * width


def test_landmark_nme_on_300w_sample(shared):
    # Every 15th face of the 150; measured mean 4.7 %, per-face max 6.8 % (threshold with margin).
    files = sorted((shared / "images" / "300w-train").glob("*.jpg"))[::15]
    from fitter.targets.landmark_files import read_pts

    nme = []
    for f in files:
        faces = analyze_faces(str(f))
        assert faces, f"no face in {f.name}"
        nme.append(landmark_nme(faces[0].landmarks68, read_pts(f.with_suffix(".pts"))))
    assert np.mean(nme) < 0.07 and max(nme) < 0.12, nme


# ============================================================ bad inputs / options of build_targets
def test_blank_image_raises_no_face_naming_file(tmp_path):
    p = tmp_path / "blank.png"
    Image.fromarray(np.full((300, 300, 3), 200, np.uint8)).save(p)
    with pytest.raises(NoFaceError, match=r"no face found in .*blank\.png"):
        build_targets(str(p))
    assert analyze_faces(str(p)) == []


def test_corrupt_file_raises_image_read_error(tmp_path):
    p = tmp_path / "broken.jpg"
    p.write_bytes(b"\xff\xd8\xff\xe0garbage")
    with pytest.raises(ImageReadError, match="broken.jpg"):
        build_targets(str(p))
    with pytest.raises(ImageReadError, match="float32"):
        build_targets(np.zeros((10, 10, 3), np.float32))


def test_two_faces_largest_first_and_all_faces(examples):
    path, t_single = examples["2.png"]  # one person (1.jpg has a second face in the background)
    im = np.array(Image.open(path).convert("RGB"))
    small = cv2.resize(im, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
    right = np.full_like(im, 128)
    right[: small.shape[0], : small.shape[1]] = small
    two = np.concatenate([right, im], axis=1)  # the small copy on the left
    one = build_targets(two)
    assert len(one) == 1 and one[0].meta["face_box"][0] > im.shape[1] - 10  # the big face, on the right
    both = build_targets(two, TargetConfig(all_faces=True))
    assert len(both) == 2 and [t.face_index for t in both] == [0, 1]
    assert both[1].meta["face_box"][2] < im.shape[1]  # the small copy, on the left
    w = [t.meta["face_box"][2] - t.meta["face_box"][0] for t in both]
    assert w[0] > w[1] * 1.4
    # the big face's landmarks equal the single-photo ones shifted by the left tile's width
    lm2 = both[0].crop.to_original(both[0].landmarks) - [im.shape[1], 0]
    lm1 = t_single.crop.to_original(t_single.landmarks)
    assert np.abs(lm2 - lm1).mean() < 3.0


def test_tiny_face_is_found_and_mapped_back(examples):
    path, _ = examples["1.jpg"]
    im = np.array(Image.open(path).convert("RGB"))
    small = cv2.resize(im, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)  # face ~ 50 px
    canvas = np.full((700, 900, 3), 90, np.uint8)
    canvas[400:400 + small.shape[0], 600:600 + small.shape[1]] = small
    t = build_targets(canvas)[0]
    t.validate()
    lm = t.crop.to_original(t.landmarks)
    assert 600 < lm[:, 0].mean() < 600 + small.shape[1] and 400 < lm[:, 1].mean() < 400 + small.shape[0]
    assert t.meta["face_pixels"] < 80 and t.crop.scale > 2  # upsampled into the 224 crop


def test_exif_rotated_photo_maps_to_upright_pixels(tmp_path, examples):
    path, t0 = examples["1.jpg"]
    img = Image.open(path).convert("RGB")
    stored = img.transpose(Image.Transpose.ROTATE_90)  # stored sideways ...
    exif = stored.getexif()
    exif[0x0112] = 6  # ... and tagged "rotate 90 CW to display"
    p = tmp_path / "rot.jpg"
    stored.save(p, exif=exif, quality=95)
    t = build_targets(str(p))[0]
    assert t.crop.original_size == img.size
    d = np.abs(t.crop.to_original(t.landmarks) - t0.crop.to_original(t0.landmarks)).mean()
    assert d < 3.0


def test_downscaled_read_maps_back_to_original(examples):
    path, t0 = examples["1.jpg"]
    t = build_targets(str(path), TargetConfig(max_side=200))[0]
    assert t.meta["read_scale"] < 0.6 and t.crop.original_size == t0.crop.original_size
    d = np.abs(t.crop.to_original(t.landmarks) - t0.crop.to_original(t0.landmarks)).mean()
    assert d < 4.0


def test_bytes_array_and_grayscale_inputs(examples):
    path, t0 = examples["1.jpg"]
    data = path.read_bytes()
    t = build_targets(data)[0]
    assert t.source == "<bytes>"
    gray = np.array(Image.open(io.BytesIO(data)).convert("L"))
    tg = build_targets(gray)[0]
    assert tg.source == "<array>"
    d = np.abs(tg.crop.to_original(tg.landmarks) - t0.crop.to_original(t0.landmarks)).mean()
    assert d < 4.0


def test_user_landmark_file_is_used(tmp_path, examples):
    path, t0 = examples["1.jpg"]
    img = tmp_path / "face.jpg"
    img.write_bytes(path.read_bytes())
    user = t0.crop.to_original(t0.landmarks) + [2.0, -1.0]
    np.save(tmp_path / "face.npy", user)
    t = build_targets(str(img), TargetConfig(landmarks="file"))[0]
    assert t.meta["landmarks"] == "file"
    assert np.allclose(t.crop.to_original(t.landmarks), user, atol=1e-3)
    with pytest.raises(LandmarkFileError, match="no landmark file"):
        build_targets(str(img), TargetConfig(landmarks="file", landmark_file=str(tmp_path / "elsewhere")))


def test_analyze_faces_with_labels_in_photo_pixels(examples):
    path, t = examples["2.png"]
    faces = analyze_faces(str(path), labels=True)
    assert len(faces) == 1
    f = faces[0]
    W, H = Image.open(path).size
    assert f.labels.shape == (H, W) and f.labels_crop.size == (W, H)
    # the same parts as the 224-crop targets, mapped back to the photo
    back = labels_to_original(t.part_masks, t.crop)
    for lab in (L.NOSE, L.LEFT_EYE, L.UP_LIP):  # (its right eye is closed: WINKS)
        assert mask_iou(f.labels == lab, back == lab) > 0.6
    assert np.abs(f.landmarks68 - t.crop.to_original(t.landmarks)).mean() < 1.0


def test_facer_weights_lookup(tmp_path, monkeypatch):
    import torch

    from fitter.targets.facer_backend import _weight_file

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    url = "https://example.org/models/face_parsing.farl.lapa.main_ema_136500_jit191.pt"
    with pytest.raises(PrdlfitError, match=r"face_parsing\.farl\.lapa.*not found.*example\.org") as e:
        _weight_file([url], str(tmp_path / "w"))
    assert "\n" not in str(e.value)
    (tmp_path / "w").mkdir()
    f = tmp_path / "w" / "face_parsing.farl.lapa.main_ema_136500_jit191.pt"
    f.write_bytes(b"x")
    assert _weight_file(url, str(tmp_path / "w")) == f  # a folder holding the file
    assert _weight_file(url, str(f)) == f  # the file itself
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / f.name).write_bytes(b"x")
    assert _weight_file(url, None) == cache / f.name  # torch hub cache



def test_paint_polygon_paints_pixel_centres_inside_like_the_fit_renders():
    from morphable_models.polygons import paint_polygon, points_in_polygon

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:40, :40]
    centres = np.stack([xx.ravel(), yy.ravel()], 1).astype(float)
    for _ in range(50):  # any polygon, convex or not, partly off the map
        poly = rng.uniform(-5, 45, (int(rng.integers(3, 12)), 2))
        out = np.zeros((40, 40), np.uint8)
        paint_polygon(out, poly, 3)
        np.testing.assert_array_equal(out == 3, points_in_polygon(centres, poly).reshape(40, 40))
    # an eye-sized ellipse (30 x 10 px) covers its area; the targets' fill adds half a pixel all round
    from fitter.targets.mesh_parts import fill_polygon

    t = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    ellipse = np.stack([50 + 15 * np.cos(t), 50.3 + 5 * np.sin(t)], 1)
    exact, generous = np.zeros((100, 100), np.uint8), np.zeros((100, 100), np.uint8)
    paint_polygon(exact, ellipse, 1)
    fill_polygon(generous, ellipse, 1)
    assert abs(exact.sum() / (np.pi * 15 * 5) - 1) < 0.02
    assert generous.sum() > 1.1 * exact.sum() and np.all(generous[exact == 1] == 1)
