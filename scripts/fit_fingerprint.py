#!/usr/bin/env python
"""Behaviour fingerprint of ``Fitter``: fits 3 300-W photos under 7 configurations (default, paper,
L-BFGS, weak camera, sil_iou + pho, a batch of 3 with snapshots and lr decay, early stopping) and
pickles every result field, ``evaluate`` and ``prdl_descriptors_at``; ``--compare`` lists what
differs (coefficients, pose, iterations exactly; history and evaluate values to 1e-6 relative).
For refactors that must not change behaviour (issue 18): run it on the old and the new code
(``PYTHONPATH=OLD_CHECKOUT``) and compare. The sil_iou + pho case varies at ~1e-7 between runs of
the same code (threaded scatter sums); the others are deterministic on one machine.

Usage:
    python scripts/fit_fingerprint.py OUT.pkl [--shared DIR]
    python scripts/fit_fingerprint.py --compare A.pkl B.pkl
"""
import os
import pickle
import sys

import numpy as np


def run(out, shared):
    from dataclasses import replace

    from fitter.config import PAPER_FIT_OPTIONS, PAPER_LOSS_WEIGHTS, FitConfig
    from fitter.optimize import Fitter
    from fitter.targets.pipeline import TargetConfig, build_targets
    from morphable_models import registry

    photos = sorted(f for f in os.listdir(os.path.join(shared, "images", "300w-train")) if f.endswith(".jpg"))
    T = [build_targets(os.path.join(shared, "images", "300w-train", f), TargetConfig())[0] for f in photos[:40:13]]
    model = registry.load("ict")
    base = FitConfig(device="cpu")
    cfgs = {
        "default": (replace(base, iters=60), [T[0]]),
        "paper": (replace(base, iters=40, loss_weights=dict(PAPER_LOSS_WEIGHTS), **PAPER_FIT_OPTIONS), [T[1]]),
        "lbfgs": (replace(base, iters=8, optimizer="lbfgs"), [T[2]]),
        "weak": (replace(base, iters=30, camera="weak"), [T[0]]),
        "silpho": (replace(base, iters=15, loss_weights={**base.loss_weights, "sil_iou": 1e-2, "pho": 1e-2}), [T[1]]),
        "batch": (replace(base, iters=40, snapshot_every=10, lr_decay=0.3), T),
        "early": (replace(base, iters=200, rel_tol=1e-3, patience=3), [T[2]]),
    }
    res = {}
    for name, (cfg, targets) in cfgs.items():
        f = Fitter(model, cfg)
        rs = f.fit_targets(targets)
        rows = []
        for r in rs:
            rows.append(dict(id=r.id_coeffs, exp=r.exp_coeffs, R=r.rotation, t=r.translation, cam=r.camera,
                             final=r.final_losses, it=r.iterations, conv=r.converged, hist=r.history.rows,
                             lmk=r.landmarks2d, vis=r.visible, parts={k: v for k, v in r.part_points.items()},
                             snaps=[(i, p) for i, p in r.snapshots], failure=r.failure, config=r.config))
        r0 = rs[0]
        at = (targets[0], r0.id_coeffs, r0.exp_coeffs, r0.rotation, r0.translation)
        ev = f.evaluate(*at) if cfg.camera == "perspective" else None
        desc = f.prdl_descriptors_at(*at) if cfg.camera == "perspective" else None
        desc = tuple(d.numpy() for d in desc) if desc else None
        res[name] = dict(rows=rows, ev=ev, desc=desc)
        print(name, [r.iterations for r in rs], [round(r.final_losses["total"], 6) for r in rs], flush=True)
    pickle.dump(res, open(out, "wb"))

def cmp(a, b, path=""):
    """Paths where two fingerprints differ."""
    if isinstance(a, dict):
        if set(a) != set(b):
            return [f"{path}: keys {sorted(set(a) ^ set(b))}"]
        return [d for k in a for d in cmp(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return [f"{path}: len {len(a)} vs {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in cmp(x, y, f"{path}[{i}]")]
    if isinstance(a, np.ndarray):
        if a.shape != b.shape:
            return [f"{path}: shape"]
        if a.dtype == bool or a.dtype.kind in "iu":
            return [] if np.array_equal(a, b) else [f"{path}: differs"]
        diff = np.nanmax(np.abs(a - b)) if a.size else 0.0
        return [f"{path}: max diff {diff:.3g}"] if diff > 0 else []
    if isinstance(a, float):
        loose = (".hist[" in path or ".ev." in path) and abs(a - b) <= 1e-6 * max(abs(a), abs(b), 1e-9)
        same = a == b or loose or (np.isnan(a) and np.isnan(b))
        return [] if same else [f"{path}: {a!r} vs {b!r}"]
    if hasattr(a, "__dataclass_fields__"):
        return cmp(vars(a), vars(b), path)
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


if __name__ == "__main__":
    if sys.argv[1] == "--compare":
        a, b = (pickle.load(open(p, "rb")) for p in sys.argv[2:4])
        bad = cmp(a, b)
        print("\n".join(bad[:40]) or "IDENTICAL", f"({len(bad)} differences)")
    else:
        default = os.environ.get("PRDLFIT_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
        shared = sys.argv[sys.argv.index("--shared") + 1] if "--shared" in sys.argv else default
        run(sys.argv[1], shared)
