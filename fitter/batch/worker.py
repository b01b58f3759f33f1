"""The worker side of every engine: build the backend once per process, then run batches.

The same two functions serve the local process pool (``init_worker`` as the pool initializer) and
Ray actors (called from the actor's constructor and method).
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass, replace
from pathlib import Path
from typing import List, Optional, Sequence

from fitter.batch.backend import BackendSpec, build_backend
from fitter.batch.discover import ImageItem
from fitter.batch.manifest import ManifestRow
from fitter.batch.quality import QualityConfig
from fitter.batch.stages import StageContext, process_batch
from fitter.config import resolve_device
from fitter.errors import PrdlfitError


class WorkerSetupError(PrdlfitError):
    """A worker could not build its backend: the whole run stops (every image would fail alike)."""


@dataclass
class WorkerSpec:
    """What a worker process needs (picklable).

    Attributes:
        backend: how to build the backend.
        out_dir: the job's OUT folder.
        quality: quality thresholds.
        run_id: id of this run (written into the rows).
        threads: torch intra-op threads per worker.
    """

    backend: BackendSpec
    out_dir: str
    quality: QualityConfig
    run_id: str = ""
    threads: int = 1


@dataclass
class _State:
    backend: object
    ctx: StageContext


_STATE: Optional[_State] = None
_SETUP_ERROR: Optional[str] = None


def init_worker(spec: WorkerSpec, slot: int = 0, parent_pid: Optional[int] = None) -> None:
    """Set up this process: die with the parent, torch threads, device, backend (model loaded once).

    Args:
        slot: index of this worker; with several GPUs worker k uses ``cuda:{k % num_gpus}``.
        parent_pid: the batch parent; on Linux this worker is killed when the parent dies (so a
            ``kill -9`` of the run leaves no orphan still writing outputs).
    """
    global _STATE, _SETUP_ERROR
    _STATE = None
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    try:
        import torch

        torch.set_num_threads(max(1, int(spec.threads)))
        backend_spec = replace(spec.backend, fit_config=_device_for_slot(spec.backend.fit_config, slot))
        backend = build_backend(backend_spec)
        worker = f"{socket.gethostname()}:{os.getpid()}"
        _STATE = _State(backend, StageContext(Path(spec.out_dir), spec.quality, spec.run_id, worker))
        _SETUP_ERROR = None
    except Exception as err:  # noqa: BLE001 - reported on the first batch, stops the run
        _SETUP_ERROR = f"worker setup failed: {err}" if isinstance(err, PrdlfitError) else \
            f"worker setup failed: {type(err).__name__}: {err}"


def init_pool_worker(spec: WorkerSpec, counter, parent_pid: int) -> None:
    """ProcessPoolExecutor initializer: takes the next slot from a shared counter."""
    with counter.get_lock():
        slot = counter.value
        counter.value += 1
    init_worker(spec, slot, parent_pid)


def run_batch(items: Sequence[ImageItem]) -> List[ManifestRow]:
    """Process one batch in this worker (after :func:`init_worker`)."""
    if _STATE is None:
        raise WorkerSetupError(" ".join((_SETUP_ERROR or "worker used before init_worker").split()))
    return process_batch(_STATE.backend, items, _STATE.ctx)  # type: ignore[arg-type]


def _device_for_slot(config, slot: int):
    """Spread workers over GPUs: ``cuda``/``auto`` with N GPUs -> ``cuda:{slot % N}``; ``auto``
    without a GPU -> ``cpu`` (the parent leaves ``auto`` to the workers only on Ray)."""
    if config.device not in ("auto", "cuda"):
        return config
    try:
        import torch

        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001
        n = 0
    if n == 0:
        return config if config.device != "auto" else replace(config, device=resolve_device("auto"))
    return replace(config, device=f"cuda:{slot % n}")


def _die_with_parent(parent_pid: int) -> None:
    """Linux: ask the kernel to SIGKILL this process when its parent exits (no-op elsewhere)."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)
