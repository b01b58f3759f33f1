#!/usr/bin/env python
"""Benchmark PRDL descriptors, forward + backward: chunked custom autograd op vs naive full matrix.

For each (anchors A, points N) case, and for one "fit step" case shaped like a real fit (8 parts,
32×32 anchors, point sets padded to the 3000-point skin), every implementation runs in its own
subprocess; the table gives the median wall time of forward + backward and the peak extra memory:

* CPU: peak resident memory above the level before the first run (Linux /proc VmHWM, reset
  through /proc/self/clear_refs; falls back to ru_maxrss), so it counts everything the step
  allocates, including autograd's saved tensors.
* CUDA (``--device cuda``): ``torch.cuda.max_memory_allocated`` above the allocation before.

Usage: python scripts/bench_prdl.py [--device cpu|cuda] [--repeats 3] [--threads N] [--quick]
Prints a Markdown table; always exits 0 (a failed or killed case shows as "failed").
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

CASES = [(256, 1000), (1024, 3000), (4096, 8000), (4096, 20000)]
FIT_CASE = "fit"  # 8 parts × 3000 padded points, 32 × 32 anchors
FIT_ITERS = 300  # FitConfig.iters default: PRDL runs every main-stage iteration


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def child(impl: str, case: str, device: str, repeats: int, threads: int | None) -> dict:
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from fitter.losses.prdl import make_anchors, prdl_descriptors, prdl_descriptors_naive, prdl_part_losses

    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    if case == FIT_CASE:
        # One image's parts as the fitter holds them: padded to the skin's 3000 points, ~5% hidden.
        grid, M, N = 32, 8, 3000
        sizes = [800] * 7 + [3000]
        valid = torch.zeros(M, N, dtype=torch.bool)
        for p, n in enumerate(sizes):
            valid[p, :n] = torch.rand(n, generator=gen) > 0.05
    else:
        A, N = (int(x) for x in case.split("x"))
        grid, M = int(round(A**0.5)), 1
        valid = torch.rand(M, N, generator=gen) > 0.05
    anchors = make_anchors((grid, grid), (224, 224), device=dev)
    A = anchors.shape[0]
    points = (torch.rand(1, M, N, 2, generator=gen) * 224).to(dev).requires_grad_(True)
    valid = valid.unsqueeze(0).to(dev)
    target = (torch.rand(1, M, A, 3, generator=gen) * 100).to(dev)

    def step():
        points.grad = None
        if impl == "ours":
            if case == FIT_CASE:  # the API the fitter calls (per-part, compacted)
                loss = prdl_part_losses(points, valid, target, anchors).sum()
            else:
                loss = (prdl_descriptors(points, anchors, valid) - target).square().sum() / A
        else:
            loss = (prdl_descriptors_naive(points, anchors, valid) - target).square().sum() / A
        loss.backward()

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    # Peak memory of the first run (nothing cached by an allocator on CPU: large blocks are mmapped).
    sync()
    if dev.type == "cuda":
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        base = _rss_kb("VmRSS") * 1024
        exact = _reset_peak()
        base_max = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    step()
    sync()
    first = time.perf_counter() - t0
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated() - base
    elif exact:
        peak = _rss_kb("VmHWM") * 1024 - base
    else:
        peak = max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base_max)
    times = [first]
    for _ in range(max(0, repeats - 1)):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    return {"time_s": statistics.median(times), "peak_bytes": int(peak), "threads": torch.get_num_threads()}


def run_case(impl: str, case: str, args) -> dict | None:
    cmd = [sys.executable, __file__, "--child", impl, case, "--device", args.device, "--repeats", str(args.repeats)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return None
    if res.returncode != 0:
        sys.stderr.write(f"[{impl} {case}] failed: {res.stderr.strip().splitlines()[-1:]}\n")
        return None
    return json.loads(res.stdout.strip().splitlines()[-1])


def fmt_time(r):
    return "failed" if r is None else f"{r['time_s'] * 1e3:.0f}"


def fmt_mem(r):
    return "failed" if r is None else f"{r['peak_bytes'] / 2**20:.0f}"


def ratio(a, b, key):
    if a is None or b is None or b[key] <= 0:
        return "–"
    return f"{a[key] / b[key]:.1f}×"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads in each case (default: torch's)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per case before it counts as failed")
    ap.add_argument("--quick", action="store_true", help="only the two smallest cases and the fit step")
    ap.add_argument("--child", nargs=2, metavar=("IMPL", "CASE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.device, args.repeats, args.threads)))
        return 0
    try:
        cases = [f"{a}x{n}" for a, n in (CASES[:2] if args.quick else CASES)] + [FIT_CASE]
        print(f"PRDL descriptors forward+backward, device={args.device}, median of {args.repeats}, "
              f"peak = extra memory of one step\n")
        print("| anchors × points | naive ms | ours ms | speed-up | naive peak MiB | ours peak MiB | memory ratio |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        fit_rows = {}
        for case in cases:
            naive = run_case("naive", case, args)
            ours = run_case("ours", case, args)
            label = "fit step: 8 parts × 3000 (padded), 32×32 anchors" if case == FIT_CASE else case.replace("x", " × ")
            print(f"| {label} | {fmt_time(naive)} | {fmt_time(ours)} | {ratio(naive, ours, 'time_s')} | "
                  f"{fmt_mem(naive)} | {fmt_mem(ours)} | {ratio(naive, ours, 'peak_bytes')} |", flush=True)
            if case == FIT_CASE:
                fit_rows = {"naive": naive, "ours": ours}
        print()
        for impl, r in fit_rows.items():
            if r is not None:
                print(f"PRDL time per fit ({FIT_ITERS} iterations, {impl}): {r['time_s'] * FIT_ITERS:.1f} s; "
                      f"peak PRDL-step memory {r['peak_bytes'] / 2**20:.0f} MiB")
    except Exception as err:  # a benchmark never fails the caller
        print(f"benchmark error: {err}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
