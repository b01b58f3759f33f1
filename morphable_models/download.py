"""Download pinned source files over HTTPS and check their sha256 (urllib, with timeouts)."""
from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, Iterable, Optional

from morphable_models.errors import ModelError
from morphable_models.files import atomic_path

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def fetch_verified(url: str, dest: Path, sha256: str, timeout: float = 60.0, hint: str = "") -> Path:
    """Download ``url`` to ``dest`` (atomically) unless ``dest`` already has the expected sha256.

    Raises:
        ModelError: network failure, HTTP error or checksum mismatch (one line, ending in ``hint``).
    """
    dest = Path(dest)
    if dest.is_file() and sha256_file(dest) == sha256:
        return dest
    h = hashlib.sha256()
    try:
        with atomic_path(dest) as tmp:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
                for block in iter(lambda: resp.read(CHUNK), b""):
                    h.update(block)
                    out.write(block)
            if h.hexdigest() != sha256:
                raise ModelError(f"checksum mismatch for {url} (expected sha256 {sha256[:12]}..., "
                                 f"got {h.hexdigest()[:12]}...){hint}")
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        reason = getattr(e, "reason", None) or e
        raise ModelError(f"could not download {url}: {reason}{hint}") from None
    return dest


def fetch_all(base_url: str, files: Dict[str, str], dest_dir: Path, timeout: float = 60.0,
              hint: str = "", progress: bool = True, names: Optional[Iterable[str]] = None) -> Path:
    """Download ``files`` (relative path -> sha256) from ``base_url`` into ``dest_dir``.

    Args:
        names: subset of ``files`` to fetch (None = all).
    Returns:
        ``dest_dir``.
    """
    from tqdm import tqdm

    todo = sorted(files if names is None else names)
    for rel in tqdm(todo, desc="download", unit="file", disable=not progress):
        fetch_verified(f"{base_url.rstrip('/')}/{rel}", Path(dest_dir) / rel, files[rel], timeout, hint)
    return Path(dest_dir)
