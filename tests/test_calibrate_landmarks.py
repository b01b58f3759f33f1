"""scripts/calibrate_landmarks.py: the jaw-line search finds the height the annotations ask for."""
import numpy as np
import torch
from conftest import load_script

from morphable_models.contours import contour_line, line_frame


def _script():
    return load_script("calibrate_landmarks")


def test_jaw_search_recovers_a_lower_anchor(ict_model):
    """Annotations placed where the line of a lower outline vertex marches to (in frontal and rolled
    views of the neutral face): the search picks an anchor whose line marches there."""
    from morphable_models.landmark_embedding import own_landmarks

    C = _script()
    m = own_landmarks(ict_model)
    V = m.num_mesh_vertices
    mean = m.mean.numpy().astype(np.float64)[:V]
    skin = m.parts["skin"].numpy()
    skin = skin[skin < V]
    frame = line_frame(mean, m.landmarks68.numpy())
    front = mean[:, :2] * np.array([1.0, -1.0]) * 20 + 300
    th = np.deg2rad(12)
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    proj = np.stack([front, (front - 300) @ rot.T + 300])  # [2, V, 2]
    anchors = m.landmarks68[:17].numpy().copy()
    j = 2
    here, below = mean[anchors[j]], mean[anchors[j + 1]]
    # a frontal-outline vertex a third of the way down to the next jaw point
    want_y = here[1] + (below[1] - here[1]) / 3
    side = skin[(mean[skin, 0] < frame[0]) & (np.abs(mean[skin, 1] - want_y) < 0.1)]
    target = int(side[np.argmin(mean[side, 0])])
    line = contour_line(mean, target, skin, frame)
    index = m.landmarks68.clone()
    index[:17] = torch.from_numpy(anchors)
    normals = C.jaw_outward_directions(torch.from_numpy(proj), index).numpy()[:, j]
    marched = [proj[i, line[np.argmax(proj[i, line] @ normals[i])]] for i in range(2)]
    gts = np.zeros((2, 68, 2))
    gts[:, j] = marched
    ids, picked, lines = C.calibrate_jaw(m, proj, gts, np.ones(2), anchors)
    assert ids == [k for k in range(17) if k != 8]
    k = ids.index(j)
    assert picked[k] != anchors[j] and picked[k] in lines[k].tolist()
    assert C.march_cost(proj, lines[k], normals, gts[:, j], np.ones(2)) < 1e-9
    # the model's own anchor was worse: the search moved because the annotations asked it to
    own = contour_line(mean, int(anchors[j]), skin, frame)
    assert C.march_cost(proj, own, normals, gts[:, j], np.ones(2)) > 0.5


def test_mesh_point_search_recovers_known_surface_points(ict_model):
    """scripts/calibrate_mesh_landmarks.py: "MediaPipe points" made by projecting known points of
    face triangles in three views are placed back on (nearly) the same surface points."""
    C = load_script("calibrate_mesh_landmarks")
    from fitter.metrics import face_vertex_indices

    V = ict_model.num_mesh_vertices
    mean = ict_model.mean.numpy().astype(np.float64)[:V]
    views = []
    for deg in (-25, 0, 20):  # yawed orthographic views, image axes (y down), ~20 px per cm
        th = np.deg2rad(deg)
        R = np.array([[np.cos(th), 0, np.sin(th)], [0, 1, 0], [-np.sin(th), 0, np.cos(th)]])
        views.append((mean @ R.T)[:, :2] * np.array([20.0, -20.0]) + 300)
    proj = np.stack(views)  # [3, V, 2]
    face = set(np.asarray(face_vertex_indices(ict_model)).tolist())
    tri = ict_model.triangles.numpy()
    tri = tri[np.isin(tri, list(face)).all(1)]
    rng = np.random.default_rng(0)
    pick = tri[rng.choice(len(tri), 5, replace=False)]
    w = rng.dirichlet(np.ones(3), 5)
    want = np.einsum("kj,kjc->kc", w, mean[pick])  # [5, 3] model points
    pts = np.einsum("kj,nkjc->nkc", w, proj[:, pick])  # [3, 5, 2]
    scale = np.full(3, 100.0)
    table, cost = C.place_points(ict_model, proj, pts, scale, np.arange(5), radius=1.5)
    got = np.einsum("kj,kjc->kc", table.weights.numpy(), mean[table.triangles.numpy()])
    assert float(cost.max()) < 2e-3  # below 0.2 px at 100 px per eye distance
    assert float(np.linalg.norm(got - want, axis=1).max()) < 0.1  # within 1 mm (cm units)


def test_fixed_only_round_keeps_the_starting_tables_jaw_lines():
    """``--fixed-only``: the new table's fixed points, the starting table's jaw lines, nothing mixed."""
    from morphable_models.landmark_embedding import LandmarkEmbedding

    C = _script()
    start = LandmarkEmbedding(torch.tensor([8, 30]), torch.tensor([[0, 1, 2], [3, 4, 5]]), torch.full((2, 3), 1 / 3),
                              jaw_landmarks=torch.tensor([0, 16]), jaw_anchors=torch.tensor([7, 9]),
                              jaw_lines=torch.tensor([[7, 10, -1], [9, 11, 12]]))
    new = LandmarkEmbedding(torch.tensor([8, 30]), torch.tensor([[6, 7, 8], [3, 4, 9]]),
                            torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]]), note="round 3")
    got = C.with_jaw_of(new, start)
    assert torch.equal(got.triangles, new.triangles) and torch.equal(got.weights, new.weights)
    assert got.note == "round 3"
    for name in ("jaw_landmarks", "jaw_anchors", "jaw_lines"):
        assert torch.equal(getattr(got, name), getattr(start, name))
