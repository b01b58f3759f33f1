"""One batch of images through a backend: targets -> one batched fit -> outputs -> manifest rows.

Runs inside a worker. Every failure is confined to its image and turned into a ``failed`` row with
a one-line reason; nothing here writes the manifest (the parent does, after the outputs exist).
"""
from __future__ import annotations

import errno
import math
import re
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np

from fitter.batch.backend import FitBackend
from fitter.batch.discover import ImageItem
from fitter.batch.manifest import STATUS_FAILED, STATUS_OK, ManifestRow, one_line
from fitter.batch.quality import QualityConfig, QualityFlag, assess
from fitter.errors import FitError, ImageReadError, NoFaceError, PrdlfitError
from fitter.result import FitResult
from fitter.targets.types import Targets

#: errno values that mean "the disk is full": every next write fails too, so the run stops.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})


@dataclass
class StageContext:
    """Where and how a worker writes. ``out_dir`` is the job's OUT folder."""

    out_dir: Path
    quality: QualityConfig
    run_id: str = ""
    worker: str = ""


@dataclass
class FitOutcome:
    """The fit of one face: a result, or the failure (kind + one-line reason)."""

    result: Optional[FitResult]
    kind: str = ""
    reason: str = ""
    seconds: float = 0.0
    batch_size: int = 1


def error_kind(err: BaseException, stage: str) -> str:
    """Failure kind of an exception raised in ``stage`` (``targets``, ``fit`` or ``write``)."""
    if isinstance(err, ImageReadError):
        return "read"
    if isinstance(err, NoFaceError):
        return "no_face"
    if isinstance(err, MemoryError):
        return "memory"
    if isinstance(err, OSError) and err.errno in DISK_FULL_ERRNOS:
        return "enospc"
    if isinstance(err, FitError) and _mentions_nan(str(err)):
        return "nan"
    return stage


def _mentions_nan(text: str) -> bool:
    """Does a failure message say the numbers blew up (NaN / inf / not finite)?"""
    return re.search(r"\b(nan|inf)\b|finite", text.lower()) is not None


def reason_text(kind: str, err: BaseException) -> str:
    """``<kind>: <message>`` on one line; the exception type is named unless it is one of ours."""
    msg = str(err) or type(err).__name__
    if not isinstance(err, PrdlfitError) and not (isinstance(err, OSError) and err.strerror):
        msg = f"{type(err).__name__}: {msg}"
    return one_line(f"{kind}: {msg}")


def result_failure(result: FitResult) -> Optional[str]:
    """Why a returned fit is unusable (the fitter's own ``failure``, or non-finite numbers), else None."""
    failure = getattr(result, "failure", None)
    if failure:
        return str(failure)
    total = result.final_losses.get("total", 0.0) if result.final_losses else 0.0
    arrays = (result.vertices_image, result.id_coeffs, result.exp_coeffs, result.landmarks2d)
    if not math.isfinite(float(total)) or not all(np.all(np.isfinite(np.asarray(a, np.float64))) for a in arrays):
        return "the fit produced NaN/inf values"
    return None


def fit_with_fallback(fit: Callable[[Sequence[Targets]], List[FitResult]],
                      targets: Sequence[Targets]) -> List[FitOutcome]:
    """Fit ``targets`` together; if that raises, fit them one by one; refit a failed face alone.

    A face fitted alone that still fails (NaN, exception) becomes a failed outcome with its reason;
    the other faces of the batch keep their results.
    """
    targets = list(targets)
    if not targets:
        return []
    t0 = time.perf_counter()
    try:
        results = list(fit(targets))
        if len(results) != len(targets):
            raise FitError(f"the fitter returned {len(results)} results for {len(targets)} faces")
    except Exception as err:  # noqa: BLE001 - any fitter error is confined to its images
        if len(targets) == 1:
            kind = error_kind(err, "fit")
            return [FitOutcome(None, kind, reason_text(kind, err), time.perf_counter() - t0, 1)]
        return [fit_with_fallback(fit, [t])[0] for t in targets]
    seconds = time.perf_counter() - t0
    out: List[FitOutcome] = []
    for t, r in zip(targets, results):
        failure = result_failure(r)
        if failure is None:
            out.append(FitOutcome(r, seconds=seconds, batch_size=len(targets)))
        elif len(targets) > 1:
            out.append(fit_with_fallback(fit, [t])[0])
        else:
            kind = "nan" if _mentions_nan(failure) else "fit"
            out.append(FitOutcome(None, kind, one_line(f"{kind}: {failure}"), seconds, 1))
    return out


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
            kind = error_kind(err, "targets")
            rows[i] = _failed(item, kind, reason_text(kind, err), ctx, read_s=time.perf_counter() - t0)
            continue
        prepared.append((i, item, faces[0], len(faces), time.perf_counter() - t0))

    outcomes = fit_with_fallback(backend.fit, [p[2] for p in prepared])
    for (i, item, _, num_faces, read_s), outcome in zip(prepared, outcomes):
        if outcome.result is None:
            rows[i] = _failed(item, outcome.kind, outcome.reason, ctx, read_s=read_s, fit_s=outcome.seconds,
                              num_faces=num_faces)
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
        flag = QualityFlag("suspect", [reason_text("quality metrics failed", err)])
    t0 = time.perf_counter()
    folder = Path(ctx.out_dir) / item.output
    try:
        if folder.exists():
            shutil.rmtree(folder)
        backend.write(result, folder)
    except Exception as err:  # noqa: BLE001
        shutil.rmtree(folder, ignore_errors=True)  # no partial outputs left (e.g. disk full midway)
        kind = error_kind(err, "write")
        return _failed(item, kind, reason_text(kind, err), ctx, read_s=read_s, fit_s=outcome.seconds,
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


def _failed(item: ImageItem, kind: str, reason: str, ctx: StageContext, read_s: Optional[float] = None,
            fit_s: Optional[float] = None, num_faces: Optional[int] = None, output: str = "") -> ManifestRow:
    total = sum(v for v in (read_s, fit_s) if v is not None)
    return ManifestRow(image=item.image, status=STATUS_FAILED, output=output, path=item.path, reason=reason,
                       error_kind=kind, num_faces=num_faces, read_s=read_s, fit_s=fit_s, total_s=total,
                       run_id=ctx.run_id, worker=ctx.worker, finished_at=_now())


def failed_row(item: ImageItem, kind: str, reason: str, run_id: str = "", worker: str = "parent") -> ManifestRow:
    """A failed row made outside a worker (e.g. a worker process that died on this image)."""
    return ManifestRow(image=item.image, status=STATUS_FAILED, path=item.path, reason=one_line(f"{kind}: {reason}"),
                       error_kind=kind, run_id=run_id, worker=worker, finished_at=_now())


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
