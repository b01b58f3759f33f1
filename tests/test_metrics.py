"""The evaluation's annotated part outlines (fitter.metrics.annotated_part_labels) and the curves they
follow (fitter.geometry.curves)."""
import numpy as np
import pytest

from fitter.geometry.curves import open_curve
from fitter.metrics import OUTLINED_PARTS, annotated_part_labels
from morphable_models.model import PART_NAMES


def ellipse_points(centre, a, b, angles_deg):
    t = np.radians(np.asarray(angles_deg, np.float64))
    return np.stack([centre[0] + a * np.cos(t), centre[1] - b * np.sin(t)], -1)


def face_68(eye_b: float = 8.0):
    """68 points with eyes on ellipses (semi-axes 20 × eye_b px) and lips between two ellipses."""
    lm = np.zeros((68, 2))
    # an eye: corner, two upper lid points, corner, two lower lid points (the iBUG order)
    eye_angles = [180, 120, 60, 0, -60, -120]
    lm[36:42] = ellipse_points((100, 100), 20, eye_b, eye_angles)
    lm[42:48] = ellipse_points((180, 100), 20, eye_b, eye_angles)
    outer = [180, 150, 120, 90, 60, 30, 0, -30, -60, -90, -120, -150]  # 48..59, mouth corner first
    lm[48:60] = ellipse_points((140, 200), 40, 20, outer)
    inner = [180, 135, 90, 45, 0, -45, -90, -135]  # 60..67
    lm[60:68] = ellipse_points((140, 200), 36, 4, inner)
    return lm


def test_open_curve_passes_through_its_points():
    P = np.array([[0.0, 0.0], [10.0, 5.0], [20.0, 0.0], [30.0, -4.0]])
    curve = open_curve(P, samples=400)
    assert curve.shape == (400, 2)
    assert np.allclose(curve[[0, -1]], P[[0, -1]])
    assert np.all(np.min(np.linalg.norm(curve[:, None] - P[None], axis=2), axis=0) < 0.1)  # every point on it
    chord = open_curve(P[:2], samples=5)  # two points: the straight chord
    d, e = chord - P[0], P[1] - P[0]
    assert np.allclose(d[:, 0] * e[1] - d[:, 1] * e[0], 0.0)
    with pytest.raises(ValueError, match="N >= 2"):
        open_curve(P[:1])


def test_outlines_fill_the_curves_not_the_polygons():
    lm = face_68()
    labels = annotated_part_labels(lm, (280, 260))
    present = set(np.unique(labels)) - {0}
    assert present == {i + 1 for i in OUTLINED_PARTS}
    # an ellipse through six points: the smooth curves hold ~its area, the hexagon only 83 % of it
    ellipse = np.pi * 20 * 8
    for name in ("right_eye", "left_eye"):
        area = (labels == PART_NAMES.index(name) + 1).sum()
        assert abs(area / ellipse - 1) < 0.04, (name, area, ellipse)
    # the person's right eye is iBUG 36-41
    assert labels[100, 100] == PART_NAMES.index("right_eye") + 1
    assert labels[100, 180] == PART_NAMES.index("left_eye") + 1
    # the lips: above and below the inner contour, the mouth opening itself unlabelled
    assert labels[188, 140] == PART_NAMES.index("up_lip") + 1
    assert labels[212, 140] == PART_NAMES.index("down_lip") + 1
    assert labels[200, 140] == 0


def test_a_closed_eye_is_no_part_and_bad_shapes_fail():
    lm = face_68(eye_b=0.2)  # lids 0.4 px apart at most: a slit
    labels = annotated_part_labels(lm, (280, 260))
    assert not np.any(labels == PART_NAMES.index("right_eye") + 1)
    assert np.any(labels == PART_NAMES.index("up_lip") + 1)
    with pytest.raises(ValueError, match=r"\[68, 2\]"):
        annotated_part_labels(lm[:67], (280, 260))


def test_a_rendered_slit_is_skin_and_an_open_eye_stays():
    from fitter.metrics import drop_eye_slits

    labels = np.zeros((2, 60, 80), np.uint8)
    eye, skin = PART_NAMES.index("right_eye") + 1, PART_NAMES.index("skin") + 1
    labels[:, 20:40, 10:70] = skin
    labels[0, 30, 20:60:2] = eye  # a sliver half a pixel high on average (every other pixel of a row)
    labels[1, 27:33, 20:60] = eye  # six rows: an open eye
    out = drop_eye_slits(labels)
    assert not np.any(out[0] == eye) and out[0, 30, 30] == skin
    assert np.array_equal(out[1], labels[1])
    assert np.any(labels[0] == eye)  # the input is not modified
