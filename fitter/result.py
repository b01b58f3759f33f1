"""What a fit produces: :class:`FitResult` (one per face) and its :class:`LossHistory`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from fitter.targets.types import Targets


@dataclass
class LossHistory:
    """Per-iteration record of one face's fit.

    ``rows[i]`` is a flat dict for iteration i with keys ``iteration`` (int, counted over all
    stages), ``stage`` (str), ``total`` (float, the weighted objective), one key per active loss
    term (its *weighted* value, e.g. ``prdl``, ``lmk``, ``id_prior``) and per-part PRDL values
    ``prdl/<part>`` (weighted) when PRDL is active. Every row has the same keys (0.0 for a term
    inactive in that stage), so the history writes directly to CSV.
    """

    rows: List[Dict[str, float]] = field(default_factory=list)

    def columns(self) -> List[str]:
        cols: List[str] = []
        for r in self.rows:
            for k in r:
                if k not in cols:
                    cols.append(k)
        return cols

    def column(self, key: str) -> np.ndarray:
        return np.array([float(r.get(key, np.nan)) for r in self.rows], dtype=np.float64)

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class Camera:
    """Pinhole camera of the fitting crop (OpenCV convention: x right, y down, z forward).

    kind ``perspective``: u = focal * x / z + cx.  kind ``weak``: u = focal * x + cx (focal is then
    the scale in pixels per model unit, z ignored).
    """

    kind: str
    focal: float
    cx: float
    cy: float
    width: int
    height: int

    def intrinsics(self) -> np.ndarray:
        """[3, 3] K matrix (meaningful for ``perspective``)."""
        return np.array([[self.focal, 0, self.cx], [0, self.focal, self.cy], [0, 0, 1.0]])


@dataclass
class FitResult:
    """The fit of one face. Arrays are numpy float32 on the host.

    Attributes:
        model_name: name of the MorphableModel fitted.
        id_coeffs: [K_id]; exp_coeffs: [K_exp] (named by ``exp_names``).
        rotation: [3, 3] model -> camera rotation (after the fixed model-to-OpenCV axis flip
            diag(1, -1, -1)); translation: [3] camera-space translation, model units.
        euler_deg: (pitch, yaw, roll) in degrees, for reading.
        camera: the camera of the fitting crop.
        vertices_model: [V, 3] shape in model space (no pose), model units.
        vertices_camera: [V, 3] in camera space, model units.
        vertices_image: [V, 2] projected points, crop pixels.
        visible: [V] bool, z-buffer visibility at the final iterate.
        landmarks2d: [68, 2] projected model landmarks (jaw marched), crop pixels.
        landmarks3d: [68, 3] camera-space landmarks, model units.
        part_points: part -> [N_p, 2] projected visible predicted points of each part (crop pixels).
        history: per-iteration losses.
        converged: stopped on the relative-change criterion (not on the iteration cap).
        iterations: iterations this face ran, all stages together (in a batch, not counting those
            the batch ran while this face was frozen: the same count as the face fitted alone).
        seconds: wall time of the whole (batched) fit, shared by the faces fitted together.
        final_losses: term -> final weighted value, plus ``total``.
        targets: the targets fitted (carries the crop transform back to the photo).
        config: the FitConfig as a plain dict (for fit.json).
        snapshots: projected points every ``snapshot_every`` iterations (for animations).
        failure: None, or why this face's fit failed (the others in its batch are unaffected).
    """

    model_name: str
    exp_names: List[str]
    id_coeffs: np.ndarray
    exp_coeffs: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    euler_deg: np.ndarray
    camera: Camera
    vertices_model: np.ndarray
    vertices_camera: np.ndarray
    vertices_image: np.ndarray
    visible: np.ndarray
    landmarks2d: np.ndarray
    landmarks3d: np.ndarray
    part_points: Dict[str, np.ndarray]
    history: LossHistory
    converged: bool
    iterations: int
    seconds: float
    final_losses: Dict[str, float]
    targets: Optional[Targets] = None
    config: Dict[str, object] = field(default_factory=dict)
    #: (iteration, [V, 2] projected points in crop pixels) every ``config.snapshot_every`` iterations
    #: of the batch, numbered by the face's own iteration count (a frozen face's points once).
    snapshots: List[Tuple[int, np.ndarray]] = field(default_factory=list)
    #: None when the fit succeeded; otherwise a one-line reason (e.g. NaN during fitting).
    failure: Optional[str] = None

    def landmarks2d_original(self) -> np.ndarray:
        """[68, 2] fitted landmarks in original photo pixels."""
        if self.targets is None:
            return self.landmarks2d.copy()
        return self.targets.crop.to_original(self.landmarks2d).astype(np.float32)
