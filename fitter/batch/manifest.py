"""The job's manifest: append-only JSON lines, one row per finished image attempt.

Writing: each row is one ``os.write`` of a whole line on an ``O_APPEND`` descriptor, then fsync; a
write that fails midway (disk full) is cut back off, and a torn last line left by a killed process
is cut off when the manifest is next opened for writing. So the file is always valid JSON lines
(plus, at worst, one torn line at the end that readers skip).

Reading: unparseable lines are skipped; the latest row of an image wins.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

from morphable_models.model import PART_NAMES

STATUS_OK = "ok"
STATUS_FAILED = "failed"

#: Failure kinds that are not the image's fault: such images are retried by the next run
#: without ``--retry-failed``.
TRANSIENT_KINDS = frozenset({"enospc"})


@dataclass
class ManifestRow:
    """One image's outcome.

    Attributes:
        image: manifest key = the input's relative path (the file name for a flat folder).
        status: ``ok`` or ``failed``.
        output: output folder name under OUT ('' for a failure before writing).
        path: absolute input path.
        reason: one-line failure reason ('' when ok), ``<kind>: <message>``.
        error_kind: read | no_face | targets | nan | fit | write | enospc | worker_crash | internal.
        quality: ``good`` / ``suspect`` for ok rows ('' for failures).
        quality_reasons: why a fit is suspect.
        part_iou: mean Part IoU of the fit's re-projected parts vs its own target masks.
        part_iou_parts: part -> IoU (parts present in the targets).
        nme: landmark error / outer-eye-corner distance (fraction).
        converged, iterations: from the fit.
        final_losses: term -> final weighted value (``total`` included).
        num_faces: faces found in the photo (the largest is fitted).
        batch_size: images optimized together with this one.
        read_s / fit_s / write_s / total_s: seconds (fit_s is the shared batched optimization).
        run_id, worker, finished_at: provenance (UTC ISO time).
    """

    image: str
    status: str
    output: str = ""
    path: str = ""
    reason: str = ""
    error_kind: str = ""
    quality: str = ""
    quality_reasons: List[str] = field(default_factory=list)
    part_iou: Optional[float] = None
    part_iou_parts: Dict[str, float] = field(default_factory=dict)
    nme: Optional[float] = None
    converged: Optional[bool] = None
    iterations: Optional[int] = None
    final_losses: Dict[str, float] = field(default_factory=dict)
    num_faces: Optional[int] = None
    batch_size: Optional[int] = None
    read_s: Optional[float] = None
    fit_s: Optional[float] = None
    write_s: Optional[float] = None
    total_s: Optional[float] = None
    run_id: str = ""
    worker: str = ""
    finished_at: str = ""

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    def to_json(self) -> str:
        """One line of JSON (non-finite floats become null)."""
        return json.dumps(_finite(asdict(self)), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: Dict[str, object]) -> "ManifestRow":
        """Build from a parsed line; unknown keys (from newer versions) are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})  # type: ignore[arg-type]


def _finite(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def one_line(text: str, limit: int = 400) -> str:
    """Collapse whitespace/newlines and cut to ``limit`` characters (reasons stay one line)."""
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


class ManifestWriter:
    """Appends rows durably. One writer per manifest (the batch parent holds the job lock)."""

    def __init__(self, path: os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        self.repaired_bytes = _cut_torn_tail(self._fd)

    def append(self, row: ManifestRow) -> None:
        """Write ``row`` as one line and fsync. On error the file is cut back to its previous size."""
        data = (row.to_json() + "\n").encode("utf-8")
        size = os.fstat(self._fd).st_size
        try:
            n = os.write(self._fd, data)
            if n != len(data):
                raise OSError(28, f"short write to {self.path} ({n} of {len(data)} bytes)")
            os.fsync(self._fd)
        except OSError:
            try:
                os.ftruncate(self._fd, size)
            except OSError:
                pass
            raise

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "ManifestWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _cut_torn_tail(fd: int) -> int:
    """Truncate a last line without its newline (a write torn by a kill); return bytes removed."""
    size = os.fstat(fd).st_size
    if size == 0:
        return 0
    if os.pread(fd, 1, size - 1) == b"\n":
        return 0
    pos = size
    chunk = 65536
    while pos > 0:
        start = max(0, pos - chunk)
        buf = os.pread(fd, pos - start, start)
        i = buf.rfind(b"\n")
        if i >= 0:
            keep = start + i + 1
            os.ftruncate(fd, keep)
            os.fsync(fd)
            return size - keep
        pos = start
    os.ftruncate(fd, 0)
    os.fsync(fd)
    return size


def iter_lines(path: os.PathLike) -> Iterator[Tuple[int, dict]]:
    """(byte offset, parsed dict) of every valid row, in file order; bad or torn lines skipped."""
    p = Path(path)
    if not p.exists():
        return
    offset = 0
    with open(p, "rb") as f:
        for raw in f:
            start = offset
            offset += len(raw)
            if not raw.endswith(b"\n"):
                break  # torn last line
            try:
                d = json.loads(raw)
            except ValueError:
                continue
            if isinstance(d, dict) and isinstance(d.get("image"), str) and isinstance(d.get("status"), str):
                yield start, d


@dataclass(slots=True)
class RowState:
    """What planning needs of an image's latest row (small: a manifest may hold 10^6 images)."""

    status: str
    error_kind: str
    output: str
    offset: int


def read_index(path: os.PathLike) -> Dict[str, RowState]:
    """image -> state of its latest row."""
    index: Dict[str, RowState] = {}
    for off, d in iter_lines(path):
        index[d["image"]] = RowState(d["status"], str(d.get("error_kind") or ""), str(d.get("output") or ""), off)
    return index


def read_latest(path: os.PathLike) -> Dict[str, ManifestRow]:
    """image -> its latest row (whole rows: for tests, reports and small jobs)."""
    out: Dict[str, ManifestRow] = {}
    for _, d in iter_lines(path):
        out[d["image"]] = ManifestRow.from_dict(d)
    return out


def read_rows_at(path: os.PathLike, offsets: List[int]) -> Iterator[ManifestRow]:
    """The rows starting at ``offsets`` (from :func:`read_index`), in the order given."""
    with open(path, "rb") as f:
        for off in offsets:
            f.seek(off)
            yield ManifestRow.from_dict(json.loads(f.readline()))


def iter_latest_rows(path: os.PathLike) -> Iterator[ManifestRow]:
    """Latest row of every image, sorted by image, reading the file twice (bounded memory)."""
    index = read_index(path)
    offsets = [index[k].offset for k in sorted(index)]
    yield from read_rows_at(path, offsets)


# ---------------------------------------------------------------------------------- Parquet export
_SCALAR_COLUMNS = (
    ("image", "string"), ("status", "string"), ("output", "string"), ("path", "string"),
    ("reason", "string"), ("error_kind", "string"), ("quality", "string"), ("quality_reasons", "list"),
    ("part_iou", "float64"), ("nme", "float64"), ("converged", "bool"), ("iterations", "int64"),
    ("num_faces", "int64"), ("batch_size", "int64"), ("read_s", "float64"), ("fit_s", "float64"),
    ("write_s", "float64"), ("total_s", "float64"), ("run_id", "string"), ("worker", "string"),
    ("finished_at", "string"),
)


def export_parquet(manifest_path: os.PathLike, parquet_path: os.PathLike, chunk_rows: int = 20000) -> int:
    """Write the latest row of every image to Parquet (flat columns); return the number of rows.

    Nested fields are flattened: ``iou/<part>`` for every part, ``loss/<term>`` for every loss term
    seen. Written atomically (a reader never sees a partial file).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from fitter.outputs.atomic import atomic_path

    index = read_index(manifest_path)
    loss_names: List[str] = []
    for _, d in iter_lines(manifest_path):
        for k in d.get("final_losses") or {}:
            if k not in loss_names:
                loss_names.append(k)
    types = {"string": pa.string(), "float64": pa.float64(), "bool": pa.bool_(), "int64": pa.int64(),
             "list": pa.list_(pa.string())}
    schema = pa.schema(
        [pa.field(n, types[t]) for n, t in _SCALAR_COLUMNS]
        + [pa.field(f"iou/{p}", pa.float64()) for p in PART_NAMES]
        + [pa.field(f"loss/{k}", pa.float64()) for k in loss_names]
    )

    def flat(row: ManifestRow) -> Dict[str, object]:
        d = asdict(row)
        out = {n: d.get(n) for n, _ in _SCALAR_COLUMNS}
        for p in PART_NAMES:
            out[f"iou/{p}"] = (row.part_iou_parts or {}).get(p)
        for k in loss_names:
            out[f"loss/{k}"] = (row.final_losses or {}).get(k)
        return out

    offsets = [index[k].offset for k in sorted(index)]
    with atomic_path(parquet_path) as tmp:
        writer = pq.ParquetWriter(str(tmp), schema)
        try:
            buf: List[Dict[str, object]] = []
            for row in read_rows_at(manifest_path, offsets):
                buf.append(flat(row))
                if len(buf) >= chunk_rows:
                    writer.write_table(pa.Table.from_pylist(buf, schema=schema))
                    buf = []
            if buf or not offsets:
                writer.write_table(pa.Table.from_pylist(buf, schema=schema))
        finally:
            writer.close()
    return len(offsets)
