"""Fit the lids' opening map of fitter/targets/mediapipe_lids.py on 300-W annotations.

MediaPipe's averaged face meshes (the front end's, ``TargetConfig.mesh_views="averaged"``) of one
split of ``300w-train`` (``scripts/real_data.py``; default the calibration half), read through the
68-point table: each eye's opening is its two lid pairs' distance across the corner line over the
corner distance, for the annotations and for the front end. The map's three numbers (``below``,
``slope``, ``pivot``) are chosen on the split's first ``--fit`` photos by the mean squared opening
error over both eyes, and scored on the rest of the split (never the evaluation half, where
``eval_real.py`` reports): the eyes' NME, the error of the closed eyes' openings (annotated under
``--closed`` of the width) and the open eyes' bias. Prints the candidates, the chosen map and the
line to paste.

    python scripts/calibrate_lid_opening.py [--shared ../shared] [--split calibration] [--fit 40]
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
from pathlib import Path

import numpy as np

from fitter.targets.mediapipe_68 import mesh_to_ibug68
from fitter.targets.mediapipe_lids import LidOpeningMap, close_lids, lid_openings
from morphable_models.model import EYE_LIDS_68, REGIONS_68

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fit_mediapipe68 import _load  # noqa: E402
from real_data import SPLITS, split_300w  # noqa: E402

EYE_POINTS = list(REGIONS_68["eyes"])
BELOW = np.round(np.arange(0.06, 0.241, 0.02), 2)
SLOPE = (0.2, 0.5, 1.0, 2.0, 3.0, 5.0)
PIVOT = (0.2, 0.3, 0.4, 0.5)


def score(meshes, gts, lid_map, closed: float):
    """(squared opening error, eyes' NME, |error| of closed eyes' openings, open eyes' bias)."""
    sq, nme, closed_err, open_bias = [], [], [], []
    for mesh, gt in zip(meshes, gts):
        pts = mesh_to_ibug68(close_lids(mesh, lid_map))
        o, t = lid_openings(pts, EYE_LIDS_68), lid_openings(gt, EYE_LIDS_68)
        sq += list((o - t) ** 2)
        closed_err += list(np.abs(o - t)[t < closed])
        open_bias += list((o - t)[t >= closed])
        nme.append(np.linalg.norm(pts[EYE_POINTS] - gt[EYE_POINTS], axis=1).mean() / np.linalg.norm(gt[36] - gt[45]))
    return (float(np.mean(sq)), float(np.mean(nme)), float(np.mean(closed_err)) if closed_err else float("nan"),
            float(np.mean(open_bias)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_shared = str(Path(__file__).resolve().parents[1].parent / "shared")
    ap.add_argument("--shared", default=os.environ.get("PRDLFIT_SHARED", default_shared))
    ap.add_argument("--split", default="calibration", choices=SPLITS)
    ap.add_argument("--fit", type=int, default=40, help="choose on the split's first N photos, score on the rest")
    ap.add_argument("--closed", type=float, default=0.05, help="an annotated opening under this is a closed eye")
    ap.add_argument("--show", type=int, default=8, help="candidates printed")
    args = ap.parse_args(argv)
    meshes, gts = _load(split_300w(args.shared, args.split), "averaged")
    fit, rest = slice(0, args.fit), slice(args.fit, None)
    ranked = sorted((score(meshes[fit], gts[fit], LidOpeningMap(b, s, p), args.closed)[0], b, s, p)
                    for b, s, p in itertools.product(BELOW, SLOPE, PIVOT))
    head = "| map | photos | squared opening error | eyes' NME | closed eyes' opening error | open eyes' bias |"
    print(head + "\n|---|---|---:|---:|---:|---:|")
    rows = [("raw", None)] + [(f"below {b:.2f} slope {s:g} pivot {p:g}", LidOpeningMap(b, s, p))
                              for _, b, s, p in ranked[: args.show]]
    for name, lid_map in rows:
        for label, part in ((f"0-{args.fit - 1} (fit)", fit), (f"{args.fit}-{len(meshes) - 1}", rest)):
            sq, nme, ce, ob = score(meshes[part], gts[part], lid_map, args.closed)
            print(f"| {name} | {label} | {sq:.5f} | {nme:.4f} | {ce:.3f} | {ob:+.4f} |")
    _, b, s, p = ranked[0]
    print(f"\nCALIBRATED = LidOpeningMap(below={b:.2f}, slope={s:g}, pivot={p:g})"
          f"  # 300-W {args.split} photos 0-{args.fit - 1}, {len(meshes)} faces found")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
