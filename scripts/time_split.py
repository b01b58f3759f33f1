#!/usr/bin/env python
"""One photo through the steps of ``prdlfit fit`` in a fresh process, each step timed (issue 16).

Prints one JSON line: ``startup`` (interpreter start → imports and the model loaded), ``targets``
(``build_targets``: read, detect, landmarks, parse, clean), ``fit`` (``Fitter.fit``), ``outputs``
(``write_fit_outputs``, overlay off as with ``--no-overlay``), seconds each, plus the fit's
iterations and whether it converged. ``scripts/bench_speed.py --photo`` runs it and reports medians.

Usage: python scripts/time_split.py PHOTO OUT_DIR [--iters N]
"""
import gc
import time

T0 = time.perf_counter()
gc.disable()  # as prdlfit does until its imports are done (fitter.cli.collect_after_imports)

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("photo")
    ap.add_argument("out")
    ap.add_argument("--iters", type=int, default=None)
    a = ap.parse_args()
    import morphable_models
    from fitter.config import FitConfig
    from fitter.optimize import Fitter
    from fitter.outputs.writer import write_fit_outputs
    from fitter.targets.pipeline import TargetConfig, build_targets

    gc.freeze()
    gc.enable()
    model = morphable_models.load("ict")
    cfg = FitConfig(device="cpu") if a.iters is None else FitConfig(device="cpu", iters=a.iters)
    fitter = Fitter(model, cfg)
    t1 = time.perf_counter()
    targets = build_targets(a.photo, TargetConfig())
    t2 = time.perf_counter()
    result = fitter.fit(targets[0])
    t3 = time.perf_counter()
    write_fit_outputs(result, model, os.path.join(a.out, "face"), overlay=False)
    t4 = time.perf_counter()
    print(json.dumps({"startup": t1 - T0, "targets": t2 - t1, "fit": t3 - t2, "outputs": t4 - t3,
                      "iterations": result.iterations, "converged": result.converged}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
