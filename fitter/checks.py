"""Value checks for config dataclasses: one-line ``ValueError`` messages that name the setting.

Used by :class:`fitter.config.FitConfig` and :class:`fitter.targets.pipeline.TargetConfig` in
``__post_init__``, so the Python API, ``prdlfit fit`` and ``prdlfit batch`` refuse a bad value
before any image is read. Config files give strings and booleans where numbers belong
(``iters: abc``, ``lr: fast``, ``iters: yes``); these are refused here, not deep inside the fit.
"""
from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence


def check_int(name: str, value: object, lo: Optional[int] = None, hi: Optional[int] = None) -> int:
    """``value`` as an int within [lo, hi]; ValueError naming ``name`` otherwise.

    Accepts ints (not bools) and integral floats (``200.0``); refuses strings, bools and fractions.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, numbers.Integral):
        v = int(value)
    else:
        f = float(value)
        if not math.isfinite(f) or f != int(f):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        v = int(f)
    if lo is not None and v < lo:
        raise ValueError(f"{name} must be >= {lo}, got {v}")
    if hi is not None and v > hi:
        raise ValueError(f"{name} must be <= {hi}, got {v}")
    return v


def check_float(name: str, value: object, lo: Optional[float] = None, hi: Optional[float] = None,
                lo_open: bool = False, hi_open: bool = False) -> float:
    """``value`` as a finite float within the bounds; ValueError naming ``name`` otherwise
    (strings, bools, NaN and infinities are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {v}")
    if lo is not None and (v <= lo if lo_open else v < lo):
        raise ValueError(f"{name} must be {'>' if lo_open else '>='} {lo}, got {v}")
    if hi is not None and (v >= hi if hi_open else v > hi):
        raise ValueError(f"{name} must be {'<' if hi_open else '<='} {hi}, got {v}")
    return v


def check_bool(name: str, value: object) -> bool:
    """``value`` as a bool (true/false only); ValueError naming ``name`` otherwise."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``; ValueError naming ``name`` and the choices otherwise."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def check_optional_str(name: str, value: object) -> Optional[str]:
    """None or a string (a path); ValueError naming ``name`` otherwise."""
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {value!r}")
    return value
