"""``prdlfit batch``: the click command (parsing only; the work is in :mod:`fitter.batch.runner`)."""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Dict, Optional, Tuple

import click

from fitter.batch.backend import DEFAULT_BACKEND, BackendSpec
from fitter.batch.discover import parse_shard
from fitter.batch.quality import QualityConfig
from fitter.batch.runner import BatchJob, run_job
from fitter.config import FitConfig, parse_loss_option
from fitter.errors import PrdlfitError
from fitter.targets.mediapipe_env import check_protobuf

_DEFAULT_QUALITY = QualityConfig()


def load_config_file(path: Path) -> Tuple[Dict[str, object], Dict[str, object], Dict[str, object]]:
    """A YAML/JSON config -> (FitConfig keys, TargetConfig keys, QualityConfig keys).

    Either flat FitConfig keys, or sections ``fit:``, ``targets:``, ``quality:``.
    """
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        data = json.loads(text)
    else:
        import yaml

        data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ValueError(f"config {path} must hold a mapping")
    fit = dict(data.get("fit") or {})
    targets = dict(data.get("targets") or {})
    quality = dict(data.get("quality") or {})
    fit.update({k: v for k, v in data.items() if k not in ("fit", "targets", "quality")})
    return fit, targets, quality


def dataclass_from_dict(cls, d: Dict[str, object]):
    """``cls(**d)`` with nested dataclass fields built from nested dicts; unknown keys raise ValueError."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    kwargs = {}
    for k, v in d.items():
        f = known[k]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if isinstance(v, dict) and dataclasses.is_dataclass(default):
            v = dataclass_from_dict(type(default), v)
        kwargs[k] = v
    return cls(**kwargs)


def build_job(input_path: str, out: str, model: str, device: str, batch_size: int, workers: Optional[int],
              engine: str, ray_address: Optional[str], retry_failed: bool, limit: Optional[int],
              shard: Optional[str], iters: Optional[int], rigid_iters: Optional[int], losses: Tuple[str, ...],
              config: Optional[str], min_part_iou: Optional[float], max_nme: Optional[float],
              require_converged: Optional[bool], report: bool, parquet: bool, seed: Optional[int],
              overlay: bool, progress: bool, backend: str, force: bool = False) -> BatchJob:
    """Options -> :class:`BatchJob` (command-line values override the config file)."""
    fit_d, target_d, quality_d = load_config_file(Path(config)) if config else ({}, {}, {})
    weights = dict(fit_d.pop("loss_weights", None) or {})
    for text in losses:
        name, w = parse_loss_option(text)
        weights[name] = w
    if weights:
        fit_d["loss_weights"] = weights
    for key, value in (("iters", iters), ("rigid_iters", rigid_iters), ("seed", seed)):
        if value is not None:
            fit_d[key] = value
    fit_d["device"] = device if device != "auto" or "device" not in fit_d else fit_d["device"]
    fit_config = FitConfig.from_dict(fit_d)
    target_config = None
    if target_d:
        from fitter.targets.pipeline import TargetConfig

        target_config = dataclass_from_dict(TargetConfig, target_d)
    q = dict(quality_d)
    if min_part_iou is not None:
        q["min_part_iou"] = min_part_iou
    if max_nme is not None:
        q["max_nme"] = max_nme
    if require_converged is not None:
        q["require_converged"] = require_converged
    return BatchJob(
        input=Path(input_path), out=Path(out),
        backend=BackendSpec(model=model, fit_config=fit_config, target_config=target_config, overlay=overlay,
                            backend=backend),
        quality=dataclass_from_dict(QualityConfig, q), batch_size=batch_size, workers=workers, engine=engine,
        ray_address=ray_address,
        retry_failed=retry_failed, limit=limit, shard=parse_shard(shard) if shard else None,
        report=report, parquet=parquet, progress=progress, force=force,
    )


@click.command("batch")
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=str))
@click.option("-o", "--out", required=True, type=click.Path(path_type=str),
              help="Output folder: OUT/<image>/ per image, OUT/manifest.jsonl, OUT/manifest.parquet, OUT/report/.")
@click.option("--model", default="ict", show_default=True, help="Model name or file.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--batch-size", default=4, show_default=True, type=int, help="Images per optimization.")
@click.option("--workers", default=None, type=int,
              help="Worker processes [default: one per GPU on CUDA, else half the CPU cores; 0 = in this process].")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--ray-address", default=None, help="Ray cluster address (default: start a local Ray).")
@click.option("--retry-failed", is_flag=True, help="Also redo images recorded as failed.")
@click.option("--limit", default=None, type=int, help="Only the first N images (after --shard) make the job.")
@click.option("--shard", default=None, metavar="I/N", help="Only shard I of N (0 <= I < N), by a stable hash.")
@click.option("--iters", default=None, type=int, help="Main-stage iteration cap.")
@click.option("--rigid-iters", default=None, type=int, help="Rigid-stage iteration cap.")
@click.option("--loss", "losses", multiple=True, metavar="NAME=W", help="Loss weight (repeatable).")
@click.option("--config", default=None, type=click.Path(exists=True, dir_okay=False, path_type=str),
              help="YAML/JSON: FitConfig keys, or sections fit/targets/quality.")
@click.option("--min-part-iou", default=None, type=float,
              help=f"Quality: lowest mean Part IoU [default: {_DEFAULT_QUALITY.min_part_iou}].")
@click.option("--max-nme", default=None, type=float,
              help=f"Quality: highest landmark NME [default: {_DEFAULT_QUALITY.max_nme}].")
@click.option("--require-converged/--no-require-converged", default=None,
              help="Quality: a fit that hit the iteration cap is suspect [default: yes].")
@click.option("--report/--no-report", default=True, show_default=True, help="Write OUT/report/.")
@click.option("--parquet/--no-parquet", default=True, show_default=True, help="Write OUT/manifest.parquet.")
@click.option("--seed", default=None, type=int)
@click.option("--overlay/--no-overlay", default=True, show_default=True, help="Write overlay images.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.option("--force", is_flag=True,
              help="Resume even if the settings differ from the run that started OUT (OUT/settings.json).")
@click.option("--backend", default=DEFAULT_BACKEND, hidden=True, help="module:Class of the fit backend (tests).")
def batch_command(input_path, out, model, device, batch_size, workers, engine, ray_address, retry_failed, limit,
                  shard, iters, rigid_iters, losses, config, min_part_iou, max_nme, require_converged, report,
                  parquet, seed, overlay, progress, force, backend):
    """Fit every image of INPUT (a folder or a .txt list), resumably, into OUT.

    Rerun the same command to finish an interrupted job: finished images are kept, failed ones
    are skipped (unless --retry-failed); a rerun with other settings is refused (unless --force).
    Exits 1 when every image failed, 2 on a usage error or changed settings.
    """
    try:
        job = build_job(input_path, out, model, device, batch_size, workers, engine, ray_address, retry_failed,
                        limit, shard, iters, rigid_iters, losses, config, min_part_iou, max_nme, require_converged,
                        report, parquet, seed, overlay, progress, backend, force)
    except (ValueError, TypeError, OSError) as err:
        raise click.UsageError(" ".join(str(err).split())) from None
    except PrdlfitError as err:
        _exit(err)
    if backend == DEFAULT_BACKEND:  # the mediapipe front end; test backends need none
        try:
            check_protobuf()
        except PrdlfitError as err:
            _exit(err)
    try:
        stats = run_job(job)
    except PrdlfitError as err:
        _exit(err)
    except KeyboardInterrupt:
        click.echo("interrupted; rerun the same command to continue", err=True)
        sys.exit(130)
    if stats.ok == 0 and stats.done_before == 0 and (stats.failed or stats.failed_skipped):
        click.echo(f"error: every image of {input_path} failed (reasons in {Path(out) / 'manifest.jsonl'})",
                   err=True)
        sys.exit(1)


def _exit(err: PrdlfitError) -> None:
    click.echo(f"error: {' '.join(str(err).split())}", err=True)
    sys.exit(getattr(err, "exit_code", 1))
