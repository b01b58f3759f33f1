#!/usr/bin/env python
"""Speed benchmarks (issue 7, item 4).

1. Time per fit: synthetic cases (``random_case`` seeds 0..B-1) fitted as one batch of B = 1, 8
   (and 64 with ``--full``), landmarks + PRDL, on the CPU and on CUDA when available. Reports the
   batch wall time and the time per face.
2. PRDL forward + backward, naive full-matrix descriptors vs ours (chunked custom autograd), at
   growing (anchors × points) sizes; runs ``scripts/bench_prdl.py``'s worker in-process (time only;
   for memory run bench_prdl.py itself, which isolates each case in a subprocess).
3. Adam vs L-BFGS on the same synthetic case and settings: main-stage logged iterations and
   seconds until the objective first reaches the loss both reach (the larger of the two finals).
   Seconds are the fit's wall time × (rigid + main iterations reached) / (all iterations), since
   the history keeps no per-iteration clock.

4. ``--photo IMG``: the time split of one photo through ``prdlfit fit``'s steps in a fresh process
   each run (startup / targets / fit / outputs; ``scripts/time_split.py``), median of ``--repeats``;
   the whole-command wall time is measured pairwise against the yardstick with ``farm-bench``
   (BENCHMARKS.md).

Usage:
    PRDLFIT_CACHE=/work/main/.cache python scripts/bench_speed.py --iters 50 --out speed.md [--full]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import List

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_prdl  # noqa: E402
from report_io import emit  # noqa: E402

import morphable_models  # noqa: E402
from fitter.config import FitConfig  # noqa: E402
from fitter.optimize import Fitter  # noqa: E402
from fitter.synthetic import random_case  # noqa: E402

PRDL_CASES = ["256x1000", "1024x3000", "4096x8000", bench_prdl.FIT_CASE]


def available_devices() -> List[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def fit_times(model, devices: List[str], batches: List[int], iters: int, rigid: int, repeats: int = 3) -> List[str]:
    """Wall time of one batched fit per batch size; a batch of 1 is timed ``repeats`` times
    (median and range: a shared VM's timings vary by ±20 %), larger batches once."""
    cases = [random_case(model, seed=i) for i in range(max(batches))]
    lines = ["| device | batch | wall s | s per face | runs (s) |", "|---|---:|---:|---:|---|"]
    for dev in devices:
        for B in batches:
            fitter = Fitter(model, FitConfig(iters=iters, rigid_iters=rigid, device=dev))
            fitter.fit([cases[0].targets])  # warm-up (first-call allocations, kernels)
            walls = []
            for _ in range(repeats if B == 1 else 1):
                t0 = time.perf_counter()
                fitter.fit([c.targets for c in cases[:B]])
                if dev == "cuda":
                    torch.cuda.synchronize()
                walls.append(time.perf_counter() - t0)
            wall = float(np.median(walls))
            lines.append(f"| {dev} | {B} | {wall:.1f} | {wall / B:.2f} | {', '.join(f'{w:.1f}' for w in walls)} |")
            print(lines[-1], file=sys.stderr)
    return lines


def prdl_times(devices: List[str], repeats: int) -> List[str]:
    lines = ["| device | case (anchors × points) | naive ms | ours ms | naive / ours |", "|---|---|---:|---:|---:|"]
    for dev in devices:
        for case in PRDL_CASES:
            r = {}
            for impl in ("naive", "ours"):
                try:
                    r[impl] = bench_prdl.child(impl, case, dev, repeats, None)["time_s"] * 1e3
                except RuntimeError as err:  # out of memory on a large naive case
                    print(f"{impl} {case}: {err}", file=sys.stderr)
                    r[impl] = float("nan")
            label = "fit step (8 parts, 32×32, 3000 pts)" if case == bench_prdl.FIT_CASE else case
            lines.append(f"| {dev} | {label} | {r['naive']:.0f} | {r['ours']:.0f} | {r['naive'] / r['ours']:.1f}× |")
            print(lines[-1], file=sys.stderr)
    return lines


def reach(total: np.ndarray, level: float) -> int:
    """1-based index of the first value <= level (len + 1 if never)."""
    hit = np.nonzero(total <= level * (1 + 1e-6))[0]
    return int(hit[0]) + 1 if len(hit) else len(total) + 1


def optimizer_times(model, device: str, iters: int, rigid: int, seed: int) -> List[str]:
    case = random_case(model, seed=seed)
    runs = {}
    for opt in ("adam", "lbfgs"):
        cfg = FitConfig(optimizer=opt, iters=iters, rigid_iters=rigid, device=device, rel_tol=0.0)
        res = Fitter(model, cfg).fit(case.targets)
        stages = np.array([r["stage"] for r in res.history.rows])
        total = res.history.column("total")[stages == "full"]
        runs[opt] = (total, res.seconds, len(res.history.rows), int((stages != "full").sum()))
    level = max(float(np.min(r[0])) for r in runs.values())
    lines = [f"Target loss = {level:.4g} (the larger of the two best main-stage objectives).", "",
             "| optimizer | main iters run | best loss | iters to target | s to target | total s |",
             "|---|---:|---:|---:|---:|---:|"]
    for opt, (total, secs, n_rows, n_rigid) in runs.items():
        k = reach(total, level)
        s = secs * (n_rigid + k) / max(n_rows, 1)
        lines.append(f"| {opt} | {len(total)} | {np.min(total):.4g} | {k} | {s:.1f} | {secs:.1f} |")
    return lines


def photo_split(photo: str, repeats: int) -> List[str]:
    """Median seconds per step of ``scripts/time_split.py`` over ``repeats`` fresh processes."""
    import json
    import subprocess
    import tempfile

    here = os.path.dirname(os.path.abspath(__file__))
    runs = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            line = subprocess.run([sys.executable, os.path.join(here, "time_split.py"), photo, out],
                                  check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            row = json.loads(line)
            row["process"] = time.perf_counter() - t0
            runs.append(row)
    keys = ["startup", "targets", "fit", "outputs", "process"]
    med = {k: float(np.median([r[k] for r in runs])) for k in keys}
    its = sorted(r["iterations"] for r in runs)
    return ["| " + " | ".join(keys) + " | iterations |", "|" + "---:|" * (len(keys) + 1),
            "| " + " | ".join(f"{med[k]:.2f}" for k in keys) + f" | {its[len(its) // 2]} |"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--rigid-iters", type=int, default=50)
    ap.add_argument("--opt-iters", type=int, default=100, help="main iterations of the Adam/L-BFGS comparison")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--full", action="store_true", help="also a batch of 64")
    ap.add_argument("--skip", nargs="*", default=[], choices=["fit", "prdl", "opt"])
    ap.add_argument("--devices", nargs="*", default=None, choices=["cpu", "cuda"],
                    help="devices to time (default: cpu, and cuda when available); the Adam/L-BFGS "
                         "comparison runs on the first")
    ap.add_argument("--photo", default=None, help="also the per-step time split of this photo (CPU)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    devices = args.devices or available_devices()
    if "cuda" in devices and not torch.cuda.is_available():
        ap.error("--devices cuda: no CUDA device is available")
    model = morphable_models.load("ict")
    gpu = f" ({torch.cuda.get_device_name()})" if "cuda" in devices else ""
    parts = [f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, devices: {', '.join(devices)}{gpu}.", ""]
    if "fit" not in args.skip:
        parts += [f"### Time per fit ({args.rigid_iters} rigid + {args.iters} main iterations, lmk + PRDL, Adam)", ""]
        sizes = [1, 8] + ([64] if args.full else [])
        parts += fit_times(model, devices, sizes, args.iters, args.rigid_iters, args.repeats) + [""]
    if "prdl" not in args.skip:
        parts += [f"### PRDL forward + backward (median of {args.repeats})", ""] + prdl_times(devices, args.repeats) + [""]
    if "opt" not in args.skip:
        parts += [f"### Adam vs L-BFGS (one synthetic case, {args.opt_iters} main iterations, no early stop, "
                  f"{devices[0]})", ""]
        parts += optimizer_times(model, devices[0], args.opt_iters, args.rigid_iters, seed=0) + [""]
    if args.photo:
        parts += [f"### One photo, step by step ({os.path.basename(args.photo)}, default settings, CPU, "
                  f"median of {args.repeats} fresh processes; seconds)", ""]
        parts += photo_split(args.photo, args.repeats) + [""]
    text = "\n".join(parts)
    return emit(text, args.out)


if __name__ == "__main__":
    sys.exit(main())
