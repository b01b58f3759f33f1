"""The lids' opening map of MediaPipe's mesh (fitter.targets.mediapipe_lids) and closed eyes' slits."""
import numpy as np
import pytest

from fitter.targets import labels as L
from fitter.targets.mediapipe_lids import CALIBRATED, EYE_LIDS, IRIS, LidOpeningMap, close_lids, lid_opening_map, lid_openings
from fitter.targets.mesh_parts import MIN_EYE_HEIGHT_PX, is_slit, rasterize_mesh_parts
from fitter.targets.pipeline import TargetConfig
from morphable_models.mediapipe_topology import LEFT_EYE, RIGHT_EYE


def _eyes(openings, width=40.0, tilt_deg=0.0, upper_at=100.0):
    """A [478, 3] mesh with only the two eyes placed: corners ``width`` px apart, lids opened so that
    :func:`lid_openings` reads ``openings`` (right, left) (a lens-shaped lid pair profile), the whole
    turned by ``tilt_deg``; the irises sit in the middle of each eye; other points stay at 0."""
    mesh = np.zeros((478, 3))
    c, s = np.cos(np.radians(tilt_deg)), np.sin(np.radians(tilt_deg))
    R = np.array([[c, -s], [s, c]])
    for (eye, (pairs, (c0, c1))), opening, x0 in zip(EYE_LIDS.items(), openings, (0.0, 80.0)):
        xs = x0 + width * np.arange(1, 8) / 8.0
        profile = np.sin(np.pi * np.arange(1, 8) / 8.0)
        half = 0.5 * opening * width * profile / profile.mean()
        pts = {c0: (x0, upper_at), c1: (x0 + width, upper_at)}
        for (u, lo), x, h in zip(pairs, xs, half):
            pts[u], pts[lo] = (x, upper_at - h), (x, upper_at + h)
        for k, i in enumerate(IRIS[eye]):
            pts[i] = (x0 + width / 2 + (k - 2) * 2.0, upper_at + (k - 2) * 1.5)
        for i, p in pts.items():
            mesh[i, :2] = R @ np.asarray(p)
            mesh[i, 2] = 5.0
    return mesh


def test_lid_pairs_are_read_off_the_eye_polygons():
    for (pairs, corners), poly in zip(EYE_LIDS.values(), (RIGHT_EYE, LEFT_EYE)):
        assert len(pairs) == 7 and corners == (poly[0], poly[8])
        assert sorted([*corners, *(i for pair in pairs for i in pair)]) == sorted(poly)
    assert EYE_LIDS["right_eye"][0][3] == (159, 145) and EYE_LIDS["left_eye"][0][3] == (386, 374)


@pytest.mark.parametrize("tilt", [0.0, 25.0])
def test_openings_are_measured_across_the_corner_line(tilt):
    assert lid_openings(_eyes((0.3, 0.05), tilt_deg=tilt)) == pytest.approx([0.3, 0.05], abs=1e-9)


def test_open_eyes_are_left_alone_and_nearly_closed_ones_close():
    lid_map = LidOpeningMap(below=0.12, slope=2.0, pivot=0.4)
    mesh = _eyes((0.3, 0.07), tilt_deg=10.0)
    out = close_lids(mesh, lid_map)
    right = [i for pair in EYE_LIDS["right_eye"][0] for i in pair] + list(IRIS["right_eye"])
    assert np.array_equal(out[right], mesh[right])  # the open eye: unchanged
    assert lid_openings(out) == pytest.approx([0.3, 0.0], abs=1e-9)  # 0.07 - 2 (0.12 - 0.07) < 0
    # every lid pair met at 40 % of the way from its upper to its lower point
    for u, lo in EYE_LIDS["left_eye"][0]:
        assert np.allclose(out[u], out[lo]) and np.allclose(out[u], mesh[u] + 0.4 * (mesh[lo] - mesh[u]))
    # the irises close onto the lid line, across it only (their spacing along the eye is kept)
    iris = list(IRIS["left_eye"])
    axis = (mesh[EYE_LIDS["left_eye"][1][1], :2] - mesh[EYE_LIDS["left_eye"][1][0], :2])
    axis /= np.linalg.norm(axis)
    assert np.allclose((out[iris, :2] - mesh[iris, :2]) @ axis, 0.0, atol=1e-9)
    normal = np.array([-axis[1], axis[0]])
    lid_line = out[EYE_LIDS["left_eye"][0][3][0], :2] @ normal
    assert np.ptp(out[iris, :2] @ normal) < 1e-9 and np.ptp(mesh[iris, :2] @ normal) > 1.0
    assert abs(float(out[iris[0], :2] @ normal) - lid_line) < 0.5
    assert np.allclose(out[right + [i for pair in EYE_LIDS["left_eye"][0] for i in pair], 2], 5.0)  # depth moves too
    assert np.array_equal(close_lids(mesh, None), mesh) and close_lids(mesh, None) is not mesh


def test_a_partly_closed_eye_keeps_the_mapped_opening():
    lid_map = LidOpeningMap(below=0.2, slope=0.5, pivot=0.0)
    mesh = _eyes((0.15, 0.3))
    out = close_lids(mesh, lid_map)
    assert lid_openings(out) == pytest.approx([0.15 - 0.5 * 0.05, 0.3])
    for u, lo in EYE_LIDS["right_eye"][0]:  # pivot 0: the upper lid stays, the lower one rises
        assert np.allclose(out[u], mesh[u]) and out[lo, 1] < mesh[lo, 1]


def test_lid_map_names_and_checks():
    assert lid_opening_map("raw") is None and lid_opening_map("calibrated") is CALIBRATED
    assert CALIBRATED(np.array([0.3, CALIBRATED.below])) == pytest.approx([0.3, CALIBRATED.below])
    with pytest.raises(ValueError, match="calibrated"):
        lid_opening_map("closed")
    for bad in (dict(below=0.0, slope=1.0, pivot=0.5), dict(below=0.1, slope=-1.0, pivot=0.5),
                dict(below=0.1, slope=1.0, pivot=1.5)):
        with pytest.raises(ValueError):
            LidOpeningMap(**bad)
    assert TargetConfig(lid_opening="raw").lid_opening == "raw"
    with pytest.raises(ValueError, match="lid_opening"):
        TargetConfig(lid_opening="shut")


def test_a_closed_eyes_slit_is_left_to_the_skin():
    W = 200
    open_mesh, closed_mesh = _eyes((0.3, 0.3), width=40.0), _eyes((0.3, 0.0), width=40.0)
    assert not is_slit(np.asarray([open_mesh[i, :2] for i in LEFT_EYE]))
    assert is_slit(np.asarray([closed_mesh[i, :2] for i in LEFT_EYE]))
    nearly = _eyes((0.3, 0.8 * MIN_EYE_HEIGHT_PX / 40.0), width=40.0)  # under a pixel high on average
    assert is_slit(np.asarray([nearly[i, :2] for i in LEFT_EYE]))
    # (the other parts' points all sit at 0 here: only the eyes are drawn where the test looks)
    for mesh, left_painted in ((open_mesh, True), (closed_mesh, False)):
        labels = rasterize_mesh_parts(mesh, (W, W))
        assert (labels == L.RIGHT_EYE).sum() > 50
        assert ((labels == L.LEFT_EYE).sum() > 50) == left_painted
