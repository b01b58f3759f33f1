"""Derive MediaPipe's mirror table (``fitter.targets.mediapipe_views.MIRROR``) from photos.

The face mesh's 478 points have no published left-right pairing in the ``mediapipe`` wheel. This
script finds it from the meshes themselves: it runs the mesh (one view, no averaging) on the 300-W
calibration photos, aligns the 3D meshes to their mean by similarity (Procrustes), mirrors the mean
shape (x -> -x), places the mirror image on the mean by a similarity fitted on points whose pairs
are known (the outer and inner eye corners, the mouth corners, and points of the mid-line), and
matches the mirrored points to the mean's one to one (Hungarian assignment on squared distances),
re-fitting the placement on the whole matching a few times. It checks that the result is an
involution and that it pairs the part polygons of :mod:`morphable_models.mediapipe_topology`
(right eye onto left eye, brow rows, outer lips), then prints the table as Python source.

    python scripts/mediapipe_mirror.py [--shared ../shared] [--split calibration]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from fitter.metrics_3d import umeyama
from fitter.targets.io import read_image
from fitter.targets.mediapipe_mesh import detect_faces, mesh_in_box
from fitter.targets.mediapipe_views import SINGLE_VIEW
from morphable_models import mediapipe_topology as T

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_data import SPLITS, split_300w  # noqa: E402

#: (point, its mirror) pairs known from the mesh's layout, used to place the mirror image first
KNOWN = ((33, 263), (133, 362), (61, 291), (1, 1), (152, 152), (10, 10), (4, 4), (13, 13), (14, 14))


def _normalized(points: np.ndarray) -> np.ndarray:
    p = points - points.mean(0)
    return p / np.sqrt((p ** 2).sum(1).mean())


def mean_shape(meshes) -> np.ndarray:
    """[N, 3] Procrustes mean of meshes [M][N, 3] (unit RMS size)."""
    shapes = [_normalized(m) for m in meshes]
    ref = shapes[0]
    for _ in range(3):
        ref = _normalized(np.mean([umeyama(s, ref, with_scale=False).apply(s) for s in shapes], axis=0))
    return ref


def mirror_table(ref: np.ndarray, rounds: int = 6) -> np.ndarray:
    """[N] int: the point of ``ref`` [N, 3] that mirrors each point."""
    mirrored = ref * np.array([-1.0, 1.0, 1.0])
    src, dst = [a for a, _ in KNOWN] + [b for _, b in KNOWN], [b for _, b in KNOWN] + [a for a, _ in KNOWN]
    perm = np.arange(len(ref))
    for _ in range(rounds):
        placed = umeyama(mirrored[src], ref[dst], with_scale=False).apply(mirrored)
        cost = ((placed[:, None] - ref[None]) ** 2).sum(-1)
        _, perm = linear_sum_assignment(cost)
        src, dst = list(range(len(ref))), list(perm)
    return perm


def check(perm: np.ndarray) -> None:
    if not np.array_equal(perm[perm], np.arange(len(perm))):
        raise SystemExit("the matching is not an involution: more photos are needed")
    for right, left in ((T.RIGHT_EYE, T.LEFT_EYE), (T.RIGHT_BROW_UPPER, T.LEFT_BROW_UPPER),
                        (T.RIGHT_BROW_LOWER, T.LEFT_BROW_LOWER)):
        if any(perm[a] != b for a, b in zip(right, left)):
            raise SystemExit("the matching does not pair the eye / brow polygons")
    upper = T.LIPS_OUTER_UPPER
    if any(perm[a] != b for a, b in zip(upper, reversed(upper))):
        raise SystemExit("the matching does not pair the outer upper lip")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_shared = str(Path(__file__).resolve().parents[1].parent / "shared")
    ap.add_argument("--shared", default=os.environ.get("PRDLFIT_SHARED", default_shared))
    ap.add_argument("--split", default="calibration", choices=SPLITS)
    args = ap.parse_args(argv)
    meshes = []
    for path in split_300w(args.shared, args.split):
        rgb = read_image(path)
        faces = detect_faces(rgb)
        mesh = mesh_in_box(rgb, faces[0].box, views=SINGLE_VIEW) if faces else None
        if mesh is not None:
            meshes.append(mesh[:, :3])
    perm = mirror_table(mean_shape(meshes))
    check(perm)
    print(f"# {len(meshes)} meshes of the 300-W {args.split} split; {int(np.sum(perm == np.arange(len(perm))))} "
          "points on the mid-line")
    print("MIRROR = (")
    row = "    "
    for v in perm:
        piece = f"{int(v)}, "
        if len(row) + len(piece) > 118:
            print(row.rstrip())
            row = "    "
        row += piece
    print(row.rstrip())
    print(")")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
