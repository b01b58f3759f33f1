"""Is the installed protobuf one that the installed mediapipe can load?

mediapipe 0.10.14 declares ``protobuf<5,>=4.25.3`` and fails at its first graph with a newer one
(``'SymbolDatabase' object has no attribute 'GetPrototype'``). Installing another package later
(``pip install "ray[default]"``) can upgrade protobuf past that range. The commands that use
mediapipe call :func:`check_protobuf` first and stop with one line saying what to run.
"""
from __future__ import annotations

from importlib import metadata
from typing import Optional, Sequence

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from fitter.errors import PrdlfitError


class EnvironmentMismatch(PrdlfitError):
    """Installed packages that do not work together."""


def protobuf_problem(protobuf_version: Optional[str], mediapipe_version: Optional[str],
                     mediapipe_requires: Sequence[str]) -> Optional[str]:
    """One line naming the mismatch and the command that fixes it, or None when the pair fits.

    Args:
        protobuf_version: installed protobuf version (None: not installed).
        mediapipe_version: installed mediapipe version (None: not installed: nothing to check).
        mediapipe_requires: mediapipe's declared requirements (``importlib.metadata.requires``).
    Unknown or unparsable versions give None (no false alarm).
    """
    if mediapipe_version is None:
        return None
    spec = None
    for text in mediapipe_requires:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if req.name.lower() == "protobuf" and req.marker is None:
            spec = req.specifier
    if spec is None or not str(spec):
        return None
    pin = ",".join(sorted(str(s) for s in spec))
    if protobuf_version is None:
        return f'mediapipe {mediapipe_version} needs protobuf{pin}, which is not installed; run: pip install "protobuf{pin}"'
    try:
        installed = Version(protobuf_version)
    except InvalidVersion:
        return None
    if spec.contains(installed, prereleases=True):
        return None
    return (f"protobuf {protobuf_version} is installed but mediapipe {mediapipe_version} needs protobuf{pin} "
            f'(another package upgraded it); run: pip install "protobuf{pin}"')


def _version(dist: str) -> Optional[str]:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def check_protobuf() -> None:
    """Raise :class:`EnvironmentMismatch` (one line, what to run) when the installed protobuf does
    not fit the installed mediapipe."""
    mp_version = _version("mediapipe")
    requires = (metadata.requires("mediapipe") or []) if mp_version else []
    problem = protobuf_problem(_version("protobuf"), mp_version, requires)
    if problem:
        raise EnvironmentMismatch(problem)
