"""``prdlfit batch``: the click command (parsing only; the work is in :mod:`fitter.batch.runner`)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Tuple

import click

from fitter.batch.backend import DEFAULT_BACKEND, BackendSpec
from fitter.batch.discover import parse_shard
from fitter.batch.quality import QualityConfig
from fitter.batch.runner import BatchJob, run_job
from fitter.errors import PrdlfitError
from fitter.settings import Overrides, load_settings
from fitter.targets.mediapipe_env import check_protobuf

_DEFAULT_QUALITY = QualityConfig()
#: images per optimization when neither the command line nor the config file says
DEFAULT_BATCH_SIZE = 4


def build_job(input_path: str, out: str, model: Optional[str], device: Optional[str], batch_size: Optional[int],
              workers: Optional[int], engine: str, ray_address: Optional[str], retry_failed: bool,
              limit: Optional[int], shard: Optional[str], iters: Optional[int], rigid_iters: Optional[int],
              losses: Tuple[str, ...], config: Optional[str], min_part_iou: Optional[float],
              max_nme: Optional[float], require_converged: Optional[bool], report: bool, parquet: bool,
              seed: Optional[int], overlay: Optional[bool], progress: bool, backend: str,
              force: bool = False) -> BatchJob:
    """Options -> :class:`BatchJob`: the config file and the command line merged by
    :func:`fitter.settings.load_settings` (the rules of ``prdlfit fit``; the command line wins).

    ``device: auto`` is resolved here, except with the Ray engine, whose actors may run on machines
    with other devices (each worker resolves it there).

    Raises:
        ValueError / TypeError: a bad value, key or file (a usage error).
        RuntimeError: ``--device cuda`` without a GPU.
    """
    settings = load_settings(config, Overrides(
        model=model, device=device, iters=iters, rigid_iters=rigid_iters, losses=tuple(losses), seed=seed,
        batch_size=batch_size, overlay=overlay, min_part_iou=min_part_iou, max_nme=max_nme,
        require_converged=require_converged), resolve=engine != "ray")
    run = settings.run
    return BatchJob(
        input=Path(input_path), out=Path(out),
        backend=BackendSpec(model=run.model, fit_config=settings.fit, target_config=settings.targets,
                            overlay=run.overlay, backend=backend),
        quality=settings.quality, batch_size=run.batch_size if run.batch_size is not None else DEFAULT_BATCH_SIZE,
        workers=workers, engine=engine, ray_address=ray_address,
        retry_failed=retry_failed, limit=limit, shard=parse_shard(shard) if shard else None,
        report=report, parquet=parquet, progress=progress, force=force,
    )


@click.command("batch")
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=str))
@click.option("-o", "--out", required=True, type=click.Path(path_type=str),
              help="Output folder: OUT/<image>/ per image, OUT/manifest.jsonl, OUT/manifest.parquet, OUT/report/.")
@click.option("--model", default=None, help="Model name or file.  [default: ict]")
@click.option("--device", default=None, help="auto, cpu, cuda or cuda:N.  [default: auto]")
@click.option("--batch-size", default=None, type=int,
              help=f"Images per optimization.  [default: {DEFAULT_BATCH_SIZE}]")
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
              help="YAML, JSON or TOML file: sections fit/targets/quality/run or their keys flat "
                   "(as for `prdlfit fit`); the command line overrides it.")
@click.option("--min-part-iou", default=None, type=float,
              help=f"Quality: lowest mean Part IoU [default: {_DEFAULT_QUALITY.min_part_iou}].")
@click.option("--max-nme", default=None, type=float,
              help=f"Quality: highest landmark NME [default: {_DEFAULT_QUALITY.max_nme}].")
@click.option("--require-converged/--no-require-converged", default=None,
              help="Quality: a fit that hit the iteration cap is suspect [default: yes].")
@click.option("--report/--no-report", default=True, show_default=True, help="Write OUT/report/.")
@click.option("--parquet/--no-parquet", default=True, show_default=True, help="Write OUT/manifest.parquet.")
@click.option("--seed", default=None, type=int)
@click.option("--overlay/--no-overlay", default=None, help="Write overlay images.  [default: overlay]")
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
    except RuntimeError as err:
        raise click.BadParameter(str(err), param_hint="--device") from None
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
