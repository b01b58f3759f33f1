"""Model names -> converters and cache files; ``load``, ``prepare``, ``list_models``, ``model_info``.

Names: ``ict`` (default; the compact copy embedded in the package, :mod:`morphable_models.embedded`,
unless a current cache exists or ``$PRDLFIT_ICT_SOURCE`` names the upstream files to convert;
``prepare('ict', force=True)`` downloads the pinned ICT-FaceKit commit and converts it),
``sfm`` (from ``$PRDLFIT_SFM_SOURCE`` or ``prepare('sfm', source=DIR)``),
``bfm`` (a 3DDFA-V3 ``face_model.npy``: ``$PRDLFIT_BFM_SOURCE``, ``prepare('bfm', source=FILE)`` or
``load('/path/face_model.npy')``). Any path to a ``.npz`` written by :mod:`morphable_models.cache`
loads directly. Converted models live in ``$PRDLFIT_CACHE/models`` (default ``~/.cache/prdlfit``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Union

from morphable_models import bfm, ict, sfm
from morphable_models.cache import FORMAT_VERSION, CacheMeta, load_model, read_meta
from morphable_models.embedded import embedded_path
from morphable_models.errors import ModelError
from morphable_models.frontend_parts import frontend_parts
from morphable_models.landmark_embedding import embed_landmarks, packaged_embedding
from morphable_models.mesh_landmarks import embed_mesh_landmarks, packaged_mesh_landmarks
from morphable_models.model import MorphableModel

PathLike = Union[str, Path]
CACHE_ENV = "PRDLFIT_CACHE"
DEFAULT_MODEL = "ict"
#: how ``load`` defines the iBUG-68 landmarks (see :func:`load`)
LANDMARK_CHOICES = ("calibrated", "vertices")
#: ``load(..., parts=)``: the front end's polygons drawn on the model, or the model's own annotation
PART_CHOICES = ("frontend", "rules")


@dataclass(frozen=True)
class ModelSpec:
    """A registered model kind: how to convert it and where its sources come from."""

    name: str
    license: str
    description: str
    source_env: str
    converter_version: int
    convert: Callable[[Path, Path, bool], CacheMeta]
    #: can be rebuilt without the user (download available)
    downloadable: bool = False


SPECS: Dict[str, ModelSpec] = {
    "ict": ModelSpec("ict", ict.LICENSE, "ICT-FaceKit FaceXModel (face + head, 100 id, 53 ARKit expressions)",
                     ict.SOURCE_ENV, ict.CONVERTER_VERSION, ict.convert, downloadable=True),
    "sfm": ModelSpec("sfm", sfm.LICENSE, "Surrey Face Model 3448 (63 PCA shape modes, 6 expression blendshapes)",
                     sfm.SOURCE_ENV, sfm.CONVERTER_VERSION, sfm.convert),
    "bfm": ModelSpec("bfm", bfm.LICENSE, "BFM as packaged by 3DDFA-V3 (face_model.npy: 80 id, 64 exp, albedo)",
                     bfm.SOURCE_ENV, bfm.CONVERTER_VERSION, bfm.convert),
}


@dataclass
class ModelInfo:
    """What ``prdlfit models list|info`` shows about a model."""

    name: str
    installed: bool
    path: Optional[Path]
    license: str
    description: str = ""
    units: Optional[str] = None
    num_points: Optional[int] = None
    num_mesh_vertices: Optional[int] = None
    num_triangles: Optional[int] = None
    num_id: Optional[int] = None
    num_exp: Optional[int] = None
    #: points per part as prepared (models with a MediaPipe table get brows, nose and lips drawn anew
    #: at load time, and the eyes inside the calibrated eye landmarks: :mod:`morphable_models.frontend_parts`)
    part_sizes: Dict[str, int] = field(default_factory=dict)
    #: why it is not usable as is (stale cache, missing source), or empty
    note: str = ""


def models_dir(cache_dir: Optional[PathLike] = None) -> Path:
    """Folder of converted models: ``cache_dir`` or ``$PRDLFIT_CACHE`` or ``~/.cache/prdlfit``, + ``models``."""
    root = cache_dir or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "prdlfit"
    return Path(root).expanduser() / "models"


def cache_path(name: str, cache_dir: Optional[PathLike] = None) -> Path:
    return models_dir(cache_dir) / f"{name}.npz"


def _spec(name: str) -> ModelSpec:
    try:
        return SPECS[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(SPECS)} (or a path to a .npz/.npy file)") from None


def _is_current(meta: CacheMeta, spec: ModelSpec) -> bool:
    return meta.format_version == FORMAT_VERSION and meta.converter == spec.name and \
        meta.converter_version == spec.converter_version


def _stale_reason(path: Path, spec: ModelSpec) -> str:
    """'' when ``path`` holds a current conversion of ``spec``, else why not."""
    if not path.is_file():
        return "not prepared"
    try:
        meta = read_meta(path)
    except ModelError:
        return "unreadable cache"
    return "" if _is_current(meta, spec) else (
        f"cache from converter v{meta.converter_version} (format {meta.format_version}), "
        f"current v{spec.converter_version} (format {FORMAT_VERSION})")


def _default_source(spec: ModelSpec) -> Optional[Path]:
    env = os.environ.get(spec.source_env)
    return Path(env) if env else None


def embedded_model(name: str) -> Optional[Path]:
    """The package's embedded file for ``name`` when it is current for this converter, else None."""
    path = embedded_path(name)
    return path if path is not None and name in SPECS and not _stale_reason(path, SPECS[name]) else None


def prepare(name: str, source: Optional[PathLike] = None, force: bool = False, progress: bool = True,
            cache_dir: Optional[PathLike] = None) -> Path:
    """Convert model ``name`` into the cache (once) and return the model file to load.

    Without ``source``, ``$PRDLFIT_<NAME>_SOURCE`` or ``force``, a model embedded in the package
    (``ict``) is returned as is when no current cache exists.

    Args:
        source: folder/file with the original model files; default ``$PRDLFIT_<NAME>_SOURCE``,
            and for ``ict`` a download of the pinned upstream commit.
        force: convert even when a current cache (or the embedded model) exists.
    Raises:
        ModelError: unknown name, no source, unreadable source (one line with what to do).
    """
    spec = _spec(name)
    out = cache_path(name, cache_dir)
    if not force and not _stale_reason(out, spec) and source is None:
        return out
    src = Path(source).expanduser() if source is not None else _default_source(spec)
    if src is None:
        embedded = None if force else embedded_model(name)
        if embedded is not None:
            return embedded
        if not spec.downloadable:
            raise ModelError(f"model {name!r} is not prepared; set {spec.source_env} or run "
                             f"`prdlfit models prepare {name} --source PATH`")
        src = models_dir(cache_dir).parent / "downloads" / f"ict-facekit-{ict.COMMIT[:12]}"
        if progress:
            print(f"ICT-FaceKit: downloading the pinned model files into {src}", flush=True)
        ict.download_source(src, progress=progress)
    out.parent.mkdir(parents=True, exist_ok=True)
    spec.convert(src, out, progress)
    return out


def _path_kind(path: Path) -> Optional[str]:
    if path.suffix == ".npy":
        return "bfm"
    if path.is_dir():
        if (path / "FaceXModel").is_dir() or any(path.glob("generic_neutral_mesh.obj*")):
            return "ict"
        if any(path.glob("sfm_shape_*.bin")):
            return "sfm"
        if (path / "face_model.npy").is_file():
            return "bfm"
    return None


def _load_from_source(kind: str, src: Path, cache_dir, device) -> MorphableModel:
    """Load a model given by its original files, reusing the cache when it came from the same files."""
    spec = _spec(kind)
    out = cache_path(kind, cache_dir)
    if not _stale_reason(out, spec):
        prov = read_meta(out).provenance
        if kind == "bfm":
            npy = src / "face_model.npy" if src.is_dir() else src
            if npy.is_file() and all(prov.get(k) == v for k, v in bfm.source_stamp(npy).items()):
                return load_model(out, device)
        elif Path(str(prov.get("source_folder", ""))).resolve() in (src.resolve(), (src / "FaceXModel").resolve()):
            return load_model(out, device)
    return load_model(prepare(kind, source=src, force=True, progress=False, cache_dir=cache_dir), device)


def load(name_or_path: PathLike = DEFAULT_MODEL, cache_dir: Optional[PathLike] = None,
         device=None, landmarks: str = "calibrated", parts: str = "frontend") -> MorphableModel:
    """A :class:`MorphableModel` by name (``ict``, ``sfm``, ``bfm``) or path.

    A path may be one of our ``.npz`` caches, a 3DDFA-V3 ``face_model.npy``, or a folder with the
    ICT-FaceKit or SFM files (converted once into the cache). Named models are converted on first
    use (and again when the converter changed).

    ``landmarks``: ``calibrated`` (default) places the iBUG-68 points where the package's table
    for this model puts them (:mod:`morphable_models.landmark_embedding`; models without a table
    keep their vertices); ``vertices`` keeps the model's own landmark vertices (the paper's way).
    Either way the package's table of MediaPipe's mesh points for this model, when it has one, is
    embedded (:mod:`morphable_models.mesh_landmarks`; read by the ``mesh_lmk`` term only).

    ``parts``: ``frontend`` (default) draws the brows, nose and lips with the front end's polygons
    through that table (:mod:`morphable_models.frontend_parts`; models without a table keep their
    annotation) and, with calibrated landmarks, the eyes inside the model's own eye landmarks
    (:mod:`morphable_models.eye_outline`); ``rules`` keeps the model's own annotation
    (:mod:`morphable_models.parts`).

    Raises:
        ModelError: one line: unknown name, missing source, corrupt or foreign file.
    """
    if landmarks not in LANDMARK_CHOICES:
        raise ModelError(f"landmarks must be one of {', '.join(LANDMARK_CHOICES)}, got {landmarks!r}")
    if parts not in PART_CHOICES:
        raise ModelError(f"parts must be one of {', '.join(PART_CHOICES)}, got {parts!r}")
    model = _load(name_or_path, cache_dir, device)
    table = packaged_embedding(model.name) if landmarks == "calibrated" else None
    model = embed_landmarks(model, table) if table is not None else model
    mesh_table = packaged_mesh_landmarks(model.name)
    model = embed_mesh_landmarks(model, mesh_table) if mesh_table is not None else model
    return frontend_parts(model) if parts == "frontend" else model


def _load(name_or_path: PathLike, cache_dir: Optional[PathLike], device) -> MorphableModel:
    key = str(name_or_path)
    if key in SPECS:
        spec = SPECS[key]
        out = cache_path(key, cache_dir)
        reason = _stale_reason(out, spec)
        if reason == "unreadable cache":
            raise ModelError(f"the cached model {out} is corrupt; rebuild it with `prdlfit models prepare {key} --force`")
        if reason:
            out = prepare(key, progress=True, cache_dir=cache_dir)
        return load_model(out, device)
    path = Path(key).expanduser()
    if not path.exists():
        raise ModelError(f"unknown model {key!r}: not a name ({', '.join(SPECS)}) and no such file")
    if path.suffix == ".npz":
        return load_model(path, device)
    kind = _path_kind(path)
    if kind is None:
        raise ModelError(f"{path}: not a model file (expected a prdlfit .npz, a face_model.npy, or an "
                         f"ICT-FaceKit/SFM folder)")
    return _load_from_source(kind, path, cache_dir, device)


def model_info(name: str, cache_dir: Optional[PathLike] = None) -> ModelInfo:
    """Install state, licence, sizes and part sizes of a registered model (reads only metadata)."""
    spec = _spec(name)
    out = cache_path(name, cache_dir)
    info = ModelInfo(name=name, installed=False, path=out if out.is_file() else None, license=spec.license,
                     description=spec.description)
    reason = _stale_reason(out, spec)
    embedded = (embedded_model(name) if reason and reason != "unreadable cache" and _default_source(spec) is None
                else None)
    if embedded is not None:  # what load() uses
        out, reason, info.path = embedded, "", embedded
        info.note = (f"embedded in the package (float16 bases); `prdlfit models prepare {name} --force` "
                     "downloads and converts the upstream files in full precision")
    if reason == "not prepared":
        src = _default_source(spec)
        info.note = (f"not prepared; source: {src}" if src else
                     "not prepared; downloads on first use" if spec.downloadable else
                     f"not prepared; set {spec.source_env} or run `prdlfit models prepare {name} --source PATH`")
        return info
    if reason == "unreadable cache":
        info.note = f"corrupt cache; run `prdlfit models prepare {name} --force`"
        return info
    meta = read_meta(out)
    info.installed = not reason
    info.note = reason and f"{reason}; rebuilt on next use" or info.note
    info.units, info.num_points, info.num_mesh_vertices = meta.units, meta.num_points, meta.num_mesh_vertices
    info.num_triangles, info.num_id, info.num_exp = meta.num_triangles, meta.num_id, meta.num_exp
    info.part_sizes = dict(meta.part_sizes)
    return info


def list_models(cache_dir: Optional[PathLike] = None) -> List[ModelInfo]:
    """:func:`model_info` of every registered model."""
    return [model_info(name, cache_dir) for name in SPECS]
