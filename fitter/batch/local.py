"""The default engine: a pool of worker processes on this machine (``spawn``, model loaded once each).

At most ``window`` batches are in flight (2 per worker), so memory stays bounded however large the
job. If a worker process dies (segfault, OOM kill), every batch in flight is reported ``crashed``
and a fresh pool is started; the runner then reruns those images one at a time in isolation.
"""
from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Dict, Iterator, List, Optional, Tuple

from fitter.batch.discover import ImageItem
from fitter.batch.engine import BatchOutcome, WorkQueue, outcome_of_error
from fitter.batch.worker import WorkerSpec, init_pool_worker, run_batch


def default_workers(device: str) -> int:
    """One worker per GPU when fitting on CUDA, else half the CPU cores (at least 1)."""
    if device != "cpu":
        try:
            import torch

            if torch.cuda.is_available() and device in ("auto", "cuda"):
                return max(1, torch.cuda.device_count())
            if torch.cuda.is_available() and device.startswith("cuda:"):
                return 1
        except Exception:  # noqa: BLE001
            pass
    return max(1, (os.cpu_count() or 1) // 2)


class LocalEngine:
    """``concurrent.futures.ProcessPoolExecutor`` with the ``spawn`` start method."""

    def __init__(self, spec: WorkerSpec, workers: int, window: Optional[int] = None):
        if workers < 1:
            raise ValueError(f"LocalEngine needs workers >= 1, got {workers}")
        self.spec = spec
        self.workers = workers
        self.window = window or 2 * workers
        self._ctx = mp.get_context("spawn")
        self._counter = self._ctx.Value("i", 0)
        self._pool: Optional[ProcessPoolExecutor] = None

    def _pool_now(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=self._ctx, initializer=init_pool_worker,
                initargs=(self.spec, self._counter, os.getpid()),
            )
        return self._pool

    def _drop_pool(self, wait: bool = False) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=True)
            self._pool = None

    def run(self, queue: WorkQueue) -> Iterator[BatchOutcome]:
        inflight: Dict[Future, Tuple[List[ImageItem], bool]] = {}
        while queue or inflight:
            self._fill(queue, inflight)
            if not inflight:
                continue
            done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
            broken = False
            for fut in done:
                items, isolated = inflight.pop(fut)
                try:
                    rows = fut.result()
                except BrokenProcessPool:
                    broken = True
                    yield BatchOutcome(items, error="the worker process died", crashed=True, isolated=isolated)
                    continue
                except Exception as err:  # noqa: BLE001
                    yield outcome_of_error(items, err, isolated)
                    continue
                yield BatchOutcome(items, rows, isolated=isolated)
            if broken:
                for fut in list(inflight):  # the pool is gone: everything in flight died with it
                    items, isolated = inflight.pop(fut)
                    yield BatchOutcome(items, error="the worker process died", crashed=True, isolated=isolated)
                self._drop_pool()

    def _fill(self, queue: WorkQueue, inflight: Dict[Future, Tuple[List[ImageItem], bool]]) -> None:
        if any(iso for _, iso in inflight.values()):
            return  # an isolated batch runs alone
        if queue.isolated:
            if not inflight:
                self._submit(queue.isolated.popleft(), True, queue, inflight)
            return
        while queue.normal and len(inflight) < self.window:
            if not self._submit(queue.normal.popleft(), False, queue, inflight):
                return

    def _submit(self, items, isolated, queue: WorkQueue, inflight) -> bool:
        try:
            fut = self._pool_now().submit(run_batch, items)
        except BrokenProcessPool:
            (queue.isolated if isolated else queue.normal).appendleft(items)
            self._drop_pool()
            return False
        inflight[fut] = (items, isolated)
        return True

    def close(self, wait: bool = True) -> None:
        """Cancel queued batches; with ``wait`` let running ones end and the workers exit."""
        self._drop_pool(wait=wait)
