"""One batch of images through a backend: targets -> one batched fit -> outputs -> manifest rows.

Runs inside a worker. Every failure is confined to its image and turned into a ``failed`` row with
a one-line reason; nothing here writes the manifest (the parent does, after the outputs exist).
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import List, Optional, Sequence

from fitter.batch.backend import FitBackend
from fitter.batch.discover import ImageItem
from fitter.batch.manifest import STATUS_FAILED, STATUS_OK, ManifestRow, one_line
from fitter.batch.quality import QualityConfig, QualityFlag, assess
from fitter.errors import NoFaceError
from fitter.failures import Failure, classify, error_text
from fitter.fallback import FitOutcome, fit_with_fallback

__all__ = ["StageContext", "process_batch", "failed_row", "fit_with_fallback"]


@dataclass
class StageContext:
    """Where and how a worker writes. ``out_dir`` is the job's OUT folder."""

    out_dir: Path
    quality: QualityConfig
    run_id: str = ""
    worker: str = ""


def process_batch(backend: FitBackend, items: Sequence[ImageItem], ctx: StageContext) -> List[ManifestRow]:
    """Run ``items`` through ``backend``; return one row per item, in order.

    Stages: targets of each image (largest face), one batched fit of all that got targets,
    quality metrics, outputs written to ``OUT/<item.output>/`` (an existing folder is cleared
    first: it is an incomplete or superseded attempt).
    """
    rows: List[Optional[ManifestRow]] = [None] * len(items)
    prepared = []  # (index, item, targets, num_faces, read_s)
    for i, item in enumerate(items):
        t0 = time.perf_counter()
        try:
            faces = backend.build_targets(item.path)
            if not faces:
                raise NoFaceError(f"no face found in {item.image}")
        except Exception as err:  # noqa: BLE001 - a bad image never stops the batch
            rows[i] = _failed(item, classify(err, "targets"), ctx, read_s=time.perf_counter() - t0)
            continue
        prepared.append((i, item, faces[0], len(faces), time.perf_counter() - t0))

    outcomes = fit_with_fallback(backend.fit, [p[2] for p in prepared])
    for (i, item, _, num_faces, read_s), outcome in zip(prepared, outcomes):
        if outcome.failure is not None:
            rows[i] = _failed(item, outcome.failure, ctx, read_s=read_s, fit_s=outcome.seconds, num_faces=num_faces)
            continue
        rows[i] = _finish(backend, item, outcome, ctx, read_s, num_faces)
        outcome.result = None  # free memory early
    return [r for r in rows if r is not None]


def _finish(backend: FitBackend, item: ImageItem, outcome: FitOutcome, ctx: StageContext, read_s: float,
            num_faces: int) -> ManifestRow:
    result = outcome.result
    assert result is not None
    try:
        metrics = backend.metrics(result)
        flag = assess(metrics, ctx.quality)
    except Exception as err:  # noqa: BLE001 - a metric failure flags the fit, it does not fail it
        metrics = None
        flag = QualityFlag("suspect", [one_line(f"quality metrics failed: {error_text(err)}")])
    t0 = time.perf_counter()
    folder = Path(ctx.out_dir) / item.output
    try:
        if folder.exists():
            shutil.rmtree(folder)
        backend.write(result, folder)
    except Exception as err:  # noqa: BLE001
        shutil.rmtree(folder, ignore_errors=True)  # no partial outputs left (e.g. disk full midway)
        return _failed(item, classify(err, "write"), ctx, read_s=read_s, fit_s=outcome.seconds,
                       num_faces=num_faces, output=item.output)
    write_s = time.perf_counter() - t0
    return ManifestRow(
        image=item.image, status=STATUS_OK, output=item.output, path=item.path,
        quality=flag.flag, quality_reasons=flag.reasons,
        part_iou=None if metrics is None else metrics.part_iou,
        part_iou_parts={} if metrics is None else dict(metrics.part_iou_parts),
        nme=None if metrics is None else metrics.nme,
        converged=bool(result.converged), iterations=int(result.iterations),
        final_losses={k: float(v) for k, v in (result.final_losses or {}).items()},
        num_faces=num_faces, batch_size=outcome.batch_size,
        read_s=read_s, fit_s=outcome.seconds, write_s=write_s, total_s=read_s + outcome.seconds + write_s,
        run_id=ctx.run_id, worker=ctx.worker, finished_at=_now(),
    )


def _failed(item: ImageItem, failure: Failure, ctx: StageContext, read_s: Optional[float] = None,
            fit_s: Optional[float] = None, num_faces: Optional[int] = None, output: str = "") -> ManifestRow:
    total = sum(v for v in (read_s, fit_s) if v is not None)
    return ManifestRow(image=item.image, status=STATUS_FAILED, output=output, path=item.path,
                       reason=one_line(failure.reason),
                       error_kind=failure.kind, num_faces=num_faces, read_s=read_s, fit_s=fit_s, total_s=total,
                       run_id=ctx.run_id, worker=ctx.worker, finished_at=_now())


def failed_row(item: ImageItem, kind: str, reason: str, run_id: str = "", worker: str = "parent") -> ManifestRow:
    """A failed row made outside a worker (e.g. a worker process that died on this image)."""
    return ManifestRow(image=item.image, status=STATUS_FAILED, path=item.path, reason=one_line(f"{kind}: {reason}"),
                       error_kind=kind, run_id=run_id, worker=worker, finished_at=_now())


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
