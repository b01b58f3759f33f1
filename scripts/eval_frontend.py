"""Accuracy of the default (MediaPipe) image front end, printed as Markdown tables.

(a) 68-landmark NME (mean error / outer-eye-corner distance |p36 - p45|, per image, averaged, %)
    on shared/images/300w-train (all faces; the closed-eye / open-mouth subset, picked from the
    annotation: eye opening ratio < EYE_CLOSED or mouth opening ratio > MOUTH_OPEN) and on
    shared/images/ffhq-dev (third-party landmarks);
(b) per-part IoU against the CelebAMask-HQ label maps (original pixels);
(c) face-region IoU (union of the 8 parts) against the ffhq-dev face masks;
(d) target overlays of the 3DDFA-V3 example photos written to --out.

    python scripts/eval_frontend.py [--shared ../shared] [--out eval_frontend_out]

Note: the mesh -> 68 table was fitted on the same 300-W faces (scripts/fit_mediapipe68.py prints
its 5-fold cross-validated NME); ffhq-dev is held out.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
from PIL import Image

from fitter.targets import labels as L
from fitter.targets.crop import labels_to_original
from fitter.targets.draw import draw_targets
from fitter.targets.io import load_image, read_image
from fitter.targets.landmark_files import read_pts
from fitter.targets.mediapipe_backend import MediapipeParser, MeshPartsConfig
from fitter.targets.metrics import eye_opening, landmark_nme, mask_iou, mouth_opening
from fitter.targets.pipeline import TargetConfig, analyze_faces, build_targets
from fitter.targets.types import CropTransform
from morphable_models.model import PART_NAMES

#: eye opening (lid distance / eye width, mean of both eyes) below this = closed eyes
EYE_CLOSED = 0.15
#: mouth opening (inner lip distance 62-66 / mouth width 48-54) above this = open mouth
MOUTH_OPEN = 0.30


def default_shared() -> str:
    return os.environ.get("PRDLFIT_SHARED", str(Path(__file__).resolve().parents[1].parent / "shared"))


def nme_rows(shared: Path) -> List[str]:
    rows = ["| set | faces | failures | NME all (%) | NME jaw 0-16 (%) | NME inner 17-67 (%) | median (%) |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    sets: Dict[str, List] = {"300-W train (all)": [], "300-W closed-eye / open-mouth": [], "300-W others": [],
                             "ffhq-dev": []}
    fails: Dict[str, int] = {k: 0 for k in sets}
    for jpg in sorted((shared / "images" / "300w-train").glob("*.jpg")):
        gt = read_pts(jpg.with_suffix(".pts"))
        hard = eye_opening(gt) < EYE_CLOSED or mouth_opening(gt) > MOUTH_OPEN
        faces = analyze_faces(str(jpg))
        keys = ["300-W train (all)", "300-W closed-eye / open-mouth" if hard else "300-W others"]
        for k in keys:
            if not faces:
                fails[k] += 1
            else:
                sets[k].append((faces[0].landmarks68, gt))
    for png in sorted((shared / "images" / "ffhq-dev").glob("*.png")):
        gt = np.load(png.with_name(png.stem + ".landmarks68.npy"))
        faces = analyze_faces(str(png))
        if not faces:
            fails["ffhq-dev"] += 1
        else:
            sets["ffhq-dev"].append((faces[0].landmarks68, gt))
    for name, pairs in sets.items():
        if not pairs:
            rows.append(f"| {name} | 0 | {fails[name]} | - | - | - | - |")
            continue
        allp = np.array([landmark_nme(p, g) for p, g in pairs])
        jaw = np.array([landmark_nme(p, g, np.arange(68) < 17) for p, g in pairs])
        inner = np.array([landmark_nme(p, g, np.arange(68) >= 17) for p, g in pairs])
        rows.append(f"| {name} | {len(pairs) + fails[name]} | {fails[name]} | {100 * allp.mean():.2f} | "
                    f"{100 * jaw.mean():.2f} | {100 * inner.mean():.2f} | {100 * np.median(allp):.2f} |")
    return rows


def parse_original(path: Path, parts: MeshPartsConfig) -> np.ndarray:
    """Label map of the largest face at the photo's own resolution (with parts=MeshPartsConfig()
    this equals ``analyze_faces(path, labels=True)[0].labels``)."""
    rgb = read_image(path)
    parser = MediapipeParser(parts=parts)
    faces = parser.detect(rgb, 1)
    if not faces:
        return np.zeros(rgb.shape[:2], np.uint8)
    return parser.parse(rgb, faces[0], CropTransform.identity(rgb.shape[1], rgb.shape[0]))


def pipeline_original(path: Path, cleaned: bool) -> np.ndarray:
    """Label map of build_targets (224 crop) mapped back to original pixels: raw parser labels of
    the crop (cleaned=False) or the cleaned targets (cleaned=True)."""
    from fitter.targets.pipeline import parser_for

    cfg = TargetConfig()
    t = build_targets(str(path), cfg)[0]
    if cleaned:
        return labels_to_original(t.part_masks, t.crop)
    img = load_image(path)
    faces = parser_for(cfg).detect(img.rgb, 1)
    crop_img = CropTransform(t.crop.scale / img.scale, t.crop.offset, t.crop.size, (img.rgb.shape[1], img.rgb.shape[0]))
    return labels_to_original(parser_for(cfg).parse(img.rgb, faces[0], crop_img), t.crop)


def part_iou_rows(shared: Path) -> List[str]:
    variants = {
        "mesh polygons only": lambda p: parse_original(p, MeshPartsConfig(forehead_reach=0, hair_min_dist=0)),
        "default parser (mesh + photo), photo resolution": lambda p: parse_original(p, MeshPartsConfig()),
        "default parser at the 224 crop, mapped back": lambda p: pipeline_original(p, cleaned=False),
    }
    short = ["r_eye", "l_eye", "r_brow", "l_brow", "nose", "u_lip", "l_lip", "skin"]
    rows = ["| labels | " + " | ".join(short) + " | mean |", "|---|" + "---:|" * (len(short) + 1)]
    files = sorted((shared / "images" / "celebamask-hq").glob("*.jpg"))
    for name, fn in variants.items():
        ious = []
        for jpg in files:
            gt = L.from_celebamask_hq(np.array(Image.open(jpg.with_name(jpg.stem + ".labels.png"))))
            ours = fn(jpg)
            ious.append([mask_iou(ours == i + 1, gt == i + 1) for i in range(len(PART_NAMES))])
        m = np.nanmean(np.array(ious), axis=0)
        rows.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in m) + f" | {np.nanmean(m):.3f} |")
    rows.append(f"\n({len(files)} CelebAMask-HQ photos; 'r_'/'l_' = the person's own right/left.)")
    return rows


def face_region_rows(shared: Path) -> List[str]:
    rows = ["| labels | " + " | ".join(p.stem for p in sorted((shared / "images" / "ffhq-dev").glob("*.png")))
            + " | mean |"]
    files = sorted((shared / "images" / "ffhq-dev").glob("*.png"))
    rows.append("|---|" + "---:|" * (len(files) + 1))
    for name, fn in {
        "default parser, photo resolution": lambda p: parse_original(p, MeshPartsConfig()),
        "cleaned targets (forehead cut), mapped back": lambda p: pipeline_original(p, cleaned=True),
    }.items():
        v = []
        for png in files:
            gt = np.load(png.with_name(png.stem + ".seg.npy")) != 0
            v.append(mask_iou(L.face_region(fn(png)), gt))
        rows.append(f"| {name} | " + " | ".join(f"{x:.3f}" for x in v) + f" | {np.mean(v):.3f} |")
    return rows


def write_overlays(shared: Path, out: Path) -> List[str]:
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for p in sorted((shared / "images" / "3ddfa-v3-examples").iterdir()):
        t0 = time.perf_counter()
        ts = build_targets(str(p), TargetConfig(all_faces=True))
        dt = time.perf_counter() - t0
        img = np.concatenate([draw_targets(t) for t in ts], axis=1)
        dst = out / f"targets_{p.stem}.png"
        Image.fromarray(img).save(dst)
        n = {k: len(v) for k, v in ts[0].part_points.items()}
        lines.append(f"- {dst}: {len(ts)} face(s), {dt * 1000:.0f} ms, points {n}")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Evaluate the default image front end (Markdown tables).")
    ap.add_argument("--shared", default=default_shared(), help="shared data folder (default $PRDLFIT_SHARED or ../shared)")
    ap.add_argument("--out", default="out/eval_frontend",
                    help="folder for the overlay PNGs (default out/eval_frontend, git-ignored)")
    args = ap.parse_args(argv)
    shared = Path(args.shared)
    if not (shared / "images").is_dir():
        print(f"shared data not found at {shared} (use --shared or PRDLFIT_SHARED)", file=sys.stderr)
        return 2
    build_targets(str(next((shared / "images" / "3ddfa-v3-examples").iterdir())))  # warm up the models
    print("## (a) Landmark NME of the default detector (MediaPipe mesh -> iBUG-68)\n")
    print(f"closed eyes: eye opening < {EYE_CLOSED}; open mouth: mouth opening > {MOUTH_OPEN} (from the annotation)\n")
    print("\n".join(nme_rows(shared)))
    print("\n## (b) Per-part IoU vs CelebAMask-HQ labels (original pixels)\n")
    print("\n".join(part_iou_rows(shared)))
    print("\n## (c) Face-region IoU (union of the 8 parts) vs ffhq-dev masks\n")
    print("\n".join(face_region_rows(shared)))
    print("\n## (d) Target overlays\n")
    print("\n".join(write_overlays(shared, Path(args.out))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
