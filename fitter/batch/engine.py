"""What the runner asks of an engine, and the in-process engine (``--workers 0``, tests, debugging).

An engine takes batches from a :class:`WorkQueue` and yields one :class:`BatchOutcome` per batch as
batches finish. Batches in ``queue.isolated`` run strictly alone (nothing else in flight), so a
worker that dies on one of them has an unambiguous culprit.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Deque, Iterator, List, Optional, Protocol

from fitter.batch.discover import ImageItem
from fitter.batch.manifest import ManifestRow
from fitter.batch.worker import WorkerSetupError, WorkerSpec, init_worker, run_batch


@dataclass
class WorkQueue:
    """Batches waiting to run; the runner may add to it while the engine is running."""

    normal: Deque[List[ImageItem]] = field(default_factory=deque)
    isolated: Deque[List[ImageItem]] = field(default_factory=deque)

    def __bool__(self) -> bool:
        return bool(self.normal) or bool(self.isolated)


@dataclass
class BatchOutcome:
    """The end of one batch: its rows, or why there are none.

    Attributes:
        items: the batch.
        rows: one row per item (None when the batch did not finish).
        error: why it did not finish (one line).
        crashed: the worker process died (a crash, OOM kill, ...) rather than raising.
        fatal: the worker could not be set up; the run must stop.
        isolated: the batch ran alone (see :class:`WorkQueue`).
    """

    items: List[ImageItem]
    rows: Optional[List[ManifestRow]] = None
    error: str = ""
    crashed: bool = False
    fatal: bool = False
    isolated: bool = False


class Engine(Protocol):
    workers: int

    def run(self, queue: WorkQueue) -> Iterator[BatchOutcome]:
        """Run queued batches until the queue is empty and nothing is in flight."""

    def close(self, wait: bool = True) -> None:
        """Stop: cancel queued work, release workers (``wait``: let running batches end first)."""


def outcome_of_error(items: List[ImageItem], err: BaseException, isolated: bool) -> BatchOutcome:
    """A batch whose worker call raised (not died)."""
    if isinstance(err, WorkerSetupError):
        return BatchOutcome(items, error=str(err), fatal=True, isolated=isolated)
    return BatchOutcome(items, error=" ".join(f"{type(err).__name__}: {err}".split()), isolated=isolated)


class InProcessEngine:
    """Runs batches in the calling process, one after another (``--workers 0``)."""

    workers = 1

    def __init__(self, spec: WorkerSpec):
        init_worker(spec, slot=0)

    def run(self, queue: WorkQueue) -> Iterator[BatchOutcome]:
        while queue:
            isolated = bool(queue.isolated)
            items = queue.isolated.popleft() if isolated else queue.normal.popleft()
            try:
                rows = run_batch(items)
            except Exception as err:  # noqa: BLE001
                yield outcome_of_error(items, err, isolated)
                continue
            yield BatchOutcome(items, rows, isolated=isolated)

    def close(self, wait: bool = True) -> None:
        pass
