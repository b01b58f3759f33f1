"""Optional landmark source ``dlib``: dlib's 68-point shape predictor.

Not a default: the predictor of the ``face_recognition_models`` wheel was trained on iBUG 300-W,
whose licence allows research use only. Needs ``pip install dlib face_recognition_models`` (or a
``shape_predictor_68_face_landmarks.dat`` path); both are imported lazily.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from fitter.errors import PrdlfitError
from fitter.targets.face import FaceAnalysis


def _predictor_path(path: Optional[str]) -> str:
    if path:
        return path
    try:
        import face_recognition_models
    except ImportError:
        raise PrdlfitError("landmarks='dlib' needs a predictor: pip install face_recognition_models "
                           "(research-use licence) or pass the .dat path") from None
    return face_recognition_models.pose_predictor_model_location()


class DlibLandmarks:
    """68 landmarks by dlib inside the detected face box."""

    name = "dlib"

    def __init__(self, predictor: Optional[str] = None):
        import importlib.util

        if importlib.util.find_spec("dlib") is None:  # fail before any detection work
            raise PrdlfitError("landmarks='dlib' needs the dlib package (pip install dlib)")
        self.predictor_path = predictor
        self._predictor = None

    def _load(self):
        if self._predictor is None:
            try:
                import dlib
            except ImportError:
                raise PrdlfitError("landmarks='dlib' needs the dlib package (pip install dlib)") from None
            self._predictor = dlib.shape_predictor(_predictor_path(self.predictor_path))
        return self._predictor

    def landmarks(self, rgb: np.ndarray, face: FaceAnalysis, source: str, scale: float = 1.0) -> Tuple[np.ndarray, np.ndarray]:
        pred = self._load()
        import dlib

        x0, y0, x1, y1 = face.box
        if face.landmarks68 is not None:
            # dlib was trained with its own detector's boxes: a box around the landmarks fits them.
            lm = face.landmarks68
            x0, y0 = lm[:, 0].min(), lm[17:, 1].min()
            x1, y1 = lm[:, 0].max(), lm[:, 1].max()
        rect = dlib.rectangle(int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1)))
        shape = pred(np.ascontiguousarray(rgb), rect)
        pts = np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], dtype=np.float64)
        return pts, np.ones(68, dtype=bool)
