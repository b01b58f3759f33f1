"""Convergence curves: ``curves.csv`` from a :class:`LossHistory`, its plot, and comparisons.

CSV columns: ``iteration``, ``stage``, ``total``, one column per active loss term (weighted value),
then ``prdl/<part>`` per part when PRDL is active (see :class:`fitter.result.LossHistory`).
The per-fit ``curves.png`` (:func:`history_chart`) is drawn with Pillow
(:mod:`fitter.outputs.line_chart`: no matplotlib import in ``prdlfit fit``); comparisons of several
fits (:func:`compare_curves`, ``prdlfit curves``) use matplotlib's Agg canvas (no display, no pyplot
state), imported when first used.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING, List, Sequence, Tuple

import numpy as np

from fitter.outputs.atomic import PathLike, atomic_path, write_text_atomic
from fitter.outputs.line_chart import Panel, Series, render_chart
from fitter.result import LossHistory

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: columns that are not loss values
META_COLUMNS = ("iteration", "stage")


def curves_csv_text(history: LossHistory) -> str:
    """CSV text of ``history`` (header + one row per iteration; floats with 8 significant digits)."""
    cols = history.columns() or ["iteration", "stage", "total"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for row in history.rows:
        out = []
        for c in cols:
            v = row.get(c, "")
            out.append(f"{v:.8g}" if isinstance(v, float) else v)
        w.writerow(out)
    return buf.getvalue()


def write_curves_csv(path: PathLike, history: LossHistory) -> Path:
    """Write ``curves.csv`` atomically; returns the path."""
    write_text_atomic(path, curves_csv_text(history))
    return Path(path)


def read_curves_csv(path: PathLike) -> LossHistory:
    """Read a ``curves.csv`` back into a :class:`LossHistory` (numbers as float, iteration as int)."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "iteration" not in reader.fieldnames or "total" not in reader.fieldnames:
            raise ValueError(f"{path}: not a curves CSV (needs iteration and total columns)")
        rows = []
        for line in reader:
            row: dict = {}
            for k, v in line.items():
                if k == "stage":
                    row[k] = v
                elif k == "iteration":
                    row[k] = int(float(v))
                else:
                    row[k] = float(v) if v not in ("", None) else float("nan")
            rows.append(row)
    return LossHistory(rows=rows)


def term_columns(history: LossHistory) -> List[str]:
    """Loss-term columns (not ``total``, not per-part PRDL)."""
    return [c for c in history.columns() if c not in META_COLUMNS and c != "total" and "/" not in c]


def part_columns(history: LossHistory) -> List[str]:
    """Per-part PRDL columns (``prdl/<part>``)."""
    return [c for c in history.columns() if c.startswith("prdl/")]


def _positive(y: np.ndarray) -> np.ndarray:
    """Values <= 0 become NaN so a log axis skips them (a term inactive in a stage is 0)."""
    y = np.asarray(y, dtype=np.float64).copy()
    y[~(y > 0)] = np.nan
    return y


def _stage_starts(history: LossHistory) -> List[Tuple[int, str]]:
    out, prev = [], None
    for r in history.rows:
        s = r.get("stage")
        if s != prev:
            out.append((int(r["iteration"]), str(s)))
            prev = s
    return out


def history_chart(history: LossHistory, title: str = "") -> np.ndarray:
    """[H, W, 3] uint8 RGB ``curves.png`` of one fit: the total and each weighted term (log y), and
    the weighted PRDL of each part beside it when PRDL ran; a dotted line where a stage starts.

    Drawn with Pillow (:func:`fitter.outputs.line_chart.render_chart`): it is written with every
    fit, and matplotlib's import alone took 0.6 s of a single-photo run."""
    it = history.column("iteration") if len(history) else np.zeros(0)
    starts = [x for x, _stage in _stage_starts(history)[1:]]
    terms = Panel("loss terms (weighted)", xlabel="iteration", vlines=starts)
    if len(history):
        terms.series.append(Series("total", it, _positive(history.column("total")), color=(0, 0, 0), width=2.0))
        terms.series += [Series(c, it, _positive(history.column(c))) for c in term_columns(history)]
    panels = [terms]
    parts = part_columns(history)
    if parts:
        panels.append(Panel("PRDL per part (weighted)", xlabel="iteration", vlines=starts,
                            series=[Series(c.split("/", 1)[1], it, _positive(history.column(c))) for c in parts]))
    return render_chart(panels, title, panel_size=(500, 400) if parts else (600, 400))


#: figure file types :func:`save_figure` writes (by suffix)
FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


def check_figure_path(path: PathLike) -> Path:
    """``path`` if its suffix is one of :data:`FIGURE_SUFFIXES`; ValueError naming it otherwise."""
    p = Path(path)
    if p.suffix.lower() not in FIGURE_SUFFIXES:
        raise ValueError(f"{p}: cannot write a figure as {p.suffix or 'a file without a suffix'!r}; "
                         f"use {', '.join(FIGURE_SUFFIXES)}")
    return p


def save_figure(fig: "Figure", path: PathLike) -> Path:
    """Save a figure atomically (format from the suffix, one of :data:`FIGURE_SUFFIXES`); returns the path."""
    check_figure_path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png")
    return Path(path)


def compare_curves(curves: Sequence[Tuple[str, LossHistory]], columns: Sequence[str] = ("total",),
                   normalize: bool = False) -> "Figure":
    """One figure comparing fits: a panel per column, a line per fit.

    Args:
        curves: (label, history) per fit, e.g. ``[("adam", h1), ("lbfgs", h2)]``.
        columns: columns to plot (``total``, a term such as ``prdl``, or ``prdl/nose``).
        normalize: divide each curve by its first value (compares fits with different objectives).
    Raises:
        ValueError: no curves, or a column none of the fits has.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not curves:
        raise ValueError("no curves to compare")
    for c in columns:
        if not any(c in h.columns() for _, h in curves):
            raise ValueError(f"no fit has a column {c!r}; columns: {', '.join(curves[0][1].columns())}")
    fig = Figure(figsize=(5 * len(columns) + 1, 4), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(columns), squeeze=False)[0]
    for ax, col in zip(axes, columns):
        for label, h in curves:
            if col not in h.columns() or not len(h):
                continue
            y = h.column(col)
            if normalize:
                first = next((v for v in y if np.isfinite(v) and v > 0), np.nan)
                y = y / first
            ax.plot(h.column("iteration"), _positive(y), lw=1.5, label=label)
        ax.set_xlabel("iteration")
        ax.set_ylabel(f"{col} / first value" if normalize else col)
        ax.set_title(col)
        if ax.has_data():
            ax.set_yscale("log")
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig

