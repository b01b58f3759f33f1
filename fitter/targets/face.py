"""The small protocol every face backend follows: the detected face and the two backend roles.

Two roles:

* a :class:`FaceParser` finds faces and draws their part label map (the label set of
  :mod:`fitter.targets.labels`): ``detect(rgb) -> [FaceAnalysis]`` then
  ``parse(rgb, face, crop) -> [h, w] labels in the crop frame``;
* a :class:`LandmarkSource` gives 68 iBUG landmarks for a detected face:
  ``landmarks(rgb, face, source, scale) -> ([68, 2], [68] valid)``.

Both work in the pixels of the array they are given (the pipeline scales to the original photo);
:class:`FaceAnalysis` documents the units. Backends: ``mediapipe`` (default, offline, both roles),
``facer`` (optional FaRL parser + landmarks, needs ``pyfacer`` and its weights), ``file`` (user
landmark files), ``dlib`` (optional 68-point predictor); :mod:`fitter.targets.backends` maps
names to them. The backends import this module, never the registry.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Protocol, Tuple

import numpy as np

from fitter.targets.types import CropTransform


@dataclass
class FaceAnalysis:
    """One detected face.

    Attributes:
        box: (x0, y0, x1, y1) face box, pixels of the analysed image (original-photo pixels once
            :func:`fitter.targets.pipeline.analyze_faces` returns it).
        score: detector confidence in [0, 1].
        landmarks68: [68, 2] float64 iBUG-68 landmarks in the same pixels, or None.
        landmark_valid: [68] bool, False where a landmark is unknown.
        labels: [h, w] uint8 label map (:mod:`fitter.targets.labels`) in the frame of
            ``labels_crop`` (filled by :meth:`FaceParser.parse`), or None.
        labels_crop: the transform from the analysed image's pixels to the ``labels`` frame.
        mesh: [N, 3] dense mesh of the backend (MediaPipe: 478 points), pixels, or None.
        backend: name of the backend that found the face.
    """

    box: Tuple[float, float, float, float]
    score: float
    landmarks68: Optional[np.ndarray] = None
    landmark_valid: Optional[np.ndarray] = None
    labels: Optional[np.ndarray] = None
    labels_crop: Optional[CropTransform] = None
    mesh: Optional[np.ndarray] = None
    backend: str = ""
    #: backend-private data (e.g. facer's face record); not part of the protocol
    private: object = field(default=None, repr=False)

    @property
    def area(self) -> float:
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])

    def scaled(self, k: float) -> "FaceAnalysis":
        """A copy with every pixel coordinate multiplied by ``k`` (labels are left as they are)."""
        m = None if self.mesh is None else self.mesh * k
        lm = None if self.landmarks68 is None else self.landmarks68 * k
        b = tuple(float(v * k) for v in self.box)
        return FaceAnalysis(box=b, score=self.score, landmarks68=lm, landmark_valid=self.landmark_valid,
                            labels=self.labels, labels_crop=self.labels_crop, mesh=m, backend=self.backend,
                            private=self.private)


class FaceParser(Protocol):
    """Finds faces and draws their part labels."""

    name: str

    def detect(self, rgb: np.ndarray, max_faces: int) -> List[FaceAnalysis]:
        """Faces in ``rgb`` ([H, W, 3] uint8), largest first, at most ``max_faces``."""

    def parse(self, rgb: np.ndarray, face: FaceAnalysis, crop: CropTransform) -> np.ndarray:
        """[crop.size[1], crop.size[0]] uint8 label map of ``face`` in the crop frame."""


class LandmarkSource(Protocol):
    """Gives 68 iBUG landmarks for a face."""

    name: str

    def landmarks(self, rgb: np.ndarray, face: FaceAnalysis, source: str,
                  scale: float = 1.0) -> Tuple[np.ndarray, np.ndarray]:
        """([68, 2] pixels of ``rgb``, [68] bool valid) for ``face``.

        ``source`` is the photo's path (or a name); ``scale`` = pixels of ``rgb`` per original
        pixel (below 1 for huge photos read downscaled).
        """
