#!/usr/bin/env python
"""Early-stopping rules on real photos: where each would stop, and what it costs in accuracy (issue 16).

Each 300-W photo of a split is fitted once to the iteration cap with early stopping off, keeping
the objective of every iteration (the history) and the fitted points after every step (snapshots).
Every rule is then replayed on those records, per photo, with the fitter's own
``fitter.fit.stopping.EarlyStop`` as the main stage applies it: stop at the first iteration k
where the relative change of the objective stayed below ``tol`` for ``patience`` iterations in a
row (visibility-refresh iterations neither count nor break the streak), then keep the lowest
objective logged up to k (the best-iterate restore). The landmarks of that iterate are scored against the annotations (NME,
outer eye corners, per region). A replay is exact for the main stage; the rigid stage runs its cap
here (a real run stops it by the same rule, which moves the main stage's start a little: confirm
a chosen rule with ``scripts/eval_real.py``, which reports iterations and stop reasons).

Usage:
    PRDLFIT_CACHE=.cache python scripts/bench_stopping.py --split calibration --offset 40 --limit 24 \\
        --rules 5e-4:10 1e-3:10 1.5e-3:10 2e-3:10 [--out stopping.md]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np
import torch

import morphable_models
from fitter import losses as L
from fitter.config import FitConfig
from fitter.fit.stopping import EarlyStop
from fitter.optimize import Fitter
from fitter.targets.landmark_files import read_pts
from fitter.targets.pipeline import TargetConfig, build_targets
from morphable_models.model import REGIONS_68

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from eval_real import region_nme  # noqa: E402
from real_data import SPLITS, split_300w  # noqa: E402
from report_io import emit  # noqa: E402


@dataclass
class Record:
    """One photo fitted to the cap: main-stage objective per logged iteration and the
    original-pixel landmarks after every step (iteration number → [68, 2])."""

    name: str
    iterations: np.ndarray  # [n] global iteration numbers of the main stage's rows
    total: np.ndarray  # [n] objective logged at those iterations (before their step)
    landmarks: Dict[int, np.ndarray]
    truth: np.ndarray  # [68, 2]


def parse_rule(text: str) -> Tuple[float, int]:
    tol, sep, pat = text.partition(":")
    try:
        rule = (float(tol), int(pat) if sep else 10)
    except ValueError:
        raise SystemExit(f"a rule is TOL[:PATIENCE], e.g. 1e-3:10; got {text!r}") from None
    if rule[0] < 0 or rule[1] < 1:
        raise SystemExit(f"a rule needs TOL >= 0 and PATIENCE >= 1; got {text!r}")
    return rule


def replay(rec: Record, tol: float, patience: int, refresh_every: int) -> Tuple[int, np.ndarray]:
    """(main-stage iterations run, landmarks of the restored iterate) under one rule."""
    E, n = rec.total, len(rec.total)
    stop, early = n, EarlyStop(1, torch.device("cpu"), tol, patience)
    for k in range(n):
        refreshed = k % max(1, refresh_every) == 0
        if bool(early.update(torch.tensor([E[k]]), refreshed)[0]):
            stop = k + 1
            break
    best = int(np.argmin(E[:stop]))
    # the row of iteration i was evaluated before step i: the parameters after step i - 1
    before = rec.iterations[best] - 1
    key = max((i for i in rec.landmarks if i <= before), default=min(rec.landmarks))
    return stop, rec.landmarks[key]


def record(fitter: Fitter, model, photos: List[str], batch: int) -> List[Record]:
    out: List[Record] = []
    t0 = time.perf_counter()
    for s in range(0, len(photos), batch):
        chunk = photos[s: s + batch]
        targets = [build_targets(p, TargetConfig())[0] for p in chunk]
        for p, t, r in zip(chunk, targets, fitter.fit(targets)):
            rows = [row for row in r.history.rows if row["stage"] == "full"]
            lm = {}
            for it, pts in r.snapshots:
                pts_t = torch.from_numpy(pts)[None]
                idx = L.march_contour_landmarks(pts_t, model.contour_candidates.cpu(), model.landmarks68.cpu())[0]
                lm[it] = t.crop.to_original(pts[idx.numpy()].astype(np.float64))
            out.append(Record(os.path.basename(p), np.array([row["iteration"] for row in rows]),
                              np.array([row["total"] for row in rows]), lm, read_pts(os.path.splitext(p)[0] + ".pts")))
        print(f"{s + len(chunk)}/{len(photos)} fitted, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=os.environ.get("PRDLFIT_SHARED", "../shared"))
    ap.add_argument("--split", default="calibration", choices=SPLITS)
    ap.add_argument("--offset", type=int, default=0, help="first photo of the split")
    ap.add_argument("--limit", type=int, default=24, help="photos")
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--rigid-iters", type=int, default=50)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rules", nargs="+", default=["5e-4:10", "1e-3:10", "1.5e-3:10", "2e-3:10"],
                    help="TOL[:PATIENCE] (rel_tol and patience of FitConfig)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rules = [parse_rule(r) for r in args.rules]
    photos = split_300w(args.shared, args.split)[args.offset: args.offset + args.limit]
    if not photos:
        raise SystemExit(f"no 300-W photos under {args.shared}/images/300w-train for this split and range")
    model = morphable_models.load("ict")
    cfg = FitConfig(device="cpu", iters=args.iters, rigid_iters=args.rigid_iters, rel_tol=0.0, snapshot_every=1)
    recs = record(Fitter(model, cfg), model, photos, args.batch)

    cols = list(REGIONS_68) + ["all"]

    def photo_nme(pred: np.ndarray, truth: np.ndarray) -> Dict[str, float]:
        d = region_nme(pred, truth)
        d["all"] = float(np.linalg.norm(pred - truth, axis=1).mean() / np.linalg.norm(truth[36] - truth[45]))
        return d

    def table_row(label: str, stopped: str, its: str, lms: List[np.ndarray], rise: str) -> str:
        per = [photo_nme(p, r.truth) for p, r in zip(lms, recs)]
        return (f"| {label} | {stopped} | {its} | " + " | ".join(f"{np.mean([d[c] for d in per]):.4f}" for c in cols)
                + f" | {rise} |")

    cap_lms = [replay(r, 0.0, 10**9, cfg.visibility_every)[1] for r in recs]
    cap_all = [photo_nme(p, r.truth)["all"] for p, r in zip(cap_lms, recs)]
    lines = [f"300-W {args.split} split, photos {args.offset}-{args.offset + len(recs) - 1} (n={len(recs)}), "
             f"MediaPipe front end, default settings, {args.rigid_iters} rigid + {args.iters} main iterations "
             f"recorded without early stopping, replayed per rule (main stage; best iterate kept).", "",
             "| rule (rel_tol:patience) | stopped before the cap | main iterations median (min-max) | "
             + " | ".join(f"NME {c}" for c in cols) + " | largest NME rise on a photo |",
             "|---|---:|---|" + "---:|" * (len(cols) + 1),
             table_row("none (the cap)", f"0/{len(recs)}", str(args.iters), cap_lms, "–")]
    for tol, pat in rules:
        out = [replay(r, tol, pat, cfg.visibility_every) for r in recs]
        its = np.array([o[0] for o in out])
        lms = [o[1] for o in out]
        rise = max(photo_nme(p, r.truth)["all"] - c for p, r, c in zip(lms, recs, cap_all))
        lines.append(table_row(f"{tol:g}:{pat}", f"{int((its < args.iters).sum())}/{len(recs)}",
                               f"{np.median(its):.0f} ({its.min()}-{its.max()})", lms, f"{rise:+.4f}"))
    return emit("\n".join(lines), args.out)


if __name__ == "__main__":
    sys.exit(main())
