"""Optional backend ``facer``: FaRL face parsing / 68-point alignment from the ``pyfacer`` package.

facer downloads its weights on first use; this backend never does: it loads them from a local
file or folder (``TargetConfig.facer_weights``) or from torch's hub cache
(``torch.hub.get_dir()/checkpoints``), and otherwise stops with a one-line error saying where to
put which file. ``pyfacer`` is imported lazily (``pip install pyfacer``; it needs torchvision).

Faces are found by the MediaPipe detector; the five alignment points facer wants (eye centres,
nose tip, mouth corners) come from the 68 landmarks, so facer's RetinaFace weights are not needed.

The label mapping (:func:`facer_lookup_table`, :func:`map_facer_labels`) is pure and covers both
facer parsers: LaPa (``farl/lapa/448``) and CelebAMask-HQ (``farl/celebm/448``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from fitter.errors import PrdlfitError
from fitter.targets import labels as L
from fitter.targets.face import FaceAnalysis
from fitter.targets.types import CropTransform

#: facer's label names of its LaPa parser (``farl/lapa/448``)
FACER_LAPA_NAMES: Tuple[str, ...] = (
    "background", "face", "rb", "lb", "re", "le", "nose", "ulip", "imouth", "llip", "hair")
#: facer's label names of its CelebAMask-HQ parser (``farl/celebm/448``)
FACER_CELEBM_NAMES: Tuple[str, ...] = (
    "background", "neck", "face", "cloth", "rr", "lr", "rb", "lb", "re", "le", "nose", "imouth",
    "llip", "ulip", "hair", "glass", "hat", "earr", "neckl")

#: facer label name -> our label ("r"/"l" = the person's right/left; checked against landmarks)
FACER_TO_OURS: Dict[str, int] = {
    "background": L.BACKGROUND, "face": L.SKIN, "rb": L.RIGHT_BROW, "lb": L.LEFT_BROW,
    "re": L.RIGHT_EYE, "le": L.LEFT_EYE, "nose": L.NOSE, "ulip": L.UP_LIP, "llip": L.DOWN_LIP,
    "imouth": L.INNER_MOUTH, "hair": L.HAIR, "neck": L.NECK, "cloth": L.BACKGROUND, "rr": L.EAR,
    "lr": L.EAR, "glass": L.EYEGLASSES, "hat": L.OCCLUDER, "earr": L.BACKGROUND, "neckl": L.BACKGROUND,
}

_SWAP = {L.RIGHT_EYE: L.LEFT_EYE, L.LEFT_EYE: L.RIGHT_EYE, L.RIGHT_BROW: L.LEFT_BROW, L.LEFT_BROW: L.RIGHT_BROW}


def facer_lookup_table(label_names: Sequence[str]) -> np.ndarray:
    """[len(label_names)] uint8: facer class index -> our label (ValueError on unknown names)."""
    return L.lookup_table(list(label_names), FACER_TO_OURS)


def map_facer_labels(facer_labels: np.ndarray, label_names: Sequence[str]) -> np.ndarray:
    """[H, W] facer class indices -> [H, W] uint8 labels of :mod:`fitter.targets.labels`."""
    lut = facer_lookup_table(label_names)
    a = np.asarray(facer_labels)
    if a.size and (a.min() < 0 or a.max() >= len(lut)):
        raise ValueError(f"facer labels must be in 0..{len(lut) - 1}, got {int(a.min())}..{int(a.max())}")
    return lut[a]


def fix_left_right(labels: np.ndarray, landmarks68: np.ndarray, valid: Optional[np.ndarray] = None) -> np.ndarray:
    """Swap left/right eye and brow labels when they disagree with the landmarks.

    The person's right eye is iBUG 36..41. If the "right eye" region lies nearer the landmarks'
    left eye (42..47) than its right eye, every left/right label is swapped.

    Args:
        labels: [H, W] uint8 label map.
        landmarks68: [68, 2] landmarks in the same pixels.
        valid: [68] bool or None.
    Returns:
        [H, W] uint8 label map (a new array when swapped, else ``labels``).
    """
    v = np.ones(68, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    if not (v[36:42].all() and v[42:48].all()):
        return labels
    ys, xs = np.nonzero(labels == L.RIGHT_EYE)
    if xs.size == 0:
        ys, xs = np.nonzero(labels == L.RIGHT_BROW)
    if xs.size == 0:
        return labels
    c = np.array([xs.mean(), ys.mean()])
    d_right = np.linalg.norm(c - landmarks68[36:42].mean(0))
    d_left = np.linalg.norm(c - landmarks68[42:48].mean(0))
    if d_right <= d_left:
        return labels
    out = labels.copy()
    for a, b in _SWAP.items():
        out[labels == a] = b
    return out


def five_points(landmarks68: np.ndarray) -> np.ndarray:
    """[5, 2] facer/RetinaFace alignment points from iBUG-68: image-left eye, image-right eye,
    nose tip, image-left mouth corner, image-right mouth corner."""
    lm = np.asarray(landmarks68, dtype=np.float64)
    return np.stack([lm[36:42].mean(0), lm[42:48].mean(0), lm[30], lm[48], lm[54]])


def _import_facer():
    try:
        import facer  # noqa: F401  (pip install pyfacer)
    except Exception as err:  # ImportError, or torchvision missing inside facer
        raise PrdlfitError(f"the facer backend needs the pyfacer package (pip install pyfacer): {err}") from None
    return facer


def _weight_file(url_or_list, weights: Optional[str]) -> Path:
    """Local path of a facer checkpoint: ``weights`` (file or folder) or torch's hub cache."""
    url = url_or_list[0] if isinstance(url_or_list, (list, tuple)) else url_or_list
    fname = os.path.basename(str(url))
    places: List[Path] = []
    if weights:
        w = Path(weights).expanduser()
        if w.is_file():
            return w
        places.append(w / fname)
    try:
        import torch

        places.append(Path(torch.hub.get_dir()) / "checkpoints" / fname)
    except Exception:  # pragma: no cover
        pass
    for p in places:
        if p.is_file():
            return p
    where = " or ".join(str(p.parent) for p in places) or "a folder given by facer_weights"
    raise PrdlfitError(f"facer weights {fname} not found: download it from {url} into {where}")


class FacerParser:
    """Face parser ``facer`` (FaRL LaPa or CelebAMask-HQ model, see the module docstring)."""

    name = "facer"

    def __init__(self, weights: Optional[str] = None, device: str = "cpu", model: str = "farl/lapa/448"):
        self.weights = weights
        self.device = device
        self.model = model
        self._net = None
        self._names: Tuple[str, ...] = FACER_LAPA_NAMES if "lapa" in model else FACER_CELEBM_NAMES

    def _load(self):
        if self._net is None:
            facer = _import_facer()
            from facer.face_parsing import farl as farl_parsing

            conf = self.model.split("/", 1)[1]
            setting = farl_parsing.pretrain_settings[conf]
            path = _weight_file(setting["url"], self.weights)
            self._net = facer.face_parser(self.model, device=self.device, model_path=str(path))
            self._names = tuple(setting.get("label_names", self._names))
        return self._net

    def detect(self, rgb: np.ndarray, max_faces: int) -> List[FaceAnalysis]:
        from fitter.targets.mediapipe_backend import MediapipeParser

        self._load()  # fail early (before detection) when pyfacer or its weights are missing
        faces = MediapipeParser().detect(rgb, max_faces)
        for f in faces:
            f.backend = self.name
        return faces

    def parse(self, rgb: np.ndarray, face: FaceAnalysis, crop: CropTransform) -> np.ndarray:
        import cv2

        net = self._load()
        if face.landmarks68 is None:
            raise ValueError("the facer parser needs 68 landmarks to align the face")
        out = _run_aligned(net, rgb, face, self.device)
        seg = out["seg"]
        names = tuple(seg.get("label_names", self._names))
        cls = seg["logits"][0].argmax(0).cpu().numpy()
        labels = map_facer_labels(cls, names)
        labels = fix_left_right(labels, face.landmarks68, face.landmark_valid)
        w, h = crop.size
        return cv2.warpAffine(labels, crop.matrix(), (w, h), flags=cv2.INTER_NEAREST, borderValue=0)


def _run_aligned(net, rgb: np.ndarray, face: FaceAnalysis, device: str) -> dict:
    """Run a facer network on one face, aligned by the five points taken from its 68 landmarks."""
    import torch

    image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].to(device)
    data = {
        "points": torch.from_numpy(five_points(face.landmarks68)[None]).float().to(device),
        "image_ids": torch.zeros(1, dtype=torch.long, device=device),
    }
    with torch.inference_mode():
        return net(image, data)


class FacerLandmarks:
    """Landmark source ``facer``: FaRL's 68-point alignment model (``farl/ibug300w/448``)."""

    name = "facer"

    def __init__(self, weights: Optional[str] = None, device: str = "cpu"):
        _import_facer()  # fail before any detection work
        self.weights = weights
        self.device = device
        self._net = None

    def _load(self):
        if self._net is None:
            facer = _import_facer()
            from facer.face_alignment import farl as farl_alignment

            setting = farl_alignment.pretrain_settings["ibug300w/448"]
            path = _weight_file(setting["url"], self.weights)
            self._net = facer.face_aligner("farl/ibug300w/448", device=self.device, model_path=str(path))
        return self._net

    def landmarks(self, rgb: np.ndarray, face: FaceAnalysis, source: str, scale: float = 1.0) -> Tuple[np.ndarray, np.ndarray]:
        net = self._load()
        if face.landmarks68 is None:
            raise ValueError("the facer aligner needs a first landmark estimate to align the face")
        out = _run_aligned(net, rgb, face, self.device)
        pts = out["alignment"][0].cpu().numpy().astype(np.float64)
        return pts, np.all(np.isfinite(pts), axis=1)
