"""The ``prdlfit`` command: ``fit``, ``demo``, ``view``, ``curves``, ``export``, ``models`` (and ``batch``).

Parsing only: options become :class:`FitConfig` / :class:`TargetConfig`, the work is done by
:class:`fitter.optimize.Fitter`, :mod:`fitter.targets` and :mod:`fitter.outputs`. Heavy imports
(torch, Open3D, mediapipe) happen inside the commands so ``--help`` stays fast.
"""
from __future__ import annotations

import gc
import importlib
import importlib.util
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import click

from fitter import __version__
from fitter.config import parse_loss_option
from fitter.errors import FitError, ImageReadError, ModelError, NoFaceError, NonFiniteFitError, PrdlfitError
from fitter.failures import classify
from fitter.settings import Overrides, Settings, load_settings

#: exit codes of ``prdlfit fit`` (also in the README and ``prdlfit fit --help``)
EXIT_OK = 0
EXIT_SOME_FAILED = 1

EXIT_CODES_HELP = f"""\b
Exit codes:
  0  every image was fitted and its outputs written
  1  some images failed (the others' outputs are written), or every image
     failed but not all for the same reason, or the output folder cannot be
     written or another run holds it, or an unexpected error
  2  usage error: bad option, config file or loss name (nothing fitted)
  {ImageReadError.exit_code}  every image failed: missing, unreadable or not an image
  {NoFaceError.exit_code}  every image failed: no face found
  {ModelError.exit_code}  the model could not be loaded (nothing fitted)
  {FitError.exit_code}  every image failed: the optimization failed (NaN)
"""


def fail(err: PrdlfitError) -> None:
    """Print ``error: <message>`` on one line to stderr and exit with the error's code."""
    click.echo(f"error: {' '.join(str(err).split())}", err=True)
    sys.exit(getattr(err, "exit_code", 1))


class LazyGroup(click.Group):
    """A group whose optional subcommands are imported on first use (``name -> "module:attr"``)."""

    def __init__(self, *args, lazy: Optional[Dict[str, str]] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def _load(self, name: str) -> Optional[click.Command]:
        module, _, attr = self.lazy[name].partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except ImportError:
            return None

    def list_commands(self, ctx):
        extra = [n for n in self.lazy if importlib.util.find_spec(self.lazy[n].partition(":")[0]) is not None]
        return sorted(set(super().list_commands(ctx)) | set(extra))

    def get_command(self, ctx, name):
        cmd = super().get_command(ctx, name)
        if cmd is None and name in self.lazy:
            cmd = self._load(name)
        return cmd


@click.group(cls=LazyGroup, lazy={"batch": "fitter.batch.command:batch_command"},
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="prdlfit")
@click.option("-v", "--verbose", is_flag=True, help="Show the log lines of mediapipe / TensorFlow Lite.")
def main(verbose: bool) -> None:
    """Fit a 3D morphable face model to photos with the Part Re-projection Distance Loss (PRDL).

    First time? Run `prdlfit demo`.
    """
    from fitter.targets.native_logs import set_verbose  # imports torch

    set_verbose(verbose)
    collect_after_imports()


def check_environment() -> None:
    """Stop with one ``error:`` line when the installed packages cannot run mediapipe."""
    from fitter.targets.mediapipe_env import check_protobuf

    try:
        check_protobuf()
    except PrdlfitError as err:
        fail(err)


# ====================================================================== fit: options -> settings
#: faces per optimization of ``prdlfit fit`` when neither the command line nor the config file says
DEFAULT_BATCH_SIZE = 1


def fit_settings(config: Optional[Path], overrides: Overrides) -> Settings:
    """The config file and the command line merged (:func:`fitter.settings.load_settings`), with
    this command's default batch size.

    Raises:
        ValueError / TypeError: a bad value, key or file (the CLI turns it into a usage error).
        RuntimeError: ``--device cuda`` without a GPU.
    """
    settings = load_settings(config, overrides)
    if settings.run.batch_size is None:
        settings.run.batch_size = DEFAULT_BATCH_SIZE
    return settings


def _check_loss(ctx, param, values):
    for text in values:
        try:
            parse_loss_option(text)
        except ValueError as err:
            raise click.BadParameter(str(err)) from None
    return values


def output_names(images: Sequence[Path]) -> List[str]:
    """Per-image output folder names (the file stems); ValueError when two images share a stem."""
    stems = [p.stem for p in images]
    dup = sorted(s for s, n in Counter(stems).items() if n > 1)
    if dup:
        clash = [str(p) for p in images if p.stem == dup[0]]
        raise ValueError(f"images {' and '.join(clash)} would write to the same folder {dup[0]!r}; "
                         "rename one or fit them into different -o folders")
    return stems


# ====================================================================== fit: the run
@dataclass
class FaceJob:
    """One face to fit: its image, targets, photo pixels and output folder."""

    image: Path
    targets: object  # Targets
    photo: object  # [H, W, 3] uint8 RGB as read (possibly downscaled for huge photos)
    out_dir: Path


@dataclass
class RunTally:
    """Outcome per image: fitted faces and failures (exit code, message)."""

    fitted: Dict[str, int] = field(default_factory=dict)
    failed: Dict[str, Tuple[int, str]] = field(default_factory=dict)

    def fail(self, image: Path, code: int, message: str) -> None:
        click.echo(f"error: {image}: {' '.join(message.split())}", err=True)
        self.failed.setdefault(str(image), (code, message))

    def exit_code(self) -> int:
        """0 all fitted; 1 partial or mixed failures; else the shared code of every failure."""
        if not self.failed:
            return EXIT_OK
        fitted_any = any(k not in self.failed for k in self.fitted)
        codes = {code for code, _ in self.failed.values()}
        if fitted_any or len(codes) != 1:
            return EXIT_SOME_FAILED
        return codes.pop()


def _message(err: BaseException, image: Path) -> str:
    """One line for a failure; drops the image path when the error already names it."""
    text = " ".join(str(err).split()) or type(err).__name__
    text = text.replace(f" {image}:", ":").replace(f" in {image}", "")
    if not isinstance(err, PrdlfitError):
        text = f"internal error ({type(err).__name__}): {text}"
    return text


def _write_message(err: BaseException) -> str:
    """One line for a failed write: the OS reason (``No space left on device``) when there is one."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return " ".join(str(err).split()) or type(err).__name__


def face_jobs(images: Sequence[Path], names: Sequence[str], out: Path, target_config, tally: RunTally
              ) -> Iterator[FaceJob]:
    """Read each image and build its targets, lazily; failures go to ``tally`` and are skipped."""
    from fitter.targets.io import load_image
    from fitter.targets.pipeline import build_targets

    for image, name in zip(images, names):
        try:
            if not image.is_file():
                raise ImageReadError("no such file" if not image.exists() else "not a file")
            loaded = load_image(image, max_pixels=target_config.max_pixels, max_side=target_config.max_side)
            found = build_targets(loaded, target_config)
        except Exception as err:  # one bad image never stops the others
            tally.fail(image, classify(err, "targets").exit_code, _message(err, image))
            continue
        if not found:
            tally.fail(image, NoFaceError.exit_code, "no face found")
            continue
        for k, t in enumerate(found):
            yield FaceJob(image, t, loaded.rgb, out / (name if k == 0 else f"{name}_face{k}"))


def _batches(jobs: Iterator[FaceJob], size: int) -> Iterator[List[FaceJob]]:
    batch: List[FaceJob] = []
    for job in jobs:
        batch.append(job)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class Progress:
    """A tqdm bar on stderr showing iterations and the current loss (silent when ``quiet``)."""

    def __init__(self, label: str, quiet: bool):
        self.label, self.quiet, self.bar = label, quiet, None

    def __call__(self, iteration: int, total: int, loss: float) -> None:
        if self.quiet:
            return
        if self.bar is None:
            from tqdm import tqdm

            # disable=None: no bar when stderr is not a terminal (logs get the per-image lines only)
            self.bar = tqdm(total=total, desc=self.label, file=sys.stderr, leave=False, dynamic_ncols=True,
                            disable=None,
                            bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}] {postfix}")
        self.bar.total = total
        self.bar.n = min(iteration, total)
        self.bar.set_postfix_str(f"loss {loss:.5g}", refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def fit_batch(fitter, batch: List[FaceJob], settings: Settings, quiet: bool, model, tally: RunTally) -> None:
    """Fit one batch and write the outputs; failures are confined to their faces by
    :func:`fitter.fallback.fit_with_fallback` (the fallback of ``prdlfit batch`` too)."""
    from fitter.fallback import fit_with_fallback
    from fitter.outputs.writer import discard_outputs, write_fit_outputs

    job_of = {id(j.targets): j for j in batch}

    def fit(targets):
        label = ", ".join(job_of[id(t)].out_dir.name for t in targets)
        progress = Progress(label if len(label) < 40 else f"{len(targets)} faces", quiet)
        try:
            return fitter.fit(list(targets), progress=progress)
        finally:
            progress.close()

    for job, outcome in zip(batch, fit_with_fallback(fit, [j.targets for j in batch])):
        if outcome.failure is not None:
            err = outcome.failure.error
            text = f"fit failed: {err}" if isinstance(err, NonFiniteFitError) else _message(err, job.image)
            tally.fail(job.image, outcome.failure.exit_code, text)
            continue
        result = outcome.result
        try:
            paths = write_fit_outputs(result, model, job.out_dir, original_image=job.photo,
                                      overlay=settings.run.overlay, target_config=settings.targets)
        except Exception as err:
            discard_outputs(job.out_dir)  # no partial folder is left behind (e.g. on a full disk)
            tally.fail(job.image, classify(err, "write").exit_code,
                       f"cannot write outputs to {job.out_dir}: {_write_message(err)}")
            continue
        tally.fitted[str(job.image)] = tally.fitted.get(str(job.image), 0) + 1
        if not quiet:
            total = result.final_losses.get("total", float("nan"))
            click.echo(f"ok: {job.image} -> {paths['json'].parent} ({result.iterations} iterations, "
                       f"loss {total:.5g}, {'converged' if result.converged else 'iteration cap'})", err=True)


@main.command("fit", epilog=EXIT_CODES_HELP)
@click.argument("images", nargs=-1, required=True,
                type=click.Path(path_type=Path, dir_okay=True, readable=False))  # unreadable: per-image error
@click.option("-o", "--output", "output", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Output folder: one DIR/<image stem>/ per image.")
@click.option("--model", default=None, help="Model name (ict, sfm, bfm) or path.  [default: ict]")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None,
              help="Where to optimize.  [default: auto = cuda if available]")
@click.option("--optimizer", type=click.Choice(["adam", "lbfgs"]), default=None, help="[default: adam]")
@click.option("--iters", type=click.IntRange(min=0), default=None, help="Main-stage iteration cap.")
@click.option("--rigid-iters", type=click.IntRange(min=0), default=None, help="Rigid-stage iteration cap.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Adam learning rate.")
@click.option("--loss", "losses", multiple=True, metavar="NAME=W", callback=_check_loss,
              help="Loss weight, repeatable (e.g. --loss prdl=0.8e-3 --loss chamfer=0).")
@click.option("--config", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="YAML, JSON or TOML file: sections fit/targets/run (quality: batch only) or their "
                   "keys flat (FitConfig keys, target options, model, batch_size, overlay); the command "
                   "line overrides it.")
@click.option("--seed", type=int, default=None, help="Random seed.")
@click.option("--size", type=click.IntRange(min=16), default=None, help="Fitting crop size in pixels.  [default: 224]")
@click.option("--all-faces", is_flag=True, help="Fit every face; faces after the largest go to DIR/<stem>_face<k>/.")
@click.option("--landmarks", type=click.Path(exists=True, path_type=Path), default=None,
              help="Your own 68 landmarks: a .npy/.pts file, or a folder of <stem>.npy|.pts.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Faces per vectorized optimization.  [default: 1]")
@click.option("--snapshots", type=click.IntRange(min=1), default=None, metavar="N",
              help="Keep the projected mesh every N iterations (snapshots.npz) for `prdlfit curves --animate`.")
@click.option("--no-overlay", is_flag=True, help="Do not write overlay.png.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or per-image lines (errors still print).")
def fit_command(images, output, model, device, optimizer, iters, rigid_iters, lr, losses, config, seed, size,
                all_faces, landmarks, batch_size, snapshots, no_overlay, quiet):
    """Fit the model to each IMAGE and write DIR/<image stem>/ (mesh, fit, parts, overlay, curves).

    A folder holding fit.json is complete (fit.json is written last). One bad image never stops
    the others: each failure prints one line `error: <file>: <message>` to stderr.
    """
    allow_fast_exit()
    try:
        settings = fit_settings(config, Overrides(
            model=model, device=device, optimizer=optimizer, iters=iters, rigid_iters=rigid_iters, lr=lr,
            losses=tuple(losses), seed=seed, snapshot_every=snapshots, size=size, all_faces=all_faces or None,
            landmarks=landmarks, batch_size=batch_size, overlay=False if no_overlay else None))
        names = output_names(list(images))
        if landmarks is not None and landmarks.is_file() and len(images) > 1:
            raise ValueError(f"--landmarks {landmarks} is one file but {len(images)} images were given; "
                             "give a folder of <stem>.npy|.pts files, or fit the images one at a time")
    except RuntimeError as err:
        raise click.BadParameter(str(err), param_hint="--device") from None
    except (ValueError, TypeError) as err:
        raise click.UsageError(" ".join(str(err).split())) from None
    check_environment()

    import morphable_models
    from fitter.optimize import Fitter, model_as_fitted
    from fitter.outputs.folder import FolderLock, prepare_output_dir

    try:
        prepare_output_dir(output)  # before any work: a folder we cannot write fails now, not after the fits
        lock = FolderLock(output, "prdlfit")
        model_obj = model_as_fitted(morphable_models.load(settings.run.model), settings.fit)
    except PrdlfitError as err:
        fail(err)
    fitter = Fitter(model_obj, settings.fit, settings.targets)
    tally = RunTally()
    try:
        for batch in _batches(face_jobs(images, names, output, settings.targets, tally), settings.run.batch_size):
            fit_batch(fitter, batch, settings, quiet, model_obj, tally)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    finally:
        lock.release()
    n_ok = sum(1 for k in tally.fitted if k not in tally.failed)
    if not quiet or tally.failed:
        click.echo(f"fitted {n_ok} of {len(images)} image(s) into {output}"
                   + (f"; {len(tally.failed)} failed" if tally.failed else ""), err=True)
    sys.exit(tally.exit_code())


# ====================================================================== demo
DEMO_PHOTO = Path(__file__).with_name("data") / "astronaut.jpg"
#: what the demo's summary points at: (file, what it shows)
DEMO_FILES = (
    ("overlay.png", "the photo | the fit's parts and landmarks over it | the shaded mesh over it"),
    ("mesh.obj, mesh.ply", "the fitted 3D mesh, coloured by part"),
    ("curves.png", "how the losses converged (the numbers: curves.csv)"),
    ("parts.png", "the fit's part label map at the photo's size"),
    ("fit.json, fit.npz", "pose, camera, coefficients, losses; every array of the fit"),
)


@main.command("demo")
@click.option("-o", "--output", type=click.Path(path_type=Path, file_okay=False), default=Path("prdlfit-demo"),
              show_default=True, help="Output folder (the fit goes to DIR/astronaut/).")
@click.option("--iters", type=click.IntRange(min=0), default=None, help="Main-stage iteration cap (fewer: faster).")
@click.option("--rigid-iters", type=click.IntRange(min=0), default=None, help="Rigid-stage iteration cap.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None,
              help="Where to optimize.  [default: auto]")
def demo_command(output, iters, rigid_iters, device):
    """Fit the bundled photo (NASA portrait of astronaut Eileen Collins, public domain) with the
    default model and write every output; works offline."""
    allow_fast_exit()
    try:
        settings = fit_settings(None, Overrides(device=device, iters=iters, rigid_iters=rigid_iters, snapshot_every=5))
    except RuntimeError as err:
        raise click.BadParameter(str(err), param_hint="--device") from None
    check_environment()
    import morphable_models
    from fitter.optimize import Fitter, model_as_fitted

    try:
        model_obj = model_as_fitted(morphable_models.load(settings.run.model), settings.fit)
    except PrdlfitError as err:
        fail(err)
    click.echo(f"fitting {DEMO_PHOTO.name} ({model_obj.name} model, {settings.fit.device}) ...", err=True)
    fitter, tally = Fitter(model_obj, settings.fit, settings.targets), RunTally()
    for batch in _batches(face_jobs([DEMO_PHOTO], [DEMO_PHOTO.stem], output, settings.targets, tally), 1):
        fit_batch(fitter, batch, settings, False, model_obj, tally)
    if tally.failed:
        sys.exit(tally.exit_code())
    res = output / DEMO_PHOTO.stem
    click.echo(f"The demo fit is in {res}/:")
    for name, what in DEMO_FILES:
        click.echo(f"  {name:20s} {what}")
    click.echo(f"Turn the mesh in 3D:   prdlfit view {res}")
    click.echo(f"Watch it converge:     prdlfit curves {res} --animate {output / 'converge.gif'}")
    click.echo("Your own photos:       prdlfit fit PHOTO... -o DIR")


# ====================================================================== view
def _parse_size(ctx, param, value: str) -> Tuple[int, int]:
    try:
        w, h = (int(v) for v in value.lower().split("x"))
        if w < 1 or h < 1:
            raise ValueError
    except ValueError:
        raise click.BadParameter(f"expected WIDTHxHEIGHT such as 800x800, got {value!r}") from None
    return w, h


@main.command("view")
@click.argument("result", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--offscreen", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="PNG",
              help="Render headless to this PNG instead of opening a window.")
@click.option("--size", default="800x800", show_default=True, callback=_parse_size, metavar="WxH",
              help="Window or image size.")
def view_command(result, offscreen, size):
    """Show the fitted mesh of RESULT (a DIR/<image stem>/ folder) in an Open3D window.

    Parts are coloured, landmarks are green spheres; keys: W wireframe, P parts/plain, Q quit.
    """
    from fitter.outputs.viewer import render_offscreen, show

    try:
        if offscreen is not None:
            render_offscreen(result, offscreen, size)
            click.echo(f"wrote {offscreen}", err=True)
        else:
            show(result, size)
    except PrdlfitError as err:
        fail(err)


# ====================================================================== curves
def curves_csv_of(result: Path) -> Path:
    """``curves.csv`` of a result folder, or the CSV itself."""
    return result / "curves.csv" if result.is_dir() else result


def curve_labels(results: Sequence[Path]) -> List[str]:
    """Short distinct labels: the folder names, or ``parent/name`` when those repeat."""
    names = [(r if r.is_dir() else r.parent).name for r in results]
    if len(set(names)) == len(names):
        return names
    return [str(Path((r if r.is_dir() else r.parent).parent.name) / n) for r, n in zip(results, names)]


@main.command("curves")
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Figure to write (.png, .pdf, .svg).  [default: curves_compare.png; none with --animate]")
@click.option("--column", "columns", multiple=True, metavar="NAME",
              help="Column to compare, repeatable: total, a loss term (prdl, lmk, ...) or prdl/<part>.  "
                   "[default: total]")
@click.option("--label", "labels", multiple=True, help="Legend label per RESULT, in order.")
@click.option("--normalize", is_flag=True, help="Divide each curve by its first value.")
@click.option("--animate", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="GIF_OR_MP4",
              help="Write the fit converging (one RESULT fitted with --snapshots N); the figure too "
                   "only when -o is given.")
@click.option("--stride", type=click.IntRange(min=1), default=1, show_default=True,
              help="With --animate: use every STRIDE-th snapshot.")
@click.option("--fps", type=click.FloatRange(min=0.1), default=5.0, show_default=True, help="With --animate.")
def curves_command(results, output, columns, labels, normalize, animate, stride, fps):
    """Plot and compare the convergence curves of one or more fits in one figure.

    Each RESULT is a DIR/<image stem>/ folder (or its curves.csv), e.g. the same photo fitted
    with Adam and with LBFGS, or with PRDL and with chamfer (use --normalize then).
    """
    from fitter.outputs.curves import check_figure_path, compare_curves, read_curves_csv, save_figure

    if labels and len(labels) != len(results):
        raise click.UsageError(f"--label given {len(labels)} times for {len(results)} results")
    if animate is not None and len(results) != 1:
        raise click.UsageError("--animate takes exactly one RESULT")
    if animate is not None and animate.suffix.lower() not in (".gif", ".mp4"):
        raise click.BadParameter(f"{animate}: use a .gif or .mp4 file", param_hint="--animate")
    try:
        check_figure_path(output or "curves_compare.png")
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="-o/--output") from None
    curves = []
    for res, label in zip(results, labels or curve_labels(results)):
        csv_path = curves_csv_of(res)
        try:
            curves.append((label, read_curves_csv(csv_path)))
        except (OSError, ValueError) as err:
            fail(PrdlfitError(f"{csv_path}: {getattr(err, 'strerror', None) or err}"))
    try:
        fig = compare_curves(curves, columns=columns or ("total",), normalize=normalize)
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    if output is not None or animate is None:
        out = output or Path("curves_compare.png")
        try:
            save_figure(fig, out)
        except OSError as err:
            fail(PrdlfitError(f"cannot write {out}: {err.strerror or err}"))
        click.echo(f"wrote {out}", err=True)
    if animate is not None:
        from fitter.outputs.animation import animation_frames, load_snapshots, write_animation

        snap_path = results[0] / "snapshots.npz" if results[0].is_dir() else results[0].parent / "snapshots.npz"
        if not snap_path.is_file():
            fail(PrdlfitError(f"{snap_path.parent}: no snapshots.npz; fit with `prdlfit fit --snapshots N` first"))
        try:
            frames = animation_frames(load_snapshots(snap_path), curves[0][1], stride=stride)
            write_animation(frames, animate, fps=fps)
        except ValueError as err:
            fail(PrdlfitError(str(err)))
        except OSError as err:
            fail(PrdlfitError(f"cannot write {animate}: {err.strerror or err}"))
        click.echo(f"wrote {animate} ({len(frames)} frames)", err=True)


# ====================================================================== export
@main.command("export")
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["arkit-csv"]), required=True,
              help="arkit-csv: a Live Link Face-style CSV, one row per result.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CSV file to write (atomically).  [default: standard output]")
@click.option("--fps", type=click.IntRange(min=1), default=30, show_default=True,
              help="Frame rate of the timecodes (frame i = the i-th result).")
@click.option("--head-units", type=click.Choice(["radians", "degrees"]), default="radians", show_default=True,
              help="Unit of the HeadYaw/HeadPitch/HeadRoll columns.")
def export_command(results, fmt, output, fps, head_units):
    """Export fits as an animation track.

    Each RESULT is a DIR/<image stem>/ folder, or a folder of them (e.g. a `prdlfit batch` output,
    its folders taken in name order): every result becomes one frame. Needs a model with ARKit
    blendshape names (ict).
    """
    from fitter.batch.discover import RESERVED_NAMES
    from fitter.outputs.arkit_csv import arkit_csv_text, result_folders
    from fitter.outputs.atomic import write_text_atomic

    try:
        folders = result_folders(results, skip=sorted(RESERVED_NAMES))
        text = arkit_csv_text(folders, fps=fps, head_units=head_units)
    except ValueError as err:
        fail(PrdlfitError(str(err)))
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        write_text_atomic(output, text)
    except OSError as err:
        fail(PrdlfitError(f"cannot write {output}: {err.strerror or err}"))
    click.echo(f"wrote {output} ({len(folders)} frames)", err=True)


# ====================================================================== models
@main.group("models")
def models_group() -> None:
    """List, inspect and prepare morphable models."""


@models_group.command("list")
def models_list() -> None:
    """Registered models: installed or not, licence, sizes."""
    from morphable_models.registry import list_models

    rows = [("name", "installed", "units", "points", "id", "exp", "license")]
    notes = []
    for m in list_models():
        rows.append((m.name, "yes" if m.installed else "no", m.units or "-",
                     str(m.num_points or "-"), str(m.num_id or "-"), str(m.num_exp or "-"), m.license))
        if m.note:
            notes.append(f"{m.name}: {m.note}")
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    for n in notes:
        click.echo(n)


@models_group.command("info")
@click.argument("name")
def models_info(name: str) -> None:
    """Details of one model: files, licence, sizes, part sizes."""
    from morphable_models.registry import model_info

    try:
        info = model_info(name)
    except PrdlfitError as err:
        fail(err)
    for key in ("name", "installed", "path", "license", "description", "units", "num_points",
                "num_mesh_vertices", "num_triangles", "num_id", "num_exp"):
        value = getattr(info, key, None)
        if value not in (None, ""):
            click.echo(f"{key}: {value}")
    if info.part_sizes:
        click.echo("parts as prepared: " + ", ".join(f"{k} {v}" for k, v in info.part_sizes.items()))
    if info.note:
        click.echo(f"note: {info.note}")


@models_group.command("prepare")
@click.argument("name")
@click.option("--source", type=click.Path(exists=True, path_type=Path), default=None,
              help="Folder or file with the original model files.")
@click.option("--force", is_flag=True, help="Convert again even if a current conversion exists.")
def models_prepare(name: str, source: Optional[Path], force: bool) -> None:
    """Convert model NAME into the cache (once); prints the converted file."""
    from morphable_models.registry import embedded_model, prepare

    try:
        path = prepare(name, source=source, force=force, progress=True)
    except PrdlfitError as err:
        fail(err)
    click.echo(str(path))
    if path == embedded_model(name):
        click.echo(f"{name}: the model embedded in the package is used; --source DIR converts a local copy of "
                   "the upstream files, --force downloads and converts them", err=True)


#: set by the commands (fit, demo) after which the process has nothing left for the interpreter's
#: teardown to do; :func:`console_main` then ends it at once
_FAST_EXIT = False


def allow_fast_exit() -> None:
    """Let :func:`console_main` end this process with ``os._exit`` once the command returns."""
    global _FAST_EXIT
    _FAST_EXIT = True


#: True while :func:`console_main` holds the cyclic garbage collector off for the imports
_GC_HELD = False


def collect_after_imports() -> None:
    """End the hold of :func:`console_main` on the garbage collector: the objects that the imports
    made (torch's and click's modules, functions and types: about a million) go to the collector's
    permanent generation (``gc.freeze``), and collection resumes for what the command makes.

    Each full collection walks every tracked object; with torch imported one takes ~50 ms on
    2 cores, and a single-photo ``prdlfit fit`` ran three of them (plus the younger generations:
    0.21 s in all, 7 % of the run) over objects that live as long as the process. Frozen, the same
    run spends ~0.01 s collecting. Nothing is frozen when ``main`` runs without ``console_main``
    (tests, callers of the click group)."""
    global _GC_HELD
    if _GC_HELD:
        gc.freeze()
        gc.enable()
        _GC_HELD = False


def console_main() -> None:
    """The ``prdlfit`` console command (and ``python -m fitter.cli``): :func:`main`, and after ``fit``
    and ``demo`` the end of the process without the interpreter's teardown.

    By the time those commands return, every output is written, synced and renamed into place and the
    folder lock is released; what teardown still did (freeing the modules and tensors of torch,
    mediapipe and OpenCV, joining their native threads) took ~0.6 s of a ~6 s single-photo run on
    2 cores, for nothing a user sees. Standard streams and logging are flushed first, and the exit
    code is click's. Other commands (``batch`` with its worker pools, ``view``) exit normally.

    The cyclic garbage collector is held off until the imports are done (:func:`collect_after_imports`)."""
    global _GC_HELD
    if gc.isenabled():
        gc.disable()
        _GC_HELD = True
    try:
        main()
    except SystemExit as done:
        if not _FAST_EXIT:
            raise
        code = done.code
        if code is None:
            code = 0
        elif not isinstance(code, int):
            print(code, file=sys.stderr)
            code = 1
        import logging
        import os

        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe: nothing more can reach it
                pass
        os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    console_main()
