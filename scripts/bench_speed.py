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
5. ``--batch-images N``: ``prdlfit batch`` throughput (``scripts/bench_batch.py``: N copies of the
   example photos, 2 workers × batches of 4 on the CPU, the same iterations), images per minute.

``--json OUT`` keeps the headline numbers of a run (seconds per face, the photo's steps, images per
minute); ``--previous JSON`` prints this run's beside those of an earlier one, with their ratio.

Usage:
    PRDLFIT_CACHE=/work/main/.cache python scripts/bench_speed.py --iters 50 --out speed.md [--full]
    python scripts/bench_speed.py --iters 200 --skip prdl opt --photo IMG --batch-images 16 \
        --json now.json --previous before.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Dict, List, Optional

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


def fit_times(model, devices: List[str], batches: List[int], iters: int, rigid: int, repeats: int = 3,
              numbers: Optional[Dict[str, float]] = None) -> List[str]:
    """Wall time of one batched fit per batch size; a batch of 1 is timed ``repeats`` times
    (median and range: a shared VM's timings vary by ±20 %), larger batches once. ``numbers``
    gets ``fit <device> batch <B>: s per face``."""
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
            if numbers is not None:
                numbers[f"fit {dev} batch {B}: s per face"] = wall / B
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


def photo_split(photo: str, repeats: int, numbers: Optional[Dict[str, float]] = None) -> List[str]:
    """Median seconds per step of ``scripts/time_split.py`` over ``repeats`` fresh processes
    (``numbers`` gets ``photo <step> s``)."""
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
    if numbers is not None:
        numbers.update({f"photo {k} s": med[k] for k in keys})
    return ["| " + " | ".join(keys) + " | iterations |", "|" + "---:|" * (len(keys) + 1),
            "| " + " | ".join(f"{med[k]:.2f}" for k in keys) + f" | {its[len(its) // 2]} |"]


def batch_throughput(images: int, iters: int, rigid: int, numbers: Optional[Dict[str, float]] = None) -> List[str]:
    """``prdlfit batch`` images per minute (``bench_batch.py`` in a subprocess: ``images`` copies of
    the example photos, 2 workers × batches of 4, CPU); ``numbers`` gets ``batch images/min``."""
    import re
    import subprocess

    here = os.path.dirname(os.path.abspath(__file__))
    cmd = [sys.executable, os.path.join(here, "bench_batch.py"), "--copies", str(images), "--batch-size", "4",
           "--workers", "2", "--device", "cpu", "--iters", str(iters), "--rigid-iters", str(rigid)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    line = [ln for ln in out.splitlines() if "images/min=" in ln][-1]
    rate = float(re.search(r"images/min=([0-9.]+)", line).group(1))
    if numbers is not None:
        numbers["batch images/min"] = rate
    return ["```", line, "```"]


def beside(previous: Dict[str, float], numbers: Dict[str, float]) -> List[str]:
    """Markdown rows: each number of this run beside the previous run's (ratio now / before)."""
    lines = ["| number | previous | now | now / previous |", "|---|---:|---:|---:|"]
    for key in sorted(set(previous) | set(numbers)):
        old, new = previous.get(key), numbers.get(key)
        ratio = f"{new / old:.2f}" if old and new is not None else "–"
        fmt = lambda v: "–" if v is None else f"{v:.2f}"  # noqa: E731
        lines.append(f"| {key} | {fmt(old)} | {fmt(new)} | {ratio} |")
    return lines


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
    ap.add_argument("--batch-images", type=int, default=0, help="also prdlfit batch throughput on this many images")
    ap.add_argument("--json", default=None, help="write the headline numbers here")
    ap.add_argument("--previous", default=None, help="a --json file of an earlier run, printed beside this one's")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    previous = None
    if args.previous:
        try:
            with open(args.previous, encoding="utf-8") as f:
                previous = {str(k): float(v) for k, v in json.load(f).items()}
        except (OSError, ValueError, TypeError, AttributeError) as err:
            ap.error(f"--previous {args.previous}: not a --json file of this script ({err})")
    numbers: Dict[str, float] = {}

    devices = args.devices or available_devices()
    if "cuda" in devices and not torch.cuda.is_available():
        ap.error("--devices cuda: no CUDA device is available")
    model = morphable_models.load("ict")
    gpu = f" ({torch.cuda.get_device_name()})" if "cuda" in devices else ""
    parts = [f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, devices: {', '.join(devices)}{gpu}.", ""]
    if "fit" not in args.skip:
        parts += [f"### Time per fit ({args.rigid_iters} rigid + {args.iters} main iterations, lmk + PRDL, Adam)", ""]
        sizes = [1, 8] + ([64] if args.full else [])
        parts += fit_times(model, devices, sizes, args.iters, args.rigid_iters, args.repeats, numbers) + [""]
    if "prdl" not in args.skip:
        parts += [f"### PRDL forward + backward (median of {args.repeats})", ""] + prdl_times(devices, args.repeats) + [""]
    if "opt" not in args.skip:
        parts += [f"### Adam vs L-BFGS (one synthetic case, {args.opt_iters} main iterations, no early stop, "
                  f"{devices[0]})", ""]
        parts += optimizer_times(model, devices[0], args.opt_iters, args.rigid_iters, seed=0) + [""]
    if args.photo:
        parts += [f"### One photo, step by step ({os.path.basename(args.photo)}, default settings, CPU, "
                  f"median of {args.repeats} fresh processes; seconds)", ""]
        parts += photo_split(args.photo, args.repeats, numbers) + [""]
    if args.batch_images:
        parts += [f"### prdlfit batch ({args.batch_images} images, 2 workers × batches of 4, {args.rigid_iters} rigid + "
                  f"{args.iters} main iterations, CPU)", ""]
        parts += batch_throughput(args.batch_images, args.iters, args.rigid_iters, numbers) + [""]
    if previous is not None:
        parts += [f"### Beside the previous run ({os.path.basename(args.previous)})", ""] + beside(previous, numbers) + [""]
    if args.json:
        from fitter.outputs.atomic import write_text_atomic

        write_text_atomic(args.json, json.dumps(numbers, indent=1, sort_keys=True) + "\n")
    text = "\n".join(parts)
    return emit(text, args.out)


if __name__ == "__main__":
    sys.exit(main())
