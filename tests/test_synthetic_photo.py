"""Photo-like renders (fitter/synthetic_photo.py): texture helpers, and SFM renders that the
MediaPipe front end finds, with landmarks near the rendered landmark vertices."""
import numpy as np
import pytest

from fitter.geometry.curves import closed_curve
from fitter.synthetic_photo import (
    PhotoStyle,
    fill_holes,
    harder_light,
    inner_holes,
    random_style,
    render_photo,
    shadow_factor,
    signed_distance,
    smooth_noise,
    vertex_normals,
)


def test_signed_distance_of_a_circle():
    t = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    curve = closed_curve(np.stack([np.cos(t), np.sin(t)], 1), samples=2000)
    np.testing.assert_allclose(np.linalg.norm(curve, axis=1), 1.0, atol=0.01)  # the spline stays on the circle
    sd = signed_distance(np.array([[0.0, 0.0], [0.5, 0.0], [2.0, 0.0]]), curve)
    np.testing.assert_allclose(sd, [-1.0, -0.5, 1.0], atol=0.01)


def test_smooth_noise_is_bounded_and_reproducible():
    pts = np.random.default_rng(0).uniform(-50, 50, (1000, 2))
    a, b = smooth_noise(pts, 10.0, seed=3), smooth_noise(pts, 10.0, seed=3)
    assert np.array_equal(a, b) and np.abs(a).max() <= 0.5 * np.sqrt(24) + 1e-9 and 0.35 < a.std() < 0.65
    assert not np.allclose(a, smooth_noise(pts, 10.0, seed=4))


def test_hole_fill_and_normals_on_a_tube():
    # An open cylinder along z: two rims, the longer (here equal) one is kept as the "outer" rim.
    n = 12
    ang = np.linspace(0, 2 * np.pi, n, endpoint=False)
    ring = np.stack([np.cos(ang), np.sin(ang), np.zeros(n)], 1)
    v = np.vstack([ring, ring + [0, 0, 1]])
    tri = np.concatenate([[[i, (i + 1) % n, n + i], [(i + 1) % n, n + (i + 1) % n, n + i]] for i in range(n)])
    holes = inner_holes(tri)
    assert len(holes) == 1 and len(holes[0]) == n
    centres, fan = fill_holes(v, holes, depth=0.5)
    assert centres.shape == (1, 3) and fan.shape == (n, 3) and (fan[:, 2] == len(v)).all()
    normals = vertex_normals(v, tri)
    radial = np.abs((normals[:, :2] * v[:, :2]).sum(1))
    np.testing.assert_allclose(radial, 1.0, atol=0.1)


def test_shadow_map_darkens_what_lies_behind_an_occluder():
    """A small square 2 units in front of a large one, the light from the camera: the large square
    is dark right behind the small one and lit elsewhere; the small one is lit."""
    def square(half, z):
        v = np.array([[-half, -half, z], [half, -half, z], [half, half, z], [-half, half, z]], np.float64)
        return v, np.array([[0, 1, 2], [0, 2, 3]])
    back, tb = square(4.0, 10.0)
    front, tf = square(1.0, 8.0)
    cam = np.vstack([back, front])
    tri = np.vstack([tb, tf + 4])
    pos = np.array([[0.0, 0.0, 10.0], [0.5, -0.5, 10.0], [3.0, 3.0, 10.0], [-2.5, 0.0, 10.0], [0.0, 0.0, 8.0]])
    lit = shadow_factor(cam, tri, pos, np.array([0.0, 0.0, -1.0]), unit=1.0, res=256)
    np.testing.assert_allclose(lit, [0, 0, 1, 1, 1])


def test_harder_light_changes_only_the_light_and_the_skin():
    rng = np.random.default_rng(3)
    plain = random_style(rng)
    hard = harder_light(plain, np.random.default_rng(4))
    assert PhotoStyle().shadows is False and PhotoStyle().fill == 0 and PhotoStyle().mottle == 0
    assert hard.shadows and hard.fill > 0 and hard.mottle > 0 and hard.specular > plain.specular
    assert (hard.skin, hard.hair, hard.light, hard.noise_seed) == (plain.skin, plain.hair, plain.light, plain.noise_seed)
    assert np.sign(hard.fill_light[0]) == -np.sign(plain.light[0])  # the fill comes from the other side


@pytest.fixture(scope="module")
def sfm_model(model_cache):
    import morphable_models

    return morphable_models.load("sfm")


@pytest.mark.parametrize("yaw,expression", [(0.0, None), (-60.0, 5)])
def test_sfm_render_goes_through_the_front_end(sfm_model, tmp_path, yaw, expression):
    pytest.importorskip("mediapipe")
    import cv2

    from fitter.targets.pipeline import TargetConfig, build_targets

    m = sfm_model
    rng = np.random.default_rng(1)
    exp = np.zeros(m.num_exp)
    if expression is not None:
        exp[expression] = 0.9
    photo = render_photo(m, rng.normal(0, 1, m.num_id), exp, (5.0, yaw, 0.0), size=384, style=random_style(rng))
    assert photo.image.shape == (384, 384, 3) and photo.image.dtype == np.uint8
    lm = np.round(photo.landmarks).astype(int)
    near_eye = range(42, 48) if yaw > 0 else range(36, 42)  # the eye turned towards the camera (right at yaw < 0)
    on_face = list(range(27, 36)) + list(near_eye)
    assert photo.face_mask[lm[on_face, 1], lm[on_face, 0]].all()  # nose and near eye land on the face
    frac = photo.face_mask.mean()
    assert 0.08 < frac < 0.5
    path = tmp_path / "face.png"
    cv2.imwrite(str(path), cv2.cvtColor(photo.image, cv2.COLOR_RGB2BGR))
    t = build_targets(str(path), TargetConfig())[0]
    found = t.crop.to_original(t.landmarks)
    # The detector's eye corners and nose tip sit near the rendered landmark vertices (the iBUG
    # definitions of MediaPipe's 68 and of the SFM's own differ by a few pixels, not tens).
    iod = np.linalg.norm(photo.landmarks[45] - photo.landmarks[36])
    for k in [30] + [near_eye[0], near_eye[3]]:
        assert np.linalg.norm(found[k] - photo.landmarks[k]) < 0.25 * iod, k
