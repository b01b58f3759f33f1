"""A batch job from start to end: discover, plan, run batches on an engine, record, report.

Guarantees (see also :mod:`fitter.batch.manifest`):

* An image is *done* when its latest manifest row is ``ok`` and ``OUT/<output>/fit.json`` exists.
  Workers write the outputs (fit.json last); the parent appends the row afterwards, so a kill at
  any moment leaves at worst an image with outputs but no row, which the next run refits (its
  folder cleared first). Done images are never refitted.
* Failed images are skipped by later runs unless ``--retry-failed`` (disk-full failures are
  retried anyway: they are not the image's fault).
* A bad image never stops the run. A worker process that dies takes its batches with it; their
  images are rerun one at a time in isolation, and an image that kills a worker on its own is
  recorded ``worker_crash``.
* Disk full (ENOSPC) stops the run cleanly: every next write would fail too. The manifest stays
  valid; rerun the same command after freeing space.
* Only the parent writes the manifest, under an exclusive lock on ``OUT/.prdlfit.lock`` (:mod:`fitter.outputs.folder`).
"""
from __future__ import annotations

import os
import sys
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from fitter.batch.backend import BackendSpec, preflight
from fitter.batch.discover import ImageItem, discover, select, short_hash
from fitter.batch.engine import BatchOutcome, Engine, InProcessEngine, WorkQueue
from fitter.batch.manifest import (
    STATUS_FAILED,
    STATUS_OK,
    TRANSIENT_KINDS,
    ManifestRow,
    ManifestWriter,
    RowState,
    export_parquet,
    read_index,
)
from fitter.batch.quality import QualityConfig
from fitter.batch.settings import check_settings, job_settings
from fitter.batch.stages import failed_row
from fitter.batch.worker import WorkerSpec
from fitter.errors import PrdlfitError
from fitter.outputs.folder import PROBE_PREFIX, FolderLock, prepare_output_dir

MANIFEST_NAME = "manifest.jsonl"
PARQUET_NAME = "manifest.parquet"
REPORT_DIR = "report"
COMPLETE_MARKER = "fit.json"


class BatchStopped(PrdlfitError):
    """The run stopped before the end (disk full, manifest unwritable); rerun to continue."""

    exit_code = 75  # EX_TEMPFAIL


@dataclass
class BatchJob:
    """Options of a batch job (what ``prdlfit batch`` parses).

    Attributes:
        input: folder, list file or image.
        out: output folder OUT.
        backend: how workers fit (model, FitConfig, TargetConfig, overlay).
        quality: quality-flag thresholds.
        batch_size: images per optimization.
        workers: worker processes (None = one per GPU, else half the CPU cores; 0 = in this process).
        engine: ``local`` or ``ray``.
        ray_address: Ray cluster address (None = start a local Ray).
        retry_failed: also redo images whose latest row is ``failed``.
        limit: only the first N images (after sharding) belong to the job.
        shard: (i, n): only images of shard i of n.
        report / parquet: write the summary report / the Parquet export at the end.
        progress: show a progress bar.
        force: resume even when the settings differ from the first run's (``OUT/settings.json``).
    """

    input: Path
    out: Path
    backend: BackendSpec
    quality: QualityConfig = field(default_factory=QualityConfig)
    batch_size: int = 4
    workers: Optional[int] = None
    engine: str = "local"
    ray_address: Optional[str] = None
    retry_failed: bool = False
    limit: Optional[int] = None
    shard: Optional[Tuple[int, int]] = None
    report: bool = True
    parquet: bool = True
    progress: bool = True
    force: bool = False


@dataclass
class Plan:
    """What a run will do. ``todo`` keeps the stable order."""

    todo: List[ImageItem]
    total: int
    done: int = 0
    failed_skipped: int = 0


@dataclass
class RunStats:
    """Numbers of one run (what was done now, not the whole job)."""

    run_id: str
    total: int
    done_before: int
    failed_skipped: int
    planned: int
    ok: int = 0
    failed: int = 0
    seconds: float = 0.0
    images_per_min: float = 0.0
    workers: int = 0
    engine: str = "local"
    batch_size: int = 0
    stopped: str = ""  # why the run stopped early ('' = it ran to the end)
    fatal: bool = False  # stopped by a problem a rerun will not fix (a worker cannot be set up)


def plan_job(items: Sequence[ImageItem], index: Dict[str, RowState], out_dir: Path, retry_failed: bool) -> Plan:
    """Items still to fit: not done (ok row + fit.json) and not failed (unless ``retry_failed``).

    An item whose output folder name belongs to another image's finished fit gets a suffixed name
    (possible when files were added to the input since that fit), so no finished output is touched.
    """
    owned = {st.output: img for img, st in index.items() if st.status == STATUS_OK and st.output}
    plan = Plan(todo=[], total=len(items))
    for item in items:
        st = index.get(item.image)
        if st is not None and st.status == STATUS_OK and st.output and \
                (out_dir / st.output / COMPLETE_MARKER).is_file():
            plan.done += 1
            continue
        if st is not None and st.status == STATUS_FAILED and not retry_failed and st.error_kind not in TRANSIENT_KINDS:
            plan.failed_skipped += 1
            continue
        if owned.get(item.output, item.image) != item.image:
            item = replace(item, output=f"{item.output}_{short_hash(item.image)}")
        plan.todo.append(item)
    return plan


def batches_of(items: Sequence[ImageItem], size: int) -> List[List[ImageItem]]:
    if size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {size}")
    return [list(items[i: i + size]) for i in range(0, len(items), size)]


class JobLock(FolderLock):
    """The batch job's :class:`fitter.outputs.folder.FolderLock` on OUT (the lock ``prdlfit fit`` takes too)."""

    def __init__(self, out: Path):
        super().__init__(out, what="batch")


def resolve_workers(job: BatchJob) -> int:
    if job.workers is not None:
        if job.workers < 0:
            raise PrdlfitError(f"--workers must be >= 0, got {job.workers}")
        return job.workers
    from fitter.batch.local import default_workers

    return default_workers(job.backend.fit_config.device)


def make_engine(job: BatchJob, spec: WorkerSpec, workers: int) -> Engine:
    """The engine of ``job.engine`` (``local`` with 0 workers runs in this process)."""
    if job.engine == "ray":
        from fitter.batch.ray_engine import RayEngine

        return RayEngine(spec, job.workers, address=job.ray_address, device=job.backend.fit_config.device)
    if job.engine != "local":
        raise PrdlfitError(f"--engine must be local or ray, got {job.engine!r}")
    if workers == 0:
        return InProcessEngine(spec)
    from fitter.batch.local import LocalEngine

    return LocalEngine(spec, workers)


def run_job(job: BatchJob, engine_factory: Optional[Callable[[BatchJob, WorkerSpec, int], Engine]] = None,
            log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> RunStats:
    """Run (or resume) ``job``. Raises PrdlfitError (one line) for setup problems and
    :class:`BatchStopped` when the run had to stop early; per-image failures only go to the manifest."""
    out = Path(job.out).resolve()
    if job.batch_size < 1:
        raise PrdlfitError(f"--batch-size must be >= 1, got {job.batch_size}")
    try:
        items = select(discover(job.input, exclude=[out]), job.shard, job.limit)
    except (OSError, ValueError) as err:
        raise PrdlfitError(str(err)) from None
    prepare_output_dir(out)
    lock = JobLock(out)
    try:
        preflight(job.backend)  # model file, fitting modules: before any work
        workers = resolve_workers(job)
        return _run_locked(job, out, items, workers, engine_factory or make_engine, log)
    finally:
        lock.release()


def remove_stale_temp_files(out: Path) -> int:
    """Delete temporary files a killed run left in OUT and OUT/report (ours only; we hold the lock)."""
    patterns = [(out, ".manifest.*.tmp*"), (out, PROBE_PREFIX + "*"), (out / REPORT_DIR, ".*.tmp*")]
    n = 0
    for folder, pattern in patterns:
        for p in folder.glob(pattern):
            if p.is_file():
                p.unlink(missing_ok=True)
                n += 1
    return n


def _run_locked(job: BatchJob, out: Path, items: List[ImageItem], workers: int, engine_factory, log) -> RunStats:
    manifest_path = out / MANIFEST_NAME
    remove_stale_temp_files(out)
    check_settings(out, job_settings(job.backend, job.quality), job.force, log)
    writer = ManifestWriter(manifest_path)
    if writer.repaired_bytes:
        log(f"manifest: cut a torn last line ({writer.repaired_bytes} bytes) left by an interrupted run")
    plan = plan_job(items, read_index(manifest_path), out, job.retry_failed)
    stats = RunStats(run_id=uuid.uuid4().hex[:12], total=plan.total, done_before=plan.done,
                     failed_skipped=plan.failed_skipped, planned=len(plan.todo), workers=workers,
                     engine=job.engine, batch_size=job.batch_size)
    log(f"{plan.total} images: {plan.done} done, {plan.failed_skipped} failed before"
        f"{' (use --retry-failed to redo them)' if plan.failed_skipped else ''}, {len(plan.todo)} to fit")
    t0 = time.perf_counter()
    if plan.todo:
        threads = 1 if job.engine == "ray" else max(1, (os.cpu_count() or 1) // max(1, workers))
        spec = WorkerSpec(job.backend, str(out), job.quality, stats.run_id, threads)
        try:
            _run_batches(job, plan, spec, workers, writer, stats, engine_factory, t0)
        finally:
            writer.close()
    else:
        writer.close()
    stats.seconds = time.perf_counter() - t0
    stats.images_per_min = 60.0 * (stats.ok + stats.failed) / stats.seconds if stats.seconds > 0 else 0.0
    if not stats.stopped:
        _finish_outputs(job, out, stats, log)
    where = "in this process" if workers == 0 and job.engine == "local" else f"{stats.workers} worker(s)"
    log(f"run {stats.run_id}: {stats.ok} fitted, {stats.failed} failed in {stats.seconds:.1f} s "
        f"({stats.images_per_min:.1f} images/min, {where}, engine {job.engine})")
    if stats.stopped:
        raise PrdlfitError(stats.stopped) if stats.fatal else BatchStopped(stats.stopped)
    return stats


def _run_batches(job, plan: Plan, spec: WorkerSpec, workers: int, writer: ManifestWriter, stats: RunStats,
                 engine_factory, t0: float) -> None:
    from tqdm import tqdm

    queue = WorkQueue()
    queue.normal.extend(batches_of(plan.todo, job.batch_size))
    engine = engine_factory(job, spec, workers)
    stats.workers = engine.workers
    bar = tqdm(total=len(plan.todo), unit="img", disable=not job.progress, dynamic_ncols=True, file=sys.stderr,
               desc="batch")
    clean = False
    try:
        for outcome in engine.run(queue):
            rows = _rows_of(outcome, queue, spec.run_id)
            if outcome.fatal:
                stats.stopped, stats.fatal = outcome.error, True
                break
            for row in rows:
                try:
                    writer.append(row)
                except OSError as err:
                    stats.stopped = (f"cannot write the manifest {writer.path}: {err.strerror or err}; "
                                     f"free space / fix permissions and rerun the same command")
                    break
                stats.ok += row.status == STATUS_OK
                stats.failed += row.status != STATUS_OK
                bar.update(1)
                if row.error_kind == "enospc" and not stats.stopped:
                    stats.stopped = (f"disk full while writing {row.image}: {row.reason}; the run stopped "
                                     f"cleanly, free space and rerun the same command")
            if stats.stopped:
                break
            minutes = max(time.perf_counter() - t0, 1e-6) / 60.0
            bar.set_postfix(ok=stats.ok, failed=stats.failed, img_per_min=f"{(stats.ok + stats.failed) / minutes:.1f}")
        clean = True
    finally:
        bar.close()
        engine.close(wait=clean)


def _rows_of(outcome: BatchOutcome, queue: WorkQueue, run_id: str) -> List[ManifestRow]:
    """Rows of a finished batch; for a batch that died, requeue its images alone (or fail the
    image that died alone)."""
    if outcome.rows is not None or outcome.fatal:
        return list(outcome.rows or [])
    if outcome.isolated and len(outcome.items) == 1:
        kind = "worker_crash" if outcome.crashed else "internal"
        return [failed_row(outcome.items[0], kind, outcome.error, run_id)]
    queue.isolated.extend([item] for item in outcome.items)
    return []


def _finish_outputs(job: BatchJob, out: Path, stats: RunStats, log) -> None:
    """Parquet export and report; a failure here is reported, the fits are already safe."""
    manifest_path = out / MANIFEST_NAME
    if job.parquet:
        try:
            n = export_parquet(manifest_path, out / PARQUET_NAME)
            log(f"parquet: {n} rows -> {out / PARQUET_NAME}")
        except Exception as err:  # noqa: BLE001
            log(f"warning: parquet export failed: {type(err).__name__}: {err}")
    if job.report:
        try:
            from dataclasses import asdict

            from fitter.batch.report import write_report

            paths = write_report(manifest_path, out / REPORT_DIR, job.quality, run=asdict(stats))
            log(f"report: {paths['summary']} and {paths['histograms']}")
        except Exception as err:  # noqa: BLE001
            log(f"warning: report failed: {type(err).__name__}: {err}")
