"""Which images a batch job covers: walk a folder or read a list file, name output folders, shard, limit.

The order is stable (sorted relative paths), output folder names depend only on the discovered set
(never on ``--shard`` or ``--limit``), and shard membership depends only on an image's own name, so
every machine of a sharded job agrees on who does what.
"""
from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, List, Optional, Sequence, Tuple

#: File suffixes treated as images when walking a folder (case-insensitive). Files named like images
#: that are not images are still taken: they are recorded as failed with a reason, never skipped.
IMAGE_SUFFIXES: Tuple[str, ...] = (
    ".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".pgm", ".ppm", ".pnm",
)
#: Suffixes of list files: one image path per line (relative to the list file's folder or absolute).
LIST_SUFFIXES: Tuple[str, ...] = (".txt", ".lst", ".list")
#: Names of the job's own files in OUT; an image output folder never takes one of them.
RESERVED_NAMES = frozenset({"manifest.jsonl", "manifest.parquet", "report", ".batch.lock", ".prdlfit.lock", "settings.json"})


@dataclass(frozen=True)
class ImageItem:
    """One input image of a job.

    Attributes:
        image: the manifest key: the path relative to the input folder (posix separators), i.e. the
            file name for a flat folder; for a list file, the entry as written (normalized).
        path: absolute path of the file.
        output: name of its output folder under OUT (unique within the job).
    """

    image: str
    path: str
    output: str


def discover(source: os.PathLike, exclude: Sequence[os.PathLike] = ()) -> List[ImageItem]:
    """All images of ``source`` (a folder, a list file, or one image), sorted by ``image``.

    Args:
        source: folder (walked recursively, hidden entries skipped), ``.txt``/``.lst``/``.list``
            file, or a single image file.
        exclude: folders not to walk into (the job's output folder when it lies inside the input).
    Raises:
        FileNotFoundError / ValueError with a one-line message for a missing or unusable source.
    """
    src = Path(source)
    if not src.exists():
        raise FileNotFoundError(f"input {src} does not exist")
    if src.is_dir():
        entries = _walk_folder(src, [Path(e).resolve() for e in exclude])
    elif src.suffix.lower() in LIST_SUFFIXES:
        entries = _read_list_file(src)
    elif src.suffix.lower() in IMAGE_SUFFIXES:
        entries = [(src.name, str(src.resolve()))]
    else:
        raise ValueError(f"input {src} must be a folder, a list file ({', '.join(LIST_SUFFIXES)}) or an image")
    entries.sort(key=lambda e: e[0])
    names = output_names([e[0] for e in entries])
    return [ImageItem(image=rel, path=path, output=name) for (rel, path), name in zip(entries, names)]


def _walk_folder(root: Path, exclude: Sequence[Path]) -> List[Tuple[str, str]]:
    out: List[Tuple[str, str]] = []
    root_abs = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root_abs, followlinks=False):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and (here / d).resolve() not in exclude)
        for f in filenames:
            if f.startswith(".") or Path(f).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            p = here / f
            out.append((p.relative_to(root_abs).as_posix(), str(p)))
    return out


def _read_list_file(list_path: Path) -> List[Tuple[str, str]]:
    """Entries of a list file: blank lines and ``#`` comments skipped, duplicates dropped."""
    base = list_path.resolve().parent
    seen = set()
    out: List[Tuple[str, str]] = []
    try:
        lines = list_path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read list file {list_path}: {err}") from None
    for line in lines:
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        p = Path(entry).expanduser()
        path = str((p if p.is_absolute() else base / p).resolve())
        if path in seen:
            continue
        seen.add(path)
        out.append((os.path.normpath(entry).replace(os.sep, "/"), path))
    return out


def output_names(images: Sequence[str]) -> List[str]:
    """Unique output folder names for ``images`` (relative paths), deterministic for the set.

    The file stem when it is unique (case-insensitively, for case-insensitive file systems);
    otherwise the relative path without suffix with ``/`` -> ``__`` (``a/x.jpg`` -> ``a__x``); then
    the suffix is appended (``x_png``), and a short hash as the last resort.
    """
    stems = [PurePosixPath(r).stem or "image" for r in images]
    stem_counts = Counter(s.casefold() for s in stems)
    names = [s if stem_counts[s.casefold()] == 1 else _flat_name(r, with_suffix=False) for r, s in zip(images, stems)]
    counts = Counter(n.casefold() for n in names)
    names = [n if counts[n.casefold()] == 1 else _flat_name(r, with_suffix=True) for r, n in zip(images, names)]
    counts = Counter(n.casefold() for n in names)
    out = []
    for r, n in zip(images, names):
        if counts[n.casefold()] > 1 or n in RESERVED_NAMES or n.startswith("."):
            n = f"{n.lstrip('.') or 'image'}_{short_hash(r)}"
        out.append(n)
    return out


def _flat_name(rel: str, with_suffix: bool) -> str:
    p = PurePosixPath(rel)
    parts = [("up" if s == ".." else s) for s in p.parent.parts if s not in ("/", ".", "")]
    name = p.stem + (("_" + p.suffix.lstrip(".")) if with_suffix and p.suffix else "")
    return "__".join(parts + [name or "image"])


def short_hash(text: str, n: int = 8) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:n]


def parse_shard(text: str) -> Tuple[int, int]:
    """``"i/n"`` -> (i, n) with 0 <= i < n (shards are numbered from 0)."""
    try:
        i_s, n_s = text.split("/")
        i, n = int(i_s), int(n_s)
    except ValueError:
        raise ValueError(f"--shard expects I/N (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard {text}: need 0 <= I < N (shards are numbered from 0)")
    return i, n


def shard_of(image: str, count: int) -> int:
    """Shard index in [0, count) of an image: a stable hash of its manifest key."""
    digest = hashlib.sha1(image.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def select(items: Iterable[ImageItem], shard: Optional[Tuple[int, int]] = None,
           limit: Optional[int] = None) -> List[ImageItem]:
    """Keep the items of ``shard`` (i, n), then the first ``limit`` of them (in the stable order).

    ``--limit`` bounds the job, not one run: rerunning the same command finishes the same images.
    """
    out = [it for it in items if shard is None or shard_of(it.image, shard[1]) == shard[0]]
    if limit is not None:
        if limit < 0:
            raise ValueError(f"--limit must be >= 0, got {limit}")
        out = out[:limit]
    return out
