#!/usr/bin/env python
"""Cross-model 3D benchmark (issue 8, must-have 1): ICT-FaceKit fits of Surrey Face Model renders.

The faces are made by a model the fitter does not use, so the 3D error measures how well the fit
describes a face, not how well it inverts its own renderer.

Cases: case i has identity i // 7 (SFM PCA coefficients ~ N(0, 1), seed ``seed0 + i // 7``) and
expression i % 7: neutral, then each of the SFM's six blendshapes (anger, disgust, fear,
happiness, sadness, surprise) at a weight uniform in [0.8, 1.0]; yaw ``yaws[(i + 3 * (i // 7)) %
len(yaws)]`` (so each identity's expressions meet different yaws), pitch uniform in ±15°, roll in
±5°, the face centre jittered by ±4 % of the frame. ``fitter.synthetic_photo.render_photo`` makes
a photo-like ``size``×``size`` PNG (procedural skin, brows, eyes, lips; Lambert shading; random
skin tone, light and background) that goes through the whole front end exactly as
``prdlfit fit`` does it: ``build_targets(PNG, TargetConfig())``. Faces MediaPipe does not find
are failures: they are counted in every row and listed, never dropped silently.

Settings (each fitted as batches of ``--batch`` faces with ``Fitter(model, FitConfig(...)).fit``):

* ``mean``      the ICT mean face posed by the same pipeline with ``iters=0`` (rigid stage only)
* ``lmk``       landmarks only (prdl weight 0)
* ``lmk+prdl``  the defaults (landmarks + PRDL)
* ``paper``     landmarks + PRDL with the paper's weights and priors and the model's own landmark
                vertices (``PAPER_LOSS_WEIGHTS``, ``model_landmarks="vertices"``): the fitter before
                the real-face levers
* ``oracle``    no photo: ICT fitted to the ground-truth scan itself (``fitter.scan_oracle``: identity,
                expression and a similarity, ``ORACLE_ROUNDS`` closest-point rounds), scored by the
                same protocol: the floor of the ICT model on these faces, which no fit from a photo
                can go below (an upper bound of it: the solve stops after its rounds)
* ``oracle-id`` the same with every expression weight held at 0: the floor of ICT's identity space alone
                (what a fit that keeps a neutral face exactly neutral could reach)

``--fit-option KEY=VALUE`` (FitConfig fields) and ``--loss NAME=W`` apply to every setting but
``mean`` and the oracles; ``lmk`` keeps prdl = 0.

Score (``fitter.metrics_3d.now_error``, NoW-style, mm): the fitted ICT mesh (model space, cm ->
mm) is aligned by a similarity on the 50 iBUG landmarks the SFM maps (``sfm.MAPPED_LANDMARKS``:
no jaw, no inner mouth corners; ICT's own landmark vertices), refined by rigid point-to-plane ICP
against a scan of the ground truth (``--scan-points`` points sampled by area on the SFM mesh, kept
within 95 mm of its nose tip), and scored as the mean scan-to-surface distance. "err / mean face"
divides by the ICT mean face's error on the same case (scored from the mean shape itself, which
does not depend on the pose; the ``mean`` row shows the same numbers through the pipeline).
"neutral exp sum" is the sum of the 53 fitted ICT expression weights on the neutral cases.
"Identity alone" scores each fit's identity with its expression weights set to 0 against the scan of
its person's neutral face (the same protocol; photos whose person's neutral case is in the run): how
well one photo tells the person's own shape, what a pseudo-ground-truth of identities needs, and how
far the seven photos of one person disagree about it (session 23).

Light: ``--light plain`` (the default) shades as above: Lambert + ambient + a faint highlight,
the model the shading term assumes. ``--light harder`` renders the same faces under light it does
not model (``fitter.synthetic_photo.harder_light``): cast shadows of the key light, a coloured fill
light from the other side, a broader and stronger highlight, and blotchy skin colour (seeded per
case, so both lights show the same faces and poses).

Splits: ``--split choice`` (identities 0-9, 70 cases) is where settings are chosen, ``--split report``
(identities 10-19) where they are reported; ten identities each, because on two (14 cases) the fit's mean
ratio to the mean face ranged from 0.77 to 0.97 over the five pairs of identities 0-9 (session 18).

Usage:
    PRDLFIT_CACHE=/work/cache python scripts/bench_cross_model.py --split report \
        --iters 200 --rigid-iters 50 --out cross.md --keep-renders runs/cross_model/renders
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np
import torch

import morphable_models
from fitter.config import PAPER_FIT_OPTIONS, PAPER_LOSS_WEIGHTS, FitConfig
from fitter.metrics_3d import NOSE_TIP, crop_scan, now_error, sample_surface, umeyama
from fitter.optimize import Fitter
from fitter.outputs.atomic import write_text_atomic
from fitter.scan_oracle import fit_to_scan
from fitter.synthetic_photo import face_layout, harder_light, random_style, render_photo
from morphable_models.sfm import MAPPED_LANDMARKS

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fit_arguments import add_fit_arguments, describe_fit_arguments, read_fit_arguments  # noqa: E402
from front_end_run import through_front_end  # noqa: E402
from report_io import emit  # noqa: E402

#: setting -> (loss weights over the defaults, FitConfig options); ``paper``: the paper's weights and
#: priors with the model's own landmark vertices (the fitter before the real-face levers)
SETTINGS = {"mean": ({"prdl": 0.0}, {}), "lmk": ({"prdl": 0.0}, {}), "lmk+prdl": ({}, {}),
            "paper": (dict(PAPER_LOSS_WEIGHTS), dict(PAPER_FIT_OPTIONS))}
#: the settings that fit no photo (``run_oracle``) -> what their weights column says
ORACLES = {"oracle": "fitted to the scan", "oracle-id": "fitted to the scan, expressions 0"}
#: closest-point rounds of the ``oracle`` setting (``fitter.scan_oracle.fit_to_scan``)
ORACLE_ROUNDS = 30
EXPRESSIONS_PER_IDENTITY = 7  # neutral + the SFM's 6 blendshapes
#: the named case sets (--split): (seed of the first identity, cases). Settings are chosen on
#: ``choice`` and reported on ``report``; the identities do not overlap. (Sessions 9-17 used the first
#: two identities of each, 14 cases: ``--seed0 0 / 10 --cases 14``.)
SPLITS = {"choice": (0, 10 * EXPRESSIONS_PER_IDENTITY), "report": (10, 10 * EXPRESSIONS_PER_IDENTITY)}
#: first seed word of ``--light harder``'s draws (then the split's first identity and the case index)
LIGHT_SEED = 999
YAW_BINS = ((0.0, 20.0), (20.0, 40.0), (40.0, 60.0 + 1e-6))


@dataclass
class Case:
    name: str
    expression: str
    yaw: float
    pitch: float
    gt_vertices: np.ndarray  # [V_sfm, 3] mm
    scan: np.ndarray  # [N, 3] mm, cropped
    image: str  # PNG path
    targets: Optional[object] = None
    failure: Optional[str] = None


@dataclass
class CaseScore:
    mm: float  # NaN on failure
    exp_sum: float
    failure: Optional[str]
    #: the fit's identity alone (expression weights 0) scored against its person's neutral scan, mm
    #: (NaN on failure, or when the person's neutral case is not in the run)
    id_mm: float = float("nan")


def make_cases(sfm, args, folder: str) -> List[Case]:
    """Render, write and run the front end on every case (see the module docstring)."""
    layout = face_layout(sfm)
    tris = sfm.triangles.cpu().numpy()
    nose = int(sfm.landmarks68[NOSE_TIP])
    cases: List[Case] = []
    for i in range(args.cases):
        ident, e = divmod(i, EXPRESSIONS_PER_IDENTITY)
        id_rng = np.random.default_rng(args.seed0 + ident)
        id_c = id_rng.normal(0, 1, sfm.num_id) * sfm.id_std.cpu().numpy()
        rng = np.random.default_rng([args.seed0 + ident, e])
        exp_c = np.zeros(sfm.num_exp)
        expression = "neutral" if e == 0 else sfm.exp_names[(e - 1) % sfm.num_exp]
        if e > 0:
            exp_c[(e - 1) % sfm.num_exp] = rng.uniform(0.8, 1.0)
        yaw = float(args.yaws[(i + 3 * ident) % len(args.yaws)])
        pitch, roll = float(rng.uniform(-15, 15)), float(rng.uniform(-5, 5))
        offset = tuple(rng.uniform(-0.04, 0.04, 2) * args.size)
        style = random_style(rng)
        if args.light == "harder":
            style = harder_light(style, np.random.default_rng([LIGHT_SEED, args.seed0, i]))
        photo = render_photo(sfm, id_c, exp_c, (pitch, yaw, roll), size=args.size, offset_px=offset,
                             style=style, layout=layout)
        name = f"id{args.seed0 + ident}-{expression}"
        path = os.path.join(folder, f"{i:03d}_{name}.png")
        scan = crop_scan(sample_surface(photo.vertices_model, tris, args.scan_points, seed=i),
                         photo.vertices_model[nose])
        case = Case(name, expression, yaw, pitch, photo.vertices_model, scan, path)
        case.targets, why = through_front_end(photo.image, path)
        if why is not None:
            case.failure = f"front end: {why}"
        cases.append(case)
        print(f"case {i}: {name} yaw {yaw:+.0f} pitch {pitch:+.0f}: "
              f"{'face found' if case.failure is None else case.failure}", file=sys.stderr)
    return cases


def neutral_of(cases: List[Case]) -> List[Optional[int]]:
    """For each case, the index of its person's neutral case in ``cases`` (None if not there)."""
    person = [c.name.rsplit("-", 1)[0] for c in cases]
    neutral = {p: k for k, (p, c) in enumerate(zip(person, cases)) if c.expression == "neutral"}
    return [neutral.get(p) for p in person]


def score_mesh(ict, sfm, pred_mm: np.ndarray, case: Case, icp_iters: int) -> float:
    """NoW-style error (mm) of predicted ICT mesh vertices [V_ict, 3] (mm) on ``case``."""
    idx = np.asarray(MAPPED_LANDMARKS)
    return now_error(pred_mm, ict.triangles.cpu().numpy(), ict.landmarks68.cpu().numpy()[idx], case.gt_vertices,
                     sfm.triangles.cpu().numpy(), sfm.landmarks68.cpu().numpy()[idx],
                     int(sfm.landmarks68[NOSE_TIP]), icp_iters=icp_iters, scan=case.scan).mean_mm


def run_oracle(ict, sfm, cases: List[Case], args, mean_mm: np.ndarray, expressions: bool = True) -> List[CaseScore]:
    """ICT fitted to each case's scan (``fitter.scan_oracle.fit_to_scan``), started from the mean face
    ``mean_mm`` [V, 3] (mm) on the landmarks, scored like a fit."""
    idx = np.asarray(MAPPED_LANDMARKS)
    out = []
    for c in cases:
        start = umeyama(mean_mm[ict.landmarks68.cpu().numpy()[idx]], c.gt_vertices[sfm.landmarks68.cpu().numpy()[idx]])
        fit = fit_to_scan(ict, c.scan, start, rounds=ORACLE_ROUNDS, expressions=expressions)
        out.append(CaseScore(score_mesh(ict, sfm, fit.vertices_mm, c, args.icp_iters), float(fit.exp_coeffs.sum()), None))
    return out


def identity_alone_mm(ict, id_coeffs: np.ndarray) -> np.ndarray:
    """[V, 3] mm: the ICT face of ``id_coeffs`` [k] with every expression weight at 0."""
    with torch.no_grad():
        v = ict.vertices(torch.as_tensor(id_coeffs, dtype=ict.mean.dtype)[None], None)[0]
    return v[: ict.num_mesh_vertices].cpu().numpy().astype(np.float64) * ict.mm_per_unit


def run_setting(ict_fit, ict, sfm, cases: List[Case], cfg: FitConfig, args) -> List[CaseScore]:
    """Fit every found case with ``ict_fit`` (``cfg``) and score it (``ict``: the same model with its
    own landmark vertices, for the alignment)."""
    nv = ict.num_mesh_vertices
    out: List[Optional[CaseScore]] = [None] * len(cases)
    live = [k for k, c in enumerate(cases) if c.failure is None]
    for k in [k for k, c in enumerate(cases) if c.failure is not None]:
        out[k] = CaseScore(float("nan"), float("nan"), cases[k].failure)
    fitter = Fitter(ict_fit, cfg)
    neutral = neutral_of(cases)
    for s in range(0, len(live), args.batch):
        chunk = live[s:s + args.batch]
        results = fitter.fit([cases[k].targets for k in chunk])
        for k, res in zip(chunk, results):
            if res.failure:
                out[k] = CaseScore(float("nan"), float("nan"), f"fit: {res.failure}")
                continue
            pred = res.vertices_model[:nv].astype(np.float64) * ict.mm_per_unit
            id_mm = float("nan")
            if neutral[k] is not None:
                id_mm = score_mesh(ict, sfm, identity_alone_mm(ict, res.id_coeffs), cases[neutral[k]], args.icp_iters)
            out[k] = CaseScore(score_mesh(ict, sfm, pred, cases[k], args.icp_iters), float(res.exp_coeffs.sum()), None,
                               id_mm)
    return out  # type: ignore[return-value]


def fmt_pm(x) -> str:
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    return f"{x.mean():.2f} ± {x.std():.2f}" if len(x) else "–"


def report(cases: List[Case], base: np.ndarray, rows: Dict[str, List[CaseScore]], weights: Dict[str, str],
           secs: Dict[str, float]) -> str:
    n = len(cases)
    found = sum(c.failure is None for c in cases)
    neutral = np.array([c.expression == "neutral" for c in cases])
    head = ["setting", "weights", "faces found", "fitted", "3D error mm", "err / mean face", "below mean face",
            "neutral exp sum (mean)", "(max)", "fit s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for name, sc in rows.items():
        mm = np.array([s.mm for s in sc])
        ok = np.isfinite(mm)
        ratio = mm / base
        below = int(np.sum(ok & (mm < base)))
        es = np.array([s.exp_sum for s in sc])[neutral & ok]
        lines.append("| " + " | ".join([
            name, weights[name], f"{found}/{n}", f"{int(ok.sum())}/{n}", fmt_pm(mm),
            f"{np.nanmean(ratio):.3f}" if ok.any() else "–", f"{below}/{n}",
            f"{es.mean():.2f}" if len(es) else "–", f"{es.max():.2f}" if len(es) else "–", f"{secs[name]:.0f}"]) + " |")
    out = ["\n".join(lines), ""]
    neutral = neutral_of(cases)
    has = np.array([k is not None for k in neutral])
    if has.any():
        id_base = np.array([base[k] if k is not None else np.nan for k in neutral])
        out += [f"Identity alone (each fit's expression weights set to 0) against its person's neutral scan, over "
                f"the {int(has.sum())} photos whose person's neutral photo is in the run; the mean face's error on "
                f"those scans {fmt_pm(id_base[has])} mm. Spread: per person, the std of that error over the person's "
                "photos, averaged over the people:", ""]
        head = ["setting", "identity alone mm", "÷ mean face", "below mean face", "spread over one person's photos mm"]
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
        people = sorted({k for k in neutral if k is not None})
        for name, sc in rows.items():
            idm = np.array([s.id_mm for s in sc])
            ok = np.isfinite(idm) & has
            if not ok.any():
                continue
            spread = [np.std(idm[[j for j in range(n) if neutral[j] == p and ok[j]]]) for p in people]
            below = f"{int(np.sum(idm[ok] < id_base[ok]))}/{int(ok.sum())}"
            lines.append("| " + " | ".join([name, fmt_pm(idm[ok]), f"{np.mean(idm[ok] / id_base[ok]):.3f}", below,
                                            f"{np.mean(spread):.2f}"]) + " |")
        out += ["\n".join(lines), ""]
    out += ["3D error (mm, mean ± std over the fitted cases) by |yaw|:", ""]
    yaw = np.abs([c.yaw for c in cases])
    bins = [(lo, hi) for lo, hi in YAW_BINS]
    head = ["setting"] + [f"{lo:.0f}-{min(hi, 60):.0f}° (n)" for lo, hi in bins]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for name, sc in [("mean face (model)", [CaseScore(b, 0, None) for b in base])] + list(rows.items()):
        mm = np.array([s.mm for s in sc])
        cells = [name]
        for lo, hi in bins:
            sel = (yaw >= lo) & (yaw < hi)
            cells.append(f"{fmt_pm(mm[sel])} ({int(np.isfinite(mm[sel]).sum())}/{int(sel.sum())})")
        lines.append("| " + " | ".join(cells) + " |")
    out += ["\n".join(lines), "", "Per case (mm, then each fit's sum of the 53 expression weights; – = failure):", ""]
    fitted = [name for name in rows if name not in ("mean", "oracle-id")]  # the others hold every weight at 0
    head = ["case", "yaw", "pitch", "mean face"] + list(rows) + [f"exp sum {name}" for name in fitted]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for k, c in enumerate(cases):
        cells = [c.name, f"{c.yaw:+.0f}", f"{c.pitch:+.0f}", f"{base[k]:.2f}"]
        cells += [f"{sc[k].mm:.2f}" if np.isfinite(sc[k].mm) else "–" for sc in rows.values()]
        cells += [f"{rows[name][k].exp_sum:.2f}" if np.isfinite(rows[name][k].mm) else "–" for name in fitted]
        lines.append("| " + " | ".join(cells) + " |")
    out.append("\n".join(lines))
    fails = [f"{c.name}: {s.failure}" for name, sc in rows.items() for c, s in zip(cases, sc) if s.failure]
    if fails:
        out += ["", "Failures: " + "; ".join(sorted(set(fails)))]
    return "\n".join(out)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=sorted(SPLITS), default=None,
                    help="a named set of cases: choice (identities 0-9, settings are chosen on it) or report "
                         "(identities 10-19, numbers are reported on it); sets --seed0 and --cases")
    ap.add_argument("--cases", type=int, default=None,
                    help="number of cases (7 per identity: neutral + 6 expressions; default 14)")
    ap.add_argument("--seed0", type=int, default=None, help="seed of the first identity (default 0)")
    ap.add_argument("--yaws", type=float, nargs="+", default=[0, 10, -20, 30, -40, 50, -60],
                    help="yaw angles (degrees) cycled over the cases")
    ap.add_argument("--size", type=int, default=512, help="side of the rendered photo, pixels")
    ap.add_argument("--light", choices=["plain", "harder"], default="plain",
                    help="plain: Lambert + ambient; harder: + cast shadows, a coloured fill, highlights, blotchy skin")
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--rigid-iters", type=int, default=50)
    ap.add_argument("--batch", type=int, default=7, help="faces per vectorized fit")
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS) + list(ORACLES))
    add_fit_arguments(ap, "every setting but mean and the oracles (lmk keeps prdl=0)")
    ap.add_argument("--scan-points", type=int, default=20000, help="points sampled on the SFM mesh before the crop")
    ap.add_argument("--icp-iters", type=int, default=10)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--landmarks", default="calibrated", choices=["calibrated", "vertices"],
                    help="the fitted model's landmark definition (morphable_models.load(..., landmarks=))")
    ap.add_argument("--out", default=None, help="write the Markdown report here")
    ap.add_argument("--keep-renders", default=None, metavar="DIR", help="write the PNGs here and keep them")
    args = ap.parse_args(argv)
    if args.split is not None:
        if args.cases is not None or args.seed0 is not None:
            ap.error("--split sets --seed0 and --cases: give one or the other")
        args.seed0, args.cases = SPLITS[args.split]
    args.seed0 = 0 if args.seed0 is None else args.seed0
    args.cases = 14 if args.cases is None else args.cases
    if args.cases < 1 or args.batch < 1:
        ap.error("--cases and --batch must be >= 1")
    if any(abs(y) > 90 for y in args.yaws):
        ap.error("--yaws must lie within ±90 degrees")
    args.options, args.losses = read_fit_arguments(ap, args)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    ict_fit = morphable_models.load("ict", landmarks=args.landmarks)
    ict = morphable_models.load("ict", landmarks="vertices")  # scoring: the model's own landmark vertices
    sfm = morphable_models.load("sfm")
    tmp = None
    folder = args.keep_renders
    if folder is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench_cross_model_")
        folder = tmp.name
    os.makedirs(folder, exist_ok=True)
    t0 = time.perf_counter()
    cases = make_cases(sfm, args, folder)
    render_s = time.perf_counter() - t0
    mean_mm = ict.mean[: ict.num_mesh_vertices].cpu().numpy().astype(np.float64) * ict.mm_per_unit
    base = np.array([score_mesh(ict, sfm, mean_mm, c, args.icp_iters) for c in cases])
    n_neutral = sum(c.expression == "neutral" for c in cases)
    header = (f"{args.cases} cases ({n_neutral} neutral; SFM identities {args.seed0}..{args.seed0 + (args.cases - 1) // 7}), "
              f"yaws {' '.join(f'{y:g}' for y in args.yaws)}, pitch ±15°, {args.size}×{args.size} renders through "
              f"build_targets(PNG, TargetConfig()); {args.rigid_iters} rigid + {args.iters} main iterations, batches "
              f"of {args.batch}, device {args.device}. ICT mean face on these cases: {np.mean(base):.2f} ± "
              f"{np.std(base):.2f} mm. Scan: {args.scan_points} area samples within 95 mm of the nose tip, "
              f"{args.icp_iters} ICP iterations. Render + front end: {render_s:.0f} s."
              + f" Landmarks: {args.landmarks}. Light: {args.light}."
              + describe_fit_arguments(args.options, args.losses) + "\n\n")
    rows: Dict[str, List[CaseScore]] = {}
    weights: Dict[str, str] = {}
    secs: Dict[str, float] = {}
    for name in args.settings:
        t1 = time.perf_counter()
        if name in ORACLES:
            rows[name] = run_oracle(ict, sfm, cases, args, mean_mm, expressions=name == "oracle")
            weights[name] = ORACLES[name]
        else:
            w, opts = dict(SETTINGS[name][0]), dict(SETTINGS[name][1])
            if name not in ("mean", "paper"):
                w.update(args.losses)
                opts.update(args.options)
                if name == "lmk":
                    w["prdl"] = 0.0
            cfg = FitConfig(loss_weights=w, iters=0 if name == "mean" else args.iters, rigid_iters=args.rigid_iters,
                            device=args.device, **opts)
            rows[name] = run_setting(ict_fit, ict, sfm, cases, cfg, args)
            weights[name] = ", ".join(f"{k}={v:g}" for k, v in cfg.loss_weights.items() if v > 0)
        secs[name] = time.perf_counter() - t1
        print(f"{name}: {secs[name]:.0f} s, 3D error {fmt_pm([s.mm for s in rows[name]])} mm", file=sys.stderr)
        if args.out:
            write_text_atomic(args.out, header + report(cases, base, rows, weights, secs) + "\n")
    text = header + report(cases, base, rows, weights, secs)
    if tmp is not None:
        tmp.cleanup()
    return emit(text, args.out)


if __name__ == "__main__":
    sys.exit(main())
