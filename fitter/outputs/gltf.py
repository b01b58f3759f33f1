"""A triangle mesh with vertex colours and morph targets -> glTF 2.0 binary (``.glb``), by hand.

Layout of the file this module writes (glTF 2.0, section "GLB File Format Specification"):

* 12-byte header: ``magic "glTF"``, ``version 2``, total length (uint32 little-endian each);
* a JSON chunk (length, type ``"JSON"``, UTF-8 text padded with spaces to a multiple of 4);
* a BIN chunk (length, type ``"BIN\\0"``, one buffer padded with zeros to a multiple of 4).

The JSON holds one scene with one node and one mesh of one triangle primitive (``mode`` 4):

=====================  ==========================================================================
accessor               content
=====================  ==========================================================================
indices                [3F] uint32 vertex indices, buffer view target ELEMENT_ARRAY_BUFFER
POSITION               [N] float32 VEC3, metres (or whatever unit the caller passes), with min/max
COLOR_0                [N] float32 VEC3 linear RGB in [0, 1] (glTF colours are linear; the sRGB
                       uint8 input is converted), only when colours are given
targets[k].POSITION    [N] float32 VEC3 displacement of morph target k, with min/max; stored as a
                       **sparse** accessor (no buffer view: zeros, plus ``sparse.count`` uint16 or
                       uint32 strictly increasing vertex indices and their float32 VEC3 values)
                       when that is smaller than the dense array; a target that moves no vertex
                       has neither (all zeros)
=====================  ==========================================================================

``mesh.weights`` holds the default morph weights, ``mesh.extras.targetNames`` (and the
primitive's ``extras.targetNames``) the target names, which Blender's importer turns into shape
key names and three.js into ``morphTargetDictionary``. Every buffer view starts at a multiple of 4
bytes (zeros pad the gaps), so every accessor's elements are 4-byte aligned. One material,
``pbrMetallicRoughness`` white, non-metallic, shows the vertex colours. No normals are stored:
viewers compute them.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from fitter.outputs.atomic import PathLike, write_bytes_atomic

GLB_MAGIC = 0x46546C67  # "glTF"
CHUNK_JSON = 0x4E4F534A  # "JSON"
CHUNK_BIN = 0x004E4942  # "BIN\0"

FLOAT, UINT16, UINT32 = 5126, 5123, 5125
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963
TRIANGLES = 4


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    """[..., 3] uint8 sRGB -> [..., 3] float32 linear RGB in [0, 1] (the sRGB transfer function)."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return lin.astype(np.float32)


def _pad(data: bytes, fill: bytes = b"\0") -> bytes:
    return data + fill * (-len(data) % 4)


class _Buffer:
    """The BIN chunk under construction: appends 4-byte-aligned buffer views."""

    def __init__(self) -> None:
        self.parts: List[bytes] = []
        self.length = 0
        self.views: List[dict] = []

    def add(self, data: bytes, target: Optional[int] = None) -> int:
        """Append ``data`` as a new buffer view (aligned to 4 bytes); returns its index."""
        view = {"buffer": 0, "byteOffset": self.length, "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        padded = _pad(data)
        self.parts.append(padded)
        self.length += len(padded)
        self.views.append(view)
        return len(self.views) - 1

    def bytes(self) -> bytes:
        return b"".join(self.parts)


def _vec3_accessor(buf: _Buffer, values: np.ndarray, min_max: bool = True) -> dict:
    acc = {"bufferView": buf.add(values.astype("<f4").tobytes(), ARRAY_BUFFER), "componentType": FLOAT,
           "count": int(len(values)), "type": "VEC3"}
    if min_max:
        acc["min"] = [float(v) for v in values.min(0)]
        acc["max"] = [float(v) for v in values.max(0)]
    return acc


def _target_accessor(buf: _Buffer, delta: np.ndarray, min_offset: float) -> dict:
    """Accessor of one morph target's [N, 3] displacement: sparse, dense or all zeros."""
    n = len(delta)
    moved = np.nonzero(np.linalg.norm(delta.astype(np.float64), axis=1) > min_offset)[0]
    values = delta[moved]
    # the bounds of the stored target (zeros where not moved), from the moved rows alone
    lo = values.min(0) if len(moved) else np.zeros(3, delta.dtype)
    hi = values.max(0) if len(moved) else np.zeros(3, delta.dtype)
    if len(moved) < n:
        lo, hi = np.minimum(lo, 0), np.maximum(hi, 0)
    acc = {"componentType": FLOAT, "count": int(n), "type": "VEC3",
           "min": [float(v) for v in lo], "max": [float(v) for v in hi]}
    if len(moved) == 0:
        return acc  # no bufferView and no sparse: all zeros
    index_type, index_dtype = (UINT16, "<u2") if n <= 0xFFFF else (UINT32, "<u4")
    sparse_bytes = len(moved) * (np.dtype(index_dtype).itemsize + 12)
    if sparse_bytes >= n * 12:
        kept = np.zeros_like(delta)
        kept[moved] = values
        acc["bufferView"] = buf.add(kept.astype("<f4").tobytes())
        return acc
    acc["sparse"] = {
        "count": int(len(moved)),
        "indices": {"bufferView": buf.add(moved.astype(index_dtype).tobytes()), "componentType": index_type},
        "values": {"bufferView": buf.add(values.astype("<f4").tobytes())},
    }
    return acc


def glb_bytes(positions: np.ndarray, triangles: np.ndarray, colors: Optional[np.ndarray] = None,
              targets: Optional[np.ndarray] = None, target_names: Sequence[str] = (),
              weights: Optional[np.ndarray] = None, name: str = "mesh", min_offset: float = 0.0,
              extras: Optional[dict] = None) -> bytes:
    """The ``.glb`` file content of one mesh (layout in the module docstring).

    Args:
        positions: [N, 3] float vertex positions (y up, in the unit the file should have: metres).
        triangles: [F, 3] int 0-based vertex indices, counter-clockwise seen from outside.
        colors: [N, 3] uint8 sRGB per vertex, or None.
        targets: [K, N, 3] float morph target displacements (same unit as ``positions``), or None.
        target_names: K names (``mesh.extras.targetNames``).
        weights: [K] default morph weights (``mesh.weights``); None = zeros.
        name: the mesh's and the node's name.
        min_offset: displacements of at most this length are stored as zero (sparse targets).
        extras: JSON-ready data stored as the asset's ``extras``.
    """
    positions = np.asarray(positions, dtype=np.float32)
    triangles = np.asarray(triangles, dtype=np.int64)
    n = len(positions)
    if positions.ndim != 2 or positions.shape[1] != 3 or n == 0:
        raise ValueError(f"positions must be [N>0, 3], got {positions.shape}")
    if triangles.ndim != 2 or triangles.shape[1] != 3 or (triangles.size and
                                                         (triangles.min() < 0 or triangles.max() >= n)):
        raise ValueError(f"triangles must be [F, 3] indices into {n} vertices")
    targets = np.zeros((0, n, 3), np.float32) if targets is None else np.asarray(targets, dtype=np.float32)
    K = len(targets)
    if targets.shape[1:] != (n, 3):
        raise ValueError(f"targets must be [K, {n}, 3], got {targets.shape}")
    names = list(target_names)
    if K and len(names) != K:
        raise ValueError(f"{len(names)} target names for {K} targets")
    w = np.zeros(K, np.float64) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(w) != K or not np.all(np.isfinite(w)):
        raise ValueError(f"weights must be {K} finite numbers")

    buf = _Buffer()
    accessors = [{"bufferView": buf.add(triangles.astype("<u4").tobytes(), ELEMENT_ARRAY_BUFFER),
                  "componentType": UINT32, "count": int(triangles.size), "type": "SCALAR"},
                 _vec3_accessor(buf, positions)]
    attributes = {"POSITION": 1}
    if colors is not None:
        colors = np.asarray(colors)
        if colors.shape != (n, 3):
            raise ValueError(f"colors must be [{n}, 3], got {colors.shape}")
        accessors.append(_vec3_accessor(buf, srgb_to_linear(colors), min_max=False))
        attributes["COLOR_0"] = len(accessors) - 1
    primitive = {"attributes": attributes, "indices": 0, "mode": TRIANGLES, "material": 0}
    mesh = {"name": name, "primitives": [primitive]}
    if K:
        primitive["targets"] = []
        for delta in targets:
            accessors.append(_target_accessor(buf, delta, min_offset))
            primitive["targets"].append({"POSITION": len(accessors) - 1})
        mesh["weights"] = [float(x) for x in w]
        mesh["extras"] = {"targetNames": names}
        primitive["extras"] = {"targetNames": names}
    binary = buf.bytes()
    doc = {
        "asset": {"version": "2.0", "generator": "prdlfit"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": name}],
        "meshes": [mesh],
        "materials": [{"name": "vertex colours", "pbrMetallicRoughness": {
            "baseColorFactor": [1.0, 1.0, 1.0, 1.0], "metallicFactor": 0.0, "roughnessFactor": 0.8}}],
        "accessors": accessors,
        "bufferViews": buf.views,
        "buffers": [{"byteLength": len(binary)}],
    }
    if extras:
        doc["asset"]["extras"] = extras
    js = _pad(json.dumps(doc, separators=(",", ":"), allow_nan=False).encode("utf-8"), b" ")
    total = 12 + 8 + len(js) + 8 + len(binary)
    return b"".join([struct.pack("<III", GLB_MAGIC, 2, total),
                     struct.pack("<II", len(js), CHUNK_JSON), js,
                     struct.pack("<II", len(binary), CHUNK_BIN), binary])


def write_glb(path: PathLike, positions: np.ndarray, triangles: np.ndarray, **kwargs) -> Path:
    """Write a ``.glb`` atomically (arguments of :func:`glb_bytes`); returns the path."""
    write_bytes_atomic(path, glb_bytes(positions, triangles, **kwargs))
    return Path(path)
