"""Shared fixtures and helpers. The data folder is ../shared next to the repo, or $PRDLFIT_SHARED.

Helpers more than one test module uses live here (test modules import them with ``from conftest
import ...``, never from each other): the fake sphere model and fit of the output tests (and its
variants with named expression shapes), the OBJ
reader, the batch tests' photo corpus, and the loader of the scripts under test.
"""
import importlib.util
import os
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image

from fitter.geometry.camera import model_to_camera
from fitter.geometry.cameras import PerspectiveCamera
from fitter.geometry.rotation import euler_to_matrix
from fitter.result import Camera, FitResult, LossHistory
from fitter.targets.types import CropTransform, Targets
from morphable_models.model import PART_NAMES, MorphableModel

REPO = Path(__file__).resolve().parents[1]


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` imported as a module (the scripts are not a package): their folder goes on
    ``sys.path`` for their sibling imports, and the module into ``sys.modules`` under ``name`` (a
    dataclass looks its module up there while it is built)."""
    folder = REPO / "scripts"
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def shared_dir() -> Path:
    return Path(os.environ.get("PRDLFIT_SHARED", REPO.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def shared() -> Path:
    d = shared_dir()
    if not d.is_dir():
        pytest.skip(f"shared data folder not found at {d} (set PRDLFIT_SHARED)")
    return d


@pytest.fixture(scope="session")
def eos_py():
    """eos-py (an optional package, in the ``dev`` extra), which reads the Surrey Face Model files."""
    return pytest.importorskip("eos", reason="reading the Surrey Face Model needs eos-py (pip install eos-py, "
                                             "or pip install -e \".[dev]\")")


@pytest.fixture(scope="session")
def model_cache(shared):
    """Model cache for tests: $PRDLFIT_CACHE = <repo>/.cache (gitignored, reused across runs) and the
    ICT-FaceKit / SFM sources from the shared folder. Yields the cache root."""
    cache = REPO / ".cache"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PRDLFIT_CACHE", str(cache))
        mp.setenv("PRDLFIT_ICT_SOURCE", str(shared / "models" / "ict-facekit"))
        mp.setenv("PRDLFIT_SFM_SOURCE", str(shared / "models" / "sfm-3448"))
        yield cache


@pytest.fixture(scope="session")
def ict_model(model_cache):
    """The ICT-FaceKit model on CPU (converted into the test cache on first use)."""
    import morphable_models

    return morphable_models.load("ict")


@pytest.fixture(scope="session")
def fake_model_file(tmp_path_factory):
    """The synthetic sphere model (:func:`make_fake_model`) saved as a model cache file (loads instantly)."""
    from morphable_models.cache import save_model

    path = tmp_path_factory.mktemp("model") / "fake.npz"
    save_model(make_fake_model(), path, converter="test", converter_version=1)
    return path


@pytest.fixture(scope="session")
def fake_result(tmp_path_factory):
    """A per-image output folder written from the fake fit of the sphere model."""
    from fitter.outputs.writer import write_fit_outputs

    model = make_fake_model()
    out = tmp_path_factory.mktemp("res") / "photo"
    write_fit_outputs(make_fake_fit(model), model, out, original_image=fake_photo())
    return out


# ------------------------------------------------------------------ the fake model and fit
# A sphere (radius 5 cm) with the 8 parts painted on its front; the fake fit poses it 80 cm in
# front of the fitting camera of a 224×224 crop cut from a 320×240 "photo".
ORIGINAL_SIZE = (320, 240)  # (W, H) of the fake photo
CROP = CropTransform(scale=0.7, offset=(-0.5, 27.5), size=(224, 224), original_size=ORIGINAL_SIZE)
FOCAL = 1015.0
DEPTH = 80.0


def _sphere(radius: float, n_lat: int = 32, n_lon: int = 64):
    """UV sphere: [V, 3] vertices (poles included) and [F, 3] outward-wound triangles."""
    verts = [[0.0, radius, 0.0]]
    for i in range(1, n_lat):
        th = np.pi * i / n_lat
        for j in range(n_lon):
            ph = 2 * np.pi * j / n_lon
            verts.append([radius * np.sin(th) * np.sin(ph), radius * np.cos(th), radius * np.sin(th) * np.cos(ph)])
    verts.append([0.0, -radius, 0.0])
    V = len(verts)
    ring = lambda i, j: 1 + (i - 1) * n_lon + (j % n_lon)  # noqa: E731
    tris = []
    for j in range(n_lon):
        tris.append([0, ring(1, j), ring(1, j + 1)])
        tris.append([V - 1, ring(n_lat - 1, j + 1), ring(n_lat - 1, j)])
    for i in range(1, n_lat - 1):
        for j in range(n_lon):
            a, b, c, d = ring(i, j), ring(i, j + 1), ring(i + 1, j), ring(i + 1, j + 1)
            tris += [[a, c, b], [b, c, d]]
    return np.array(verts, np.float32), np.array(tris, np.int64)


def make_fake_model() -> MorphableModel:
    """A sphere 'face' with parts: eyes, brows, nose, lips on the front (+Z), skin around, the back unlabelled.

    One virtual point (the right eye's centre) follows the mesh vertices, covered by hole triangles.
    """
    verts, tris = _sphere(5.0)
    n_mesh = len(verts)
    x, y, z = verts.T
    front = z > 1.0
    centres = {  # model space: +X is the person's left
        "right_eye": (-1.8, 1.2), "left_eye": (1.8, 1.2), "right_brow": (-1.8, 2.9), "left_brow": (1.8, 2.9),
        "nose": (0.0, 0.0), "up_lip": (0.0, -1.6), "down_lip": (0.0, -2.6),
    }
    label = np.zeros(n_mesh, np.int64)
    label[z > -0.5] = PART_NAMES.index("skin") + 1
    for name, (cx, cy) in centres.items():
        label[front & ((x - cx) ** 2 + (y - cy) ** 2 < 0.8 ** 2)] = PART_NAMES.index(name) + 1
    eye = np.nonzero(label == 1)[0]
    virtual = verts[eye].mean(0, keepdims=True)
    mean = np.concatenate([verts, virtual])
    V = len(mean)
    hole = np.array([[eye[0], eye[1], n_mesh], [eye[1], eye[2], n_mesh]], np.int64)
    parts = {name: torch.from_numpy(np.nonzero(label == i + 1)[0]) for i, name in enumerate(PART_NAMES)}
    parts["right_eye"] = torch.cat([parts["right_eye"], torch.tensor([n_mesh])])
    front_idx = np.nonzero(front)[0]
    gen = torch.Generator().manual_seed(0)
    model = MorphableModel(
        name="fake-sphere", mean=torch.from_numpy(mean),
        id_basis=0.1 * torch.randn(2, V, 3, generator=gen), exp_basis=0.1 * torch.randn(1, V, 3, generator=gen),
        exp_names=["jawOpen"], triangles=torch.from_numpy(tris),
        landmarks68=torch.from_numpy(front_idx[np.linspace(0, len(front_idx) - 1, 68).astype(int)]),
        parts=parts, num_mesh_vertices=n_mesh,
        contour_candidates=torch.from_numpy(np.tile(front_idx[:2], (17, 1))),
        id_std=torch.ones(2), exp_std=torch.ones(1), exp_lower=torch.zeros(1), exp_upper=torch.ones(1),
        hole_triangles=torch.from_numpy(hole), units="cm", mm_per_unit=10.0, license="test only",
    )
    model.validate()
    return model


def _project(points_cam: np.ndarray) -> np.ndarray:
    c = (CROP.size[0] - 1) / 2.0
    return (FOCAL * points_cam[:, :2] / points_cam[:, 2:3] + c).astype(np.float32)


def make_fake_fit(model: MorphableModel, snapshots: bool = True) -> FitResult:
    """A FitResult of ``model`` posed frontally DEPTH cm in front of the camera, with a 10-row history."""
    vm = model.mean.numpy()
    flip = np.array([1.0, -1.0, -1.0], np.float32)
    t = np.array([0.0, 0.0, DEPTH], np.float32)
    vc = vm * flip + t
    vi = _project(vc)
    lmk = model.landmarks68.numpy()
    rng = np.random.default_rng(0)
    targets = Targets(
        landmarks=(vi[lmk] + rng.normal(0, 1.5, (68, 2))).astype(np.float32),
        landmark_valid=np.ones(68, bool),
        part_points={p: vi[model.parts[p].numpy()] for p in PART_NAMES},
        part_masks=np.zeros((224, 224), np.uint8), occlusion=np.zeros((224, 224), bool), crop=CROP,
        image=np.full((224, 224, 3), 90, np.uint8), source="fake.png",
        meta={"backend": "test"},
    )
    rows = []
    for i in range(1, 11):
        stage = "rigid" if i <= 3 else "full"
        row = {"iteration": i, "stage": stage, "total": 10.0 / i, "lmk": 4.0 / i,
               "prdl": 0.0 if stage == "rigid" else 5.0 / i, "id_prior": 0.0 if stage == "rigid" else 1.0 / i}
        row.update({f"prdl/{p}": (0.0 if stage == "rigid" else 5.0 / i / 8) for p in PART_NAMES})
        rows.append(row)
    return FitResult(
        model_name=model.name, exp_names=list(model.exp_names),
        id_coeffs=np.zeros(model.num_id, np.float32), exp_coeffs=np.zeros(model.num_exp, np.float32),
        rotation=np.eye(3, dtype=np.float32), translation=t, euler_deg=np.zeros(3, np.float32),
        camera=Camera("perspective", FOCAL, 111.5, 111.5, 224, 224),
        vertices_model=vm, vertices_camera=vc.astype(np.float32), vertices_image=vi,
        visible=vc[:, 2] < DEPTH, landmarks2d=vi[lmk], landmarks3d=vc[lmk].astype(np.float32),
        part_points={p: vi[model.parts[p].numpy()] for p in PART_NAMES},
        history=LossHistory(rows=rows), converged=True, iterations=10, seconds=0.5,
        final_losses={"total": 1.0, "lmk": 0.4, "prdl": 0.5, "id_prior": 0.1}, targets=targets,
        config={"optimizer": "adam", "iters": 7, "anchors": [32, 32]},
        snapshots=[(0, vi + 3.0), (5, vi + 1.0), (10, vi)] if snapshots else [],
    )


def fake_photo() -> np.ndarray:
    """[240, 320, 3] uint8 RGB: a horizontal gradient."""
    W, H = ORIGINAL_SIZE
    g = np.linspace(40, 220, W).astype(np.uint8)
    return np.repeat(np.repeat(g[None, :, None], H, 0), 3, 2)


def parse_obj(path: Path):
    verts, cols, faces = [], [], []
    for line in path.read_text().splitlines():
        if line.startswith("v "):
            vals = [float(v) for v in line.split()[1:]]
            verts.append(vals[:3])
            cols.append(vals[3:])
        elif line.startswith("f "):
            faces.append([int(v) for v in line.split()[1:]])
    return np.array(verts), np.array(cols), np.array(faces)


# ------------------------------------------------------------------ batch corpus
#: backend spec of the batch tests' fake face backend (the batch runner imports test_batch itself)
FAKE_BACKEND = "test_batch:FakeBackend"


def noise_image(path: Path, size=(24, 24), seed=0, mode="RGB") -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).convert(mode).save(path)
    return path


def make_corpus(root: Path, good: int = 6) -> dict:
    """``good`` noise images + bad ones; returns {'good': [names], 'bad': {name: kind}}."""
    root.mkdir(parents=True, exist_ok=True)
    names = [noise_image(root / f"img{i:02d}.png", seed=i).name for i in range(good)]
    (root / "empty.jpg").write_bytes(b"")
    raw = (root / names[0]).read_bytes()
    (root / "truncated.png").write_bytes(raw[: len(raw) // 3])
    (root / "text.jpg").write_text("this is not an image\n")
    Image.new("RGB", (24, 24), (128, 128, 128)).save(root / "blank.png")
    noise_image(root / "has_nan.png", seed=99)
    bad = {"empty.jpg": "read", "truncated.png": "read", "text.jpg": "read", "blank.png": "no_face",
           "has_nan.png": "nan"}
    return {"good": names, "bad": bad}


# ------------------------------------------------------------------ targets of the fake fits
FAKE_SIZE = 224
FAKE_EULER = (8.0, -12.0, 3.0)  # degrees: the pose of projected_targets by default


def projected_targets(model, id_c=(1.5, -1.0), exp_c=0.4, euler=FAKE_EULER, depth=80.0) -> Targets:
    """Targets of the fake fits = the model's projection at the given parameters (crop = image, 224 px)."""
    R = euler_to_matrix(torch.tensor([[float(a) for a in np.radians(euler)]]))
    verts = model.vertices(torch.tensor([id_c], dtype=torch.float32), torch.tensor([[exp_c]], dtype=torch.float32))
    cam = PerspectiveCamera.for_crop((FAKE_SIZE, FAKE_SIZE), 1, torch.device("cpu"))
    pc = model_to_camera(verts, R.float(), torch.tensor([[0.5, -0.3, depth]]))
    img = cam.project(pc, None)[0].numpy()
    front = pc[0, :, 2] < depth  # the half of the sphere facing the camera
    parts = {p: img[model.parts[p].numpy()][front[model.parts[p]].numpy()] for p in PART_NAMES}
    t = Targets(landmarks=img[model.landmarks68.numpy()].astype(np.float32), landmark_valid=np.ones(68, bool),
                part_points={p: v.astype(np.float32) for p, v in parts.items()},
                part_masks=np.zeros((FAKE_SIZE, FAKE_SIZE), np.uint8), occlusion=np.zeros((FAKE_SIZE, FAKE_SIZE), bool),
                crop=CropTransform.identity(FAKE_SIZE, FAKE_SIZE), source="fake")
    t.validate()
    return t


def model_with_expressions(names, seed=1):
    """The sphere model with ``names`` random expression shapes (bounded to [0, 1])."""
    base = make_fake_model()
    K, V = len(names), base.num_points
    gen = torch.Generator().manual_seed(seed)
    basis = 0.2 * torch.randn(K, V, 3, generator=gen)
    basis[:, :: 3] = 0.0  # every third vertex does not move: sparse targets have something to skip
    m = replace(base, exp_basis=basis, exp_names=list(names), exp_std=torch.ones(K),
                exp_lower=torch.zeros(K), exp_upper=torch.ones(K))
    m.validate()
    return m


def fit_with(model, seed=2, euler=(5.0, -20.0, 3.0)):
    """The fake fit of ``model`` with random identity and expression coefficients in [0, 1]."""
    rng = np.random.default_rng(seed)
    idc = rng.normal(0, 1, model.num_id).astype(np.float32)
    exp = rng.uniform(0, 1, model.num_exp).astype(np.float32)
    vm = model.vertices(torch.from_numpy(idc)[None], torch.from_numpy(exp)[None])[0].numpy()
    return replace(make_fake_fit(model), id_coeffs=idc, exp_coeffs=exp, vertices_model=vm,
                   euler_deg=np.array(euler, np.float32))
