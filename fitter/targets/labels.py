"""The face label set every parser backend writes, and small helpers over label maps.

Label map: [H, W] uint8, one label per pixel:

====  =====================================================================
  0   background
 1-8  the fitting parts, ``PART_NAMES[label - 1]``: right_eye, left_eye, right_brow, left_brow,
      nose, up_lip, down_lip, skin ("right"/"left" = the person's own)
  9   ear (dropped by preprocessing)
 10   hair (an occluder: predicted points under it are dropped)
 11   neck (dropped)
 12   inner mouth: teeth, tongue, mouth cavity (dropped)
 13   eyeglasses (an occluder)
 14   other occluder: hat, hand, microphone, ... (an occluder)
====  =====================================================================

Synthetic label maps rendered from a model use only labels 0..8.
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

from morphable_models.model import PART_NAMES

BACKGROUND = 0
#: label of each fitting part (PART_NAMES order, label = index + 1)
PART_LABELS: Dict[str, int] = {name: i + 1 for i, name in enumerate(PART_NAMES)}
RIGHT_EYE = PART_LABELS["right_eye"]
LEFT_EYE = PART_LABELS["left_eye"]
RIGHT_BROW = PART_LABELS["right_brow"]
LEFT_BROW = PART_LABELS["left_brow"]
NOSE = PART_LABELS["nose"]
UP_LIP = PART_LABELS["up_lip"]
DOWN_LIP = PART_LABELS["down_lip"]
SKIN = PART_LABELS["skin"]
EAR = 9
HAIR = 10
NECK = 11
INNER_MOUTH = 12
EYEGLASSES = 13
OCCLUDER = 14

LABEL_NAMES: Tuple[str, ...] = ("background",) + tuple(PART_NAMES) + (
    "ear", "hair", "neck", "inner_mouth", "eyeglasses", "occluder")
NUM_LABELS = len(LABEL_NAMES)

#: labels that hide the face: predicted model points landing on them are dropped
OCCLUDER_LABELS: Tuple[int, ...] = (HAIR, EYEGLASSES, OCCLUDER)
#: the 8 part labels
FACE_PART_LABELS: Tuple[int, ...] = tuple(range(1, 9))


def face_region(labels: np.ndarray) -> np.ndarray:
    """[H, W] bool: pixels of any of the 8 fitting parts (labels 1..8)."""
    return (labels >= 1) & (labels <= 8)


def check_label_map(labels: np.ndarray, name: str = "labels") -> np.ndarray:
    """Validate a [H, W] label map of this label set (numpy array or torch tensor); returns uint8 numpy.

    Raises:
        ValueError: wrong rank or labels outside 0..NUM_LABELS-1 (naming the offending value).
    """
    if hasattr(labels, "detach"):  # a torch tensor (e.g. a rasterized synthetic label map)
        labels = labels.detach().cpu().numpy()
    a = np.asarray(labels)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a [H, W] label map, got shape {a.shape}")
    if a.size and (a.min() < 0 or a.max() >= NUM_LABELS):
        raise ValueError(f"{name} holds label {int(a.max()) if a.max() >= NUM_LABELS else int(a.min())}; "
                         f"valid labels are 0..{NUM_LABELS - 1}")
    return a.astype(np.uint8, copy=False)


#: CelebAMask-HQ label map values (as in its combined label PNGs; left/right = the person's own)
CELEBAMASK_HQ_NAMES: Tuple[str, ...] = (
    "background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
    "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth",
)
_CELEBAMASK_TO_OURS = {
    "background": BACKGROUND, "skin": SKIN, "nose": NOSE, "eye_g": EYEGLASSES, "l_eye": LEFT_EYE,
    "r_eye": RIGHT_EYE, "l_brow": LEFT_BROW, "r_brow": RIGHT_BROW, "l_ear": EAR, "r_ear": EAR,
    "mouth": INNER_MOUTH, "u_lip": UP_LIP, "l_lip": DOWN_LIP, "hair": HAIR, "hat": OCCLUDER,
    "ear_r": BACKGROUND, "neck_l": BACKGROUND, "neck": NECK, "cloth": BACKGROUND,
}


def lookup_table(names, mapping: Dict[str, int]) -> np.ndarray:
    """[len(names)] uint8 table: source label index -> our label (ValueError on unknown names)."""
    missing = [n for n in names if n not in mapping]
    if missing:
        raise ValueError(f"no mapping for label names {missing}")
    return np.array([mapping[n] for n in names], dtype=np.uint8)


def from_celebamask_hq(gt: np.ndarray) -> np.ndarray:
    """[H, W] CelebAMask-HQ label map (values 0..18) -> [H, W] uint8 map in our label set."""
    lut = lookup_table(CELEBAMASK_HQ_NAMES, _CELEBAMASK_TO_OURS)
    g = np.asarray(gt)
    if g.size and g.max() >= len(lut):
        raise ValueError(f"CelebAMask-HQ labels go up to {len(lut) - 1}, got {int(g.max())}")
    return lut[g]
