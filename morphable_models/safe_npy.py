"""Read ``np.save``-d Python objects (a pickled dict of arrays) without running arbitrary code.

``np.load(path, allow_pickle=True)`` would execute whatever the pickle asks for. Here the pickle is
read by an :class:`pickle.Unpickler` that only resolves the few callables numpy uses to rebuild
arrays, dtypes and scalars, plus plain containers; anything else raises ``pickle.UnpicklingError``.
"""
from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import Any, Union

import numpy as np

_NUMPY_CALLABLES = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}
_BUILTINS = {"list", "dict", "tuple", "set", "frozenset", "int", "float", "complex", "bool", "str",
             "bytes", "bytearray", "slice", "range"}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy array/dtype/scalar rebuilders and builtin containers."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_CALLABLES:
            if module.startswith("numpy.core") and hasattr(np, "_core"):
                module = "numpy._core" + module[len("numpy.core"):]
            return getattr(importlib.import_module(module), name)
        if module in ("builtins", "__builtin__") and name in _BUILTINS:
            return getattr(importlib.import_module("builtins"), name)
        if (module, name) == ("_codecs", "encode"):  # bytes pickled by protocol 2
            return importlib.import_module("_codecs").encode
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def load_npy_object(path: Union[str, Path]) -> Any:
    """The object stored by ``np.save(path, obj, allow_pickle=True)`` (e.g. a dict), read safely.

    Plain (non-object) ``.npy`` arrays are returned as arrays.

    Raises:
        ValueError: not a .npy file; pickle.UnpicklingError: the pickle needs a forbidden callable.
    """
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            _, _, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            _, _, dtype = np.lib.format.read_array_header_2_0(f)
        if not dtype.hasobject:
            f.seek(0)
            return np.load(f, allow_pickle=False)
        arr = RestrictedUnpickler(f, encoding="latin1").load()  # latin1: Python 2 pickles too
    if isinstance(arr, np.ndarray) and arr.dtype.hasobject and arr.shape == ():
        return arr.item()
    return arr
