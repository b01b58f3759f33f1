"""The settings a batch job's outputs were fitted with (``OUT/settings.json``), and the resume rule.

A resumed run must fit the rest of the images the way the first run fitted the others; otherwise
one output folder would silently mix two configurations. The first run records the settings that
change a fit or its flags (model, :class:`FitConfig` without its device, the target options, the
quality thresholds, overlay on/off); a later run with different ones is refused, naming each
difference, unless ``--force`` (which records the new settings and says what changed).
The device, batch size, worker count and engine may change between runs.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Dict, List, Optional

from fitter.errors import PrdlfitError
from fitter.outputs.atomic import write_text_atomic

SETTINGS_NAME = "settings.json"
#: fields that may differ between runs of one job (they do not change what is fitted)
_FREE = {"fit.device", "targets.device"}


class SettingsMismatch(PrdlfitError):
    """A resumed batch job was given settings that differ from its first run's."""

    exit_code = 2


def job_settings(backend, quality) -> Dict[str, object]:
    """The recorded settings of a job: ``{"model", "overlay", "fit", "targets", "quality"}`` (JSON types)."""
    targets = backend.target_config
    if targets is None:
        from fitter.targets.pipeline import TargetConfig

        targets = TargetConfig()
    data = {"model": str(backend.model), "overlay": bool(backend.overlay), "fit": backend.fit_config.to_dict(),
            "targets": asdict(targets), "quality": asdict(quality)}
    return json.loads(json.dumps(data, default=str))  # tuples -> lists, as read back


def _flat(d: object, prefix: str = "") -> Dict[str, object]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: Dict[str, object] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def differences(old: Dict[str, object], new: Dict[str, object]) -> List[str]:
    """``key: old -> new`` for each setting that differs (device-like fields ignored), sorted."""
    a, b = _flat(old), _flat(new)
    return [f"{k}: {a.get(k, '<unset>')!r} -> {b.get(k, '<unset>')!r}"
            for k in sorted(set(a) | set(b)) if k not in _FREE and a.get(k) != b.get(k)]


def check_settings(out: Path, settings: Dict[str, object], force: bool, log=lambda m: None) -> None:
    """Record ``settings`` in ``out/settings.json``, or compare them with the recorded ones.

    Raises:
        SettingsMismatch: they differ and ``force`` is False (the message names every difference).
    """
    path = Path(out) / SETTINGS_NAME
    old: Optional[Dict[str, object]] = None
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None  # unreadable record: write it again
    if old is not None:
        diff = differences(old, settings)
        if diff and not force:
            raise SettingsMismatch(f"{out} was fitted with other settings ({'; '.join(diff)}); rerun with the "
                                   f"same settings to resume, use another output folder, or --force to mix them")
        if diff:
            log(f"warning: --force: settings differ from the earlier run ({'; '.join(diff)})")
        elif old == settings:
            return
    write_text_atomic(path, json.dumps(settings, indent=2, sort_keys=True) + "\n")


__all__ = ["SETTINGS_NAME", "SettingsMismatch", "job_settings", "differences", "check_settings"]
