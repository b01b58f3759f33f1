"""User-supplied 68-point landmarks: one ``.npy`` or ``.pts`` file per photo.

* ``.npy``: a [68, 2] array of (x, y) original-image pixels, 0-based (pixel centres at integers);
  NaN rows mark points the user could not place.
* ``.pts``: the iBUG/300-W text format (``version: 1``, ``n_points: 68``, ``{`` x y lines ``}``),
  1-based as in 300-W: 1 is subtracted on reading.

:func:`find_landmark_file` looks next to the photo for ``<stem>.npy``, ``<stem>.pts``,
``<stem>.landmarks68.npy`` (in that order), or in a given folder.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Tuple, Union

import numpy as np

from fitter.errors import PrdlfitError


class LandmarkFileError(PrdlfitError):
    """A landmark file is missing or malformed."""

    exit_code = 3


PathLike = Union[str, os.PathLike]
SUFFIXES = (".npy", ".pts", ".landmarks68.npy")


def read_pts(path: PathLike) -> np.ndarray:
    """[N, 2] float64 0-based pixels from an iBUG ``.pts`` file (1-based coordinates in the file)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as err:
        raise LandmarkFileError(f"cannot read landmarks {p}: {err.strerror or err}") from None
    if "{" not in text or "}" not in text:
        raise LandmarkFileError(f"cannot read landmarks {p}: not an iBUG .pts file (no {{ }} block)")
    body = text.split("{", 1)[1].split("}", 1)[0].split()
    try:
        xy = np.array([float(v) for v in body], dtype=np.float64)
    except ValueError:
        raise LandmarkFileError(f"cannot read landmarks {p}: non-numeric coordinates") from None
    if xy.size % 2:
        raise LandmarkFileError(f"cannot read landmarks {p}: odd number of coordinates")
    return xy.reshape(-1, 2) - 1.0


def read_landmark_file(path: PathLike) -> Tuple[np.ndarray, np.ndarray]:
    """Read 68 landmarks (original-image pixels, 0-based).

    Returns:
        ([68, 2] float64 points, [68] bool valid); invalid rows (NaN in the file) are set to 0.
    Raises:
        LandmarkFileError: missing file, wrong format or not 68 points (message names the file).
    """
    p = Path(path)
    if not p.is_file():
        raise LandmarkFileError(f"landmark file {p} not found")
    if p.suffix.lower() == ".pts":
        pts = read_pts(p)
    elif p.suffix.lower() == ".npy":
        try:
            pts = np.asarray(np.load(p, allow_pickle=False), dtype=np.float64)
        except (OSError, ValueError) as err:
            raise LandmarkFileError(f"cannot read landmarks {p}: {err}") from None
    else:
        raise LandmarkFileError(f"landmark file {p}: expected .npy or .pts")
    if pts.shape != (68, 2):
        raise LandmarkFileError(f"landmark file {p}: expected 68 points [68, 2], got shape {pts.shape}")
    valid = np.all(np.isfinite(pts), axis=1)
    if not valid.any():
        raise LandmarkFileError(f"landmark file {p}: all points are NaN")
    return np.where(valid[:, None], pts, 0.0), valid


def find_landmark_file(image_path: PathLike, folder: Optional[PathLike] = None) -> Path:
    """The landmark file for a photo: ``<stem>.npy``/``.pts``/``.landmarks68.npy`` beside it or in ``folder``.

    ``folder`` may also be a file path, which is returned as it is.
    """
    img = Path(image_path)
    if folder is not None and Path(folder).is_file():
        return Path(folder)
    where = Path(folder) if folder is not None else img.parent
    for suf in SUFFIXES:
        cand = where / (img.stem + suf)
        if cand.is_file():
            return cand
    raise LandmarkFileError(f"no landmark file for {img} (looked for {img.stem}{{.npy,.pts,.landmarks68.npy}} in {where})")




class FileLandmarks:
    """Landmark source ``file``: reads ``<stem>.npy``/``.pts`` beside the photo or in ``folder``.

    The landmarks go to the detected face whose box they overlap most; a face they do not overlap
    gets no valid landmarks from here (the pipeline then falls back to the parser's own and
    records ``landmarks: mediapipe`` in the targets' meta). A file whose points all lie outside
    the photo is an error (LandmarkFileError naming the file).
    """

    name = "file"

    def __init__(self, folder: Optional[PathLike] = None):
        self.folder = folder

    def landmarks(self, rgb, face, source: str, scale: float = 1.0) -> Tuple[np.ndarray, np.ndarray]:
        if not source or source.startswith("<"):
            raise LandmarkFileError("landmarks='file' needs the photo's path (got in-memory image data)")
        path = find_landmark_file(source, self.folder)
        pts, valid = read_landmark_file(path)
        pts = pts * scale
        H, W = rgb.shape[:2]
        inside = valid & (pts[:, 0] >= -0.5) & (pts[:, 0] <= W - 0.5) & (pts[:, 1] >= -0.5) & (pts[:, 1] <= H - 0.5)
        if not inside.any():
            W0, H0 = int(round(W / scale)), int(round(H / scale))
            raise LandmarkFileError(f"landmark file {path}: all its points lie outside the {W0}x{H0} image "
                                    "(expected x, y in the photo's pixels, 0-based)")
        x0, y0 = pts[valid].min(0)
        x1, y1 = pts[valid].max(0)
        bx0, by0, bx1, by1 = face.box
        ix = max(0.0, min(x1, bx1) - max(x0, bx0))
        iy = max(0.0, min(y1, by1) - max(y0, by0))
        inter = ix * iy
        smaller = min(max(x1 - x0, 1.0) * max(y1 - y0, 1.0), max(face.area, 1.0))
        if inter < 0.3 * smaller:
            return np.zeros((68, 2)), np.zeros(68, dtype=bool)
        return pts, valid


__all__ = ["LandmarkFileError", "FileLandmarks", "read_pts", "read_landmark_file", "find_landmark_file"]
