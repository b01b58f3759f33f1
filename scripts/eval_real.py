#!/usr/bin/env python
"""Real-photo evaluation: the front end alone, landmark-only and landmarks + PRDL fits, side by side.

Data (read-only, under --shared, default /work/shared):

* ``images/300w-train``: ``*.jpg`` + iBUG ``.pts`` (1-based; 1 is subtracted). Fitted 68-landmark
  NME (outer-eye-corner normalised) against the ground truth, on all images and on the
  closed-eye / open-mouth subset: mean eye opening ((|37-41| + |38-40|) / 2 / |36-39|, 0-based
  indices, both eyes averaged) < 0.15, or mouth opening |62-66| / |48-54| > 0.30. Per-part IoU of
  the eyes and the lips against the regions the annotators' 68 points outline
  (``fitter.metrics.annotated_part_labels``: inside smooth curves through each part's points; a
  closed eye's slit is no part), for the front end's masks and the re-rendered fits: human labels on
  every 300-W photo, where CelebAMask-HQ has four.
* ``images/ffhq-dev``: ``NNNNN.png`` + ``NNNNN.landmarks68.npy`` (0-based pixels) + ``NNNNN.seg.npy``
  (face region = nonzero). NME, and face-region IoU of the re-rendered fit (any part label) vs the
  nonzero segmentation.
* ``images/celebamask-hq``: ``*.jpg`` + ``*.labels.png`` (CelebAMask-HQ ids). Per-part IoU of the
  re-rendered fit vs the CelebAMask labels. Landmarks from MediaPipe (no ground truth given).

``--targets frontend`` (default) fits from the raw photo as ``prdlfit fit`` does: MediaPipe's 68
landmarks and parts; the "front end" row then scores those 68 points themselves (mapped to the
original photo) and, for Part IoU, the front end's own cleaned target masks. ``--targets gt`` gives
the fit the ground-truth landmarks where the data set has them (``TargetConfig(landmarks="file")``),
MediaPipe landmarks otherwise (the earlier protocol). ``--split`` picks the 300-W half
(``scripts/real_data.py``: settings are chosen on ``calibration``, reported on ``evaluation``).
NME is also given per region (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67), with
the number of photos where the fit beats the front end; "exp sum" is the sum of the fitted
expression weights. All IoUs are computed in the 224×224 fitting crop: the fit is re-rendered there
with ``render_part_labels`` and label maps given in original pixels are mapped into the crop with
``cv2.warpAffine(labels, crop.matrix(), (W, H), flags=cv2.INTER_NEAREST)`` (label images whose size
differs from the photo are first resized to it, nearest neighbour). For every data set the per-part
IoU against the parser's own targets (``targets.part_masks``) is reported as well.

``--eos`` adds eos (``eos-py``, Surrey Face Model 3448) fitted from the same 68 landmarks with
``eos.fitting.fit_shape_and_pose``; its NME counts the landmarks eos maps to SFM vertices
(``ibug_to_sfm.txt``; the contour points it marches are projected the same way).

Usage:
    PRDLFIT_CACHE=.cache python scripts/eval_real.py --split evaluation --limit 32 --iters 200 --rigid-iters 50 --out real.md
    PRDLFIT_CACHE=.cache python scripts/eval_real.py --targets gt --limit 150 --eos --out real_gt.md   # the earlier protocol
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
import torch

import morphable_models
from fitter.config import PAPER_FIT_OPTIONS, PAPER_LOSS_WEIGHTS, FitConfig
from fitter.losses import LIP_PAIRS
from fitter.metrics import OUTLINED_PARTS, annotated_part_labels, landmark_nme, part_ious, render_part_labels
from fitter.optimize import Fitter, model_as_fitted
from fitter.targets.landmark_files import read_pts
from fitter.targets.pipeline import TargetConfig, build_targets
from morphable_models.model import EYE_LIDS_68, PART_NAMES, REGIONS_68

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fit_arguments import add_fit_arguments, read_fit_arguments  # noqa: E402
from real_data import SPLITS, split_300w  # noqa: E402
from report_io import emit  # noqa: E402

#: CelebAMask-HQ id -> our label (i + 1 = PART_NAMES[i]); "left" is the person's left in both.
CELEBAMASK_TO_PARTS = {5: 1, 4: 2, 7: 3, 6: 4, 2: 5, 11: 6, 12: 7, 1: 8}

#: setting -> (loss weights over the defaults, FitConfig options); ``paper``: the paper's weights and
#: priors with the model's own landmark vertices (the fitter before the real-face levers)
SETTINGS = {"lmk": ({"prdl": 0.0}, {}), "lmk+prdl": ({}, {}),
            "paper": (dict(PAPER_LOSS_WEIGHTS), dict(PAPER_FIT_OPTIONS))}

FRONT_END = "front end"


@dataclass
class Item:
    """One photo: where it is, its ground truth in original pixels."""

    dataset: str
    image: str
    landmarks: Optional[np.ndarray] = None  # [68, 2] 0-based original pixels
    labels: Optional[np.ndarray] = None  # [H, W] our part ids, original pixels
    region: Optional[np.ndarray] = None  # [H, W] bool face region, original pixels
    hard: bool = False  # closed eyes / open mouth


def eye_mouth_hard(lm: np.ndarray, eye_thr: float = 0.15, mouth_thr: float = 0.30) -> bool:
    """True for closed eyes (mean opening < eye_thr) or an open mouth (ratio > mouth_thr); 0-based iBUG."""
    def d(a, b):
        return float(np.linalg.norm(lm[a] - lm[b]))

    eyes = [np.mean([d(u, lo) for u, lo in pairs]) / max(d(*corners), 1e-9) for pairs, corners in EYE_LIDS_68.values()]
    mouth = d(*LIP_PAIRS[1]) / max(d(48, 54), 1e-9)
    return float(np.mean(eyes)) < eye_thr or mouth > mouth_thr


def image_size(path: str) -> Tuple[int, int]:
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise SystemExit(f"cannot read {path}")
    return img.shape[1], img.shape[0]


def load_items(shared: str, limit_300w: int, limit_other: Optional[int], split: str = "all", skip: int = 0) -> List[Item]:
    items: List[Item] = []
    root = os.path.join(shared, "images")
    for jpg in split_300w(shared, split)[skip:skip + limit_300w]:
        lm = read_pts(os.path.splitext(jpg)[0] + ".pts")
        items.append(Item("300w", jpg, landmarks=lm, hard=eye_mouth_hard(lm)))
    for png in sorted(glob.glob(os.path.join(root, "ffhq-dev", "[0-9]*.png")))[:limit_other]:
        stem = os.path.splitext(png)[0]
        lm = np.load(stem + ".landmarks68.npy").astype(np.float64)
        seg = np.load(stem + ".seg.npy")
        items.append(Item("ffhq", png, landmarks=lm, region=seg != 0, hard=eye_mouth_hard(lm)))
    for jpg in sorted(glob.glob(os.path.join(root, "celebamask-hq", "*.jpg")))[:limit_other]:
        raw = cv2.imread(os.path.splitext(jpg)[0] + ".labels.png", cv2.IMREAD_UNCHANGED)
        W, H = image_size(jpg)
        if raw.shape[:2] != (H, W):
            raw = cv2.resize(raw, (W, H), interpolation=cv2.INTER_NEAREST)
        lab = np.zeros(raw.shape[:2], np.uint8)
        for src, dst in CELEBAMASK_TO_PARTS.items():
            lab[raw == src] = dst
        items.append(Item("celebamask", jpg, labels=lab))
    return items


def targets_for(item: Item, source: str = "frontend"):
    if item.landmarks is not None and source == "gt":
        if item.dataset == "300w":
            cfg = TargetConfig(landmarks="file")  # <stem>.pts beside the photo
        else:
            cfg = TargetConfig(landmarks="file", landmark_file=os.path.splitext(item.image)[0] + ".landmarks68.npy")
    else:
        cfg = TargetConfig()
    found = build_targets(item.image, cfg)
    return found[0] if found else None


def to_crop(labels: np.ndarray, crop) -> np.ndarray:
    W, H = crop.size
    return cv2.warpAffine(labels.astype(np.uint8), crop.matrix(), (W, H), flags=cv2.INTER_NEAREST, borderValue=0)


@dataclass
class Scores:
    nme: float = float("nan")
    ious_gt: Optional[np.ndarray] = None  # [8] vs data-set labels
    region_iou: float = float("nan")
    ious_parser: Optional[np.ndarray] = None  # [8] vs the parser's targets
    ious_outline: Optional[np.ndarray] = None  # [len(OUTLINED_PARTS)] vs the annotated 68 points' outlines
    regions: Optional[Dict[str, float]] = None  # NME per REGIONS_68 entry
    exp_sum: float = float("nan")
    iterations: int = 0  # rigid + main iterations the fit ran
    converged: bool = False  # stopped early (not at the iteration cap)


def region_nme(pred: np.ndarray, gt: np.ndarray) -> Dict[str, float]:
    """NME of each REGIONS_68 entry (outer-eye-corner normalised, like landmark_nme)."""
    return {name: landmark_nme(pred, gt, np.isin(np.arange(68), list(idx))) for name, idx in REGIONS_68.items()}


def score_landmarks(s: Scores, item: Item, landmarks_original: np.ndarray) -> Scores:
    if item.landmarks is not None:
        s.nme = landmark_nme(landmarks_original, item.landmarks)
        s.regions = region_nme(landmarks_original, item.landmarks)
    return s


def score_labels(s: Scores, item: Item, rendered: np.ndarray, crop) -> Scores:
    if item.dataset == "300w" and item.landmarks is not None:
        outline = annotated_part_labels(crop.to_crop(item.landmarks), crop.size)
        s.ious_outline = part_ious(rendered, outline)[list(OUTLINED_PARTS)]
    if item.labels is not None:
        s.ious_gt = part_ious(rendered, to_crop(item.labels, crop))
    if item.region is not None:
        gt = to_crop(item.region.astype(np.uint8), crop) > 0
        pred = rendered > 0
        s.region_iou = float(np.logical_and(gt, pred).sum() / max(np.logical_or(gt, pred).sum(), 1))
    return s


def score_front_end(item: Item, t) -> Scores:
    """The front end alone: its 68 points (original pixels) and its cleaned part masks."""
    s = score_landmarks(Scores(), item, t.crop.to_original(np.asarray(t.landmarks, np.float64)))
    return score_labels(s, item, t.part_masks, t.crop)


def score(model, item: Item, res) -> Scores:
    t = res.targets
    W, H = t.size
    rendered = render_part_labels(model, torch.from_numpy(res.vertices_image)[None],
                                  torch.from_numpy(res.vertices_camera[:, 2])[None], (W, H))[0]
    s = Scores(ious_parser=part_ious(rendered, t.part_masks), exp_sum=float(np.sum(res.exp_coeffs)),
               iterations=int(res.iterations), converged=bool(res.converged))
    score_landmarks(s, item, res.landmarks2d_original())
    return score_labels(s, item, rendered, t.crop)


# ---------------------------------------------------------------------------------------- eos
class EosFitter:
    """eos-py shape + pose + expression fit from 68 landmarks (SFM 3448)."""

    def __init__(self, folder: str):
        import eos

        self.eos = eos
        def j(n):
            return os.path.join(folder, n)

        model = eos.morphablemodel.load_model(j("sfm_shape_3448.bin"))
        blend = eos.morphablemodel.load_blendshapes(j("expression_blendshapes_3448.bin"))
        self.model = eos.morphablemodel.MorphableModel(
            model.get_shape_model(), blend, color_model=eos.morphablemodel.PcaModel(),
            vertex_definitions=None, texture_coordinates=model.get_texture_coordinates())
        self.mapper = eos.core.LandmarkMapper(j("ibug_to_sfm.txt"))
        self.edges = eos.morphablemodel.load_edge_topology(j("sfm_3448_edge_topology.json"))
        self.contour_lm = eos.fitting.ContourLandmarks.load(j("ibug_to_sfm.txt"))  # TOML, holds the contour ids
        self.contour = eos.fitting.ModelContour.load(j("sfm_model_contours.json"))

    def fit(self, landmarks: np.ndarray, size: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray, float]:
        """([68, 2] projected landmarks (NaN where unmapped), [68] valid, seconds)."""
        eos = self.eos
        W, H = size
        lms = [eos.core.Landmark(str(i + 1), [float(x), float(y)]) for i, (x, y) in enumerate(landmarks)]
        t0 = time.perf_counter()
        mesh, pose, _, _ = eos.fitting.fit_shape_and_pose(self.model, lms, self.mapper, W, H, self.edges,
                                                          self.contour_lm, self.contour)
        secs = time.perf_counter() - t0
        V = np.asarray(mesh.vertices, np.float64)
        P = np.asarray(pose.get_projection()) @ np.asarray(pose.get_modelview())
        hom = np.c_[V, np.ones(len(V))] @ P.T
        ndc = hom[:, :3] / hom[:, 3:4]
        img = np.c_[(ndc[:, 0] + 1) / 2 * W, H - (ndc[:, 1] + 1) / 2 * H]
        out = np.full((68, 2), np.nan)
        valid = np.zeros(68, bool)
        for i in range(68):
            v = self.mapper.convert(str(i + 1))
            if v is not None:
                out[i] = img[int(v)]
                valid[i] = True
        return out, valid, secs


# ---------------------------------------------------------------------------------------- report
def mean_std(x) -> str:
    x = np.asarray([v for v in x if v is not None], np.float64)
    x = x[np.isfinite(x)]
    return f"{x.mean():.4f} ± {x.std():.4f} (n={len(x)})" if len(x) else "–"


def iou_row(arrs: List[np.ndarray]) -> List[str]:
    if not arrs:
        return ["–"] * (len(PART_NAMES) + 1)
    a = np.stack(arrs)
    cells = []
    for p in range(len(PART_NAMES)):
        col = a[:, p][np.isfinite(a[:, p])]
        cells.append(f"{col.mean():.2f}" if len(col) else "–")
    cells.append(f"{np.nanmean(np.nanmean(a, 1)):.3f}")
    return cells


def outline_row(arrs: List[np.ndarray]) -> List[str]:
    """Mean IoU per outlined part (NaN, a part absent from both maps, left out) and over them."""
    if not arrs:
        return ["–"] * (len(OUTLINED_PARTS) + 1)
    a = np.stack(arrs)
    cells = [f"{np.nanmean(a[:, j]):.3f}" if np.isfinite(a[:, j]).any() else "–" for j in range(a.shape[1])]
    return cells + [f"{np.nanmean(a):.3f}"]


def report(items: List[Item], scores: Dict[str, List[Optional[Scores]]], eos_rows, secs, args) -> str:
    out = []
    names = list(scores)
    out.append("### Landmark NME (fitted 68 landmarks vs ground truth, original pixels)\n")
    head = ["data set", "subset"] + names + (["eos (SFM 3448)"] if eos_rows is not None else [])
    out += ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for ds in ("300w", "ffhq"):
        for sub, keep in (("all", lambda it: True), ("closed-eye / open-mouth", lambda it: it.hard)):
            idx = [i for i, it in enumerate(items) if it.dataset == ds and keep(it)]
            cells = [ds, sub] + [mean_std([scores[n][i].nme for i in idx if scores[n][i]]) for n in names]
            if eos_rows is not None:
                cells.append(mean_std([eos_rows[i][0] for i in idx if eos_rows[i] is not None]))
            out.append("| " + " | ".join(cells) + " |")
    out.append("\n#### NME per region, 300-W (mean over photos; \"beats front end\": photos where the row's "
               "all-68 NME is lower than the front end's)\n")
    head = ["setting"] + list(REGIONS_68) + ["all 68", "beats front end", "exp sum", "iterations median (min-max)",
                                          "stopped early"]
    out += ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    idx = [i for i, it in enumerate(items) if it.dataset == "300w"]
    fe = scores.get(FRONT_END)
    for n in names:
        ok = [i for i in idx if scores[n][i] and scores[n][i].regions]
        if not ok:
            continue
        cells = [n] + [f"{np.mean([scores[n][i].regions[r] for i in ok]):.4f}" for r in REGIONS_68]
        cells.append(f"{np.mean([scores[n][i].nme for i in ok]):.4f}")
        both = [i for i in ok if fe is not None and fe[i]]
        cells.append("–" if n == FRONT_END or fe is None else f"{sum(scores[n][i].nme < fe[i].nme for i in both)}/{len(both)}")
        ex = [scores[n][i].exp_sum for i in ok if np.isfinite(scores[n][i].exp_sum)]
        cells.append(f"{np.mean(ex):.2f}" if ex else "–")
        its = [scores[n][i].iterations for i in ok] if n != FRONT_END else []
        cells.append(f"{np.median(its):.0f} ({min(its)}-{max(its)})" if its else "–")
        cells.append(f"{sum(scores[n][i].converged for i in ok)}/{len(ok)}" if its else "–")
        out.append("| " + " | ".join(cells) + " |")
    if eos_rows is not None:
        t = [r[1] for r in eos_rows if r is not None]
        out.append(f"\neos: {np.mean(t) * 1000:.1f} ms per fit (mean of {len(t)}), NME over the landmarks "
                   f"ibug_to_sfm.txt maps; ours: see the fit-time line.")
    out.append("\n### Part IoU of the re-rendered fit (224×224 crop)\n")
    head = ["reference", "setting"] + list(PART_NAMES) + ["mean"]
    out += ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for ds, ref in (("celebamask", "CelebAMask-HQ labels"),):
        for n in names:
            arr = [scores[n][i].ious_gt for i, it in enumerate(items) if it.dataset == ds and scores[n][i]]
            out.append("| " + " | ".join([f"{ref} (n={len(arr)})", n] + iou_row(arr)) + " |")
    out.append("\n### Part IoU against the annotators' 68 points, 300-W (eyes and lips, each the region inside "
               "smooth curves through its points; a closed eye's slit is no part)\n")
    head = ["subset", "setting"] + [PART_NAMES[p] for p in OUTLINED_PARTS] + ["mean"]
    out += ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for sub, keep in (("all", lambda it: True), ("closed-eye / open-mouth", lambda it: it.hard)):
        for n in names:
            arr = [scores[n][i].ious_outline for i, it in enumerate(items)
                   if it.dataset == "300w" and keep(it) and scores[n][i] and scores[n][i].ious_outline is not None]
            out.append("| " + " | ".join([f"300w {sub} (n={len(arr)})", n] + outline_row(arr)) + " |")
    for ds in ("300w", "ffhq", "celebamask"):
        for n in names:
            if n == FRONT_END:
                continue
            arr = [scores[n][i].ious_parser for i, it in enumerate(items) if it.dataset == ds and scores[n][i]]
            out.append("| " + " | ".join([f"parser targets, {ds} (n={len(arr)})", n] + iou_row(arr)) + " |")
    out.append("\n### Face-region IoU on ffhq-dev (any rendered part vs seg.npy nonzero)\n")
    out += ["| setting | IoU |", "|---|---|"]
    for n in names:
        out.append(f"| {n} | {mean_std([s.region_iou for i, s in enumerate(scores[n]) if s and items[i].dataset == 'ffhq'])} |")
    out.append("\nFit wall time per data set and setting (batched): " +
               ", ".join(f"{k} {v:.0f} s" for k, v in secs.items()))
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=os.environ.get("PRDLFIT_SHARED", "/work/shared"))
    ap.add_argument("--limit", type=int, default=20, help="300-W images (first N sorted, after --skip)")
    ap.add_argument("--skip", type=int, default=0,
                    help="leave out the first N 300-W photos of the split (--split calibration --skip 40: the "
                         "photos the landmark tables were not fitted on)")
    ap.add_argument("--limit-other", type=int, default=None, help="ffhq / celebamask images (default all)")
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--rigid-iters", type=int, default=100)
    ap.add_argument("--batch", type=int, default=8, help="faces per batched fit")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--eos", action="store_true", help="also fit eos (SFM 3448) from the same landmarks")
    ap.add_argument("--split", default="all", choices=SPLITS, help="which half of 300-W (scripts/real_data.py)")
    ap.add_argument("--targets", default="frontend", choices=["frontend", "gt"],
                    help="the fit's landmarks: MediaPipe's (as prdlfit fit) or the ground truth")
    ap.add_argument("--settings", nargs="+", default=[FRONT_END] + list(SETTINGS), choices=[FRONT_END] + list(SETTINGS))
    add_fit_arguments(ap, "every fitted setting but paper")
    ap.add_argument("--landmarks", default="calibrated", choices=["calibrated", "vertices"],
                    help="the model's landmark definition (morphable_models.load(..., landmarks=))")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    options, extra = read_fit_arguments(ap, args)

    model = morphable_models.load("ict", landmarks=args.landmarks)
    items = load_items(args.shared, args.limit, args.limit_other, args.split, args.skip)
    targets = []
    for it in items:
        try:
            targets.append(targets_for(it, args.targets))
        except Exception as err:  # a photo the front end cannot handle is reported, not fatal
            print(f"skip {it.image}: {err}", file=sys.stderr)
            targets.append(None)
    print(f"{len(items)} photos, {sum(t is not None for t in targets)} with targets, "
          f"{sum(it.hard for it in items)} closed-eye/open-mouth", file=sys.stderr)

    scores: Dict[str, List[Optional[Scores]]] = {}
    secs: Dict[str, float] = {}
    ok = [i for i, t in enumerate(targets) if t is not None]
    if FRONT_END in args.settings:
        scores[FRONT_END] = [score_front_end(items[i], targets[i]) if targets[i] is not None else None
                             for i in range(len(items))]
    for name in [n for n in args.settings if n != FRONT_END]:
        w, opts = SETTINGS[name]
        w = dict(w) if name == "paper" else {**extra, **w}
        opts = dict(opts) if name == "paper" else {**opts, **options}
        fitter = Fitter(model, FitConfig(loss_weights=w, iters=args.iters, rigid_iters=args.rigid_iters,
                                         device=args.device, **opts))
        scores[name] = [None] * len(items)
        fitted = model_as_fitted(model, fitter.config)  # the parts the fit used, for its label map
        t0 = time.perf_counter()
        for k in range(0, len(ok), args.batch):
            chunk = ok[k:k + args.batch]
            for i, res in zip(chunk, fitter.fit([targets[i] for i in chunk])):
                if res.failure is None:
                    scores[name][i] = score(fitted, items[i], res)
        secs[name] = time.perf_counter() - t0
        print(f"{name}: {secs[name]:.0f} s", file=sys.stderr)

    eos_rows = None
    if args.eos:
        ef = EosFitter(os.path.join(args.shared, "models", "sfm-3448"))
        eos_rows = []
        for it in items:
            if it.landmarks is None:
                eos_rows.append(None)
                continue
            pred, valid, t = ef.fit(it.landmarks, image_size(it.image))
            eos_rows.append((landmark_nme(np.nan_to_num(pred), it.landmarks, valid), t))

    n300, nffhq = sum(it.dataset == '300w' for it in items), sum(it.dataset == 'ffhq' for it in items)
    text = (f"{n300} 300-W ({args.split} split{f', after the first {args.skip}' if args.skip else ''}), {nffhq} ffhq-dev, "
            f"{sum(it.dataset == 'celebamask' for it in items)} CelebAMask-HQ photos; {args.rigid_iters} rigid + "
            f"{args.iters} main iterations, batches of {args.batch}, device {args.device}; fit targets: "
            f"{'MediaPipe landmarks (raw photo)' if args.targets == 'frontend' else 'ground-truth landmarks'}; "
            f"model landmarks: {args.landmarks}"
            + "".join(f"; --loss {k}={v:g}" for k, v in extra.items())
            + "".join(f"; {k}={v}" for k, v in options.items()) + ".\n\n"
            + report(items, scores, eos_rows, secs, args))
    return emit(text, args.out)


if __name__ == "__main__":
    sys.exit(main())
