"""Test-time views of the face mesh: the same face seen mirrored and slightly turned in the image.

MediaPipe's face mesh is a single-shot regressor: its points move by a pixel or two when the face
is mirrored or turned a few degrees in its input, and that jitter is a large part of its error
against human annotations (300-W). The front end runs the mesh on a few such views of one face box,
maps each back to the photo and averages them (:func:`fitter.targets.mediapipe_mesh.mesh_in_box`).

A view is an affine map ``photo -> mesh input`` (a square crop around the box, turned by
``rotation_deg`` about its centre, mirrored left-right when ``mirror``). A mirrored view's points
come back in mirrored order: point ``i`` of its mesh is the photo's point :data:`MIRROR` ``[i]``
(the person's left eye is the mirror image's right eye).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np

from fitter.checks import check_choice

#: MIRROR[i] = the mesh point that mirrors point i (478 points: 468 face points, then the irises;
#: an involution; the 28 points of the mid-line map to themselves). Derived by ``scripts/
#: mediapipe_mirror.py`` (the mean shape of the 300-W calibration photos' meshes, mirrored, matched
#: point to point); it pairs the part polygons of :mod:`morphable_models.mediapipe_topology` exactly.
MIRROR: Tuple[int, ...] = (
    0, 1, 2, 248, 4, 5, 6, 249, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 250, 251, 252, 253, 254, 255, 256, 257,
    258, 259, 260, 261, 262, 263, 264, 265, 266, 267, 268, 269, 270, 271, 272, 273, 274, 275, 276, 277, 278, 279,
    280, 281, 282, 283, 284, 285, 286, 287, 288, 289, 290, 291, 292, 293, 294, 295, 296, 297, 298, 299, 300, 301,
    302, 303, 304, 305, 306, 307, 308, 309, 310, 311, 312, 313, 314, 315, 316, 317, 318, 319, 320, 321, 322, 323, 94,
    324, 325, 326, 327, 328, 329, 330, 331, 332, 333, 334, 335, 336, 337, 338, 339, 340, 341, 342, 343, 344, 345,
    346, 347, 348, 349, 350, 351, 352, 353, 354, 355, 356, 357, 358, 359, 360, 361, 362, 363, 364, 365, 366, 367,
    368, 369, 370, 371, 372, 373, 374, 375, 376, 377, 378, 379, 151, 152, 380, 381, 382, 383, 384, 385, 386, 387,
    388, 389, 390, 164, 391, 392, 393, 168, 394, 395, 396, 397, 398, 399, 175, 400, 401, 402, 403, 404, 405, 406,
    407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 418, 195, 419, 197, 420, 199, 200, 421, 422, 423, 424,
    425, 426, 427, 428, 429, 430, 431, 432, 433, 434, 435, 436, 437, 438, 439, 440, 441, 442, 443, 444, 445, 446,
    447, 448, 449, 450, 451, 452, 453, 454, 455, 456, 457, 458, 459, 460, 461, 462, 463, 464, 465, 466, 467, 3, 7,
    20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47,
    48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75,
    76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 95, 96, 97, 98, 99, 100, 101, 102, 103,
    104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125,
    126, 127, 128, 129, 130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 140, 141, 142, 143, 144, 145, 146, 147,
    148, 149, 150, 153, 154, 155, 156, 157, 158, 159, 160, 161, 162, 163, 165, 166, 167, 169, 170, 171, 172, 173,
    174, 176, 177, 178, 179, 180, 181, 182, 183, 184, 185, 186, 187, 188, 189, 190, 191, 192, 193, 194, 196, 198,
    201, 202, 203, 204, 205, 206, 207, 208, 209, 210, 211, 212, 213, 214, 215, 216, 217, 218, 219, 220, 221, 222,
    223, 224, 225, 226, 227, 228, 229, 230, 231, 232, 233, 234, 235, 236, 237, 238, 239, 240, 241, 242, 243, 244,
    245, 246, 247, 473, 476, 475, 474, 477, 468, 471, 470, 469, 472,
)


@dataclass(frozen=True)
class View:
    """One test-time view: the crop turned by ``rotation_deg`` (counter-clockwise in the image) and
    mirrored left-right when ``mirror``."""

    rotation_deg: float = 0.0
    mirror: bool = False


#: the views the front end averages: the photo, its mirror image, and both turned by ±8°.
#: Chosen on the 300-W calibration half (BENCHMARKS.md "Session 21"): NME 0.0433 -> 0.0419 over
#: the photo alone; mirror only 0.0424; adding scales and shifts (12 views) gave the same 0.0419.
DEFAULT_VIEWS: Tuple[View, ...] = (View(), View(mirror=True), View(8.0), View(-8.0), View(8.0, True), View(-8.0, True))
#: one view: the mesh as MediaPipe gives it
SINGLE_VIEW: Tuple[View, ...] = (View(),)
#: the named sets of views (``TargetConfig.mesh_views``)
VIEW_SETS: Dict[str, Tuple[View, ...]] = {"averaged": DEFAULT_VIEWS, "single": SINGLE_VIEW}


def views_named(name: str) -> Tuple[View, ...]:
    """The views of :data:`VIEW_SETS` called ``name``; ValueError naming the choices otherwise."""
    return VIEW_SETS[check_choice("mesh_views", name, tuple(VIEW_SETS))]


def view_matrix(centre: Tuple[float, float], side: float, view: View, size: int) -> np.ndarray:
    """[2, 3] affine map photo pixels -> the view's ``size`` x ``size`` input (pixel centres at integers).

    The square of side ``side`` around ``centre`` fills the input with ``centre`` at (size/2, size/2),
    turned by ``view.rotation_deg`` about it and mirrored left-right about it (``x -> size - x``) when
    ``view.mirror``: the mirrored view of a mirrored photo is then the photo's own view, pixel for pixel.
    """
    s = size / float(side)
    a = np.deg2rad(view.rotation_deg)
    c, n = np.cos(a) * s, np.sin(a) * s
    M = np.array([[c, n, 0.0], [-n, c, 0.0]])
    M[:, 2] = size / 2.0 - M[:, :2] @ np.asarray(centre, dtype=np.float64)
    if view.mirror:
        M[0] = -M[0]
        M[0, 2] += size
    return M


def back_to_photo(points: np.ndarray, M: np.ndarray, view: View) -> np.ndarray:
    """[N, 3] mesh points of a view's input (x, y pixels, z scaled like x) -> [N, 3] in photo pixels,
    in the photo's point order (a mirrored view's points re-indexed through :data:`MIRROR`)."""
    A = np.vstack([M, [0.0, 0.0, 1.0]])
    inv = np.linalg.inv(A)
    out = np.empty_like(points, dtype=np.float64)
    out[:, :2] = points[:, :2] @ inv[:2, :2].T + inv[:2, 2]
    out[:, 2] = points[:, 2] / np.sqrt(abs(np.linalg.det(M[:, :2])))
    if view.mirror:
        out = out[np.asarray(MIRROR[: len(out)])]
    return out
