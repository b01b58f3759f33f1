"""Fit the MediaPipe-mesh -> iBUG-68 table of fitter/targets/mediapipe_68.py on 300-W annotations.

For each iBUG point the K mesh vertices nearest to it on average are combined with non-negative
weights summing to one (least squares over the faces, errors divided by the outer-eye-corner
distance). The faces are one split of ``300w-train`` (``scripts/real_data.py``; default the
calibration half, so that the front end's 68 points stay unseen on the evaluation half that
``eval_real.py`` reports on). Prints the 5-fold cross-validated NME on the split, the NME on the
other half, and the table as Python source to paste.

The meshes are MediaPipe's single view (``--mesh-views single``, the default here): the table in the
package was fitted on them. The front end averages several views since session 21
(``TargetConfig.mesh_views``); refitted on those averaged meshes the table scored a 5-fold CV NME of
4.25% on the calibration split, where the single-view table scores 4.19% on the same meshes, so it
was kept (BENCHMARKS.md "Session 21").

    python scripts/fit_mediapipe68.py [--shared ../shared] [-k 6] [--split calibration] [--mesh-views single]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

from fitter.targets.io import read_image
from fitter.targets.landmark_files import read_pts
from fitter.targets.mediapipe_68 import snap_jaw_to_hull
from fitter.targets.mediapipe_mesh import face_meshes
from fitter.targets.mediapipe_views import VIEW_SETS, views_named

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_data import SPLITS, split_300w  # noqa: E402


def fit_table(meshes: np.ndarray, gt: np.ndarray, k: int = 6, lam: float = 1e3):
    """meshes [N, 478, 2], gt [N, 68, 2] -> ([68, k] indices, [68, k] weights)."""
    d = np.linalg.norm(gt[:, 36] - gt[:, 45], axis=-1)
    idx = np.zeros((68, k), dtype=np.int64)
    wts = np.zeros((68, k))
    for i in range(68):
        dist = np.mean(np.linalg.norm(meshes - gt[:, i:i + 1], axis=-1) / d[:, None], 0)
        cand = np.argsort(dist)[:k]
        A = np.concatenate([meshes[:, cand, 0] / d[:, None], meshes[:, cand, 1] / d[:, None]], 0)
        b = np.concatenate([gt[:, i, 0] / d, gt[:, i, 1] / d])
        w, _ = nnls(np.vstack([A, lam * np.ones((1, k))]), np.concatenate([b, [lam]]))
        w = np.where(w < 0.01, 0.0, w)
        idx[i], wts[i] = cand, w / w.sum()
    return idx, wts


def apply(idx, wts, meshes):
    out = np.einsum("ik,nikc->nic", wts, meshes[:, idx])
    return np.stack([snap_jaw_to_hull(o, m) for o, m in zip(out, meshes)])


def nme(pred, gt):
    return np.linalg.norm(pred - gt, axis=-1).mean(1) / np.linalg.norm(gt[:, 36] - gt[:, 45], axis=-1)


def _load(photos, views="single"):
    """([N, 478, 2] MediaPipe meshes, [N, 68, 2] annotations) of the photos where a face is found."""
    meshes, gts = [], []
    for path in photos:
        jpg = Path(path)
        found = face_meshes(read_image(jpg), max_faces=1, views=views_named(views))
        if not found:
            print(f"no face: {jpg.name}", file=sys.stderr)
            continue
        meshes.append(found[0][1][:, :2])
        gts.append(read_pts(jpg.with_suffix(".pts")))
    return np.stack(meshes), np.stack(gts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_shared = str(Path(__file__).resolve().parents[1].parent / "shared")
    ap.add_argument("--shared", default=os.environ.get("PRDLFIT_SHARED", default_shared))
    ap.add_argument("-k", type=int, default=6)
    ap.add_argument("--split", default="calibration", choices=SPLITS, help="the 300-W photos to fit on")
    ap.add_argument("--mesh-views", default="single", choices=list(VIEW_SETS), help="MediaPipe's views per mesh")
    args = ap.parse_args(argv)
    meshes, gts = _load(split_300w(args.shared, args.split), args.mesh_views)
    other = {"calibration": "evaluation", "evaluation": "calibration"}.get(args.split)
    folds = np.arange(len(meshes)) % 5
    cv = np.zeros(len(meshes))
    for f in range(5):
        te = folds == f
        idx, wts = fit_table(meshes[~te], gts[~te], args.k)
        cv[te] = nme(apply(idx, wts, meshes[te]), gts[te])
    idx, wts = fit_table(meshes, gts, args.k)
    in_sample = 100 * nme(apply(idx, wts, meshes), gts).mean()
    line = f"# 300-W {args.split} split, {len(meshes)} faces, 5-fold CV NME {100 * cv.mean():.2f}%, in-sample {in_sample:.2f}%"
    if other:
        held_meshes, held_gts = _load(split_300w(args.shared, other), args.mesh_views)
        line += f"; {other} split ({len(held_meshes)}) {100 * nme(apply(idx, wts, held_meshes), held_gts).mean():.2f}%"
    print(line)
    print("TABLE = (")
    for i in range(68):
        items = ", ".join(f"({int(v)}, {w:.3f})" for v, w in zip(idx[i], wts[i]) if w > 0)
        print(f"    ({items},),  # {i}")
    print(")")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
