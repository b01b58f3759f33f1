"""ICT-FaceKit (FaceXModel, MIT licence): find or download the upstream files and convert them.

Upstream layout (github.com/ICT-VGL/ICT-FaceKit, folder ``FaceXModel``): ``generic_neutral_mesh.obj``,
``identity000.obj`` ... ``identity099.obj`` (identity shapes), one OBJ per expression named in
``vertex_indices.json["expressions"]`` (ARKit blendshape names), all with the same 26,719 vertices,
and ``vertex_indices.json`` (``idx_to_landmark_verts`` = the 68 iBUG landmarks). Local copies may be
gzip-compressed (``*.obj.gz``, same content). Units: cm.

Conversion keeps the face area (vertices 0..9408) and the rest of the head and neck (9409..11247),
drops eyeballs, teeth and mouth socket, triangulates the quads, and stores
identity = identityNNN − neutral (coefficients ~ N(0, 1)) and expression = shape − neutral
(coefficients in [0, 1]). Part annotation, eye-opening fill and contour lines come from
:mod:`morphable_models.annotate`.
"""
from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from morphable_models.assemble import MeshModelArrays, assemble_model
from morphable_models.cache import CacheMeta, save_model
from morphable_models.download import fetch_all
from morphable_models.errors import ModelError
from morphable_models.obj_io import parse_faces, parse_vertices, read_bytes, sha256_of, triangulate

CONVERTER = "ict"
#: bump when the conversion output changes (caches of older versions are rebuilt)
CONVERTER_VERSION = 1
REPO = "ICT-VGL/ICT-FaceKit"
COMMIT = "da5f95a607f5e6b37755b38d3385d7f2853732e5"
BASE_URL = f"https://raw.githubusercontent.com/{REPO}/{COMMIT}"
LICENSE = "MIT (ICT-FaceKit, USC Institute for Creative Technologies)"
NUM_FACE_AREA = 9409   # vertices 0..9408: face, ears, front of the neck
NUM_KEPT = 11248       # plus 9409..11247: scalp, back of the head and neck
NUM_IDENTITIES = 100
SOURCE_ENV = "PRDLFIT_ICT_SOURCE"
URL_ENV = "PRDLFIT_ICT_URL"
HINT = (f"; set {SOURCE_ENV} to a folder with the ICT-FaceKit FaceXModel files or run "
        f"`prdlfit models prepare ict --source DIR`")
CHECKSUMS_FILE = Path(__file__).with_name("data") / "ict_checksums.json"


@dataclass(frozen=True)
class IctSourceFiles:
    """Paths of the upstream files needed for conversion (each ``.obj`` or ``.obj.gz``)."""

    folder: Path
    neutral: Path
    identities: Tuple[Path, ...]
    expressions: Tuple[Path, ...]
    expression_names: Tuple[str, ...]
    vertex_indices: Path

    def all_files(self) -> List[Path]:
        return [self.vertex_indices, self.neutral, *self.identities, *self.expressions]


def pinned_checksums() -> Dict[str, str]:
    """Upstream path (``FaceXModel/NAME``) -> sha256 of the uncompressed file at :data:`COMMIT`."""
    return json.loads(CHECKSUMS_FILE.read_text("utf-8"))["files"]


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        p = folder / name
        if p.is_file():
            return p
    raise ModelError(f"ICT-FaceKit source {folder} lacks {stem}{HINT}")


def locate_source(source: Path) -> IctSourceFiles:
    """Find the FaceXModel files in ``source`` (the folder itself or its ``FaceXModel/``).

    Raises:
        ModelError: folder or a needed file missing.
    """
    source = Path(source).expanduser()
    folder = source / "FaceXModel" if (source / "FaceXModel").is_dir() else source
    if not folder.is_dir():
        raise ModelError(f"ICT-FaceKit source folder not found: {source}{HINT}")
    vi = _find(folder, "vertex_indices.json")
    try:
        names = tuple(json.loads(read_bytes(vi))["expressions"])
    except (ValueError, KeyError) as e:
        raise ModelError(f"{vi} is not an ICT-FaceKit vertex_indices.json ({e})") from None
    return IctSourceFiles(
        folder=folder,
        neutral=_find(folder, "generic_neutral_mesh.obj"),
        identities=tuple(_find(folder, f"identity{i:03d}.obj") for i in range(NUM_IDENTITIES)),
        expressions=tuple(_find(folder, f"{n}.obj") for n in names),
        expression_names=names,
        vertex_indices=vi,
    )


def download_source(dest: Path, progress: bool = True, base_url: Optional[str] = None,
                    timeout: float = 60.0) -> Path:
    """Fetch the pinned upstream files into ``dest/FaceXModel`` (sha256-checked, resumable).

    Args:
        base_url: repository root to fetch from (default: raw.githubusercontent.com at the pinned
            commit; ``$PRDLFIT_ICT_URL`` overrides, e.g. for a mirror).
    Raises:
        ModelError: one line, with what to do instead.
    """
    url = base_url or os.environ.get(URL_ENV) or BASE_URL
    fetch_all(url, pinned_checksums(), Path(dest), timeout=timeout, hint=HINT, progress=progress)
    return Path(dest)


def _read_one(path: Path, with_faces: bool):
    data = read_bytes(path)
    try:
        verts = parse_vertices(data)
        faces = parse_faces(data) if with_faces else None
    except ValueError as e:
        raise ModelError(f"{path}: not a readable OBJ ({e})") from None
    return verts, faces, sha256_of(data)


def read_source(files: IctSourceFiles, progress: bool = True, workers: Optional[int] = None):
    """Parse all OBJs.

    Returns:
        (MeshModelArrays, checksums {upstream relative path: sha256 of uncompressed content}).
    Raises:
        ModelError: unreadable files or vertex counts that differ from the neutral mesh.
    """
    from tqdm import tqdm

    vi_bytes = read_bytes(files.vertex_indices)
    vi = json.loads(vi_bytes)
    landmarks = np.asarray(vi["idx_to_landmark_verts"], dtype=np.int64)
    if landmarks.shape != (68,):
        raise ModelError(f"{files.vertex_indices}: expected 68 landmark vertices, got {landmarks.shape}")
    checksums = {"FaceXModel/vertex_indices.json": sha256_of(vi_bytes)}

    neutral, faces, digest = _read_one(files.neutral, with_faces=True)
    checksums["FaceXModel/generic_neutral_mesh.obj"] = digest
    shapes = list(files.identities) + list(files.expressions)
    out = np.empty((len(shapes), NUM_KEPT, 3), dtype=np.float32)  # deltas, stored as float32
    workers = workers or min(4, os.cpu_count() or 1)
    bar = tqdm(total=len(shapes), desc="ICT-FaceKit: reading OBJs", unit="file", disable=not progress)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for k, (path, (verts, _, digest)) in enumerate(zip(shapes, pool.map(lambda p: _read_one(p, False), shapes))):
            if verts.shape != neutral.shape:
                raise ModelError(f"{path}: {len(verts)} vertices, the neutral mesh has {len(neutral)}")
            out[k] = verts[:NUM_KEPT] - neutral[:NUM_KEPT]
            name = path.name[:-3] if path.name.endswith(".gz") else path.name
            checksums[f"FaceXModel/{name}"] = digest
            bar.update(1)
    bar.close()

    polys = [f for f in faces if f.max() < NUM_KEPT]
    tri = triangulate(polys)
    region = np.zeros(NUM_KEPT, dtype=bool)
    region[:NUM_FACE_AREA] = True
    n_id, n_exp = len(files.identities), len(files.expressions)
    arrays = MeshModelArrays(
        name="ict",
        mean=neutral[:NUM_KEPT],
        id_basis=out[:n_id],
        exp_basis=out[n_id:],
        exp_names=list(files.expression_names),
        triangles=tri,
        landmarks68=landmarks,
        id_std=np.ones(n_id),
        exp_std=np.ones(n_exp),
        exp_lower=np.zeros(n_exp),
        exp_upper=np.ones(n_exp),
        units="cm",
        mm_per_unit=10.0,
        license=LICENSE,
        source=f"ICT-FaceKit FaceXModel, github.com/{REPO} @ {COMMIT[:7]}",
        region=region,
        eye_closing=("eyeBlink_R", "eyeBlink_L"),
    )
    return arrays, checksums


def convert(source: Path, out_path: Path, progress: bool = True) -> CacheMeta:
    """Convert the upstream files in ``source`` into the cache file ``out_path`` (.npz).

    Returns:
        the written metadata (provenance: pinned commit when every input matches its checksum,
        input digest, conversion seconds).
    """
    t0 = time.perf_counter()
    files = locate_source(source)
    arrays, checksums = read_source(files, progress=progress)
    if progress:
        print("ICT-FaceKit: annotating parts, filling eye openings ...", flush=True)
    model, ann = assemble_model(arrays)
    pinned = pinned_checksums() if CHECKSUMS_FILE.is_file() else {}
    matches = bool(pinned) and all(pinned.get(k) == v for k, v in checksums.items())
    combined = sha256_of("\n".join(f"{k} {v}" for k, v in sorted(checksums.items())).encode())
    provenance = {
        "repo": REPO,
        "commit": COMMIT if matches else "unknown (inputs differ from the pinned commit)",
        "inputs_sha256": combined,
        "num_inputs": len(checksums),
        "source_folder": str(files.folder),
        "convert_seconds": round(time.perf_counter() - t0, 2),
    }
    return save_model(model, out_path, CONVERTER, CONVERTER_VERSION, provenance,
                      ann.weight_index, ann.weight)
