"""The settings of a run: a config file plus command-line options -> :class:`Settings`.

One loader for ``prdlfit fit``, ``prdlfit batch`` and the Python API::

    from fitter.settings import load_settings
    s = load_settings("fit.yaml")            # Settings(fit=FitConfig, targets=TargetConfig, quality, run)
    fitter = Fitter(model, s.fit, s.targets)

A config file is YAML (``.yaml``/``.yml``), JSON (``.json``) or TOML (``.toml``) holding one mapping.
Keys are sectioned or flat, mixed freely:

* sections ``fit:`` (:class:`FitConfig` fields), ``targets:`` (:class:`TargetConfig` fields),
  ``quality:`` (:class:`QualityConfig` fields, used by ``prdlfit batch``) and ``run:``
  (:class:`RunConfig`: ``model``, ``batch_size``, ``overlay``);
* a flat key goes to the one section that has a field of that name. ``device`` is a field of
  both FitConfig and TargetConfig; flat, it is the fit's (where to optimize, as ``--device``),
  and the facer's device is set in ``targets:``. Any other name two sections share would be
  refused as ambiguous; an unknown name is refused. A flat key given in its section as well is
  refused too (two values for one setting).

Values are checked by the config dataclasses themselves (:mod:`fitter.checks`), first on the file
alone, so that an error names the file (``config c.yaml: iters must be an integer, got 'abc'``),
then with the command line merged in. The command line wins over the file, with one rule for
every command: an option that was given (not None) replaces the file's value; ``--loss NAME=W``
replaces that one weight and keeps the file's others; ``--landmarks PATH`` sets
``landmarks = "file"`` and ``landmark_file = PATH``. Last, ``device: auto`` is resolved
(:func:`fitter.config.resolve_device`) here and nowhere else, so the FitConfig a fit records
says where it ran.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Collection, Dict, Mapping, Optional, Sequence, Tuple, Union

from fitter.checks import check_bool, check_int
from fitter.config import FitConfig, parse_loss_option, resolve_device

if TYPE_CHECKING:  # imported lazily at run time: the targets module pulls in the mediapipe stack
    from fitter.batch.quality import QualityConfig
    from fitter.targets.pipeline import TargetConfig

PathLike = Union[str, Path]

#: config file suffixes and their formats
FORMATS: Dict[str, str] = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".toml": "toml"}
#: section names, in the order messages list them
SECTIONS: Tuple[str, ...] = ("fit", "targets", "quality", "run")
#: flat keys that name fields of several sections, and the section they go to
FLAT_OWNER: Dict[str, str] = {"device": "fit"}


@dataclass
class RunConfig:
    """Command-level settings a config file may hold.

    Attributes:
        model: model name (``ict``, ``sfm``, ``bfm``) or file for ``morphable_models.load``.
        batch_size: faces per vectorized optimization; None = the command's default
            (``prdlfit fit``: 1, ``prdlfit batch``: 4).
        overlay: write ``overlay.png``.
    """

    model: str = "ict"
    batch_size: Optional[int] = None
    overlay: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"model must be a name or a path, got {self.model!r}")
        if self.batch_size is not None:
            self.batch_size = check_int("batch_size", self.batch_size, lo=1)
        self.overlay = check_bool("overlay", self.overlay)


@dataclass
class Overrides:
    """Command-line values; None (or an empty ``losses``) means "not given, keep the file's"."""

    model: Optional[str] = None
    device: Optional[str] = None
    optimizer: Optional[str] = None
    iters: Optional[int] = None
    rigid_iters: Optional[int] = None
    lr: Optional[float] = None
    losses: Sequence[str] = ()
    seed: Optional[int] = None
    snapshot_every: Optional[int] = None
    size: Optional[int] = None
    all_faces: Optional[bool] = None
    landmarks: Optional[PathLike] = None
    batch_size: Optional[int] = None
    overlay: Optional[bool] = None
    min_part_iou: Optional[float] = None
    max_nme: Optional[float] = None
    require_converged: Optional[bool] = None


@dataclass
class Settings:
    """Everything a run is configured with (see the module docstring for the file format).

    ``targets`` and ``quality`` left None become their defaults.
    """

    fit: FitConfig = field(default_factory=FitConfig)
    targets: Optional[TargetConfig] = None
    quality: Optional[QualityConfig] = None
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self) -> None:
        if self.targets is None:
            self.targets = _section_classes()["targets"]()
        if self.quality is None:
            self.quality = _section_classes()["quality"]()


def _section_classes() -> Dict[str, type]:
    from fitter.batch.quality import QualityConfig
    from fitter.targets.pipeline import TargetConfig

    return {"fit": FitConfig, "targets": TargetConfig, "quality": QualityConfig, "run": RunConfig}


def section_fields() -> Dict[str, Tuple[str, ...]]:
    """Section name -> the field names it accepts."""
    return {name: tuple(f.name for f in fields(cls)) for name, cls in _section_classes().items()}


def read_config_file(path: PathLike) -> Dict[str, object]:
    """The mapping in a YAML, JSON or TOML file; ValueError ``config PATH: ...`` otherwise."""
    path = Path(path)
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ValueError(f"config {path}: use a .yaml, .yml, .json or .toml file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"config {path}: cannot read it ({getattr(err, 'strerror', None) or err})") from None
    try:
        if kind == "toml":
            import tomllib

            data = tomllib.loads(text)
        elif kind == "json":
            import json

            data = json.loads(text) if text.strip() else {}
        else:
            import yaml

            data = yaml.safe_load(text) or {}
    except Exception as err:  # yaml.YAMLError, json.JSONDecodeError, tomllib.TOMLDecodeError
        raise ValueError(f"config {path}: {' '.join(str(err).split())}") from None
    if not isinstance(data, dict):
        raise ValueError(f"config {path}: must hold a mapping of option names to values")
    return data


def route_keys(data: Mapping[str, object], sections: Mapping[str, Collection[str]],
               owner: Mapping[str, str] = FLAT_OWNER) -> Dict[str, Dict[str, object]]:
    """Sort a config mapping into sections: section -> {field: value}.

    A key named like a section must hold a mapping (that section's keys); any other key is flat
    and goes to the section having a field of that name (``owner`` settles names several share).
    Raises ValueError (one line) for an unknown key, an ambiguous flat key, a section that is not
    a mapping, and a setting given both flat and in its section.
    """
    out: Dict[str, Dict[str, object]] = {name: {} for name in sections}
    unknown = []
    for name in sections:
        if name not in data:
            continue
        block = data[name]
        if block is None:
            continue
        if not isinstance(block, dict):
            raise ValueError(f"section {name} must be a mapping of {name} settings, got {block!r}")
        for key, value in block.items():
            if key in sections[name]:
                out[name][key] = value
            else:
                unknown.append(f"{name}.{key}")
    for key, value in data.items():
        if key in sections:
            continue
        homes = [name for name, names in sections.items() if key in names]
        if len(homes) > 1:
            if owner.get(key) not in homes:
                raise ValueError(f"key {key!r} is a setting of {' and '.join(homes)}; put it in a "
                                 f"{' or '.join(h + ':' for h in homes)} section")
            homes = [owner[key]]
        if not homes:
            unknown.append(str(key))
            continue
        if key in out[homes[0]]:
            raise ValueError(f"{key} is given twice, flat and in the {homes[0]} section")
        out[homes[0]][key] = value
    if unknown:
        raise ValueError(f"unknown config keys: {', '.join(sorted(unknown))}; known: sections "
                         f"{', '.join(sections)}, or their fields flat (see fitter/settings.py)")
    return out


def _build(sections: Mapping[str, Dict[str, object]]) -> Dict[str, object]:
    """Each section's dataclass built from its keys (the dataclasses check the values)."""
    classes = _section_classes()
    built: Dict[str, object] = {}
    for name, cls in classes.items():
        values = dict(sections.get(name) or {})
        built[name] = cls.from_dict(values) if cls is FitConfig else cls(**values)
    return built


def merge_overrides(sections: Dict[str, Dict[str, object]], cli: Overrides) -> Dict[str, Dict[str, object]]:
    """The file's section mappings with the command line applied (the command line wins)."""
    out = {name: dict(values) for name, values in sections.items()}
    fit, targets, quality, run = (out.setdefault(n, {}) for n in SECTIONS)
    if cli.losses:
        weights = dict(fit.get("loss_weights") or {})
        for text in cli.losses:
            name, w = parse_loss_option(text)
            weights[name] = w
        fit["loss_weights"] = weights
    for section, key, value in (
            (fit, "device", cli.device), (fit, "optimizer", cli.optimizer), (fit, "iters", cli.iters),
            (fit, "rigid_iters", cli.rigid_iters), (fit, "lr", cli.lr), (fit, "seed", cli.seed),
            (fit, "snapshot_every", cli.snapshot_every), (targets, "size", cli.size),
            (targets, "all_faces", cli.all_faces), (run, "model", cli.model), (run, "batch_size", cli.batch_size),
            (run, "overlay", cli.overlay), (quality, "min_part_iou", cli.min_part_iou),
            (quality, "max_nme", cli.max_nme), (quality, "require_converged", cli.require_converged)):
        if value is not None:
            section[key] = value
    if cli.landmarks is not None:
        targets["landmarks"] = "file"
        targets["landmark_file"] = str(cli.landmarks)
    return out


def load_settings(path: Optional[PathLike] = None, cli: Optional[Overrides] = None,
                  resolve: bool = True) -> Settings:
    """Settings from a config file (or none) and command-line values.

    Args:
        path: a ``.yaml``/``.yml``/``.json``/``.toml`` config file, or None for the defaults.
        cli: command-line values (they override the file's).
        resolve: resolve ``device: auto`` to ``cuda`` or ``cpu`` now (False: leave it to where the
            fit runs, e.g. Ray actors on other machines).
    Raises:
        ValueError: a bad file, key or value (one line; file problems name the file).
        RuntimeError: ``device: cuda`` without a CUDA GPU.
    """
    names = section_fields()
    sections: Dict[str, Dict[str, object]] = {n: {} for n in SECTIONS}
    if path is not None:
        try:
            sections = route_keys(read_config_file(path), names)
            _build(sections)  # the file's values on their own: errors name the file
        except (ValueError, TypeError) as err:
            text = " ".join(str(err).split())
            raise ValueError(text if text.startswith(f"config {path}:") else f"config {path}: {text}") from None
    try:
        built = _build(merge_overrides(sections, cli or Overrides()))
    except TypeError as err:
        raise ValueError(" ".join(str(err).split())) from None
    fit: FitConfig = built["fit"]  # type: ignore[assignment]
    if resolve:
        fit = dataclasses.replace(fit, device=resolve_device(fit.device))
    return Settings(fit=fit, targets=built["targets"], quality=built["quality"], run=built["run"])  # type: ignore


__all__ = ["FORMATS", "SECTIONS", "FLAT_OWNER", "RunConfig", "Overrides", "Settings", "section_fields",
           "read_config_file", "route_keys", "merge_overrides", "load_settings"]
