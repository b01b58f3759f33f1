"""Summary of a batch job from its manifest: counts, metric statistics, histograms.

Writes ``OUT/report/summary.json`` and ``OUT/report/histograms.png`` (Part IoU, landmark NME and
iterations of the ok fits, with the quality thresholds drawn), both atomically.
"""
from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from fitter.batch.manifest import iter_latest_rows
from fitter.batch.quality import GOOD, SUSPECT, QualityConfig
from fitter.outputs.atomic import atomic_path, write_text_atomic


@dataclass
class Stats:
    """Distribution of one metric over the ok fits (None fields when there is no value)."""

    count: int = 0
    mean: Optional[float] = None
    median: Optional[float] = None
    p10: Optional[float] = None
    p90: Optional[float] = None
    min: Optional[float] = None
    max: Optional[float] = None

    @classmethod
    def of(cls, values: List[float]) -> "Stats":
        v = np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
        if v.size == 0:
            return cls()
        return cls(int(v.size), float(v.mean()), float(np.median(v)), float(np.percentile(v, 10)),
                   float(np.percentile(v, 90)), float(v.min()), float(v.max()))


@dataclass
class BatchSummary:
    """The job as the manifest has it (latest row per image).

    Attributes:
        images: images with a row; ok / failed split them; good / suspect split ok.
        failures_by_kind: error kind -> count.
        suspect_reasons: reason category (``part IoU``, ``landmark NME``, ``not converged``) -> count.
        part_iou / nme / iterations / seconds_per_image: statistics over the ok fits.
        thresholds: the quality thresholds of this report.
        run: the last run's numbers (images/min, ...) when the report is written at the end of a run.
    """

    images: int = 0
    ok: int = 0
    failed: int = 0
    good: int = 0
    suspect: int = 0
    failures_by_kind: Dict[str, int] = field(default_factory=dict)
    suspect_reasons: Dict[str, int] = field(default_factory=dict)
    part_iou: Stats = field(default_factory=Stats)
    nme: Stats = field(default_factory=Stats)
    iterations: Stats = field(default_factory=Stats)
    seconds_per_image: Stats = field(default_factory=Stats)
    thresholds: Dict[str, object] = field(default_factory=dict)
    run: Optional[Dict[str, object]] = None


@dataclass
class _Columns:
    part_iou: List[float] = field(default_factory=list)
    nme: List[float] = field(default_factory=list)
    iterations: List[float] = field(default_factory=list)
    seconds: List[float] = field(default_factory=list)


def reason_category(reason: str) -> str:
    """``"part IoU 0.41 < 0.5"`` -> ``"part IoU"`` (the words before the first number or symbol)."""
    return re.split(r"[\d(<>:=]", reason, maxsplit=1)[0].strip() or reason


def summarize(manifest_path: os.PathLike, quality: Optional[QualityConfig] = None) -> tuple:
    """(BatchSummary, per-metric value lists) of the manifest's latest rows."""
    s = BatchSummary(thresholds=asdict(quality) if quality else {})
    cols = _Columns()
    kinds: Counter = Counter()
    reasons: Counter = Counter()
    for row in iter_latest_rows(manifest_path):
        s.images += 1
        if not row.ok:
            s.failed += 1
            kinds[row.error_kind or "unknown"] += 1
            continue
        s.ok += 1
        if row.quality == GOOD:
            s.good += 1
        elif row.quality == SUSPECT:
            s.suspect += 1
            reasons.update({reason_category(r) for r in row.quality_reasons})
        cols.part_iou.append(row.part_iou)
        cols.nme.append(row.nme)
        cols.iterations.append(row.iterations)
        if row.total_s is not None and row.batch_size:
            cols.seconds.append((row.read_s or 0) + (row.fit_s or 0) / row.batch_size + (row.write_s or 0))
    s.failures_by_kind = dict(sorted(kinds.items()))
    s.suspect_reasons = dict(sorted(reasons.items()))
    s.part_iou, s.nme = Stats.of(cols.part_iou), Stats.of(cols.nme)
    s.iterations, s.seconds_per_image = Stats.of(cols.iterations), Stats.of(cols.seconds)
    return s, cols


def write_report(manifest_path: os.PathLike, report_dir: os.PathLike, quality: Optional[QualityConfig] = None,
                 run: Optional[Dict[str, object]] = None) -> Dict[str, Path]:
    """Write ``summary.json`` and ``histograms.png`` into ``report_dir``; return their paths."""
    summary, cols = summarize(manifest_path, quality)
    summary.run = run
    d = Path(report_dir)
    d.mkdir(parents=True, exist_ok=True)
    paths = {"summary": d / "summary.json", "histograms": d / "histograms.png"}
    write_text_atomic(paths["summary"], json.dumps(asdict(summary), indent=2) + "\n")
    with atomic_path(paths["histograms"]) as tmp:
        _plot_histograms(cols, quality, summary, tmp)
    return paths


def _plot_histograms(cols: _Columns, quality: Optional[QualityConfig], summary: BatchSummary, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels = [
        ("Part IoU (mean over present parts)", cols.part_iou, quality.min_part_iou if quality else None, (0, 1)),
        ("landmark NME (outer-eye-corner)", cols.nme, quality.max_nme if quality else None, None),
        ("iterations", cols.iterations, None, None),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, (title, values, threshold, rng) in zip(axes, panels):
        v = np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
        if v.size:
            ax.hist(v, bins=30, range=rng, color="#4477aa")
        else:
            ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
        if threshold is not None:
            ax.axvline(threshold, color="#cc3311", linestyle="--", label=f"threshold {threshold:g}")
            ax.legend(loc="upper right", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("images")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(f"{summary.images} images: {summary.ok} ok ({summary.good} good, {summary.suspect} suspect), "
                 f"{summary.failed} failed", fontsize=11)
    fig.tight_layout()
    fig.savefig(str(path), dpi=90, format="png")
    plt.close(fig)
