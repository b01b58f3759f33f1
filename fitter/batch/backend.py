"""What a batch worker does to images, behind one small protocol, so tests can inject a fake.

:class:`PrdlBackend` is the real one: ``fitter.targets.pipeline.build_targets`` ->
``fitter.optimize.Fitter.fit`` (several faces in one optimization) ->
``fitter.outputs.writer.write_fit_outputs`` and the quality metrics of :mod:`fitter.batch.quality`.
A backend is named by a ``"module:Class"`` string so it can be rebuilt inside worker processes.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Protocol, Sequence

from fitter.batch.quality import QualityMetrics, fit_quality_metrics
from fitter.config import FitConfig
from fitter.errors import PrdlfitError
from fitter.result import FitResult
from fitter.targets.types import Targets

DEFAULT_BACKEND = "fitter.batch.backend:PrdlBackend"


@dataclass
class BackendSpec:
    """Everything a backend needs to build itself in a worker (picklable).

    Attributes:
        model: model name or file path for ``morphable_models.load``.
        fit_config: the optimizer options (``device`` may be set per worker).
        target_config: a ``fitter.targets.pipeline.TargetConfig`` or None for its defaults.
        overlay: write overlay images with the outputs.
        backend: ``"module:Class"`` of the backend to build.
    """

    model: str
    fit_config: FitConfig
    target_config: Optional[object] = None
    overlay: bool = True
    backend: str = DEFAULT_BACKEND


class FitBackend(Protocol):
    """The four stages a worker runs on images. Errors are raised, the caller records them."""

    def build_targets(self, path: str) -> List[Targets]:
        """Targets of every face of the photo (largest first); ImageReadError / NoFaceError."""

    def fit(self, targets: Sequence[Targets]) -> List[FitResult]:
        """Fit all faces in one optimization; a failed face carries ``result.failure``."""

    def write(self, result: FitResult, out_dir: Path) -> None:
        """Write the per-image outputs into ``out_dir``, ``fit.json`` last."""

    def metrics(self, result: FitResult) -> QualityMetrics:
        """Quality metrics of a fit against its own targets."""


def backend_class(dotted: str):
    """Import the class named ``"module:Class"``."""
    mod_name, _, attr = dotted.partition(":")
    if not mod_name or not attr:
        raise ValueError(f"backend must be 'module:Class', got {dotted!r}")
    return getattr(importlib.import_module(mod_name), attr)


def build_backend(spec: BackendSpec) -> FitBackend:
    return backend_class(spec.backend)(spec)


def preflight(spec: BackendSpec) -> None:
    """Check before any work that the backend can be built (model file, fitting modules).

    Raises a :class:`PrdlfitError` subclass (e.g. ModelError) with a one-line message.
    """
    cls = backend_class(spec.backend)
    check = getattr(cls, "preflight", None)
    if check is not None:
        check(spec)


class PrdlBackend:
    """The real fitter. Loads the model once; the fitter keeps its device copy."""

    def __init__(self, spec: BackendSpec):
        import morphable_models
        from fitter.optimize import Fitter, model_as_fitted

        self.spec = spec
        self.model = model_as_fitted(morphable_models.load(spec.model), spec.fit_config)
        self.fitter = Fitter(self.model, spec.fit_config, self.target_config)

    @property
    def target_config(self):
        """The spec's ``TargetConfig`` (its defaults when the spec has none)."""
        return self.spec.target_config if self.spec.target_config is not None else _default_target_config()

    @classmethod
    def preflight(cls, spec: BackendSpec) -> None:
        try:
            import fitter.optimize  # noqa: F401
            import fitter.outputs.writer  # noqa: F401
            import fitter.targets.pipeline  # noqa: F401
            import morphable_models.registry  # noqa: F401
        except ImportError as err:
            raise PrdlfitError(f"the fitting engine is not available: {err}") from None
        import morphable_models

        morphable_models.load(spec.model)

    def build_targets(self, path: str) -> List[Targets]:
        from fitter.targets.pipeline import build_targets

        return list(build_targets(path, self.target_config))

    def fit(self, targets: Sequence[Targets]) -> List[FitResult]:
        return list(self.fitter.fit(list(targets)))

    def write(self, result: FitResult, out_dir: Path) -> None:
        """The outputs ``prdlfit fit`` writes: the same files, ``fit.json`` with the same configs."""
        from fitter.outputs.writer import write_fit_outputs

        photo = self._photo(result) if self.spec.overlay else None
        write_fit_outputs(result, self.model, out_dir, original_image=photo, overlay=self.spec.overlay,
                          target_config=self.target_config)

    def _photo(self, result: FitResult):
        """The photo as the targets read it (same size limits), for the overlay; None if unreadable."""
        from fitter.errors import ImageReadError
        from fitter.targets.io import load_image

        source = result.targets.source if result.targets is not None else ""
        try:
            return load_image(source, max_pixels=self.target_config.max_pixels,
                              max_side=self.target_config.max_side).rgb if source else None
        except ImageReadError:
            return None

    def metrics(self, result: FitResult) -> QualityMetrics:
        return fit_quality_metrics(result, self.model)


def _default_target_config():
    from fitter.targets.pipeline import TargetConfig

    return TargetConfig()
