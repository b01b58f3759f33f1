"""Photo -> [Targets]: read, detect, landmarks, crop, parse, clean.

    from fitter.targets.pipeline import TargetConfig, build_targets
    targets = build_targets("photo.jpg")                       # largest face
    every = build_targets("group.jpg", TargetConfig(all_faces=True))

Backends are created once per process and reused (MediaPipe model creation is slow).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from fitter.checks import check_bool, check_choice, check_float, check_int, check_optional_str
from fitter.errors import ImageReadError, NoFaceError
from fitter.targets.backends import FaceAnalysis, FaceParser, LandmarkSource, get_landmark_source, get_parser
from fitter.targets.crop import compose, landmark_box, rescale_transform, rot90_transform, square_crop, warp_to_crop
from fitter.targets.io import MAX_PIXELS, MAX_SIDE, ImageSource, LoadedImage, load_image
from fitter.targets.mediapipe_lids import LID_MAPS
from fitter.targets.mediapipe_views import VIEW_SETS
from fitter.targets.preprocess import PreprocessConfig, targets_from_label_map
from fitter.targets.types import CropTransform, Targets

PARSERS = ("mediapipe", "facer")
LANDMARK_SOURCES = ("mediapipe", "file", "facer", "dlib")
#: an upright detection scoring below this makes :func:`build_targets` also try turned copies
#: (upright faces score about 0.9; an upside-down face found "upright" 0.6, turned upright 0.9)
ROTATION_TRY_BELOW = 0.85
#: a turned copy wins only when its best face scores this much more than the upright one
ROTATION_MARGIN = 0.15
#: bounds of the fitting crop's side in pixels (above 1024 the crop's per-pixel work and the
#: rendered label maps cost gigabytes while the parsers see no more detail)
MIN_CROP_SIZE = 16
MAX_CROP_SIZE = 1024


@dataclass
class TargetConfig:
    """How to turn a photo into targets.

    Attributes:
        size: side of the square fitting crop, pixels.
        margin: crop room on each side of the landmark box, fraction of its longer side.
        shift: crop centre moved up by this fraction of the landmark box (room for the forehead).
        parser: part parser, ``"mediapipe"`` (default, offline) or ``"facer"`` (needs pyfacer + weights).
        landmarks: ``"mediapipe"``, ``"file"`` (``<stem>.npy``/``.pts`` per photo), ``"facer"`` or ``"dlib"``.
        landmark_file: with ``landmarks="file"``: the file, or a folder holding ``<stem>.npy|.pts``
            (None = beside the photo).
        all_faces: fit every face (largest first) instead of only the largest.
        max_faces: at most this many faces with ``all_faces``.
        min_score: detector confidence threshold.
        preprocess: target cleaning settings.
        facer_weights: facer checkpoint file or folder (None = torch hub cache).
        facer_model: ``"farl/lapa/448"`` or ``"farl/celebm/448"``.
        dlib_predictor: path of dlib's 68-point ``.dat`` (None = face_recognition_models).
        device: torch device for facer.
        max_pixels, max_side: photos beyond these are downscaled on read (results still map to
            original pixels).
        mesh_views: MediaPipe's face mesh (parser and landmarks ``"mediapipe"``) averaged over the
            photo, its mirror image and both turned by ±8° (``"averaged"``, default since session 21:
            300-W calibration NME 0.0433 -> 0.0419) or taken from the photo alone (``"single"``);
            :mod:`fitter.targets.mediapipe_views`.
        lid_opening: MediaPipe's lids read through a map that closes the eyes it leaves slightly
            open (``"calibrated"``, default since session 22) or as they are (``"raw"``);
            :mod:`fitter.targets.mediapipe_lids`.
        try_rotations: when the upright photo shows no face, or only a doubtful one (detector
            score below ``ROTATION_TRY_BELOW``), also look in the photo turned by 90, 180 and 270
            degrees and fit at the turn whose face the detector is surest of (by
            ``ROTATION_MARGIN``); coordinates still map to the original photo
            (``CropTransform.rotation``). Not with ``landmarks="file"`` (the file fixes the frame).
    """

    size: int = 224
    margin: float = 0.3
    shift: float = 0.1
    parser: str = "mediapipe"
    landmarks: str = "mediapipe"
    landmark_file: Optional[str] = None
    all_faces: bool = False
    max_faces: int = 8
    min_score: float = 0.5
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    facer_weights: Optional[str] = None
    facer_model: str = "farl/lapa/448"
    dlib_predictor: Optional[str] = None
    device: str = "cpu"
    max_pixels: int = MAX_PIXELS
    max_side: int = MAX_SIDE
    try_rotations: bool = True
    mesh_views: str = "averaged"
    lid_opening: str = "calibrated"

    def __post_init__(self) -> None:
        # Accept a plain mapping for the nested config (configs read from YAML/JSON).
        if isinstance(self.preprocess, dict):
            try:
                self.preprocess = PreprocessConfig(**self.preprocess)
            except TypeError as err:
                raise ValueError(f"bad preprocess settings: {err}") from None
        if not isinstance(self.preprocess, PreprocessConfig):
            raise ValueError(f"preprocess must be a mapping of settings, got {self.preprocess!r}")
        self.preprocess.occluder_labels = tuple(self.preprocess.occluder_labels)
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad setting (type or range)."""
        check_choice("parser", self.parser, PARSERS)
        check_choice("landmarks", self.landmarks, LANDMARK_SOURCES)
        check_choice("mesh_views", self.mesh_views, tuple(VIEW_SETS))
        check_choice("lid_opening", self.lid_opening, tuple(LID_MAPS))
        self.size = check_int("size", self.size, lo=MIN_CROP_SIZE, hi=MAX_CROP_SIZE)
        self.margin = check_float("margin", self.margin, lo=0.0, hi=10.0)
        self.shift = check_float("shift", self.shift, lo=-1.0, hi=1.0)
        self.max_faces = check_int("max_faces", self.max_faces, lo=1)
        self.min_score = check_float("min_score", self.min_score, lo=0.0, hi=1.0)
        self.all_faces = check_bool("all_faces", self.all_faces)
        self.try_rotations = check_bool("try_rotations", self.try_rotations)
        self.max_pixels = check_int("max_pixels", self.max_pixels, lo=1)
        self.max_side = check_int("max_side", self.max_side, lo=MIN_CROP_SIZE)
        for name in ("landmark_file", "facer_weights", "dlib_predictor"):
            check_optional_str(name, getattr(self, name))
        p = self.preprocess
        p.max_skin_points = check_int("preprocess.max_skin_points", p.max_skin_points, lo=1)
        p.max_part_points = check_int("preprocess.max_part_points", p.max_part_points, lo=1)
        p.min_part_pixels = check_int("preprocess.min_part_pixels", p.min_part_pixels, lo=0)
        p.occlusion_dilate = check_int("preprocess.occlusion_dilate", p.occlusion_dilate, lo=0)
        for name in ("plausible_distance", "skin_keep_fraction", "forehead_offset"):
            setattr(p, name, check_float(f"preprocess.{name}", getattr(p, name)))
        for name in ("forehead_cut", "outline"):
            check_bool(f"preprocess.{name}", getattr(p, name))


_CACHE: Dict[Tuple, object] = {}
_CACHE_LOCK = threading.Lock()


def _cached(key: Tuple, make):
    with _CACHE_LOCK:
        obj = _CACHE.get(key)
        if obj is None:
            obj = make()
            _CACHE[key] = obj
        return obj


def parser_for(config: TargetConfig) -> FaceParser:
    """The (process-wide cached) face parser of ``config``."""
    if config.parser == "facer":
        key = ("parser", "facer", config.facer_weights, config.device, config.facer_model)
        return _cached(key, lambda: get_parser("facer", weights=config.facer_weights, device=config.device,
                                               model=config.facer_model))
    if config.parser == "mediapipe":
        key = ("parser", "mediapipe", config.min_score, config.mesh_views, config.lid_opening)
        return _cached(key, lambda: get_parser("mediapipe", min_score=config.min_score, views=config.mesh_views,
                                               lids=config.lid_opening))
    key = ("parser", config.parser, config.min_score)
    return _cached(key, lambda: get_parser(config.parser, min_score=config.min_score))


def landmark_source_for(config: TargetConfig) -> LandmarkSource:
    """The (process-wide cached) landmark source of ``config``."""
    name = config.landmarks
    if name == "file":
        return get_landmark_source("file", folder=config.landmark_file)
    if name == "facer":
        return _cached(("lmk", "facer", config.facer_weights, config.device),
                       lambda: get_landmark_source("facer", weights=config.facer_weights, device=config.device))
    if name == "dlib":
        return _cached(("lmk", "dlib", config.dlib_predictor),
                       lambda: get_landmark_source("dlib", predictor=config.dlib_predictor))
    if name == "mediapipe":
        return _cached(("lmk", name, config.mesh_views, config.lid_opening),
                       lambda: get_landmark_source(name, views=config.mesh_views, lids=config.lid_opening))
    return _cached(("lmk", name), lambda: get_landmark_source(name))


def as_loaded_image(image: Union[ImageSource, np.ndarray, LoadedImage], config: TargetConfig) -> LoadedImage:
    """Accept a path, encoded bytes, a decoded array ([H, W], [H, W, 3] or [H, W, 4] uint8 RGB[A])
    or a :class:`LoadedImage`."""
    if isinstance(image, LoadedImage):
        return image
    if isinstance(image, np.ndarray):
        a = image
        if a.dtype != np.uint8:
            raise ImageReadError(f"cannot use image array: expected uint8 pixels, got {a.dtype}")
        if a.ndim == 2:
            a = np.repeat(a[:, :, None], 3, axis=2)
        if a.ndim != 3 or a.shape[2] not in (3, 4) or a.shape[0] == 0 or a.shape[1] == 0:
            raise ImageReadError(f"cannot use image array of shape {image.shape}: expected [H, W, 3] RGB")
        a = np.ascontiguousarray(a[:, :, :3])
        return LoadedImage(rgb=a, scale=1.0, original_size=(a.shape[1], a.shape[0]), source="<array>")
    return load_image(image, max_pixels=config.max_pixels, max_side=config.max_side)


def analyze_faces(image: Union[ImageSource, np.ndarray, LoadedImage], config: TargetConfig = TargetConfig(),
                  labels: bool = False) -> List[FaceAnalysis]:
    """Detected faces (boxes, scores, 68 landmarks) in original-photo pixels, largest first.

    Args:
        image, config: as for :func:`build_targets`.
        labels: also draw each face's label map over the whole photo (``FaceAnalysis.labels``, in
            the pixels of the photo as read; ``labels_crop`` maps original pixels to them).
    Returns:
        list of :class:`FaceAnalysis`; empty when there is no face (no error).
    """
    config.validate()
    img = as_loaded_image(image, config)
    parser = parser_for(config)
    n = config.max_faces if config.all_faces else 1
    faces = parser.detect(img.rgb, n)
    if labels:
        H, W = img.rgb.shape[:2]
        frame = CropTransform(scale=img.scale, offset=(0.0, 0.0), size=(W, H), original_size=img.original_size)
        for f in faces:
            f.labels = parser.parse(img.rgb, f, CropTransform.identity(W, H))
            f.labels_crop = frame
    return [f.scaled(1.0 / img.scale) for f in faces]


def detect_any_turn(parser: FaceParser, rgb: np.ndarray, n: int, try_turns: bool = True
                    ) -> Tuple[List[FaceAnalysis], int]:
    """Faces of ``rgb`` upright, or in a copy turned by ``np.rot90(rgb, k)`` when that is clearly better.

    The turned copies are tried only when the upright photo has no face or its best scores below
    :data:`ROTATION_TRY_BELOW`; a turn wins when its best face scores :data:`ROTATION_MARGIN`
    more (MediaPipe's mesh follows a face turned by 90 degrees, but lays an upright mesh on an
    upside-down face: only the detector's score tells).

    Returns:
        (faces in the pixels of the turned copy, k): k = 0 upright, else quarter turns.
    """
    faces = parser.detect(rgb, n)
    best = max((f.score for f in faces), default=-1.0)
    if not try_turns or best >= ROTATION_TRY_BELOW:
        return faces, 0
    chosen, turn, need = faces, 0, (best + ROTATION_MARGIN if faces else -1.0)
    for k in (2, 1, 3):
        cand = parser.detect(np.ascontiguousarray(np.rot90(rgb, k)), n)
        score = max((f.score for f in cand), default=-1.0)
        if cand and score > need:
            chosen, turn, need = cand, k, score + 1e-9
    return chosen, turn


def _box_in_original(box, turned: CropTransform, read_scale: float) -> List[float]:
    """(x0, y0, x1, y1) of a face box in the turned copy's pixels -> original-photo pixels."""
    x0, y0, x1, y1 = box
    pts = turned.to_original(np.array([[x0, y0], [x1, y1]], dtype=np.float64)) / read_scale
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    return [float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])]


def build_targets(image: Union[ImageSource, np.ndarray, LoadedImage], config: TargetConfig = TargetConfig()) -> List[Targets]:
    """Fitting targets of the largest face (or of every face with ``config.all_faces``).

    Args:
        image: a photo path, its encoded bytes, an RGB array or a :class:`LoadedImage`.
        config: :class:`TargetConfig`.
    Returns:
        list of :class:`Targets`, largest face first (one element unless ``all_faces``); every
        coordinate is in crop pixels and ``Targets.crop`` maps to original-photo pixels.
    Raises:
        ImageReadError: unreadable photo; NoFaceError: no face found ("no face found in <file>").
    """
    config.validate()
    img = as_loaded_image(image, config)
    parser = parser_for(config)
    native = config.landmarks == "mediapipe" and parser.name in ("mediapipe", "facer")
    source = landmark_source_for(config) if not native else None  # optional backends fail here, early
    n = config.max_faces if config.all_faces else 1
    turns = config.try_rotations and config.landmarks != "file"
    faces, turn = detect_any_turn(parser, img.rgb, n, turns)
    if not faces:
        raise NoFaceError(f"no face found in {img.source}" + (" (also tried it turned by 90, 180 and 270 degrees)"
                                                              if turns else ""))
    H0, W0 = img.rgb.shape[:2]
    turned = rot90_transform(W0, H0, turn)  # read pixels -> pixels of the turned copy the faces live in
    rgb = img.rgb if turn == 0 else np.ascontiguousarray(np.rot90(img.rgb, turn))
    out: List[Targets] = []
    for k, face in enumerate(faces):
        lm, valid = face.landmarks68, face.landmark_valid
        lm_name = "mediapipe"
        if source is not None:
            lm2, valid2 = source.landmarks(rgb, face, img.source, img.scale)
            if np.any(valid2):
                lm, valid, lm_name = lm2, np.asarray(valid2, dtype=bool), source.name
        if lm is None or not np.any(valid):
            raise NoFaceError(f"no landmarks for face {k} in {img.source}")
        face.landmarks68, face.landmark_valid = lm, valid
        crop_img = square_crop(landmark_box(lm, valid), (rgb.shape[1], rgb.shape[0]),
                               size=config.size, margin=config.margin, shift=config.shift)
        labels = parser.parse(rgb, face, crop_img)
        crop_rgb = warp_to_crop(rgb, crop_img)
        # original -> read pixels -> turned copy -> crop, as one transform
        crop = compose(crop_img, rescale_transform(turned, img.scale, img.original_size))
        box_orig = _box_in_original(face.box, turned, img.scale)
        meta = {"parser": parser.name, "landmarks": lm_name, "score": float(face.score),
                "face_box": box_orig, "read_scale": float(img.scale), "rotation_deg": 90 * turn,
                "face_pixels": float(max(box_orig[2] - box_orig[0], box_orig[3] - box_orig[1]))}
        mesh = None if face.mesh is None else crop_img.to_crop(np.asarray(face.mesh)[:, :2])
        out.append(targets_from_label_map(labels, crop_img.to_crop(lm), valid, crop, crop_rgb,
                                          config.preprocess, source=img.source, face_index=k, meta=meta,
                                          mesh_points=mesh))
    return out


__all__ = ["TargetConfig", "build_targets", "analyze_faces", "parser_for", "landmark_source_for", "as_loaded_image"]
