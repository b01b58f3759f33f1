"""Fast reading of Wavefront OBJ files (plain or gzip-compressed): vertices and polygon faces.

Only what model conversion needs: ``v`` lines as a float array and ``f`` lines as polygons of
0-based vertex indices (texture/normal indices dropped). Lines are filtered as bytes and parsed by
numpy in one call, which keeps a 27k-vertex file well under 0.1 s.
"""
from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np

PathLike = Union[str, Path]


def read_bytes(path: PathLike) -> bytes:
    """The file's content, decompressed when the name ends in ``.gz``."""
    path = Path(path)
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return data


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _vertex_block(data: bytes):
    """(block, count): the ``v`` lines when they form one contiguous run (the usual layout), else None."""
    start = 0 if data.startswith(b"v ") else data.find(b"\nv ") + 1
    if start == 0 and not data.startswith(b"v "):
        return None
    m = re.compile(rb"\n(?!v )").search(data, start)
    end = m.start() if m else len(data)
    block = data[start:end]
    count = block.count(b"\n") + 1
    total = data.count(b"\nv ") + (1 if data.startswith(b"v ") else 0)
    return (block, count) if total == count else None


def parse_vertices(data: bytes, max_vertices: Optional[int] = None) -> np.ndarray:
    """Vertex positions of an OBJ text.

    Args:
        data: OBJ file content.
        max_vertices: keep only the first this many ``v`` lines (None = all).
    Returns:
        [N, 3] float64 positions (extra components such as vertex colours are dropped).
    Raises:
        ValueError: no vertices, or lines with fewer than three coordinates.
    """
    found = _vertex_block(data)
    if found is not None:
        block, count = found
        first = block[2:block.find(b"\n")] if count > 1 else block[2:]
        ncols = len(first.split())
        flat = np.fromstring(block.replace(b"v ", b" "), dtype=np.float64, sep=" ")
        if ncols >= 3 and flat.size == ncols * count:
            out = flat.reshape(count, ncols)[:, :3]
            return out[:max_vertices] if max_vertices is not None else out
    # general layout: scattered or ragged 'v' lines
    lines = [ln[2:].split() for ln in data.split(b"\n") if ln[:2] == b"v "]
    if max_vertices is not None:
        lines = lines[:max_vertices]
    if not lines:
        raise ValueError("no 'v' lines")
    if min(len(ln) for ln in lines) < 3:
        raise ValueError("a 'v' line has fewer than 3 coordinates")
    return np.array([ln[:3] for ln in lines], dtype=np.float64)


def parse_faces(data: bytes) -> List[np.ndarray]:
    """Polygon faces of an OBJ text as 0-based vertex indices.

    Returns:
        list of int64 arrays [n_i] (n_i >= 3), in file order. Negative (relative) indices are not
        supported.
    """
    faces = []
    for ln in data.split(b"\n"):
        if ln[:2] != b"f ":
            continue
        idx = [int(tok.split(b"/", 1)[0]) - 1 for tok in ln[2:].split()]
        faces.append(np.asarray(idx, dtype=np.int64))
    return faces


def triangulate(polygons: List[np.ndarray]) -> np.ndarray:
    """Fan-triangulate polygons (quads into two triangles along the 0-2 diagonal).

    Returns:
        [F, 3] int64 triangles with the winding of the input polygons.
    """
    tris: List[Tuple[int, int, int]] = []
    for poly in polygons:
        for k in range(1, len(poly) - 1):
            tris.append((poly[0], poly[k], poly[k + 1]))
    return np.asarray(tris, dtype=np.int64).reshape(-1, 3)
