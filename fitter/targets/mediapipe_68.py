"""MediaPipe 478-point face mesh -> iBUG-68 landmarks.

Each iBUG point is a fixed convex combination of a few mesh vertices (:data:`TABLE`), fitted
on the 300-W training faces in ``shared/images/300w-train`` by ``scripts/fit_mediapipe68.py``
(5-fold cross-validated NME is printed there). The jaw points (0..16) are then moved along the ray
from the face centre onto the convex hull of the mesh, i.e. onto the visible silhouette, which
the mesh's fixed face-oval vertices follow only on frontal faces.
"""
from __future__ import annotations

import numpy as np

#: per iBUG point: ((mesh vertex, weight), ...); weights sum to 1 (renormalized on use)
# 150 faces, 5-fold CV NME 4.19%, in-sample 4.16%
TABLE = (
    ((127, 0.810), (34, 0.143), (162, 0.046),),  # 0
    ((227, 0.209), (234, 0.445), (137, 0.346),),  # 1
    ((177, 0.712), (132, 0.025), (93, 0.263),),  # 2
    ((215, 0.643), (58, 0.357),),  # 3
    ((172, 0.703), (138, 0.183), (136, 0.114),),  # 4
    ((136, 0.473), (150, 0.527),),  # 5
    ((149, 0.771), (176, 0.229),),  # 6
    ((148, 0.879), (176, 0.121),),  # 7
    ((152, 0.934), (377, 0.066),),  # 8
    ((377, 0.664), (400, 0.336),),  # 9
    ((378, 1.000),),  # 10
    ((365, 0.640), (379, 0.360),),  # 11
    ((397, 0.651), (367, 0.317), (365, 0.033),),  # 12
    ((435, 0.640), (288, 0.292), (401, 0.068),),  # 13
    ((401, 0.710), (366, 0.046), (323, 0.244),),  # 14
    ((447, 0.173), (454, 0.431), (366, 0.396),),  # 15
    ((356, 0.933), (447, 0.067),),  # 16
    ((70, 0.637), (156, 0.298), (46, 0.065),),  # 17
    ((63, 0.523), (53, 0.213), (105, 0.158), (68, 0.106),),  # 18
    ((105, 0.614), (66, 0.386),),  # 19
    ((66, 0.591), (107, 0.409),),  # 20
    ((107, 0.450), (55, 0.340), (9, 0.209),),  # 21
    ((336, 0.607), (285, 0.271), (9, 0.122),),  # 22
    ((296, 0.742), (336, 0.258),),  # 23
    ((334, 0.777), (296, 0.223),),  # 24
    ((293, 0.889), (300, 0.014), (276, 0.068), (298, 0.029),),  # 25
    ((300, 0.568), (383, 0.326), (368, 0.106),),  # 26
    ((6, 0.307), (417, 0.318), (193, 0.203), (8, 0.172),),  # 27
    ((197, 0.603), (6, 0.027), (351, 0.251), (196, 0.051), (122, 0.068),),  # 28
    ((248, 0.591), (3, 0.066), (51, 0.343),),  # 29
    ((4, 0.681), (274, 0.175), (5, 0.143),),  # 30
    ((75, 0.761), (98, 0.239),),  # 31
    ((97, 0.787), (242, 0.213),),  # 32
    ((2, 0.437), (164, 0.352), (370, 0.211),),  # 33
    ((326, 0.791), (290, 0.182), (462, 0.027),),  # 34
    ((460, 0.715), (305, 0.285),),  # 35
    ((7, 0.331), (25, 0.157), (161, 0.293), (130, 0.219),),  # 36
    ((159, 0.535), (160, 0.465),),  # 37
    ((158, 0.673), (157, 0.327),),  # 38
    ((133, 0.163), (173, 0.104), (243, 0.364), (154, 0.369),),  # 39
    ((153, 0.354), (22, 0.016), (145, 0.302), (154, 0.303), (472, 0.025),),  # 40
    ((144, 0.916), (145, 0.084),),  # 41
    ((362, 0.560), (398, 0.080), (381, 0.306), (463, 0.054),),  # 42
    ((385, 0.743), (476, 0.012), (384, 0.162), (475, 0.083),),  # 43
    ((387, 0.646), (386, 0.260), (474, 0.043), (475, 0.051),),  # 44
    ((263, 0.577), (466, 0.028), (249, 0.322), (359, 0.046), (255, 0.027),),  # 45
    ((373, 0.725), (390, 0.044), (474, 0.135), (339, 0.096),),  # 46
    ((380, 0.649), (374, 0.188), (477, 0.124), (473, 0.039),),  # 47
    ((61, 1.000),),  # 48
    ((39, 0.506), (73, 0.145), (42, 0.139), (40, 0.209),),  # 49
    ((37, 0.738), (82, 0.023), (0, 0.240),),  # 50
    ((0, 0.782), (13, 0.139), (268, 0.079),),  # 51
    ((267, 0.932), (312, 0.068),),  # 52
    ((304, 0.123), (270, 0.493), (269, 0.384),),  # 53
    ((291, 1.000),),  # 54
    ((321, 0.489), (405, 0.511),),  # 55
    ((314, 1.000),),  # 56
    ((17, 0.938), (314, 0.062),),  # 57
    ((84, 0.758), (17, 0.242),),  # 58
    ((181, 0.699), (91, 0.301),),  # 59
    ((78, 0.723), (191, 0.277),),  # 60
    ((82, 0.570), (38, 0.297), (13, 0.133),),  # 61
    ((13, 0.927), (312, 0.073),),  # 62
    ((312, 0.557), (268, 0.300), (271, 0.143),),  # 63
    ((308, 0.963), (407, 0.037),),  # 64
    ((317, 0.770), (316, 0.054), (403, 0.176),),  # 65
    ((14, 0.794), (15, 0.123), (316, 0.083),),  # 66
    ((87, 0.772), (86, 0.114), (14, 0.115),),  # 67
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
