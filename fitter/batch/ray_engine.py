"""``--engine ray``: the same batches on a Ray cluster, one actor per worker (model loaded once each).

``ray.init(address=None)`` starts a local Ray instance (the default, used in tests); pass
``--ray-address auto`` or ``ray://host:10001`` for a cluster. Workers must see the input files and
OUT at the same paths (a shared file system). Ray is an optional dependency: it is imported only
here, with a clear error when missing.
"""
from __future__ import annotations

import logging
from typing import Dict, Iterator, List, Optional, Tuple

from fitter.batch.discover import ImageItem
from fitter.batch.engine import BatchOutcome, WorkQueue, outcome_of_error
from fitter.batch.worker import WorkerSpec, init_worker, run_batch
from fitter.errors import PrdlfitError


def import_ray():
    try:
        import ray
    except ImportError:
        raise PrdlfitError("--engine ray needs Ray: pip install \".[ray]\" from the prdlfit checkout (it keeps "
                          "mediapipe's protobuf), or use --engine local") from None
    return ray


class _RayWorker:
    """Actor body: builds the backend once, then runs batches."""

    def __init__(self, spec: WorkerSpec, slot: int):
        init_worker(spec, slot)

    def run(self, items: List[ImageItem]):
        return run_batch(items)


class RayEngine:
    """Ray actors fed with at most 2 batches each; a dead actor is replaced."""

    def __init__(self, spec: WorkerSpec, workers: Optional[int], address: Optional[str] = None,
                 device: str = "auto", per_worker_batches: int = 2):
        """``workers`` None = one per cluster GPU when fitting on GPUs, else half the cluster CPUs.
        Actors get one GPU each for ``device`` cuda, or auto on a cluster that has GPUs."""
        ray = import_ray()
        self.ray = ray
        self.spec = spec
        self.per_worker = max(1, per_worker_batches)
        self._owns_ray = False
        if not ray.is_initialized():
            kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
            if address is None and workers:
                kwargs["num_cpus"] = max(workers, spec.threads * workers)
            ray.init(address=address, **kwargs)
            self._owns_ray = True
        resources = ray.cluster_resources()
        cluster_gpus = int(resources.get("GPU", 0))
        use_gpu = device.startswith("cuda") or (device == "auto" and cluster_gpus > 0)
        if workers is None or workers < 1:
            workers = max(1, cluster_gpus) if use_gpu else max(1, int(resources.get("CPU", 2)) // 2)
        self.workers = workers
        self._actor_cls = ray.remote(num_cpus=1, num_gpus=1.0 if use_gpu else 0.0)(_RayWorker)
        self._slots = 0
        self.actors = [self._new_actor() for _ in range(self.workers)]

    def _new_actor(self):
        actor = self._actor_cls.remote(self.spec, self._slots)
        self._slots += 1
        return actor

    def run(self, queue: WorkQueue) -> Iterator[BatchOutcome]:
        ray = self.ray
        # ref -> (actor index, items, isolated)
        inflight: Dict[object, Tuple[int, List[ImageItem], bool]] = {}
        while queue or inflight:
            self._fill(queue, inflight)
            if not inflight:
                continue
            ready, _ = ray.wait(list(inflight), num_returns=1)
            for ref in ready:
                k, items, isolated = inflight.pop(ref)
                try:
                    rows = ray.get(ref)
                except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError):
                    self._replace_dead(k, inflight)
                    yield BatchOutcome(items, error="the Ray worker died", crashed=True, isolated=isolated)
                    continue
                except ray.exceptions.RayTaskError as err:
                    yield outcome_of_error(items, getattr(err, "cause", None) or err, isolated)
                    continue
                yield BatchOutcome(items, rows, isolated=isolated)

    def _replace_dead(self, k: int, inflight) -> None:
        """Start a new actor for the dead actor ``k``; its other queued calls fail on their own."""
        if k < 0:
            return  # already replaced when its first failed call came back
        try:
            self.ray.kill(self.actors[k])
        except Exception:  # noqa: BLE001 - already dead
            pass
        self.actors[k] = self._new_actor()
        for ref, (a, items, iso) in list(inflight.items()):
            if a == k:
                inflight[ref] = (-1, items, iso)

    def _fill(self, queue: WorkQueue, inflight) -> None:
        if any(iso for _, _, iso in inflight.values()):
            return
        if queue.isolated:
            if not inflight:
                self._submit(0, queue.isolated.popleft(), True, inflight)
            return
        while queue.normal:
            load = [0] * len(self.actors)
            for a, _, _ in inflight.values():
                if a >= 0:
                    load[a] += 1
            k = min(range(len(load)), key=load.__getitem__)
            if load[k] >= self.per_worker:
                return
            self._submit(k, queue.normal.popleft(), False, inflight)

    def _submit(self, k: int, items, isolated: bool, inflight) -> None:
        inflight[self.actors[k].run.remote(items)] = (k, items, isolated)

    def close(self, wait: bool = True) -> None:
        for a in self.actors:
            try:
                self.ray.kill(a)
            except Exception:  # noqa: BLE001
                pass
        self.actors = []
        if self._owns_ray:
            self.ray.shutdown()
            self._owns_ray = False
