"""Target cleaning on synthetic label maps (no photo, no detector)."""
import cv2
import numpy as np
import pytest

from fitter.targets import labels as L
from fitter.targets.preprocess import (
    PreprocessConfig,
    forehead_line,
    largest_plausible_component,
    mask_outline,
    targets_from_label_map,
    thin_points,
)
from fitter.targets.types import CropTransform
from morphable_models.model import PART_NAMES

S = 224


def synthetic_face(roll_deg: float = 0.0):
    """A cartoon face label map [224, 224] with its 68 landmarks, optionally rolled about the centre.

    Skin ellipse reaching well above the brows, two eyes, two brows, nose, two lips, two ears.
    """
    lab = np.zeros((S, S), np.uint8)
    cv2.ellipse(lab, (112, 112), (70, 95), 0, 0, 360, L.SKIN, -1)
    cv2.ellipse(lab, (38, 120), (10, 22), 0, 0, 360, L.EAR, -1)  # ears outside the skin
    cv2.ellipse(lab, (186, 120), (10, 22), 0, 0, 360, L.EAR, -1)
    cv2.ellipse(lab, (85, 100), (14, 6), 0, 0, 360, L.RIGHT_EYE, -1)  # person's right = image left
    cv2.ellipse(lab, (139, 100), (14, 6), 0, 0, 360, L.LEFT_EYE, -1)
    cv2.rectangle(lab, (68, 80), (102, 86), L.RIGHT_BROW, -1)
    cv2.rectangle(lab, (122, 80), (156, 86), L.LEFT_BROW, -1)
    cv2.fillPoly(lab, [np.array([[106, 95], [118, 95], [126, 140], [98, 140]])], L.NOSE)
    cv2.ellipse(lab, (112, 160), (24, 6), 0, 180, 360, L.UP_LIP, -1)
    cv2.ellipse(lab, (112, 161), (24, 8), 0, 0, 180, L.DOWN_LIP, -1)
    lm = np.zeros((68, 2))
    t = np.linspace(np.pi, 0, 17)
    lm[:17] = np.stack([112 + 68 * np.cos(t), 112 + 93 * np.sin(t)], 1)  # jaw (lower half)
    lm[17:22] = np.stack([np.linspace(68, 102, 5), np.full(5, 83.0)], 1)
    lm[22:27] = np.stack([np.linspace(122, 156, 5), np.full(5, 83.0)], 1)
    lm[27:31] = np.stack([np.full(4, 112.0), np.linspace(95, 128, 4)], 1)
    lm[31:36] = np.stack([np.linspace(100, 124, 5), np.full(5, 138.0)], 1)
    for s, cx in ((36, 85), (42, 139)):
        a = np.linspace(np.pi, -np.pi, 7)[:6]
        lm[s:s + 6] = np.stack([cx + 14 * np.cos(a), 100 - 6 * np.sin(a)], 1)
    a = np.linspace(np.pi, -np.pi, 13)[:12]
    lm[48:60] = np.stack([112 + 24 * np.cos(a), 160 - 8 * np.sin(a)], 1)
    a = np.linspace(np.pi, -np.pi, 9)[:8]
    lm[60:68] = np.stack([112 + 18 * np.cos(a), 160 - 1 * np.sin(a)], 1)
    if roll_deg:
        M = cv2.getRotationMatrix2D((112, 112), roll_deg, 1.0)
        lab = cv2.warpAffine(lab, M, (S, S), flags=cv2.INTER_NEAREST)
        lm = lm @ M[:, :2].T + M[:, 2]
    return lab, lm, np.ones(68, bool)


def crop():
    return CropTransform(scale=0.5, offset=(-10.0, -20.0), size=(S, S), original_size=(600, 500))


def make(lab, lm, valid, **cfg):
    t = targets_from_label_map(lab, lm, valid, crop(), config=PreprocessConfig(**cfg))
    t.validate()
    return t


def test_synthetic_targets_are_valid_and_complete():
    lab, lm, v = synthetic_face()
    t = make(lab, lm, v)
    assert all(t.present_parts().values())
    assert t.image is None and t.part_masks.dtype == np.uint8
    assert t.part_masks.max() <= 8
    for name, pts in t.part_points.items():
        assert pts.dtype == np.float32
        lab_i = PART_NAMES.index(name) + 1
        xi, yi = pts[:, 0].astype(int), pts[:, 1].astype(int)
        assert np.all(t.part_masks[yi, xi] == lab_i), name  # every point lies on its cleaned mask


def test_ears_neck_inner_mouth_are_dropped():
    lab, lm, v = synthetic_face()
    lab[200:224, 90:130] = L.NECK
    lab[159:161, 100:124] = L.INNER_MOUTH
    t = make(lab, lm, v)
    assert not np.any(t.part_masks[lab == L.EAR])
    assert not np.any(t.part_masks[lab == L.NECK])
    assert not np.any(t.part_masks[lab == L.INNER_MOUTH])


def test_noise_blob_is_removed():
    lab, lm, v = synthetic_face()
    lab[190:196, 150:156] = L.RIGHT_EYE  # a stray right-eye blob on the cheek
    lab[20:60, 20:40] = L.NOSE  # a large implausible "nose" far from the nose landmarks
    t = make(lab, lm, v)
    eye = t.part_points["right_eye"]
    assert np.all(np.abs(eye[:, 0] - 85) <= 15) and np.all(np.abs(eye[:, 1] - 100) <= 7)
    nose = t.part_points["nose"]
    assert nose[:, 1].min() >= 90  # the big blob was larger but implausible


def test_largest_plausible_component_prefers_near_anchor():
    m = np.zeros((50, 50), bool)
    m[0:20, 0:20] = True  # big, far
    m[40:45, 40:45] = True  # small, near
    near = largest_plausible_component(m, np.array([42.0, 42.0]), 10.0)
    assert near.sum() == 25
    assert largest_plausible_component(m).sum() == 400
    assert not largest_plausible_component(m, np.array([30.0, 0.0]), 1.0).any()


def test_forehead_cut_removes_skin_above_brows():
    lab, lm, v = synthetic_face()
    t = make(lab, lm, v, forehead_offset=0.0)
    a, b, c = t.forehead_line
    assert b > 0.99  # an upright face: horizontal cut, normal pointing down
    ys = np.nonzero(t.part_masks == L.SKIN)[0]
    assert ys.min() >= 79  # brows start at row 80
    assert np.any(lab[:79] == L.SKIN)  # ... while the input had forehead skin
    # brow points are kept by the line, forehead pixels are not
    for name in ("right_brow", "left_brow"):
        p = t.part_points[name]
        assert np.all(a * p[:, 0] + b * p[:, 1] + c >= -1e-3)
    assert a * 112 + b * 30 + c < 0


def test_forehead_offset_moves_cut_up():
    lab, lm, v = synthetic_face()
    t0 = make(lab, lm, v, forehead_offset=0.0)
    t1 = make(lab, lm, v, forehead_offset=0.2)
    iod = np.linalg.norm(lm[36] - lm[45])
    top0 = np.nonzero(t0.part_masks == L.SKIN)[0].min()
    top1 = np.nonzero(t1.part_masks == L.SKIN)[0].min()
    assert top0 - top1 == pytest.approx(0.2 * iod, abs=1.5)


def test_forehead_cut_follows_head_roll():
    lab, lm, v = synthetic_face(roll_deg=25)
    t = make(lab, lm, v)
    a, b, _ = t.forehead_line
    ang = np.degrees(np.arctan2(-a, b))  # rotation of the normal away from image-down
    assert abs(abs(ang) - 25) < 4


def test_forehead_line_from_brow_masks_without_landmarks():
    lab, lm, _ = synthetic_face()
    line = forehead_line(lab, lm, np.zeros(68, bool), 0.0)
    assert line is not None and line[1] > 0.99
    assert -line[2] / line[1] == pytest.approx(80, abs=1.0)
    t = make(lab, lm, np.zeros(68, bool))
    assert t.forehead_line is not None and all(t.present_parts().values())


def test_forehead_cut_can_be_disabled():
    lab, lm, v = synthetic_face()
    t = make(lab, lm, v, forehead_cut=False)
    assert t.forehead_line is None
    assert np.nonzero(t.part_masks == L.SKIN)[0].min() < 40


def test_fps_caps_point_counts():
    lab, lm, v = synthetic_face()
    t = make(lab, lm, v, max_skin_points=500, max_part_points=40, forehead_cut=False)
    assert len(t.part_points["skin"]) == 500
    assert all(len(t.part_points[p]) <= 40 for p in PART_NAMES if p != "skin")
    assert t.meta["mask_pixels"]["skin"] > 500
    # thinned points spread over the whole mask: coverage radius is small
    skin = np.argwhere(t.part_masks == L.SKIN)[:, ::-1].astype(np.float32)
    pts = t.part_points["skin"]
    d = np.sqrt(((skin[:, None, :] - pts[None, ::1, :]) ** 2).sum(-1)).min(1)
    assert d.max() < 8.0


def test_thin_points_basics():
    p = np.array([[0, 0], [1, 0], [2, 0], [10, 0], [5, 0]], np.float32)
    idx = thin_points(p, 3)
    assert idx[0] == 4  # nearest the centroid (x = 3.6)
    assert set(idx[1:]) == {0, 3}  # then the two ends
    assert np.array_equal(thin_points(p, 10), np.arange(5))
    assert thin_points(p, 0).size == 0
    q = np.random.RandomState(0).rand(300, 2)
    assert np.array_equal(thin_points(q, 50), thin_points(q, 50))
    assert len(np.unique(thin_points(q, 50))) == 50


def test_pixel_counts_assign_each_pixel_to_its_nearest_kept_point_ties_to_the_lower_index():
    from fitter.targets.preprocess import nearest_on_grid, pixel_counts

    rng = np.random.RandomState(3)
    mask = np.zeros((90, 120), bool)
    mask[10:80, 20:110] = True
    mask[40:50, 60:70] = False  # a hole
    pix = np.argwhere(mask)[:, ::-1].astype(np.float32)
    for k in (1, 7, 300):
        kept = pix[np.sort(thin_points(pix, k))]
        d2 = ((pix[:, None, :].astype(np.int64) - kept[None].astype(np.int64)) ** 2).sum(-1)
        want = d2.argmin(1)  # brute force, exact integers: the first (lowest) index on a tie
        got = nearest_on_grid(pix.astype(np.int64), kept.astype(np.int64))
        assert np.array_equal(got, want)
        counts = pixel_counts(pix, kept)
        assert counts.dtype == np.float32 and counts.sum() == len(pix)
        assert np.array_equal(counts, np.bincount(want, minlength=k))
    # a tie: pixel (1, 0) is as near to (0, 0) as to (2, 0); the lower index wins, whichever it is
    assert nearest_on_grid(np.array([[1, 0]]), np.array([[2, 0], [0, 0]])).tolist() == [0]
    assert nearest_on_grid(np.array([[1, 0]]), np.array([[0, 0], [2, 0]])).tolist() == [0]
    # off the pixel grid: the same counts by a k-d tree
    off = pix[:50] + 0.25
    kept = off[rng.choice(50, 5, replace=False)]
    d2 = ((off[:, None, :] - kept[None]) ** 2).sum(-1)
    assert np.array_equal(pixel_counts(off, kept), np.bincount(d2.argmin(1), minlength=5))


def test_mask_outline_is_where_the_pixels_end():
    one = np.zeros((5, 6), bool)
    one[2, 3] = True
    got = {tuple(p) for p in mask_outline(one).tolist()}
    assert got == {(3.5, 2.0), (2.5, 2.0), (3.0, 2.5), (3.0, 1.5)}
    rect = np.zeros((8, 9), bool)
    rect[2:4, 1:4] = True  # 2 rows x 3 columns of pixels covering x in [0.5, 3.5], y in [1.5, 3.5]
    out = mask_outline(rect)
    assert len(out) == 2 * (2 + 3)  # one point per boundary edge
    assert out[:, 0].min() == 0.5 and out[:, 0].max() == 3.5
    assert out[:, 1].min() == 1.5 and out[:, 1].max() == 3.5
    edge = np.zeros((3, 3), bool)
    edge[0, 0] = True  # the image border counts as outside
    assert {tuple(p) for p in mask_outline(edge).tolist()} == {(0.5, 0.0), (-0.5, 0.0), (0.0, 0.5), (0.0, -0.5)}
    assert mask_outline(np.zeros((4, 4), bool)).shape == (0, 2)


def test_targets_carry_part_outlines_unless_disabled():
    lab, lm, v = synthetic_face()
    t = make(lab, lm, v)
    for i, name in enumerate(PART_NAMES):
        mask = t.part_masks == i + 1
        o = t.part_outline[name]
        assert len(o) > 0 and np.all(np.abs(np.round(o * 2) - o * 2) == 0), name  # on half-pixel edges
        # every outline point is the midpoint between a pixel of the part and one outside it
        inside = np.stack([np.floor(o[:, 0] + 0.25), np.floor(o[:, 1] + 0.25)], 1)
        outside = 2 * o - inside
        H, W = mask.shape
        assert np.all(mask[inside[:, 1].astype(int), inside[:, 0].astype(int)] ^
                      mask[outside[:, 1].astype(int).clip(0, H - 1), outside[:, 0].astype(int).clip(0, W - 1)]), name
    assert make(lab, lm, v, outline=False).part_outline is None


def test_occlusion_from_hair_is_dilated():
    lab, lm, v = synthetic_face()
    lab[60:75, 60:110] = L.HAIR  # a fringe over the forehead
    lab[100:103, 170:172] = L.EYEGLASSES
    t = make(lab, lm, v, occlusion_dilate=2)
    assert t.occlusion[60:75, 60:110].all()
    assert t.occlusion[100:103, 170:172].all()
    assert t.occlusion[76, 80] and not t.occlusion[80, 80]  # grown by 2 pixels, not more
    assert not np.any(t.part_masks[lab == L.HAIR])
    assert make(lab, lm, v, occluder_labels=()).occlusion.sum() == 0


def test_absent_part_gives_empty_point_set():
    lab, lm, v = synthetic_face()
    lab[lab == L.LEFT_EYE] = L.SKIN  # closed / hidden eye
    t = make(lab, lm, v)
    assert t.part_points["left_eye"].shape == (0, 2)
    assert not t.present_parts()["left_eye"]


def test_skin_split_by_hair_keeps_both_cheeks():
    lab, lm, v = synthetic_face()
    lab[:, 110:114][lab[:, 110:114] == L.SKIN] = L.HAIR  # a strand splits the skin in two
    lab[150:170, 100:125] = np.where(lab[150:170, 100:125] == L.SKIN, L.HAIR, lab[150:170, 100:125])
    t = make(lab, lm, v)
    xs = t.part_points["skin"][:, 0]
    assert xs.min() < 60 and xs.max() > 165


def test_bad_inputs_raise():
    lab, lm, v = synthetic_face()
    with pytest.raises(ValueError, match="label"):
        targets_from_label_map(np.full((S, S), 99, np.uint8), lm, v, crop())
    with pytest.raises(ValueError, match=r"\[68, 2\]"):
        targets_from_label_map(lab, lm[:5], v, crop())
    with pytest.raises(ValueError, match="crop"):
        targets_from_label_map(lab[:100], lm, v, crop())


def test_nan_landmarks_are_marked_invalid():
    lab, lm, v = synthetic_face()
    lm[30] = np.nan
    t = make(lab, lm, v)
    assert not t.landmark_valid[30] and t.landmark_valid.sum() == 67
    assert np.all(np.isfinite(t.landmarks))


def test_torch_label_map_and_nested_config_from_dict():
    import torch

    from fitter.targets.pipeline import TargetConfig

    lab, lm, v = synthetic_face()
    t = targets_from_label_map(torch.from_numpy(lab), lm, v, crop())
    assert all(t.present_parts().values())
    cfg = TargetConfig(preprocess={"max_skin_points": 100, "occluder_labels": [10]})
    assert cfg.preprocess.max_skin_points == 100 and cfg.preprocess.occluder_labels == (10,)
    with pytest.raises(ValueError, match="preprocess"):
        TargetConfig(preprocess={"no_such_key": 1})
