"""The fit converging as a GIF or MP4: the reprojected parts every N iterations.

``prdlfit fit --snapshots N`` keeps the projected points every N iterations
(``FitResult.snapshots``); the writer stores them in ``snapshots.npz`` together with what a frame
needs (triangles, their part labels, the fitting crop), so ``prdlfit curves --animate`` works from
the output folder alone.

Snapshots carry no depth, so a frame paints the parts in a fixed order (skin, nose, lips, brows,
eyes on top) instead of z-buffering them; for a face seen from the front that is what is visible.

``snapshots.npz`` keys: ``iterations`` [S] int64; ``points`` [S, V, 2] float32 crop pixels;
``triangles`` [F, 3] int64 (mesh and hole triangles); ``tri_labels`` [F] int64 part labels;
``image`` [H, W, 3] uint8 RGB fitting crop (absent when the targets had no image);
``size`` (W, H) of the crop.
"""
from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import cv2
import numpy as np
import torch

from fitter.geometry.raster import rasterize_labels
from fitter.outputs.atomic import PathLike, atomic_path
from fitter.palette import label_colors
from fitter.result import FitResult, LossHistory
from morphable_models.model import PART_NAMES, MorphableModel

#: paint order priority (lower = drawn on top): eyes, brows, lips, nose, skin; 0 (no part) never drawn.
_PRIORITY = {"right_eye": 0, "left_eye": 0, "right_brow": 1, "left_brow": 1, "up_lip": 2, "down_lip": 2,
             "nose": 3, "skin": 4}
PART_ALPHA = 0.5


@dataclass
class Snapshots:
    """The content of ``snapshots.npz`` (see module docstring for shapes)."""

    iterations: np.ndarray
    points: np.ndarray
    triangles: np.ndarray
    tri_labels: np.ndarray
    size: tuple
    image: Optional[np.ndarray] = None

    def arrays(self) -> Dict[str, np.ndarray]:
        out = {"iterations": self.iterations, "points": self.points, "triangles": self.triangles,
               "tri_labels": self.tri_labels, "size": np.array(self.size, dtype=np.int64)}
        if self.image is not None:
            out["image"] = self.image
        return out


def snapshots_of(result: FitResult, model: MorphableModel) -> Optional[Snapshots]:
    """The snapshots of ``result`` (None when the fit kept none)."""
    snaps = getattr(result, "snapshots", None)
    if not snaps:
        return None
    tris, labels = model.all_triangles.cpu(), model.triangle_part_labels.cpu()
    image = result.targets.image if result.targets is not None else None
    return Snapshots(
        iterations=np.array([int(i) for i, _ in snaps], dtype=np.int64),
        points=np.stack([np.asarray(p, dtype=np.float32) for _, p in snaps]),
        triangles=tris.numpy(), tri_labels=labels.numpy(),
        size=(int(result.camera.width), int(result.camera.height)),
        image=None if image is None else np.asarray(image, dtype=np.uint8),
    )


def load_snapshots(path: PathLike) -> Snapshots:
    """Read ``snapshots.npz`` (ValueError naming the file when it is not one)."""
    try:
        with np.load(path) as z:
            return Snapshots(iterations=z["iterations"], points=z["points"], triangles=z["triangles"],
                             tri_labels=z["tri_labels"], size=tuple(int(s) for s in z["size"]),
                             image=z["image"] if "image" in z.files else None)
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:  # truncated/corrupt
        raise ValueError(f"{path}: not a snapshots file, or truncated ({' '.join(str(err).split())})") from None


def painted_parts(points: np.ndarray, triangles: np.ndarray, tri_labels: np.ndarray, size) -> np.ndarray:
    """[H, W] long part labels of triangles painted in the fixed part order (no depth needed).

    Args:
        points: [V, 2] projected points, pixels. triangles: [F, 3]. tri_labels: [F] part labels.
        size: (W, H).
    """
    keep = np.asarray(tri_labels) > 0
    tris, labs = np.asarray(triangles)[keep], np.asarray(tri_labels)[keep]
    prio = np.array([_PRIORITY[p] for p in PART_NAMES], dtype=np.float32)[labs - 1]
    # One private copy of the corners per triangle, at the triangle's paint depth.
    corners = torch.from_numpy(np.asarray(points, dtype=np.float32)[tris].reshape(-1, 2))
    depth = torch.from_numpy(np.repeat(prio, 3))
    own = torch.arange(len(corners)).view(-1, 3)
    return rasterize_labels(corners[None], depth[None], own, torch.from_numpy(labs), size)[0].numpy()


def animation_frames(snaps: Snapshots, history: Optional[LossHistory] = None, stride: int = 1,
                     scale: float = 2.0) -> List[np.ndarray]:
    """One RGB frame per ``stride``-th snapshot: the crop with the parts painted and the loss.

    Args:
        snaps: the snapshots.
        history: the fit's loss history (for the ``total`` printed on each frame), or None.
        stride: use every ``stride``-th snapshot (the last one is always included).
        scale: frame pixels per crop pixel.
    Returns:
        list of [H*scale, W*scale, 3] uint8 frames.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    W, H = snaps.size
    base = snaps.image if snaps.image is not None else np.full((H, W, 3), 128, np.uint8)
    out_size = (max(1, int(round(W * scale))), max(1, int(round(H * scale))))
    base = cv2.resize(base, out_size, interpolation=cv2.INTER_LINEAR).astype(np.float64)
    totals = {}
    if history is not None and len(history) and "total" in history.columns():
        totals = dict(zip(history.column("iteration").astype(int).tolist(), history.column("total").tolist()))
    picks = list(range(0, len(snaps.iterations), stride))
    if picks and picks[-1] != len(snaps.iterations) - 1:
        picks.append(len(snaps.iterations) - 1)
    frames = []
    for s in picks:
        pts = (snaps.points[s].astype(np.float64) + 0.5) * scale - 0.5
        labels = painted_parts(pts, snaps.triangles, snaps.tri_labels, out_size)
        img = base.copy()
        on = labels > 0
        img[on] = (1 - PART_ALPHA) * img[on] + PART_ALPHA * label_colors(labels[on])
        img = img.clip(0, 255).astype(np.uint8)
        it = int(snaps.iterations[s])
        text = f"iter {it}" + (f"  loss {totals[it]:.4g}" if it in totals else "")
        cv2.putText(img, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(img, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        frames.append(img)
    return frames


def write_animation(frames: List[np.ndarray], path: PathLike, fps: float = 5.0) -> Path:
    """Write frames as ``.gif`` (Pillow) or ``.mp4`` (OpenCV, mp4v) atomically; returns the path.

    Raises:
        ValueError: no frames, or a suffix other than .gif/.mp4.
    """
    path = Path(path)
    if not frames:
        raise ValueError("no frames to write")
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise ValueError(f"{path}: animation must be .gif or .mp4")
    with atomic_path(path) as tmp:
        if suffix == ".gif":
            from PIL import Image

            imgs = [Image.fromarray(f) for f in frames]
            imgs[0].save(tmp, format="GIF", save_all=True, append_images=imgs[1:],
                         duration=int(round(1000.0 / fps)), loop=0)
        else:
            h, w = frames[0].shape[:2]
            writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h))
            if not writer.isOpened():
                raise ValueError(f"{path}: OpenCV cannot write MP4 here; use .gif")
            try:
                for f in frames:
                    writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
            finally:
                writer.release()
    return path
