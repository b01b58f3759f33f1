"""Import MediaPipe's two face solutions without the rest of the package.

``import mediapipe`` runs ``mediapipe/__init__.py``, which imports every solution and the tasks API;
``mediapipe.python.solutions.drawing_utils`` among them imports ``matplotlib.pyplot``. On a 2-core VM
that is ~1.5 s of a ~1.6 s import, for modules a fit never uses (issue 16: startup imports only what
the run needs). The face detector and the face mesh themselves need only ``mediapipe.python`` (the
framework bindings), their calculators' protobufs and ``solution_base``.

:func:`face_solutions` imports just those: the two package ``__init__`` files that pull in the rest
(``mediapipe`` and ``mediapipe.python.solutions``) are not run; bare package modules with the real
``__path__`` stand in for them. A stand-in completes itself on first use of a name it lacks
(``mediapipe.solutions``, ``mediapipe.__version__``, ...) by running its real ``__init__`` in its
own namespace, so other code in the process that imports mediapipe sees the whole package. If the
layout differs (another mediapipe release), it falls back to the plain import.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Callable, Dict, Tuple

_LOCK = threading.RLock()
# Stand-ins not yet completed, by name; a parent completes its stand-in children first (the real
# ``mediapipe/__init__`` expects what the real ``solutions/__init__`` imports).
_PENDING: Dict[str, Callable[[], None]] = {}


def _stand_in(name: str) -> types.ModuleType:
    """A package module for ``name`` with the real ``__path__``, its ``__init__`` not run until a
    missing attribute is asked for (``find_spec`` imports the parent package, not ``name``)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations or spec.loader is None:
        raise ImportError(f"{name} is not a package here")
    mod = types.ModuleType(name)
    mod.__path__ = list(spec.submodule_search_locations)
    mod.__spec__ = spec
    mod.__file__ = spec.origin
    mod.__package__ = name
    mod.__loader__ = spec.loader

    def complete() -> None:
        with _LOCK:
            if _PENDING.pop(name, None) is None:
                return
            mod.__dict__.pop("__getattr__", None)
            for child in [n for n in _PENDING if n.startswith(name + ".")]:
                _PENDING[child]()
            spec.loader.exec_module(mod)  # the real __init__, in this module's namespace

    def __getattr__(attr: str):
        if attr.startswith("__") or name not in _PENDING:
            raise AttributeError(f"module {name!r} has no attribute {attr!r}")
        complete()
        return getattr(mod, attr)

    mod.__getattr__ = __getattr__
    _PENDING[name] = complete
    return mod


def _light_import() -> Tuple[types.ModuleType, types.ModuleType]:
    """Import the two solutions under stand-ins for the heavy packages (left in place)."""
    try:
        sys.modules["mediapipe"] = _stand_in("mediapipe")
        importlib.import_module("mediapipe.python")  # the framework bindings (needed)
        sys.modules["mediapipe.python.solutions"] = _stand_in("mediapipe.python.solutions")
        detection = importlib.import_module("mediapipe.python.solutions.face_detection")
        mesh = importlib.import_module("mediapipe.python.solutions.face_mesh")
        return detection, mesh
    except Exception as err:
        _PENDING.clear()
        for name in [n for n in sys.modules if n == "mediapipe" or n.startswith("mediapipe.")]:
            del sys.modules[name]  # the plain import starts again from a clean slate
        raise ImportError(str(err)) from err


def face_solutions() -> Tuple[types.ModuleType, types.ModuleType]:
    """``(face_detection, face_mesh)`` modules of ``mediapipe.python.solutions``.

    Imports only what they need when mediapipe is not yet imported in full; otherwise (or if the
    light import fails) the plain import. Raises ImportError if mediapipe is not installed.
    """
    with _LOCK:
        if "mediapipe" not in sys.modules and importlib.util.find_spec("mediapipe") is not None:
            try:
                return _light_import()
            except ImportError:
                pass
    from mediapipe.python.solutions import face_detection, face_mesh

    return face_detection, face_mesh
