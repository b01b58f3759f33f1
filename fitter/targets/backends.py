"""The name -> face backend registry (the protocol lives in :mod:`fitter.targets.face`).

Built-in backends are a table of lazy entry points (``"module:attribute"``), imported only when a
backend is asked for, so the optional ones cost nothing until used and no backend module imports
this one back. :func:`register_parser` / :func:`register_landmarks` add (or replace) a backend;
the built-ins stay available next to what a user registers.
"""
from __future__ import annotations

import importlib
from typing import Callable, Dict

from fitter.targets.face import FaceAnalysis, FaceParser, LandmarkSource

__all__ = ["FaceAnalysis", "FaceParser", "LandmarkSource", "register_parser", "register_landmarks",
           "get_parser", "get_landmark_source", "parser_names", "landmark_source_names"]

#: built-in face parsers: name -> "module:factory"
BUILTIN_PARSERS: Dict[str, str] = {
    "mediapipe": "fitter.targets.mediapipe_backend:MediapipeParser",
    "facer": "fitter.targets.facer_backend:FacerParser",
}
#: built-in landmark sources: name -> "module:factory"
BUILTIN_LANDMARKS: Dict[str, str] = {
    "mediapipe": "fitter.targets.mediapipe_backend:MediapipeLandmarks",
    "facer": "fitter.targets.facer_backend:FacerLandmarks",
    "dlib": "fitter.targets.dlib_backend:DlibLandmarks",
    "file": "fitter.targets.landmark_files:FileLandmarks",
}

_PARSERS: Dict[str, Callable[..., FaceParser]] = {}
_LANDMARKS: Dict[str, Callable[..., LandmarkSource]] = {}


def register_parser(name: str, factory: Callable[..., FaceParser]) -> None:
    """Make ``get_parser(name, **options)`` call ``factory(**options)`` (replaces a built-in of that name)."""
    _PARSERS[name] = factory


def register_landmarks(name: str, factory: Callable[..., LandmarkSource]) -> None:
    """Make ``get_landmark_source(name, **options)`` call ``factory(**options)``."""
    _LANDMARKS[name] = factory


def parser_names() -> list:
    """Sorted names of every face parser (built-in and registered)."""
    return sorted(set(BUILTIN_PARSERS) | set(_PARSERS))


def landmark_source_names() -> list:
    """Sorted names of every landmark source (built-in and registered)."""
    return sorted(set(BUILTIN_LANDMARKS) | set(_LANDMARKS))


def _factory(kind: str, name: str, registered: Dict[str, Callable], builtin: Dict[str, str],
             names: list) -> Callable:
    if name in registered:
        return registered[name]
    if name not in builtin:
        raise ValueError(f"unknown {kind} {name!r}; choose from {names}")
    module, attr = builtin[name].split(":")
    return getattr(importlib.import_module(module), attr)


def get_parser(name: str, **options) -> FaceParser:
    """The parser registered as ``name`` (ValueError listing the choices if unknown)."""
    return _factory("face parser", name, _PARSERS, BUILTIN_PARSERS, parser_names())(**options)


def get_landmark_source(name: str, **options) -> LandmarkSource:
    """The landmark source registered as ``name`` (ValueError listing the choices if unknown)."""
    return _factory("landmark source", name, _LANDMARKS, BUILTIN_LANDMARKS, landmark_source_names())(**options)
