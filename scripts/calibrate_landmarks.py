#!/usr/bin/env python
"""Fit the model's iBUG-68 landmark embedding to annotated photos (writes ``<model>_landmarks68.json``).

For each landmark k (the chin 8 and the inner points 17-67; the other jaw points march along the
outline, see below) the script looks for the point of the model's surface, one triangle f and barycentric
weights w, whose projections through fitted meshes land nearest to the annotators' points:

    (f_k, w_k) = argmin_{f, w}  mean_i  ‖ Σ_j w_j · P_i(V_{f_j}) − g_ik ‖ / d_i

with P_i the fitted mesh of photo i projected into its crop, g_ik the annotation (crop pixels) and
d_i the annotated outer-eye-corner distance: the normalized mean error (NME) that the evaluation
scores. Candidates are the face triangles within ``--radius`` of the landmark's current point on the
mean face, each on a barycentric grid, refined once on a finer grid around the best. Fits and
embedding depend on each other, so the two alternate for ``--rounds`` rounds (fit with the current
table, re-place every landmark).

Jaw points 0-7 and 9-16 are the outermost vertex of a contour line at one height of the face
(:func:`morphable_models.contours.contour_line`), and where along the jaw the annotators put each
one is a convention of its own: for each, the script tries as the line's anchor every vertex of the
neutral face's frontal outline within half the distance to its neighbours and keeps the one whose
marched points (in the same fitted meshes) land nearest to the annotations (``--no-jaw``: keep the
model's lines).

The photos are one split of ``shared/images/300w-train`` (``--split calibration``: the even
positions of the sorted file list; ``scripts/eval_real.py --split evaluation`` reports on the odd
ones), with MediaPipe's landmarks as the fit's targets, as ``prdlfit fit`` uses them.

Usage (the shipped table's note records how its fixed points were made; the jaw lines on top of
them, written over the shipped table):
    PRDLFIT_CACHE=.cache python scripts/calibrate_landmarks.py --start calibrated --rounds 1 --jaw-only
A further round of the fixed points over the shipped table, its jaw lines kept (session 14's round 3,
after the defaults had moved the fits):
    PRDLFIT_CACHE=.cache python scripts/calibrate_landmarks.py --limit 40 --start calibrated --rounds 1 --fixed-only
A whole new table from the model's own vertices:
    PRDLFIT_CACHE=.cache python scripts/calibrate_landmarks.py --rounds 2 --out my_table.json
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
from fitter.losses.landmarks import jaw_outward_directions
from fitter.metrics import face_vertex_indices
from fitter.optimize import Fitter
from fitter.targets.landmark_files import read_pts
from fitter.targets.pipeline import TargetConfig, build_targets
from morphable_models.contours import contour_line, line_frame, pad_lines
from morphable_models.landmark_embedding import LandmarkEmbedding, embed_landmarks, embedding_path, packaged_embedding

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fit_arguments import read_losses  # noqa: E402
from real_data import split_300w  # noqa: E402

#: the iBUG points the table places: the chin and everything but the jaw outline
EMBEDDED = [8] + list(range(17, 68))


def barycentric_grid(steps: int) -> np.ndarray:
    """[G, 3] all weights (a, b, c) >= 0 with a + b + c = 1 on a grid of 1/steps."""
    pts = [(i / steps, j / steps, (steps - i - j) / steps) for i in range(steps + 1) for j in range(steps + 1 - i)]
    return np.asarray(pts, np.float64)


def place_landmark(proj: np.ndarray, gt: np.ndarray, scale: np.ndarray, tris: np.ndarray, grid: np.ndarray):
    """Best (triangle row, weights, cost) for one landmark.

    Args:
        proj: [N, V, 2] projected fitted meshes (crop pixels). gt: [N, 2] annotations (crop pixels).
        scale: [N] normalisation (outer-eye-corner distance, pixels). tris: [T, 3] candidate triangles.
        grid: [G, 3] barycentric weights tried on each triangle.
    Returns:
        (t, w [3], cost) with cost the mean normalized distance over the N photos.
    """
    corners = proj[:, tris]  # [N, T, 3, 2]
    pts = np.einsum("ntjc,gj->ntgc", corners, grid)  # [N, T, G, 2]
    err = np.linalg.norm(pts - gt[:, None, None], axis=-1) / scale[:, None, None]
    cost = err.mean(0)  # [T, G]
    t, g = np.unravel_index(np.argmin(cost), cost.shape)
    return int(t), grid[g], float(cost[t, g])


def calibrate(model, proj: np.ndarray, gts: np.ndarray, scale: np.ndarray, radius: float) -> LandmarkEmbedding:
    """One round: place every EMBEDDED landmark given the fits' projections (see module doc)."""
    face = set(face_vertex_indices(model).tolist())
    tri = model.triangles.cpu().numpy()
    tri = tri[np.isin(tri, list(face)).all(1)]
    mean = model.mean.cpu().numpy()
    centroid = mean[tri].mean(1)
    coarse, fine = barycentric_grid(6), barycentric_grid(24)
    rows, weights = [], []
    for k in EMBEDDED:
        here = mean[int(model.landmarks68[k])]
        near = np.flatnonzero(np.linalg.norm(centroid - here, axis=1) < radius)
        t, _, _ = place_landmark(proj, gts[:, k], scale, tri[near], coarse)
        best = tri[near[t]]
        ring = near[np.isin(tri[near], best).any(1)]  # the best triangle and its neighbours
        t, w, cost = place_landmark(proj, gts[:, k], scale, tri[ring], fine)
        rows.append(tri[ring[t]])
        weights.append(w)
    return LandmarkEmbedding(landmarks=torch.tensor(EMBEDDED), triangles=torch.from_numpy(np.stack(rows)).long(),
                             weights=torch.from_numpy(np.stack(weights)).float(), model=model.name)


def march_cost(proj: np.ndarray, line: np.ndarray, normal: np.ndarray, gt: np.ndarray, scale: np.ndarray) -> float:
    """Mean normalized distance between the marched point of ``line`` [L] (the outermost along
    ``normal`` [N, 2] in each fit's projection [N, V, 2]) and the annotations ``gt`` [N, 2]."""
    pts = proj[:, line]  # [N, L, 2]
    best = np.argmax((pts * normal[:, None]).sum(-1), axis=1)
    marched = pts[np.arange(len(pts)), best]
    return float((np.linalg.norm(marched - gt, axis=1) / scale).mean())


def calibrate_jaw(model, proj: np.ndarray, gts: np.ndarray, scale: np.ndarray, anchors: np.ndarray):
    """Jaw lines: for each jaw point j (0-7, 9-16) the anchor whose line marches nearest to the annotations.

    Candidate anchors are the points of the neutral face's frontal outline (the outermost vertex of
    their own line along the outward normal) within half the distance to the neighbouring jaw
    points of the current anchor ``anchors[j]``; normals come from each fit's projection of
    ``anchors`` (as in the fit).

    Returns:
        (jaw landmark ids [J], anchors [J], lines: list of J int arrays).
    """
    mean = model.mean.cpu().numpy().astype(np.float64)[: model.num_mesh_vertices]
    skin = model.parts["skin"].cpu().numpy()
    skin = skin[skin < model.num_mesh_vertices]
    frame = line_frame(mean, model.landmarks68.cpu().numpy())
    front = mean[:, :2] * np.array([1.0, -1.0])  # a frontal orthographic view, image axes
    index = model.landmarks68.clone()
    index[:17] = torch.from_numpy(anchors)
    normals = jaw_outward_directions(torch.from_numpy(proj), index).numpy()  # [N, 17, 2]
    front_normal = jaw_outward_directions(torch.from_numpy(front)[None], index)[0].numpy()  # [17, 2]
    ids, picked, lines = [], [], []
    for j in [k for k in range(17) if k != 8]:
        here = front[anchors[j]]
        reach = 0.5 * min(np.linalg.norm(here - front[anchors[k]]) for k in (j - 1, j + 1) if 0 <= k <= 16)
        near = skin[np.linalg.norm(front[skin] - here, axis=1) <= reach]
        best = (march_cost(proj, contour_line(mean, int(anchors[j]), skin, frame), normals[:, j], gts[:, j], scale),
                int(anchors[j]), contour_line(mean, int(anchors[j]), skin, frame))
        for v in near:
            line = contour_line(mean, int(v), skin, frame)
            if line[np.argmax(front[line] @ front_normal[j])] != v:
                continue  # not on the frontal outline
            cost = march_cost(proj, line, normals[:, j], gts[:, j], scale)
            if cost < best[0]:
                best = (cost, int(v), line)
        ids.append(j)
        picked.append(best[1])
        lines.append(best[2])
    return ids, picked, lines


def fitted(model, targets, args):
    """``(i, FitResult)`` for each of ``targets`` that fits (``args``: ``losses``, ``iters``,
    ``rigid_iters``, ``batch``), in batches, with progress on stderr."""
    fitter = Fitter(model, FitConfig(loss_weights=args.losses, iters=args.iters, rigid_iters=args.rigid_iters, device="cpu"))
    for s in range(0, len(targets), args.batch):
        chunk = list(range(s, min(s + args.batch, len(targets))))
        for i, res in zip(chunk, fitter.fit([targets[i] for i in chunk])):
            if not res.failure:
                yield i, res
        print(f"  fitted {chunk[-1] + 1}/{len(targets)}", file=sys.stderr, flush=True)


def fit_projections(model, targets, gts_orig, args):
    """([N, V, 2] fitted projections, [N, 68, 2] annotations, [N] eye distances), all crop pixels."""
    proj, gts, scale = [], [], []
    for i, res in fitted(model, targets, args):
        g = res.targets.crop.to_crop(gts_orig[i])
        proj.append(res.vertices_image[: model.num_mesh_vertices].astype(np.float64))
        gts.append(g)
        scale.append(np.linalg.norm(g[36] - g[45]))
    return np.stack(proj), np.stack(gts), np.asarray(scale)


def with_jaw_of(table: LandmarkEmbedding, other: LandmarkEmbedding) -> LandmarkEmbedding:
    """``table``'s fixed points with ``other``'s jaw lines (``--fixed-only``: a new round of the fixed
    points over a table whose jaw lines were placed on their own)."""
    return replace(table, jaw_landmarks=other.jaw_landmarks, jaw_anchors=other.jaw_anchors, jaw_lines=other.jaw_lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=os.environ.get("PRDLFIT_SHARED", "/work/shared"))
    ap.add_argument("--split", default="calibration", choices=["calibration", "evaluation", "all"])
    ap.add_argument("--limit", type=int, default=None, help="first N photos of the split")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--start", default="vertices", choices=["vertices", "calibrated"],
                    help="the landmarks of the first round's fits")
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--rigid-iters", type=int, default=50)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--loss", action="append", default=[], metavar="NAME=W", help="loss weights of the fits")
    ap.add_argument("--radius", type=float, default=1.5, help="candidate triangles within this distance (model units)")
    ap.add_argument("--no-jaw", dest="jaw", action="store_false",
                    help="leave the jaw points' contour lines as the model has them")
    ap.add_argument("--jaw-only", action="store_true",
                    help="keep the starting table's fixed points and place only the jaw lines")
    ap.add_argument("--fixed-only", action="store_true",
                    help="keep the starting table's jaw lines and place only the fixed points")
    ap.add_argument("--out", default=str(embedding_path("ict")))
    args = ap.parse_args()
    args.losses = read_losses(ap, args.loss)

    photos = split_300w(args.shared, args.split)[: args.limit]
    base = morphable_models.load("ict", landmarks="vertices")
    model = morphable_models.load("ict", landmarks=args.start)
    targets, gts = [], []
    for jpg in photos:
        found = build_targets(jpg, TargetConfig())
        if found:
            targets.append(found[0])
            gts.append(read_pts(os.path.splitext(jpg)[0] + ".pts"))
    print(f"{len(targets)} of {len(photos)} photos with a face ({args.split} split)", file=sys.stderr)
    emb = None
    start_table = packaged_embedding("ict") if args.start == "calibrated" else None
    if args.jaw_only and start_table is None:
        ap.error("--jaw-only needs --start calibrated (the table whose fixed points it keeps)")
    if args.fixed_only and (start_table is None or args.jaw_only):
        ap.error("--fixed-only needs --start calibrated (the table whose jaw lines it keeps), without --jaw-only")
    for r in range(args.rounds):
        t0 = time.perf_counter()
        proj, g, scale = fit_projections(model, targets, gts, args)
        if args.jaw_only:
            emb = emb or start_table
        else:
            emb = calibrate(base, proj, g, scale, args.radius)
        if args.fixed_only:
            emb = with_jaw_of(emb, start_table)
        elif args.jaw:
            anchors = model.landmarks68[:17].cpu().numpy().copy()
            anchors[8] = int(base.landmarks68[8])  # the chin's own vertex (the fits' projections hold mesh vertices)
            ids, picked, lines = calibrate_jaw(base, proj, g, scale, anchors)
            emb = replace(emb, jaw_landmarks=torch.tensor(ids), jaw_anchors=torch.tensor(picked),
                          jaw_lines=torch.from_numpy(pad_lines(lines)))
        model = embed_landmarks(base, emb)
        print(f"round {r + 1}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    assert emb is not None
    flags = ("" if args.jaw else " --no-jaw") + (" --jaw-only" if args.jaw_only else "") + \
        (" --fixed-only" if args.fixed_only else "")
    note = (f"scripts/calibrate_landmarks.py --split {args.split} --start {args.start} --rounds {args.rounds} "
            f"--iters {args.iters} --rigid-iters {args.rigid_iters}{flags} on {len(targets)} 300-W training photos, "
            f"MediaPipe landmarks as targets")
    if args.jaw_only:
        note = f"{start_table.note}; jaw lines: {note}"
    elif args.fixed_only:
        note = f"{note}; jaw lines kept from the starting table ({start_table.note})"
    emb = replace(emb, model="ict", note=note)
    emb.save(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
