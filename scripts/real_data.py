"""The real-photo sets the evaluation scripts share, and the one rule that splits them.

``shared/images/300w-train`` (150 photos) is split by position in the sorted file list: the even
positions are the **calibration** split (settings and tables are chosen on it, e.g.
``scripts/calibrate_landmarks.py``), the odd positions the **evaluation** split (numbers are
reported on it, ``scripts/eval_real.py --split evaluation``). Both halves hold about the same share
of closed-eye / open-mouth faces.
"""
from __future__ import annotations

import glob
import os
from typing import List

SPLITS = ("calibration", "evaluation", "all")


def split_300w(shared: str, split: str) -> List[str]:
    """Sorted ``.jpg`` paths of one split of ``<shared>/images/300w-train``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    photos = sorted(glob.glob(os.path.join(shared, "images", "300w-train", "*.jpg")))
    if split == "calibration":
        return photos[0::2]
    if split == "evaluation":
        return photos[1::2]
    return photos
