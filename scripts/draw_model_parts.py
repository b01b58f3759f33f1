"""Draw a morphable model's 8 parts and 68 landmark vertices on its mean face (front and side).

Usage: python scripts/draw_model_parts.py [ict|sfm|bfm|PATH] [--out /tmp/ict_parts.png]
       [--exp NAME=VALUE ...] [--contours]
Writes a PNG (not meant to be committed).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fitter.palette import PART_COLORS  # noqa: E402


def _face_colors(triangles: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """[F, 3] RGB in [0, 1] of each triangle: its part as the fitter rasterizes it
    (:func:`fitter.geometry.triangle_labels`), grey where none."""
    import torch

    from fitter.geometry import triangle_labels

    lab = triangle_labels(torch.as_tensor(triangles), torch.as_tensor(labels)).numpy()
    return PART_COLORS[lab] / 255.0


def draw_parts(points: np.ndarray, triangles: np.ndarray, hole_triangles: np.ndarray,
               parts: Dict[str, np.ndarray], landmarks: np.ndarray, out: Path, title: str = "",
               contours: Optional[np.ndarray] = None) -> Path:
    """Front (x, y) and side (z, y) orthographic views with part colours and landmarks."""
    from morphable_models.model import PART_NAMES

    names = list(PART_NAMES)
    labels = np.zeros(len(points), dtype=np.int64)
    for i, n in enumerate(names):
        labels[parts[n]] = i + 1
    tris = np.concatenate([triangles, hole_triangles]) if len(hole_triangles) else triangles
    fig, axes = plt.subplots(1, 2, figsize=(16, 10), gridspec_kw={"width_ratios": [1.2, 1]})
    for ax, (u, view_dir) in zip(axes, ((0, 2), (2, 0))):
        # painter's algorithm: sort triangles far to near along the view direction
        sign = 1.0 if view_dir == 2 else -1.0
        depth = sign * points[tris, view_dir].mean(axis=1)
        order = np.argsort(depth, kind="stable")
        t = tris[order]
        a, b, c = points[t[:, 0]], points[t[:, 1]], points[t[:, 2]]
        col = _face_colors(t, labels)
        polys = np.stack([a[:, [u, 1]], b[:, [u, 1]], c[:, [u, 1]]], axis=1)
        if u == 2:
            polys[..., 0] *= -1  # side view of the person's right profile: face looks left
        from matplotlib.collections import PolyCollection

        ax.add_collection(PolyCollection(polys, facecolors=col, edgecolors=col * 0.8, linewidths=0.2))
        lm = points[landmarks]
        lx = lm[:, u] * (-1 if u == 2 else 1)
        ax.scatter(lx, lm[:, 1], s=10, c="k", zorder=3)
        if u == 0:
            for i, p in enumerate(lm):
                ax.annotate(str(i), (p[0], p[1]), fontsize=6, color="navy", zorder=4)
            if contours is not None:
                for row in contours:
                    r = row[row >= 0]
                    ax.plot(points[r, 0], points[r, 1], "-", color="purple", lw=0.8, zorder=3)
        ax.autoscale()
        ax.set_aspect("equal")
        ax.set_title(("front " if u == 0 else "right side ") + title)
    handles = [plt.Rectangle((0, 0), 1, 1, color=PART_COLORS[i + 1] / 255.0) for i in range(len(names))]
    fig.legend(handles, names, loc="lower center", ncol=8)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default="ict")
    ap.add_argument("--out", default=None)
    ap.add_argument("--exp", action="append", default=[], help="expression NAME=VALUE to apply")
    ap.add_argument("--contours", action="store_true", help="also draw the contour candidate lines")
    args = ap.parse_args()
    import torch

    import morphable_models

    model = morphable_models.load(args.model)
    exp = torch.zeros(1, model.num_exp)
    for item in args.exp:
        name, value = item.split("=")
        exp[0, model.exp_index(name)] = float(value)
    pts = model.vertices(None, exp)[0].numpy()
    out = args.out or f"/tmp/{model.name}_parts.png"
    draw_parts(pts, model.triangles.numpy(), model.hole_triangles.numpy(),
               {k: v.numpy() for k, v in model.parts.items()}, model.landmarks68.numpy(), Path(out),
               title=model.name, contours=model.contour_candidates.numpy() if args.contours else None)
    print(out)


if __name__ == "__main__":
    main()
