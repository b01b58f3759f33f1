"""Typed configuration of a fit. Loss terms are chosen and weighted by name.

Every field has a default that reproduces the paper's setup where the paper states one
(λ_prdl = 0.8e-3, λ_lmk = 1.6e-3, 224×224 crop, focal 1015 px for 224 px).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Dict, Optional, Tuple

from fitter.checks import check_choice, check_float, check_int
from fitter.geometry.conventions import FOCAL_224

#: Loss terms the optimizer knows, with the paper's weights where it gives them. A weight of 0
#: switches a term off. ``--loss NAME=W`` on the command line sets these.
#: The paper's λ_prdl = 0.8e-3 and λ_lmk = 1.6e-3 with priors of 3e-4 (PAPER_LOSS_WEIGHTS) fit real
#: faces worse than their inputs (3D error above the mean face's, neutral faces given strong
#: expressions, landmarks worse than the detector's); the defaults below were chosen on the
#: calibration halves of the cross-model and 300-W benchmarks (README, "Fitting real faces").
DEFAULT_LOSS_WEIGHTS: Dict[str, float] = {
    "prdl": 0.8e-3,      # Part Re-projection Distance Loss (paper Eq. 6; the paper's weight)
    "lmk": 9.6e-3,       # 68 landmarks with contour marching (paper: 1.6e-3)
    "mesh_lmk": 1.92e-2,  # the front end's dense mesh (MediaPipe's 478 points less the face oval and irises)
    "eye_closure": 2e-2,    # lid openings (upper minus lower lid landmark) match the detector's
    "lip_closure": 6.4e-3,  # inner-lip openings match the detector's
    "id_prior": 1.25e-3,  # Gaussian prior on identity coefficients (paper λ_reg 3e-4; ours 4x)
    "exp_prior": 4.5e-4,  # Gaussian prior on expression coefficients
    "exp_sparse": 4.5e-2,  # sparsity prior on expression coefficients (MCP, exp_sparse_gamma): a neutral face stays neutral
    "shading": 20.0,     # the skin's shading explained by the fitted normals (one colour, SH light; identity gradient only)
    "pho": 0.0,          # photometric term (models with colour)
    "sil_iou": 0.0,      # soft-silhouette IoU per part (comparison)
    "icp_t2p": 0.0,      # ICP target -> prediction (comparison)
    "icp_p2t": 0.0,      # ICP prediction -> target (comparison)
    "chamfer": 0.0,      # chamfer distance (comparison)
    "dcd": 0.0,          # density-aware chamfer distance (comparison)
}

LOSS_NAMES: Tuple[str, ...] = tuple(DEFAULT_LOSS_WEIGHTS)

#: per-shape factors of the sparse expression prior (FitConfig.exp_sparse_scale): the downward gaze
#: costs 5 times the others. No target measures gaze (there is no iris term), and ICT's eyeLookDown,
#: like ARKit's, lowers the upper lid with the eye, so without evidence of gaze it took part of every
#: closed eye from the blink (closed eyes through the front end: blink 0.52 -> 0.70; chosen on
#: ``scripts/bench_eye_closure.py`` seeds 200-215, BENCHMARKS.md "Session 17"). The other gaze
#: shapes stay free: they shape the lids' corners, and holding them back cost the eyes' landmarks.
#: (Exempting the blinks, {"eyeBlink_L": 0.1, "eyeBlink_R": 0.1}, was tried in session 6: "Real faces".)
#: The squints (eyeSquint, cheekSquint) cost 3 times the others (session 21): they too close the
#: lids, from below, and without a measure of the cheek they took part of a closing eye from the
#: blink; at 3 the cross-model choice split's 3D error fell 0.757 -> 0.752 of the mean face's with the
#: 300-W choice photos' NME level (0.0442 -> 0.0441) and the eye-closure renders' blinks of closed eyes
#: 0.655 -> 0.661 (BENCHMARKS.md "Session 21"; 5 scored the same).
DEFAULT_EXP_SPARSE_SCALE: Dict[str, float] = {"eyeLookDown_L": 5.0, "eyeLookDown_R": 5.0, "eyeSquint_L": 3.0,
                                              "eyeSquint_R": 3.0, "cheekSquint_L": 3.0, "cheekSquint_R": 3.0}

#: per-region factors of the ``mesh_lmk`` term (FitConfig.mesh_region_weights): the lid, brow and lip
#: outlines count 4 times (chosen on the calibration splits, BENCHMARKS.md "Session 13")
DEFAULT_MESH_REGION_WEIGHTS: Dict[str, float] = {"eyes": 4.0, "brows": 4.0, "lips": 4.0}

#: MCP's γ of the sparse expression prior (FitConfig.exp_sparse_gamma; None = plain L1)
DEFAULT_EXP_SPARSE_GAMMA: Optional[float] = 1.0

#: the paper's setting of the same terms (``FitConfig(loss_weights=PAPER_LOSS_WEIGHTS)``).
PAPER_LOSS_WEIGHTS: Dict[str, float] = {**DEFAULT_LOSS_WEIGHTS, "lmk": 1.6e-3, "id_prior": 3e-4, "exp_prior": 3e-4,
                                        "exp_sparse": 0.0, "eye_closure": 0.0, "lip_closure": 0.0,
                                        "mesh_lmk": 0.0, "shading": 0.0}

#: The paper's priors and landmark weights are the same at every pose: the FitConfig fields that make
#: ours change towards profile, turned off (part of PAPER_FIT_OPTIONS).
PAPER_PROFILE_OPTIONS: Dict[str, object] = {"profile_id_prior": 0.0, "profile_exp_prior": 0.0, "profile_jaw_weight": 1.0}

#: The FitConfig fields (besides the weights) that undo our other real-face levers for the paper's
#: setup: ``FitConfig(loss_weights=PAPER_LOSS_WEIGHTS, **PAPER_FIT_OPTIONS)``.
PAPER_FIT_OPTIONS: Dict[str, object] = {"model_landmarks": "vertices", "model_parts": "rules",
                                        **PAPER_PROFILE_OPTIONS, "exp_sparse_gamma": None,
                                        "mesh_region_weights": {}, "blink_scale": "none"}

#: the PRDL anchor grid of a fit, (W, H) anchors (BENCHMARKS.md "Session 14": 16×16 fits as well as 32×32 at
#: a quarter of the work)
DEFAULT_ANCHORS: Tuple[int, int] = (16, 16)

#: largest PRDL anchor grid side accepted (anchors are W x H grid points)
MAX_ANCHORS = 256


@dataclass
class FitConfig:
    """Options of :class:`fitter.optimize.Fitter`.

    Attributes:
        loss_weights: term name -> weight (see DEFAULT_LOSS_WEIGHTS); missing names keep defaults.
        optimizer: ``adam`` or ``lbfgs``.
        iters: iteration cap of the main stage (identity + expression + pose).
        rigid_iters: iteration cap of the rigid stage (pose from landmarks).
        lr: Adam learning rate of the main stage (coefficients; pose uses lr * pose_lr_scale).
        pose_lr_scale: learning-rate factor for rotation/translation parameters.
        rel_tol: early stop when the relative loss change stays below this ...
        patience: ... for this many consecutive iterations (per image; :mod:`fitter.fit.stopping`).
            2e-3 × 10 since session 15 (1e-3 before, chosen with ``scripts/bench_stopping.py``
            over 1e-4): on the calibration splits a third fewer main-stage iterations (300-W
            median 109 → 79 in a replay) for the same 2D accuracy (NME +0.0001, parser IoU
            equal), a lower 3D error (0.771 → 0.761 of the mean face) and synthetic Part IoU
            within its noise (0.764 → 0.757; 1.5e-3 gave 0.752).
        anchors: (W, H) PRDL anchor grid. The default 16×16 (32×32 before session 14) was chosen on
            the calibration splits: the same accuracy as 32×32 on every benchmark (the descriptors of
            neighbouring anchors carry nearly the same information), a quarter of the anchor × point
            pairs (``DEFAULT_ANCHORS``).
        max_skin_points: farthest-point-sampled size of the model's skin point set (paper: 3000;
            default 1500 since session 14: the same accuracy on every benchmark, the skin's
            descriptors half the work; each kept point carries the area of the points it stands
            for). The target's skin points are thinned by ``PreprocessConfig.max_skin_points``.
        max_part_points: cap of the other parts' point sets.
        camera: ``perspective`` or ``weak``.
        focal_224: focal length in pixels for a 224-pixel crop (scaled with the crop size).
        num_id / num_exp: coefficients optimized (None = all the model has).
        visibility_every: recompute z-buffer visibility and the part point sets every N iterations.
            20 since session 15 (10 before): a refresh rasterizes the whole mesh (~40 ms on 2 CPU
            cores, the largest single cost of a fit), and on the calibration splits 20 scored as 10
            (3D 0.761 → 0.763, NME 0.0474 → 0.0475, parser IoU and synthetic IoU equal; 5 and 15
            the same within noise) for a fit 11 % shorter.
        device: ``auto`` / ``cpu`` / ``cuda``.
        seed: seeds torch's global generator when a Fitter is built. The fit itself draws no random
            numbers (farthest-point sampling starts at a fixed point); the seed is for user terms.
        snapshot_every: keep the projected points every N iterations in ``FitResult.snapshots``
            (0 = off); used for convergence animations.
        part_weights: per-part PRDL weight w_p (PART_NAMES keys; missing = 1.0).
        part_points: which model points make a part's predicted point set: ``triangles``
            (default) the corners of the triangles the part is rendered with (a triangle belongs to
            the part two of whose corners do), so that the set spans the region the fit shows as
            the part; ``vertices`` only the vertices annotated with the part (the paper), whose
            outer ring lies up to half an edge inside that region.
        point_weights: how the predicted points of a part enter PRDL's mean distance f_ave:
            ``area`` (default) weights each projected point by the image area it stands for, so
            that f_ave estimates the same quantity as the target's uniform pixel mean; ``uniform``
            is the paper's plain mean over vertices (biased where the mesh is dense or
            foreshortened: at the true shape the skin's f_ave is off by several pixels).
        model_landmarks: which iBUG-68 points the landmark term pulls: ``calibrated`` (default) the
            model's ``landmarks68`` as loaded (for ICT-FaceKit, points placed on the surface where
            300-W annotators put them, :mod:`morphable_models.landmark_embedding`); ``vertices`` the
            model's own hand-picked landmark vertices (the paper's way).
        model_parts: which part point sets PRDL compares with the parser's masks: ``frontend``
            (default) the model's ``parts`` as loaded (for ICT-FaceKit, brows, nose and lips drawn
            with the front end's own polygons, :mod:`morphable_models.frontend_parts`, and the eyes
            inside the calibrated eye landmarks, :mod:`morphable_models.eye_outline`); ``rules``
            the model's own annotation (:mod:`morphable_models.parts`).
        blink_scale: ``identity`` (default since session 22): the model's blinks are scaled by the
            fitted identity's own lid gap over the mean face's, so that a blink of 1 closes every
            face's eye (:mod:`morphable_models.lid_scaling`; the linear blink closed the mean face's
            and carried narrower lids past each other, so closed eyes were fitted at ~0.8);
            ``none`` the model's linear blend shapes (the paper).
        jaw_landmark_weight: weight of the 17 jaw contour points in the landmark term (the chin at
            least 1; the others' weights are fixed); None = ``fitter.losses.JAW_WEIGHT`` (1; 0.5
            until session 20).
        profile_jaw_weight: the jaw points' (but the chin's) weight factor as the head turns: 1 up
            to 30° of yaw, this from 60° on, along the priors' ramp (:func:`fitter.losses.profile_ramp`);
            1 = the same weight at every pose (the paper). Default 0.5: with the jaw at 1 the 300-W
            jaws fit better (choice photos: all 68 0.0453 → 0.0448, the jaw 0.0817 → 0.0798) at the
            same 3D error, where the jaw at 1 at every pose cost 3D at 40-60° of yaw (a turned face's
            jaw is the detector's guess at a silhouette): BENCHMARKS.md "Session 20".
        profile_id_prior: gain of the identity prior as the head turns: ``id_prior`` is multiplied
            per face by ``fitter.losses.profile_factor`` of the current yaw (1 up to 30°, 1 + gain
            from 60° on, rising quadratically between); 0 = the same prior at every pose (the paper). The
            default 9 (a factor of 10 at profile) was chosen on the cross-model calibration split.
        profile_exp_prior: the same gain for both expression priors (``exp_prior``, ``exp_sparse``;
            session 18): at profile the detector's errors went into expressions as well, giving
            the cross-model benchmark's neutral faces turned 40-60° expression sums of 1-5. The
            default 9 (chosen on the cross-model choice split) makes all three priors grow alike, the
            same as one detector noise that grows with yaw; 0 = the same priors at every pose.
        exp_sparse_scale: expression name -> factor of the sparse prior ``exp_sparse`` on that
            shape (missing names: 1; names the model lacks are ignored). A value replaces the whole
            default table (:data:`DEFAULT_EXP_SPARSE_SCALE`, the downward gaze ×5, the squints ×3): a config that adds
            a factor and keeps the default names both; ``{}`` prices every shape alike.
        exp_sparse_gamma: None (plain L1) or γ > 0: the sparse expression prior becomes the minimax
            concave penalty with this γ (in units of each shape's std; for blendshape weights in
            [0, 1], γ = 1 fades the pull from full at 0 to none at 1), so small weights still go
            to 0 while a strong expression the image asks for is not shrunk
            (:func:`fitter.losses.l1_prior`). Default 1, with ``exp_sparse`` 4.5e-2 (3e-2 in sessions 13-19; L1 before: 2e-2).
        mesh_region_weights: region name -> factor of the ``mesh_lmk`` term on the front end's mesh
            points of that region (``eyes``, ``brows``, ``lips``, ``nose``, ``rest``: MediaPipe's
            own region outlines, :mod:`fitter.targets.mediapipe_regions`; missing regions: 1).
        support_radius: a predicted part point counts only where the rendered fit shows its part
            within this many pixels of it (drops points of parts seen edge-on at the silhouette
            and of closed eyelids' zero-width slits, which a pixel mask cannot contain); -1 = off
            (z-buffer visibility only). Refreshed with the visibility.
    """

    loss_weights: Dict[str, float] = field(default_factory=lambda: dict(DEFAULT_LOSS_WEIGHTS))
    optimizer: str = "adam"
    iters: int = 200
    rigid_iters: int = 50
    lr: float = 0.05
    pose_lr_scale: float = 0.5
    lr_decay: float = 0.1
    rel_tol: float = 2e-3
    patience: int = 10
    anchors: Tuple[int, int] = DEFAULT_ANCHORS
    max_skin_points: int = 1500
    max_part_points: int = 800
    camera: str = "perspective"
    focal_224: float = FOCAL_224
    num_id: Optional[int] = None
    num_exp: Optional[int] = None
    visibility_every: int = 20
    device: str = "auto"
    seed: int = 0
    snapshot_every: int = 0
    part_weights: Dict[str, float] = field(default_factory=dict)
    part_points: str = "triangles"
    point_weights: str = "area"
    support_radius: int = 1
    model_landmarks: str = "calibrated"
    model_parts: str = "frontend"
    blink_scale: str = "identity"
    exp_sparse_scale: Dict[str, float] = field(default_factory=lambda: dict(DEFAULT_EXP_SPARSE_SCALE))
    jaw_landmark_weight: Optional[float] = None
    profile_id_prior: float = 9.0
    profile_exp_prior: float = 9.0
    profile_jaw_weight: float = 0.5
    exp_sparse_gamma: Optional[float] = DEFAULT_EXP_SPARSE_GAMMA
    mesh_region_weights: Dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MESH_REGION_WEIGHTS))

    def __post_init__(self) -> None:
        """Check every value (types, ranges, finiteness); ValueError naming the first bad one."""
        if not isinstance(self.loss_weights, dict):
            raise ValueError(f"loss_weights must be a mapping of loss names to weights, got {self.loss_weights!r}")
        merged = dict(DEFAULT_LOSS_WEIGHTS)
        for k, v in self.loss_weights.items():
            if k not in DEFAULT_LOSS_WEIGHTS:
                raise ValueError(f"unknown loss term {k!r}; known: {', '.join(LOSS_NAMES)}")
            merged[k] = check_float(f"loss weight {k}", v, lo=0.0)
        self.loss_weights = merged
        check_choice("optimizer", self.optimizer, ("adam", "lbfgs"))
        check_choice("part_points", self.part_points, ("triangles", "vertices"))
        check_choice("point_weights", self.point_weights, ("area", "uniform"))
        check_choice("camera", self.camera, ("perspective", "weak"))
        check_choice("model_landmarks", self.model_landmarks, ("calibrated", "vertices"))
        check_choice("model_parts", self.model_parts, ("frontend", "rules"))
        check_choice("blink_scale", self.blink_scale, ("identity", "none"))
        if not isinstance(self.device, str) or (self.device not in ("auto", "cpu", "cuda")
                                                and not self.device.startswith("cuda:")):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        for name in ("iters", "rigid_iters", "snapshot_every"):
            setattr(self, name, check_int(name, getattr(self, name), lo=0))
        for name in ("patience", "max_skin_points", "max_part_points", "visibility_every"):
            setattr(self, name, check_int(name, getattr(self, name), lo=1))
        self.seed = check_int("seed", self.seed)
        self.support_radius = check_int("support_radius", self.support_radius, lo=-1)
        for name in ("num_id", "num_exp"):
            if getattr(self, name) is not None:
                setattr(self, name, check_int(name, getattr(self, name), lo=0))
        for name in ("lr", "pose_lr_scale", "focal_224"):
            setattr(self, name, check_float(name, getattr(self, name), lo=0.0, lo_open=True))
        self.lr_decay = check_float("lr_decay", self.lr_decay, lo=0.0, hi=1.0, lo_open=True)
        self.rel_tol = check_float("rel_tol", self.rel_tol, lo=0.0)
        self.profile_id_prior = check_float("profile_id_prior", self.profile_id_prior, lo=0.0)
        self.profile_exp_prior = check_float("profile_exp_prior", self.profile_exp_prior, lo=0.0)
        self.profile_jaw_weight = check_float("profile_jaw_weight", self.profile_jaw_weight, lo=0.0)
        if self.exp_sparse_gamma is not None:
            self.exp_sparse_gamma = check_float("exp_sparse_gamma", self.exp_sparse_gamma, lo=0.0, lo_open=True)
        if self.jaw_landmark_weight is not None:
            self.jaw_landmark_weight = check_float("jaw_landmark_weight", self.jaw_landmark_weight, lo=0.0)
        if isinstance(self.anchors, (str, bytes)) or not hasattr(self.anchors, "__len__") or len(self.anchors) != 2:
            raise ValueError(f"anchors must be two integers (W, H), got {self.anchors!r}")
        self.anchors = tuple(check_int("anchors", a, lo=1, hi=MAX_ANCHORS) for a in self.anchors)  # type: ignore
        from morphable_models.model import PART_NAMES

        if not isinstance(self.part_weights, dict):
            raise ValueError(f"part_weights must be a mapping of part names to weights, got {self.part_weights!r}")
        for k, v in self.part_weights.items():
            if k not in PART_NAMES:
                raise ValueError(f"unknown part {k!r} in part_weights; parts: {', '.join(PART_NAMES)}")
            self.part_weights[k] = check_float(f"part weight {k}", v, lo=0.0)
        if not isinstance(self.mesh_region_weights, dict):
            raise ValueError(f"mesh_region_weights must be a mapping of region names to factors, "
                             f"got {self.mesh_region_weights!r}")
        self.mesh_region_weights = dict(self.mesh_region_weights)  # never the caller's (or a default's) dict
        if self.mesh_region_weights:
            from fitter.targets.mediapipe_regions import MESH_REGIONS

            for k, v in self.mesh_region_weights.items():
                if k not in MESH_REGIONS:
                    raise ValueError(f"unknown mesh region {k!r} in mesh_region_weights; regions: {', '.join(MESH_REGIONS)}")
                self.mesh_region_weights[k] = check_float(f"mesh region weight {k}", v, lo=0.0)
        if not isinstance(self.exp_sparse_scale, dict):
            raise ValueError(f"exp_sparse_scale must be a mapping of expression names to factors, got {self.exp_sparse_scale!r}")
        for k, v in self.exp_sparse_scale.items():
            self.exp_sparse_scale[k] = check_float(f"exp_sparse_scale {k}", v, lo=0.0)

    def active_losses(self) -> Dict[str, float]:
        return {k: w for k, w in self.loss_weights.items() if w > 0}

    def to_dict(self) -> Dict[str, object]:
        d = asdict(self)
        d["anchors"] = list(self.anchors)
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, object]) -> "FitConfig":
        """Build from a plain dict (config file); unknown keys raise ValueError naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**d)  # type: ignore[arg-type]


def parse_loss_option(text: str) -> Tuple[str, float]:
    """Parse ``name=weight`` (as in ``--loss prdl=0.8e-3``) with a clear error."""
    if "=" not in text:
        raise ValueError(f"--loss expects NAME=WEIGHT, got {text!r}")
    name, _, w = text.partition("=")
    name = name.strip()
    if name not in DEFAULT_LOSS_WEIGHTS:
        raise ValueError(f"unknown loss term {name!r}; known: {', '.join(LOSS_NAMES)}")
    try:
        weight = float(w)
    except ValueError:
        raise ValueError(f"--loss {name}: weight {w!r} is not a number") from None
    if not math.isfinite(weight):
        raise ValueError(f"--loss {name}: weight must be a finite number, got {w.strip()!r}")
    if not weight >= 0:
        raise ValueError(f"--loss {name}: weight must be >= 0")
    return name, weight


def parse_fit_options(texts) -> Dict[str, object]:
    """``KEY=VALUE`` strings (the scripts' ``--fit-option``) -> FitConfig keyword arguments.

    VALUE is read as JSON where it parses (numbers, lists, objects, true/false), else kept as a
    string. ValueError for a text without ``=`` or options FitConfig refuses (unknown field, bad
    value), naming it."""
    options: Dict[str, object] = {}
    for text in texts:
        key, sep, value = str(text).partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--fit-option needs KEY=VALUE, got {text!r}")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    try:
        FitConfig(**options)  # type: ignore[arg-type]
    except (TypeError, ValueError) as err:  # an unknown field / a bad value
        raise ValueError(f"bad --fit-option: {err}") from None
    return options


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available else ``cpu``; ``cuda`` without a GPU raises RuntimeError."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but no CUDA GPU is available")
    return device
