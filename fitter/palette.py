"""Part colours shared by every picture and mesh ``prdlfit`` draws (targets, fits, model parts).

Index = part label (0 = no part / background, ``i + 1`` = ``PART_NAMES[i]``), values RGB uint8.
"""
from __future__ import annotations

import numpy as np

#: [9, 3] uint8 RGB colour per label: 0 none, then right eye, left eye, right brow, left brow,
#: nose, upper lip, lower lip, skin (the order of PART_NAMES).
PART_COLORS: np.ndarray = np.array(
    [
        [190, 190, 190],  # 0 no part (neck, ears, back of the head)
        [30, 144, 255],   # right_eye
        [0, 206, 209],    # left_eye
        [148, 0, 211],    # right_brow
        [255, 0, 255],    # left_brow
        [255, 165, 0],    # nose
        [220, 20, 60],    # up_lip
        [139, 0, 0],      # down_lip
        [245, 222, 179],  # skin
    ],
    dtype=np.uint8,
)

#: RGB of fitted landmarks and of target landmarks in overlays.
FIT_LANDMARK_COLOR = (0, 255, 0)
TARGET_LANDMARK_COLOR = (255, 40, 40)


def label_colors(labels: np.ndarray) -> np.ndarray:
    """[...] integer part labels (0..8) -> [..., 3] uint8 RGB."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= len(PART_COLORS)):
        raise ValueError(f"part labels must be in 0..{len(PART_COLORS) - 1}, got {labels.min()}..{labels.max()}")
    return PART_COLORS[labels]
