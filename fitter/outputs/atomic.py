"""Atomic file writes for the outputs: the one implementation is :mod:`morphable_models.files`.

Re-exported here because every writer of :mod:`fitter.outputs` (and the batch runner) imports it
from this place.
"""
from morphable_models.files import PathLike, atomic_path, fsync_dir, write_bytes_atomic, write_text_atomic, write_with_atomic

__all__ = ["PathLike", "atomic_path", "fsync_dir", "write_bytes_atomic", "write_text_atomic", "write_with_atomic"]
