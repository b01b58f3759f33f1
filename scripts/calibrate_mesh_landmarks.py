#!/usr/bin/env python
"""Place MediaPipe's face-mesh points on the model's surface (writes ``<model>_mediapipe478.json``).

For each mesh point k the script looks for the point of the model's surface, one triangle f and
barycentric weights w, whose projections through fitted meshes land nearest to where MediaPipe put
the point:

    (f_k, w_k) = argmin_{f, w}  mean_i  ‖ Σ_j w_j · P_i(V_{f_j}) − m_ik ‖ / d_i

with P_i the fitted mesh of photo i projected into its crop, m_ik MediaPipe's point (crop pixels)
and d_i the outer-eye-corner distance of the photo's 68 targets. The search starts at the face
vertex whose projections land nearest on average, tries the face triangles within ``--radius`` of
it on a barycentric grid, then refines on a finer grid around the best (the search of
``scripts/calibrate_landmarks.py``). Fits and table depend on each other: the fits run with the
default weights, whose ``mesh_lmk`` term reads the table the package already has (none before the
first table: the term is then 0), so each run is one more round over the shipped table;
``--rounds 2`` refits with the new table's term and places the points again.

The points placed are MediaPipe's 468 mesh points less the face oval (a silhouette) and the irises
(the eyeballs turn); ``--regions`` keeps only some of MediaPipe's regions. The photos are one split
of ``shared/images/300w-train`` (``--split calibration``, the first ``--limit``), with MediaPipe's
targets, as ``prdlfit fit`` uses them.

Usage (the shipped table: session 12's run without a table, then session 14's over it):
    PRDLFIT_CACHE=.cache python scripts/calibrate_mesh_landmarks.py --limit 40
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace

import numpy as np
import torch

import morphable_models
from fitter.config import FitConfig
from fitter.metrics import face_vertex_indices
from fitter.targets.mediapipe_regions import connection_points
from fitter.targets.pipeline import TargetConfig, build_targets
from morphable_models.mesh_landmarks import (
    MeshLandmarkEmbedding,
    embed_mesh_landmarks,
    mesh_landmarks_path,
    packaged_mesh_landmarks,
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from calibrate_landmarks import barycentric_grid, fitted, place_landmark  # noqa: E402
from fit_arguments import read_losses  # noqa: E402
from real_data import split_300w  # noqa: E402

#: MediaPipe's named regions (mediapipe.python.solutions.face_mesh_connections.FACEMESH_<NAME>)
REGIONS = ("lips", "left_eye", "right_eye", "left_eyebrow", "right_eyebrow", "nose")


def mesh_point_ids(regions=None) -> np.ndarray:
    """Sorted MediaPipe mesh indices to place: ``regions`` (names of :data:`REGIONS`) or, for
    None, every one of the 468 mesh points but the face oval's."""
    if regions:
        ids = connection_points(*(f"FACEMESH_{r.upper()}" for r in regions))
    else:
        ids = set(range(468)) - connection_points("FACEMESH_FACE_OVAL")
    return np.asarray(sorted(ids), np.int64)


def nearest_vertices(proj: np.ndarray, pts: np.ndarray, scale: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """[K] the candidate vertex whose projections [N, V, 2] land nearest (mean normalized distance)
    to each of the points ``pts`` [N, K, 2]."""
    sub = proj[:, candidates]  # [N, C, 2]
    out = np.empty(pts.shape[1], np.int64)
    for k in range(pts.shape[1]):
        d = np.linalg.norm(sub - pts[:, k : k + 1], axis=-1) / scale[:, None]  # [N, C]
        out[k] = candidates[int(np.argmin(d.mean(0)))]
    return out


def place_points(model, proj: np.ndarray, pts: np.ndarray, scale: np.ndarray, ids: np.ndarray, radius: float):
    """One round: a table for mesh points ``ids`` given the fits' projections (see module doc);
    also returns each point's mean normalized distance [K]."""
    face = np.asarray(face_vertex_indices(model))
    tri = model.triangles.cpu().numpy()
    tri = tri[np.isin(tri, face).all(1)]
    mean = model.mean.cpu().numpy()
    centroid = mean[tri].mean(1)
    coarse, fine = barycentric_grid(6), barycentric_grid(24)
    seeds = nearest_vertices(proj, pts, scale, face)
    rows, weights, costs = [], [], []
    for k, seed in enumerate(seeds):
        near = np.flatnonzero(np.linalg.norm(centroid - mean[seed], axis=1) < radius)
        t, _, _ = place_landmark(proj, pts[:, k], scale, tri[near], coarse)
        best = tri[near[t]]
        ring = near[np.isin(tri[near], best).any(1)]
        t, w, cost = place_landmark(proj, pts[:, k], scale, tri[ring], fine)
        rows.append(tri[ring[t]])
        weights.append(w)
        costs.append(cost)
    table = MeshLandmarkEmbedding(ids=torch.from_numpy(ids), triangles=torch.from_numpy(np.stack(rows)).long(),
                                  weights=torch.from_numpy(np.stack(weights)).float(), model=model.name)
    return table, np.asarray(costs)


def fit_projections(model, targets, args):
    """([N, V, 2] fitted projections, [N, 478, 2] MediaPipe points, [N] eye distances), crop pixels."""
    proj, pts, scale = [], [], []
    for _, res in fitted(model, targets, args):
        t = res.targets
        proj.append(res.vertices_image[: model.num_mesh_vertices].astype(np.float64))
        pts.append(np.asarray(t.mesh_points, np.float64))
        scale.append(float(np.linalg.norm(t.landmarks[36] - t.landmarks[45])))
    return np.stack(proj), np.stack(pts), np.asarray(scale)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=os.environ.get("PRDLFIT_SHARED", "/work/shared"))
    ap.add_argument("--split", default="calibration", choices=["calibration", "evaluation", "all"])
    ap.add_argument("--limit", type=int, default=40, help="first N photos of the split")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--rigid-iters", type=int, default=50)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--loss", action="append", default=[], metavar="NAME=W",
                    help="loss weights of the fits (rounds after the first also get the table's term: "
                         "give mesh_lmk=W)")
    ap.add_argument("--regions", nargs="*", choices=REGIONS, default=None,
                    help="only these MediaPipe regions (default: every mesh point but the face oval)")
    ap.add_argument("--radius", type=float, default=1.5, help="candidate triangles within this distance (model units)")
    ap.add_argument("--fits", default=None, metavar="NPZ",
                    help="keep the first round's fits in this file and read them from it when it exists")
    ap.add_argument("--out", default=str(mesh_landmarks_path("ict")))
    args = ap.parse_args()
    args.losses = read_losses(ap, args.loss)

    photos = split_300w(args.shared, args.split)[: args.limit]
    base = morphable_models.load("ict")
    # the table whose term the first round's fits carry (none when the fits leave the term off)
    weights = FitConfig(loss_weights=args.losses).loss_weights
    start = packaged_mesh_landmarks("ict") if weights["mesh_lmk"] > 0 else None
    targets = []
    for jpg in photos:
        found = build_targets(jpg, TargetConfig())
        if found and found[0].mesh_points is not None:
            targets.append(found[0])
    print(f"{len(targets)} of {len(photos)} photos with a face and a mesh ({args.split} split)", file=sys.stderr)
    ids = mesh_point_ids(args.regions)
    model, table = base, None
    for r in range(args.rounds):
        t0 = time.perf_counter()
        if r == 0 and args.fits and os.path.isfile(args.fits):
            with np.load(args.fits) as f:
                proj, pts, scale = f["proj"], f["pts"], f["scale"]
        else:
            proj, pts, scale = fit_projections(model, targets, args)
            if r == 0 and args.fits:
                np.savez(args.fits, proj=proj, pts=pts, scale=scale)
        table, cost = place_points(base, proj, pts[:, ids], scale, ids, args.radius)
        model = embed_mesh_landmarks(base, table)
        print(f"round {r + 1}: {len(ids)} points, mean distance {cost.mean():.4f} (largest {cost.max():.4f}) eye "
              f"distances, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    assert table is not None
    regions = " --regions " + " ".join(args.regions) if args.regions else ""
    note = (f"scripts/calibrate_mesh_landmarks.py --split {args.split} --limit {args.limit} --rounds {args.rounds} "
            f"--iters {args.iters} --rigid-iters {args.rigid_iters}{regions}"
            + "".join(f" --loss {x}" for x in args.loss)
            + f" on {len(targets)} 300-W training photos, MediaPipe targets")
    if start is not None:
        note += f"; the first round's fits with the mesh term of the table before it ({start.note})"
    table = replace(table, note=note)
    table.save(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
