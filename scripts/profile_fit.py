#!/usr/bin/env python
"""Where one fit's time goes: torch.profiler over a batched synthetic fit, top operators.

Prints the operators with the most self time (CPU, and CUDA on ``--device cuda``) and the wall time
of the profiled fit (profiling adds overhead: compare the wall time with bench_speed.py's, not the
operator times with each other across devices).

Usage:
    PRDLFIT_CACHE=.cache python scripts/profile_fit.py [--device cpu|cuda] [--batch 1] [--iters 50] [--top 20]
"""
from __future__ import annotations

import argparse
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

import morphable_models
from fitter.config import FitConfig
from fitter.optimize import Fitter
from fitter.synthetic import random_case


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--iters", type=int, default=50, help="main-stage iterations (rigid: 20)")
    ap.add_argument("--top", type=int, default=20)
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device is available")

    model = morphable_models.load("ict")
    cases = [random_case(model, seed=i) for i in range(args.batch)]
    fitter = Fitter(model, FitConfig(iters=args.iters, rigid_iters=20, device=args.device, rel_tol=0.0))
    fitter.fit([cases[0].targets])  # warm-up
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device == "cuda" else [])
    try:  # torch >= 2.4 drops the events at the end of a cycle unless told to keep them
        prof_ctx = profile(activities=activities, acc_events=True)
    except TypeError:
        prof_ctx = profile(activities=activities)
    with prof_ctx as prof:
        t0 = time.perf_counter()
        fitter.fit([c.targets for c in cases])
        if args.device == "cuda":
            torch.cuda.synchronize()
        wall = time.perf_counter() - t0
    key = "self_cuda_time_total" if args.device == "cuda" else "self_cpu_time_total"
    print(f"device {args.device}, batch {args.batch}, 20 rigid + {args.iters} main iterations: "
          f"{wall:.2f} s profiled wall time")
    print(prof.key_averages().table(sort_by=key, row_limit=args.top))
    if args.device == "cuda":
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
