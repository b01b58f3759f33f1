"""Surrey Face Model (SFM, eos binary format; free for non-commercial use only).

Read with eos-py (``eos.morphablemodel.load_model`` / ``load_blendshapes``): the rescaled PCA shape
basis (coefficients ~ N(0, 1)), the mean, triangles and the six expression blendshapes. The iBUG
mapping ``ibug_to_sfm.txt`` lacks the jaw contour (landmarks 1-8, 10-17) and the inner mouth corners
(61, 65): jaw landmarks are placed evenly along ``sfm_model_contours.json`` from eye height down
to the chin, and the inner mouth corners reuse the outer ones. Units: mm.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

import numpy as np

from morphable_models.assemble import MeshModelArrays, assemble_model
from morphable_models.cache import CacheMeta, save_model
from morphable_models.download import sha256_file
from morphable_models.errors import ModelError

CONVERTER = "sfm"
CONVERTER_VERSION = 1
LICENSE = "non-commercial use only (Surrey Face Model, University of Surrey)"
SOURCE_ENV = "PRDLFIT_SFM_SOURCE"
HINT = f"; set {SOURCE_ENV} to the folder with sfm_shape_3448.bin or run `prdlfit models prepare sfm --source DIR`"
RIGHT_JAW = list(range(0, 8))    # iBUG 0-based, person's right, top (ear level) to chin
LEFT_JAW = list(range(16, 8, -1))  # person's left, top to chin
CHIN = 8
#: iBUG-68 landmarks (0-based) that ibug_to_sfm.txt maps to SFM vertices: the chin (8), brows, nose,
#: eyes and lips without the inner mouth corners (60, 64). The converted model's other landmarks
#: (jaw contour, inner corners) are placed by rule, not by correspondence.
MAPPED_LANDMARKS = tuple([CHIN] + list(range(17, 60)) + [61, 62, 63, 65, 66, 67])


@dataclass(frozen=True)
class SfmSourceFiles:
    shape: Path
    blendshapes: Path
    ibug_mapping: Path
    contours: Path


def locate_source(source: Path) -> SfmSourceFiles:
    source = Path(source).expanduser()
    if not source.is_dir():
        raise ModelError(f"SFM source folder not found: {source}{HINT}")
    shape = sorted(source.glob("sfm_shape_*.bin"))
    if not shape:
        raise ModelError(f"no sfm_shape_*.bin in {source}{HINT}")
    res = shape[-1].stem.split("_")[-1]
    files = SfmSourceFiles(
        shape=shape[-1],
        blendshapes=source / f"expression_blendshapes_{res}.bin",
        ibug_mapping=source / "ibug_to_sfm.txt",
        contours=source / "sfm_model_contours.json",
    )
    for p in (files.blendshapes, files.ibug_mapping, files.contours):
        if not p.is_file():
            raise ModelError(f"SFM source {source} lacks {p.name}{HINT}")
    return files


def parse_ibug_mapping(text: str) -> Dict[int, int]:
    """``[landmark_mappings]`` of ibug_to_sfm.txt: iBUG 1-based index -> vertex index."""
    out: Dict[int, int] = {}
    section = None
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("["):
            section = line.strip("[]").strip()
            continue
        m = re.fullmatch(r"(\d+)\s*=\s*(\d+)", line)
        if m and section == "landmark_mappings":
            out[int(m.group(1))] = int(m.group(2))
    return out


def jaw_from_contour(mean: np.ndarray, contour: List[int], chin: int, top_y: float, count: int = 8) -> List[int]:
    """``count`` vertices spread evenly along a contour from height ``top_y`` down to the chin (the
    chin itself excluded), ordered top to bottom. Spacing is by arc length in the frontal (x, y)
    projection, as iBUG jaw points are spaced evenly in a frontal photo."""
    c = list(contour)
    if mean[c[0], 1] < mean[c[-1], 1]:
        c = c[::-1]  # run top -> bottom
    start = next((i for i in range(len(c) - 1) if mean[c[i + 1], 1] <= top_y), 0)
    start = max(start, 0)
    path = c[start:] + [chin]
    pts = mean[path, :2]
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    targets = np.linspace(0.0, s[-1], count + 1)[:-1]
    picked: List[int] = []
    for t in targets:
        order = np.argsort(np.abs(s[:-1] - t), kind="stable")
        picked.append(next(path[i] for i in order if path[i] not in picked))
    return picked


def read_source(files: SfmSourceFiles) -> MeshModelArrays:
    try:
        import eos
    except ImportError:
        raise ModelError("reading the Surrey Face Model needs eos-py (pip install eos-py)") from None
    try:
        model = eos.morphablemodel.load_model(str(files.shape))
        blendshapes = eos.morphablemodel.load_blendshapes(str(files.blendshapes))
    except RuntimeError as e:
        raise ModelError(f"eos could not read the SFM files in {files.shape.parent}: {e}") from None
    shape = model.get_shape_model()
    mean = np.asarray(shape.get_mean(), dtype=np.float64).reshape(-1, 3)
    V = len(mean)
    basis = np.asarray(shape.get_rescaled_pca_basis(), dtype=np.float64)  # [3V, K]
    id_basis = basis.T.reshape(-1, V, 3)
    exp_basis = np.stack([np.asarray(b.deformation, dtype=np.float64).reshape(V, 3) for b in blendshapes])
    exp_names = [b.name for b in blendshapes]
    tri = np.asarray(shape.get_triangle_list(), dtype=np.int64)

    mapping = parse_ibug_mapping(files.ibug_mapping.read_text("utf-8"))
    contours = json.loads(files.contours.read_text("utf-8"))["model_contour"]
    lm = np.full(68, -1, dtype=np.int64)
    for one_based, vertex in mapping.items():
        lm[one_based - 1] = vertex
    lm[60], lm[64] = lm[48], lm[54]  # inner mouth corners are not defined for the SFM
    eye_y = mean[lm[[36, 45]], 1].mean()
    lm[RIGHT_JAW] = jaw_from_contour(mean, contours["right_contour"], int(lm[CHIN]), eye_y)
    lm[LEFT_JAW] = jaw_from_contour(mean, contours["left_contour"], int(lm[CHIN]), eye_y)
    if (lm < 0).any():
        raise ModelError(f"{files.ibug_mapping}: landmarks {np.flatnonzero(lm < 0).tolist()} are not mapped")
    K = len(exp_names)
    return MeshModelArrays(
        name="sfm", mean=mean, id_basis=id_basis, exp_basis=exp_basis, exp_names=exp_names, triangles=tri,
        landmarks68=lm, id_std=np.ones(id_basis.shape[0]), exp_std=np.ones(K), exp_lower=np.zeros(K),
        exp_upper=np.ones(K), units="mm", mm_per_unit=1.0, license=LICENSE,
        source=f"Surrey Face Model {files.shape.name} (github.com/patrikhuber/eos share/)",
    )


def convert(source: Path, out_path: Path, progress: bool = True) -> CacheMeta:
    """Convert the SFM files in ``source`` into the cache file ``out_path``."""
    t0 = time.perf_counter()
    files = locate_source(source)
    arrays = read_source(files)
    model, ann = assemble_model(arrays)
    provenance = {
        "source_folder": str(files.shape.parent),
        "inputs_sha256": {p.name: sha256_file(p) for p in (files.shape, files.blendshapes, files.ibug_mapping, files.contours)},
        "convert_seconds": round(time.perf_counter() - t0, 2),
    }
    return save_model(model, out_path, CONVERTER, CONVERTER_VERSION, provenance, ann.weight_index, ann.weight)
