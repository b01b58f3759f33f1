#!/usr/bin/env python
"""Closed and winking eyes through the whole front end: do the fits say "blink"?

The wink photo of issue 15 (``3ddfa-v3-examples/1.jpg``) is one face. This benchmark makes many
with known expression weights: ICT faces (random identity, seed ``seed0 + i``) rendered photo-like
by ``fitter.synthetic_photo.render_photo`` (512 px, yaw uniform in ±40°, pitch ±12°) with the
expression presets of ``fitter.synthetic.EXPRESSIONS`` in turn: ``asymmetric`` (the left eye
closed, a one-sided smile, the right outer brow raised, jaw to the left), ``eyes_closed``,
``asymmetric``, ``neutral``. Each PNG goes through ``build_targets(PNG, TargetConfig())`` as in
``prdlfit fit``, and is fitted (batches of 8) by the defaults plus ``--fit-option`` / ``--loss``.

Reported: per case the fitted eyeBlink_L / eyeBlink_R against the truth and the largest other
weights; over the cases, the mean blink of the closed eyes (truth 1), of the open eyes (truth 0)
and the mean L1 distance of all 53 weights from the truth. The renders' open eyes are drawn as
dark almond shapes a little narrower than ICT's lid opening, so MediaPipe sees them partly closed:
the open-eye blink is a relative number (compare settings), the closed-eye one an absolute one.

    PRDLFIT_CACHE=.cache python scripts/bench_eye_closure.py --seed0 200 --cases 16 \
        [--fit-option KEY=VALUE ...] [--loss NAME=W ...] [--out eyes.md]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import List

import numpy as np

import morphable_models
from fitter.config import FitConfig
from fitter.optimize import Fitter
from fitter.synthetic import EXPRESSIONS
from fitter.synthetic_photo import face_layout, random_style, render_photo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fit_arguments import add_fit_arguments, describe_fit_arguments, read_fit_arguments  # noqa: E402
from front_end_run import through_front_end  # noqa: E402
from report_io import emit  # noqa: E402

PRESET_CYCLE = ("asymmetric", "eyes_closed", "asymmetric", "neutral")
BLINKS = ("eyeBlink_L", "eyeBlink_R")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed0", type=int, default=200, help="seed of the first face")
    ap.add_argument("--cases", type=int, default=16)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--rigid-iters", type=int, default=50)
    add_fit_arguments(ap, "the fits, over the defaults")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None, help="write the Markdown report here")
    args = ap.parse_args(argv)
    args.options, args.losses = read_fit_arguments(ap, args)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    render_model = morphable_models.load("ict", landmarks="vertices")  # framing uses mesh vertices
    layout = face_layout(render_model)
    names = list(render_model.exp_names)
    folder = tempfile.TemporaryDirectory(prefix="bench_eye_closure_")
    targets, truth, labels, failures = [], [], [], []
    for i in range(args.cases):
        seed = args.seed0 + i
        rng = np.random.default_rng(seed)
        id_c = rng.normal(0, 1, render_model.num_id) * render_model.id_std.cpu().numpy()
        preset = PRESET_CYCLE[i % len(PRESET_CYCLE)]
        exp_c = np.zeros(render_model.num_exp)
        for name, w in EXPRESSIONS[preset].items():
            exp_c[names.index(name)] = w
        yaw, pitch = float(rng.uniform(-40, 40)), float(rng.uniform(-12, 12))
        photo = render_photo(render_model, id_c, exp_c, (pitch, yaw, 0.0), size=512, style=random_style(rng),
                             layout=layout)
        label = f"{seed} {preset} yaw {yaw:+.0f}"
        found, why = through_front_end(photo.image, os.path.join(folder.name, f"{seed}.png"))
        if found is None:
            failures.append(f"{label}: {why}")
            continue
        targets.append(found)
        truth.append(exp_c)
        labels.append(label)
        print(f"case {label}: face found", file=sys.stderr)
    cfg = FitConfig(loss_weights=args.losses, iters=args.iters, rigid_iters=args.rigid_iters, device=args.device,
                    **args.options)
    fitter = Fitter(morphable_models.load("ict"), cfg)
    results = []
    for s in range(0, len(targets), 8):
        results += fitter.fit(targets[s:s + 8])
    blink = [names.index(n) for n in BLINKS]
    closed: List[float] = []
    opened: List[float] = []
    l1: List[float] = []
    lines = ["| case | eyeBlink_L (truth) | eyeBlink_R (truth) | largest other weights |", "|---|---|---|---|"]
    for label, exp_c, res in zip(labels, truth, results):
        if res.failure:
            failures.append(f"{label}: fit: {res.failure}")
            continue
        fit = np.asarray(res.exp_coeffs, np.float64)
        for k in blink:
            (closed if exp_c[k] > 0.5 else opened).append(float(fit[k]))
        l1.append(float(np.abs(fit - exp_c).sum()))
        others = sorted(((names[k], fit[k]) for k in range(len(fit)) if k not in blink and fit[k] >= 0.15),
                        key=lambda x: -x[1])[:4]
        lines.append(f"| {label} | {fit[blink[0]]:.2f} ({exp_c[blink[0]]:.0f}) | {fit[blink[1]]:.2f} "
                     f"({exp_c[blink[1]]:.0f}) | {', '.join(f'{n} {w:.2f}' for n, w in others) or '–'} |")
    options = describe_fit_arguments(args.options, args.losses)
    summary = (f"{args.cases} ICT renders (seeds {args.seed0}..{args.seed0 + args.cases - 1}), {len(l1)} fitted, "
               f"{args.rigid_iters} rigid + {args.iters} main iterations.{options}\n\n"
               f"| closed eyes: blink mean (n) | open eyes: blink mean (n) | expression L1 error (53 weights) |\n"
               f"|---|---|---|\n"
               f"| {np.mean(closed) if closed else float('nan'):.3f} ({len(closed)}) | "
               f"{np.mean(opened) if opened else float('nan'):.3f} ({len(opened)}) | "
               f"{np.mean(l1) if l1 else float('nan'):.2f} |\n\n" + "\n".join(lines))
    if failures:
        summary += "\n\nFailures: " + "; ".join(failures)
    folder.cleanup()
    return emit(summary, args.out)


if __name__ == "__main__":
    sys.exit(main())
