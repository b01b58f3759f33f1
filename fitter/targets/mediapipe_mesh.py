"""MediaPipe face detection + 478-point face mesh, with models bundled in the ``mediapipe`` wheel.

Runs fully offline. Faces are found by the BlazeFace short- and full-range detectors (merged), then
each face is cropped square around its box, resized and passed to the face mesh in static mode, so
small faces in large photos and several faces per photo work. The crop is taken in a few views (the
photo, mirrored, turned by ±8°: :mod:`fitter.targets.mediapipe_views`) whose meshes are averaged.
The models are created once per process (creation is slow) and reused.

Mesh points come back in original image pixels: ``[478, 3]`` (x, y in pixels, z in the mesh's
relative depth scaled like x; smaller z = closer to the camera).
"""
from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from fitter.targets.mediapipe_import import face_solutions
from fitter.targets.mediapipe_views import DEFAULT_VIEWS, View, back_to_photo, view_matrix
from fitter.targets.native_logs import native_stderr_silenced, quiet_native_loggers

_MODELS: Dict[Tuple[str, int], object] = {}
_LOCK = threading.Lock()


def _model(kind: str, arg: int):
    """Process-wide cache of mediapipe solution objects ('detector' model id, 'mesh' faces)."""
    key = (kind, arg)
    with _LOCK:
        m = _MODELS.get(key)
        if m is None:
            quiet_native_loggers()
            with native_stderr_silenced():
                try:
                    face_detection, face_mesh = face_solutions()
                except ImportError as err:  # pragma: no cover - mediapipe is a hard dependency
                    raise ImportError(f"the default face backend needs mediapipe (pip install mediapipe): {err}")
                if kind == "detector":
                    m = face_detection.FaceDetection(model_selection=arg, min_detection_confidence=0.5)
                else:
                    m = face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=arg,
                                           min_detection_confidence=0.5)
                # The constructor starts the graph and returns while its calculators still open on
                # the graph's threads, which log (TensorFlow Lite's inference_feedback_manager) then:
                # wait for them here, while descriptor 2 is still silenced.
                idle = getattr(getattr(m, "_graph", None), "wait_until_idle", None)
                if callable(idle):
                    idle()
            _MODELS[key] = m
        return m


_RUN_LOCK = threading.Lock()


def _process(model, rgb: np.ndarray):
    """``model.process`` on a contiguous image, one call at a time (mediapipe graphs are not
    re-entrant), without mediapipe's protobuf deprecation noise or its native log lines."""
    with _RUN_LOCK, warnings.catch_warnings(), native_stderr_silenced():
        warnings.filterwarnings("ignore", message=".*SymbolDatabase.GetPrototype.*")
        return model.process(np.ascontiguousarray(rgb))


@dataclass
class DetectedFace:
    """One face from the BlazeFace detector.

    Attributes:
        box: (x0, y0, x1, y1) pixels of the analysed image.
        score: detector confidence in [0, 1].
        keypoints: [6, 2] pixels: right eye, left eye, nose tip, mouth, right ear, left ear
            (the person's own right/left).
    """

    box: Tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray


def _box_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / ua if ua > 0 else 0.0


def _detect_once(rgb: np.ndarray, min_score: float, dx: float = 0.0, dy: float = 0.0) -> List[DetectedFace]:
    """Both BlazeFace models on one image; boxes shifted by (dx, dy)."""
    H, W = rgb.shape[:2]
    found: List[DetectedFace] = []
    for model_id in (0, 1):
        res = _process(_model("detector", model_id), rgb)
        for det in res.detections or []:
            score = float(det.score[0]) if det.score else 0.0
            if score < min_score:
                continue
            rb = det.location_data.relative_bounding_box
            box = (rb.xmin * W - 0.5 + dx, rb.ymin * H - 0.5 + dy, (rb.xmin + rb.width) * W - 0.5 + dx,
                   (rb.ymin + rb.height) * H - 0.5 + dy)
            kp = np.array([[k.x * W - 0.5 + dx, k.y * H - 0.5 + dy] for k in det.location_data.relative_keypoints])
            if box[2] - box[0] < 4 or box[3] - box[1] < 4:
                continue
            found.append(DetectedFace(box=box, score=score, keypoints=kp))
    return found


def _tiles(W: int, H: int, n: int, overlap: float = 0.25):
    """(x0, y0, x1, y1) of an n x n grid of overlapping tiles."""
    tw, th = W / (n - (n - 1) * overlap), H / (n - (n - 1) * overlap)
    for i in range(n):
        for j in range(n):
            x0, y0 = int(i * tw * (1 - overlap)), int(j * th * (1 - overlap))
            yield x0, y0, min(W, int(x0 + tw + 1)), min(H, int(y0 + th + 1))


def detect_faces(rgb: np.ndarray, min_score: float = 0.5, tiles: str = "auto") -> List[DetectedFace]:
    """Faces in an RGB image, largest box first.

    The detectors see a downscaled whole image, which loses faces under ~5% of the photo's side;
    tiles (2 x 2 and, for photos over 1600 px, 3 x 3, overlapping) find those.

    Args:
        rgb: [H, W, 3] uint8 RGB.
        min_score: drop detections below this confidence.
        tiles: "auto" = search tiles when the whole image gives nothing, "always", or "never".
    Returns:
        list of :class:`DetectedFace` (boxes in pixels of ``rgb``), overlapping duplicates merged
        (the higher score kept).
    """
    H, W = rgb.shape[:2]
    found = _detect_once(rgb, min_score)
    if tiles == "always" or (tiles == "auto" and not found):
        grids = (2, 3) if max(W, H) > 1600 else (2,)
        for n in grids:
            for x0, y0, x1, y1 in _tiles(W, H, n):
                found += _detect_once(rgb[y0:y1, x0:x1], min_score, x0, y0)
    found.sort(key=lambda d: -d.score)
    merged: List[DetectedFace] = []
    for d in found:
        if all(_box_iou(d.box, m.box) < 0.3 for m in merged):
            merged.append(d)
    merged.sort(key=lambda d: -(d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
    return merged


def _square_around(box, factor: float) -> Tuple[float, float, float]:
    """(cx, cy, side) of a square ``factor`` times the box's longer side."""
    cx, cy = 0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3])
    side = factor * max(box[2] - box[0], box[3] - box[1])
    return cx, cy, side


def _mesh_of_view(rgb: np.ndarray, centre, side: float, view: View, crop_px: int) -> Optional[np.ndarray]:
    """The mesh of one view (:mod:`fitter.targets.mediapipe_views`) in photo pixels, or None."""
    import cv2

    M = view_matrix(centre, side, view, crop_px)
    interp = cv2.INTER_AREA if crop_px < side else cv2.INTER_LINEAR
    crop = cv2.warpAffine(rgb, M, (crop_px, crop_px), flags=interp, borderMode=cv2.BORDER_REPLICATE)
    res = _process(_model("mesh", 2), crop)
    if not res.multi_face_landmarks:
        return None
    best, best_d = None, np.inf
    for fl in res.multi_face_landmarks:
        # Normalized coordinates -> crop pixels with pixel centres at integers (as cv2 uses).
        p = np.array([[q.x, q.y, q.z] for q in fl.landmark], dtype=np.float64) * crop_px
        p[:, :2] -= 0.5
        d = np.linalg.norm(p[:, :2].mean(0) - crop_px / 2.0)
        if d < best_d:
            best, best_d = p, d
    return back_to_photo(best, M, view)


def mesh_in_box(rgb: np.ndarray, box, crop_factor: float = 2.2, crop_px: int = 384,
                views: Sequence[View] = DEFAULT_VIEWS) -> Optional[np.ndarray]:
    """Run the 478-point face mesh on square crops around ``box``, one per view, and average them.

    Args:
        rgb: [H, W, 3] uint8 RGB.
        box: (x0, y0, x1, y1) face box in pixels of ``rgb``.
        crop_factor: crop side / box side.
        crop_px: the crop is resized to this many pixels (mesh input is 192-256 px anyway).
        views: the test-time views (:data:`fitter.targets.mediapipe_views.DEFAULT_VIEWS`: the photo,
            mirrored, turned by ±8°); their meshes are averaged point by point.
    Returns:
        [478, 3] float64 (x, y pixels of ``rgb``, z same scale as x) of the face nearest the crop
        centre, or None when the mesh finds no face in the first view. A view whose mesh lies
        elsewhere (its centre over a quarter of the face's width from the first view's) is left out.
    """
    if not views:
        raise ValueError("mesh_in_box needs at least one view")
    cx, cy, side = _square_around(box, crop_factor)
    first = _mesh_of_view(rgb, (cx, cy), side, views[0], crop_px)
    if first is None:
        return None
    found = [first]
    width = float(first[:, 0].max() - first[:, 0].min())
    for view in views[1:]:
        m = _mesh_of_view(rgb, (cx, cy), side, view, crop_px)
        if m is not None and np.linalg.norm(m[:, :2].mean(0) - first[:, :2].mean(0)) < 0.25 * width:
            found.append(m)
    return np.mean(found, axis=0)


def mesh_box(mesh: np.ndarray) -> Tuple[float, float, float, float]:
    """(x0, y0, x1, y1) bounding box of the mesh points [N, >=2]."""
    return (float(mesh[:, 0].min()), float(mesh[:, 1].min()), float(mesh[:, 0].max()), float(mesh[:, 1].max()))


def face_meshes(rgb: np.ndarray, max_faces: int = 8, min_score: float = 0.5,
                refine: bool = False, views: Sequence[View] = DEFAULT_VIEWS) -> List[Tuple[DetectedFace, np.ndarray]]:
    """Detect faces and fit the mesh to each, largest face first.

    Args:
        rgb: [H, W, 3] uint8 RGB.
        max_faces: at most this many faces (the largest).
        refine: run the mesh a second time on a crop centred on the first mesh (no gain measured on
            300-W, so off by default).
        views: the test-time views each face's mesh averages (:func:`mesh_in_box`).
    Returns:
        list of (detection, [478, 3] mesh in pixels of ``rgb``); faces the mesh rejects are dropped.
    """
    out = []
    for det in detect_faces(rgb, min_score=min_score, tiles="always" if max_faces > 1 else "auto"):
        mesh = mesh_in_box(rgb, det.box, views=views)
        if mesh is None:
            continue
        if refine:
            again = mesh_in_box(rgb, mesh_box(mesh), crop_factor=1.6, views=views)
            if again is not None and np.linalg.norm(again[:, :2].mean(0) - mesh[:, :2].mean(0)) < 0.25 * (
                mesh[:, 0].max() - mesh[:, 0].min()
            ):
                mesh = again
        # Skip a mesh that duplicates one found for a larger box.
        if any(_box_iou(mesh_box(mesh), mesh_box(m)) > 0.5 for _, m in out):
            continue
        out.append((det, mesh))
        if len(out) >= max_faces:
            break
    def area(item) -> float:
        x0, y0, x1, y1 = mesh_box(item[1])
        return (x1 - x0) * (y1 - y0)

    out.sort(key=area, reverse=True)
    return out
