"""MediaPipe 478-point face mesh -> iBUG-68 landmarks.

Each iBUG point is a fixed convex combination of a few mesh vertices (:data:`TABLE`), fitted
on the calibration half of the 300-W training faces in ``shared/images/300w-train`` by
``scripts/fit_mediapipe68.py``, which prints its cross-validated NME and its NME on the evaluation
half (where ``scripts/eval_real.py`` reports; the table has not seen it). The jaw points (0..16)
are then moved along the ray from the face centre onto the convex hull of the mesh, i.e. onto the
visible silhouette, which the mesh's fixed face-oval vertices follow only on frontal faces.
"""
from __future__ import annotations

import numpy as np

#: per iBUG point: ((mesh vertex, weight), ...); weights sum to 1 (renormalized on use). Fitted on
#: single-view meshes (``fit_mediapipe68.py --mesh-views single``); on the front end's averaged meshes
#: (``TargetConfig.mesh_views``, session 21) it scores 4.19% on the calibration split, where a table
#: refitted on those meshes reached a 5-fold CV NME of 4.25%.
# 300-W calibration split, 75 faces, 5-fold CV NME 4.40%, in-sample 4.33%; evaluation split (75) 4.02%
TABLE = (
    ((127, 0.717), (34, 0.263), (227, 0.020),),  # 0
    ((227, 0.191), (234, 0.409), (137, 0.400),),  # 1
    ((177, 0.713), (132, 0.073), (93, 0.214),),  # 2
    ((215, 0.598), (58, 0.402),),  # 3
    ((172, 0.633), (138, 0.192), (136, 0.175),),  # 4
    ((150, 0.558), (136, 0.442),),  # 5
    ((149, 0.789), (176, 0.211),),  # 6
    ((148, 0.827), (176, 0.173),),  # 7
    ((152, 0.985), (377, 0.015),),  # 8
    ((377, 0.761), (400, 0.239),),  # 9
    ((378, 0.877), (400, 0.123),),  # 10
    ((365, 0.550), (379, 0.450),),  # 11
    ((397, 0.576), (367, 0.307), (365, 0.117),),  # 12
    ((435, 0.723), (288, 0.277),),  # 13
    ((401, 0.788), (366, 0.012), (323, 0.200),),  # 14
    ((447, 0.144), (454, 0.384), (366, 0.472),),  # 15
    ((356, 0.873), (447, 0.127),),  # 16
    ((70, 0.585), (156, 0.324), (46, 0.091),),  # 17
    ((63, 0.796), (105, 0.164), (224, 0.040),),  # 18
    ((105, 0.607), (66, 0.393),),  # 19
    ((66, 0.594), (107, 0.406),),  # 20
    ((107, 0.492), (55, 0.296), (9, 0.212),),  # 21
    ((336, 0.624), (285, 0.265), (9, 0.111),),  # 22
    ((296, 0.749), (336, 0.251),),  # 23
    ((334, 0.788), (296, 0.212),),  # 24
    ((293, 0.895), (300, 0.078), (298, 0.027),),  # 25
    ((300, 0.546), (383, 0.340), (368, 0.114),),  # 26
    ((6, 0.380), (417, 0.241), (8, 0.246), (193, 0.133),),  # 27
    ((197, 0.627), (6, 0.146), (351, 0.173), (196, 0.054),),  # 28
    ((248, 0.585), (3, 0.062), (51, 0.353),),  # 29
    ((4, 0.397), (275, 0.364), (45, 0.239),),  # 30
    ((75, 0.772), (98, 0.228),),  # 31
    ((97, 0.704), (60, 0.053), (242, 0.244),),  # 32
    ((2, 0.340), (164, 0.369), (370, 0.245), (141, 0.045),),  # 33
    ((326, 0.762), (290, 0.161), (458, 0.077),),  # 34
    ((460, 0.681), (305, 0.183), (392, 0.136),),  # 35
    ((246, 0.371), (7, 0.421), (25, 0.029), (130, 0.180),),  # 36
    ((159, 0.513), (160, 0.458), (471, 0.029),),  # 37
    ((158, 0.647), (157, 0.316), (56, 0.014), (470, 0.023),),  # 38
    ((155, 0.491), (173, 0.116), (154, 0.164), (243, 0.228),),  # 39
    ((153, 0.326), (145, 0.363), (154, 0.311),),  # 40
    ((144, 0.928), (145, 0.049), (471, 0.023),),  # 41
    ((362, 0.562), (398, 0.126), (381, 0.312),),  # 42
    ((385, 0.700), (475, 0.109), (384, 0.180), (473, 0.012),),  # 43
    ((387, 0.664), (386, 0.218), (474, 0.044), (475, 0.074),),  # 44
    ((263, 0.603), (466, 0.039), (249, 0.320), (255, 0.038),),  # 45
    ((373, 0.682), (390, 0.115), (474, 0.129), (339, 0.074),),  # 46
    ((380, 0.621), (374, 0.238), (477, 0.082), (473, 0.059),),  # 47
    ((61, 0.898), (76, 0.102),),  # 48
    ((39, 0.525), (73, 0.140), (74, 0.241), (40, 0.094),),  # 49
    ((37, 0.737), (82, 0.048), (0, 0.215),),  # 50
    ((0, 0.775), (13, 0.154), (312, 0.071),),  # 51
    ((267, 0.896), (312, 0.104),),  # 52
    ((304, 0.272), (270, 0.334), (269, 0.394),),  # 53
    ((291, 1.000),),  # 54
    ((405, 0.533), (321, 0.467),),  # 55
    ((314, 0.975), (17, 0.025),),  # 56
    ((17, 0.949), (314, 0.051),),  # 57
    ((84, 0.759), (17, 0.241),),  # 58
    ((181, 0.707), (91, 0.293),),  # 59
    ((78, 0.703), (191, 0.297),),  # 60
    ((82, 0.503), (38, 0.383), (13, 0.114),),  # 61
    ((13, 0.946), (312, 0.054),),  # 62
    ((312, 0.533), (268, 0.350), (271, 0.118),),  # 63
    ((308, 0.885), (407, 0.115),),  # 64
    ((317, 0.665), (316, 0.178), (403, 0.157),),  # 65
    ((14, 0.671), (15, 0.249), (316, 0.080),),  # 66
    ((87, 0.670), (86, 0.204), (14, 0.126),),  # 67
)

#: vertices whose mean is the centre the jaw rays start from (nose tip, chin, forehead top)
JAW_RAY_CENTRE = (1, 152, 10)


def _weights_matrix() -> np.ndarray:
    W = np.zeros((68, 478), dtype=np.float64)
    for i, row in enumerate(TABLE):
        for v, w in row:
            W[i, v] = w
    return W / W.sum(axis=1, keepdims=True)


_W = None


def snap_jaw_to_hull(points68: np.ndarray, mesh: np.ndarray) -> np.ndarray:
    """Move jaw points 0..16 along rays from the face centre onto the mesh's 2-D convex hull.

    Args:
        points68: [68, 2] landmarks, pixels.
        mesh: [>=468, >=2] mesh points in the same pixels.
    Returns:
        [68, 2] copy with the jaw points on the hull (unchanged where a ray misses it).
    """
    import cv2

    out = np.array(points68, dtype=np.float64, copy=True)
    hull = cv2.convexHull(np.ascontiguousarray(mesh[:468, :2], dtype=np.float32)).reshape(-1, 2).astype(np.float64)
    a, e = hull, np.roll(hull, -1, axis=0) - hull  # edges a + u e, u in [0, 1]
    c = mesh[list(JAW_RAY_CENTRE), :2].mean(0)
    for i in range(17):
        d = out[i] - c
        n = np.linalg.norm(d)
        if n < 1e-9:
            continue
        d = d / n
        # Solve c + t d = a + u e for every edge (2x2 systems, Cramer's rule).
        det = -d[0] * e[:, 1] + d[1] * e[:, 0]
        ok = np.abs(det) > 1e-12
        r = a - c
        t = np.where(ok, (-r[:, 0] * e[:, 1] + r[:, 1] * e[:, 0]) / np.where(ok, det, 1), -1)
        u = np.where(ok, (d[0] * r[:, 1] - d[1] * r[:, 0]) / np.where(ok, det, 1), -1)
        hit = ok & (t > 0) & (u >= 0) & (u <= 1)
        if hit.any():
            out[i] = c + d * t[hit].max()
    return out


def mesh_to_ibug68(mesh: np.ndarray, snap_jaw: bool = True) -> np.ndarray:
    """[478, >=2] MediaPipe mesh (pixels) -> [68, 2] iBUG-68 landmarks (pixels)."""
    global _W
    if _W is None:
        _W = _weights_matrix()
    pts = _W[:, : mesh.shape[0]] @ mesh[:, :2]
    return snap_jaw_to_hull(pts, mesh) if snap_jaw else pts
