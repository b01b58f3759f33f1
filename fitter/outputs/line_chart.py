"""Line charts drawn straight into an RGB array with Pillow: the per-fit ``curves.png``.

Every ``prdlfit fit`` writes a convergence plot, and with matplotlib that plot cost about a
second of a single-photo run on two cores (0.6 s to import the library, 0.3 s to draw and
encode). This module draws the same kind of chart (panels side by side, a log or linear y axis
with labelled ticks and grid, a dotted vertical line where a stage starts, a legend, titles)
with Pillow's ImageDraw, which imports in ~20 ms. Lines are drawn at twice the size and
downsampled, which antialiases them. Comparisons of several fits, PDF/SVG and animations
(``prdlfit curves``) still use matplotlib (:func:`fitter.outputs.curves.compare_curves`).

Coordinates: x is data units (iterations), y is data units; a log panel plots log10(y) and
skips values ≤ 0 or not finite (a line breaks there, as matplotlib's does at NaN).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

RGB = Tuple[int, int, int]

#: line colours in series order (matplotlib's default "tab10" cycle, so the look stays familiar)
PALETTE: Tuple[RGB, ...] = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                            (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))

#: supersampling factor (drawn this many times larger, then downsampled: antialiased lines)
_SS = 2


@dataclass
class Series:
    """One line: ``x`` [N] and ``y`` [N] (NaN breaks the line), its legend ``label``, colour
    (None: the palette's next) and width in output pixels."""

    label: str
    x: np.ndarray
    y: np.ndarray
    color: Optional[RGB] = None
    width: float = 1.0


@dataclass
class Panel:
    """One chart: a title, lines, vertical marker lines at ``vlines`` (x), an x label, log y."""

    title: str = ""
    series: List[Series] = field(default_factory=list)
    vlines: Sequence[float] = ()
    xlabel: str = ""
    log_y: bool = True


def _font(size: int):
    """Pillow's built-in scalable font at ``size`` px (its bitmap font where FreeType is missing)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # Pillow < 10.1, or no FreeType
        return ImageFont.load_default()


def nice_ticks(lo: float, hi: float, target: int = 7) -> np.ndarray:
    """Round tick positions (1, 2 or 5 × 10^k apart) within [lo, hi], at most about ``target`` of them."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return np.asarray([lo], dtype=np.float64)
    raw = (hi - lo) / max(1, target)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return np.arange(first, hi + step * 1e-9, step)


def log_ticks(lo: float, hi: float) -> Tuple[np.ndarray, bool]:
    """Ticks of a log axis whose data spans [lo, hi] (lo > 0): the powers of ten inside it, or,
    when no more than one lies inside, 1-9 × 10^k as well. Returns (values, minor_included)."""
    k0, k1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    decades = np.asarray([10.0 ** k for k in range(k0, k1 + 1)])
    inside = decades[(decades >= lo * (1 - 1e-9)) & (decades <= hi * (1 + 1e-9))]
    if len(inside) >= 2:
        return inside, False
    fine = np.asarray([m * 10.0 ** k for k in range(k0, k1 + 1) for m in range(1, 10)])
    fine = fine[(fine >= lo * (1 - 1e-9)) & (fine <= hi * (1 + 1e-9))]
    if len(fine) > 6:  # keep every other multiple so the labels do not collide
        fine = fine[::2]
    return fine, True


def tick_label(v: float) -> str:
    """A plain-number tick label (1, 0.1, 0.001, 1e-05, 250)."""
    return f"{v:g}"


def _segments(px: np.ndarray, py: np.ndarray) -> List[List[Tuple[float, float]]]:
    """Runs of finite points as polylines."""
    out, cur = [], []
    for x, y in zip(px, py):
        if math.isfinite(x) and math.isfinite(y):
            cur.append((float(x), float(y)))
        elif cur:
            out.append(cur)
            cur = []
    if cur:
        out.append(cur)
    return out


def _text_size(draw, text: str, font) -> Tuple[int, int]:
    box = draw.textbbox((0, 0), text, font=font)
    return box[2] - box[0], box[3] - box[1]


def _dotted_vline(draw, x: float, y0: float, y1: float, color: RGB, width: int, dash: int) -> None:
    y = y0
    while y < y1:
        draw.line([(x, y), (x, min(y + dash, y1))], fill=color, width=width)
        y += 2 * dash


def _draw_panel(draw, panel: Panel, box: Tuple[float, float, float, float], fonts) -> None:
    """Draw ``panel`` into the pixel rectangle ``box`` (x0, y0, x1, y1) of the supersampled canvas."""
    small, normal = fonts
    x0, y0, x1, y1 = box
    ys = [s.y for s in panel.series]
    xs = [s.x for s in panel.series]
    tf = (lambda v: np.log10(v)) if panel.log_y else (lambda v: v)
    ok = [(np.isfinite(y) & (y > 0)) if panel.log_y else np.isfinite(y) for y in ys]
    yv = np.concatenate([y[k] for y, k in zip(ys, ok)]) if ys else np.zeros(0)
    xv = np.concatenate([x[k & np.isfinite(x)] for x, k in zip(xs, ok)]) if xs else np.zeros(0)
    if panel.title:
        w, h = _text_size(draw, panel.title, normal)
        draw.text(((x0 + x1 - w) / 2, y0 - h - 8 * _SS), panel.title, fill=(0, 0, 0), font=normal)
    draw.rectangle([x0, y0, x1, y1], outline=(0, 0, 0), width=_SS)
    if panel.xlabel:
        w, _ = _text_size(draw, panel.xlabel, small)
        draw.text(((x0 + x1 - w) / 2, y1 + 22 * _SS), panel.xlabel, fill=(0, 0, 0), font=small)
    if not len(yv) or not len(xv):
        return
    xlo, xhi = float(xv.min()), float(xv.max())
    if xhi <= xlo:
        xlo, xhi = xlo - 1, xhi + 1
    ylo, yhi = float(yv.min()), float(yv.max())
    tlo, thi = (math.log10(ylo), math.log10(yhi)) if panel.log_y else (ylo, yhi)
    if thi <= tlo:
        tlo, thi = tlo - 0.5, thi + 0.5
    pad = 0.05 * (thi - tlo)
    tlo, thi = tlo - pad, thi + pad  # ticks are placed over the padded range, as the axis shows it
    ticks = log_ticks(10.0 ** tlo, 10.0 ** thi)[0] if panel.log_y else nice_ticks(tlo, thi)

    def to_px(x, t):
        return (x0 + (np.asarray(x, np.float64) - xlo) / (xhi - xlo) * (x1 - x0),
                y1 - (np.asarray(t, np.float64) - tlo) / (thi - tlo) * (y1 - y0))

    grid, ink = (225, 225, 225), (0, 0, 0)
    for v in ticks:
        _, py = to_px(xlo, tf(v))
        if y0 <= py <= y1:
            draw.line([(x0, py), (x1, py)], fill=grid, width=_SS)
            draw.line([(x0 - 4 * _SS, py), (x0, py)], fill=ink, width=_SS)
            label = tick_label(v)
            w, h = _text_size(draw, label, small)
            draw.text((x0 - 6 * _SS - w, py - h / 2 - 2 * _SS), label, fill=ink, font=small)
    for v in nice_ticks(xlo, xhi):
        px, _ = to_px(v, tlo)
        draw.line([(px, y1), (px, y1 + 4 * _SS)], fill=ink, width=_SS)
        label = tick_label(v)
        w, _ = _text_size(draw, label, small)
        draw.text((px - w / 2, y1 + 6 * _SS), label, fill=ink, font=small)
    for v in panel.vlines:
        px, _ = to_px(v, tlo)
        _dotted_vline(draw, float(px), y0, y1, (128, 128, 128), _SS, 3 * _SS)
    legend, drawn, cycle = [], [], 0
    for s, k in zip(panel.series, ok):
        color = s.color
        if color is None:  # the palette in order over the series without a colour of their own
            color, cycle = PALETTE[cycle % len(PALETTE)], cycle + 1
        y = np.where(k, s.y, np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            px, py = to_px(s.x, tf(y) if panel.log_y else y)
        drawn.append((px, py))
        for seg in _segments(px, py):
            if len(seg) == 1:
                seg = seg * 2
            draw.line(seg, fill=color, width=max(1, int(round(s.width * _SS))), joint="curve")
        legend.append((s.label, color, s.width))
    if legend:  # in the corner that covers the fewest plotted points, one row per line
        rows = [_text_size(draw, lab, small) for lab, _, _ in legend]
        row_h = max(h for _, h in rows) + 5 * _SS
        swatch = 18 * _SS
        w = max(w for w, _ in rows) + swatch + 14 * _SS
        h = row_h * len(legend) + 4 * _SS
        gap = 6 * _SS
        px = np.concatenate([p for p, _ in drawn])
        py = np.concatenate([q for _, q in drawn])
        corners = [(x1 - gap - w, y0 + gap), (x1 - gap - w, y1 - gap - h), (x0 + gap, y1 - gap - h), (x0 + gap, y0 + gap)]

        def covered(corner) -> int:
            cx, cy = corner
            return int(np.sum((px >= cx) & (px <= cx + w) & (py >= cy) & (py <= cy + h)))

        lx0, ly0 = min(corners, key=covered)  # ties: the first (top right)
        lx1 = lx0 + w
        draw.rectangle([lx0, ly0, lx1, ly0 + h], fill=(255, 255, 255), outline=(200, 200, 200), width=_SS)
        for j, (lab, color, width) in enumerate(legend):
            cy = ly0 + 4 * _SS + row_h * j + row_h / 2
            draw.line([(lx0 + 4 * _SS, cy), (lx0 + 4 * _SS + swatch, cy)], fill=color,
                      width=max(1, int(round(width * _SS))))
            draw.text((lx0 + 8 * _SS + swatch, cy - rows[j][1] / 2 - 2 * _SS), lab, fill=ink, font=small)


def render_chart(panels: Sequence[Panel], title: str = "", panel_size: Tuple[int, int] = (500, 400)) -> np.ndarray:
    """[H, W, 3] uint8 RGB image of ``panels`` side by side, each ``panel_size`` (w, h) pixels,
    under an optional ``title``."""
    from PIL import Image, ImageDraw

    if not panels:
        raise ValueError("render_chart needs at least one panel")
    pw, ph = panel_size
    top = 28 if title else 0
    W, H = pw * len(panels), ph + top
    img = Image.new("RGB", (W * _SS, H * _SS), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    fonts = (_font(10 * _SS), _font(12 * _SS))
    if title:
        big = _font(14 * _SS)
        w, _ = _text_size(draw, title, big)
        draw.text(((W * _SS - w) / 2, 6 * _SS), title, fill=(0, 0, 0), font=big)
    margins = (62, 34, 12, 48)  # left, top, right, bottom (px)
    for i, panel in enumerate(panels):
        box = ((i * pw + margins[0]) * _SS, (top + margins[1]) * _SS,
               ((i + 1) * pw - margins[2]) * _SS, (top + ph - margins[3]) * _SS)
        _draw_panel(draw, panel, box, fonts)
    img = img.reduce(_SS)  # the mean of each _SS × _SS block: the supersampling's antialiasing
    return np.asarray(img, dtype=np.uint8)
