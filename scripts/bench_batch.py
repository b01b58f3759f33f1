"""Batch throughput: fit N copies of the example photos with ``fitter.batch`` and print images/min.

    python scripts/bench_batch.py --copies 24 --batch-size 4 --workers 1 --device cpu --iters 30 --rigid-iters 30

Copies of the CelebA samples and the 3DDFA-V3 examples (in ``$PRDLFIT_SHARED/images``) go to a
temporary folder; the job runs end to end as ``prdlfit batch`` would (worker start and model load
included, report and Parquet export excluded). Prints one summary line per setting.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fitter.batch.backend import BackendSpec  # noqa: E402
from fitter.batch.manifest import read_latest  # noqa: E402
from fitter.batch.runner import BatchJob, run_job  # noqa: E402
from fitter.config import FitConfig  # noqa: E402


def example_photos(shared: Path):
    folders = [shared / "images" / "celeba-samples", shared / "images" / "3ddfa-v3-examples"]
    photos = sorted(p for f in folders for p in f.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    if not photos:
        raise SystemExit(f"no example photos under {shared}/images")
    return photos


def make_inputs(folder: Path, photos, copies: int) -> None:
    folder.mkdir(parents=True)
    for i in range(copies):
        src = photos[i % len(photos)]
        shutil.copyfile(src, folder / f"{i:05d}_{src.stem}{src.suffix}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=24, help="number of input images")
    ap.add_argument("--batch-size", type=int, nargs="+", default=[4], help="one or more batch sizes to time")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--engine", default="local", choices=["local", "ray"])
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--rigid-iters", type=int, default=30)
    ap.add_argument("--model", default=None, help="model name or path (default: the shared ICT-FaceKit folder)")
    ap.add_argument("--overlay", action="store_true", help="also write overlays")
    ap.add_argument("--keep", default=None, help="keep the outputs in this folder")
    args = ap.parse_args()

    shared = Path(os.environ.get("PRDLFIT_SHARED", REPO.parent / "shared"))
    model = args.model or str(shared / "models" / "ict-facekit")
    photos = example_photos(shared)
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_batch_"))
    try:
        inputs = root / "inputs"
        if not inputs.exists():
            make_inputs(inputs, photos, args.copies)
        for bs in args.batch_size:
            out = root / f"out_bs{bs}_w{args.workers}"
            shutil.rmtree(out, ignore_errors=True)
            cfg = FitConfig(iters=args.iters, rigid_iters=args.rigid_iters, device=args.device)
            spec = BackendSpec(model=model, fit_config=cfg, overlay=args.overlay)
            job = BatchJob(input=inputs, out=out, backend=spec,
                           batch_size=bs, workers=args.workers, engine=args.engine, report=False, parquet=False,
                           progress=False)
            t0 = time.perf_counter()
            stats = run_job(job, log=lambda m: None)
            wall = time.perf_counter() - t0
            rows = [r for r in read_latest(out / "manifest.jsonl").values() if r.status == "ok"]
            fit_per_img = sum(r.fit_s / r.batch_size for r in rows) / max(1, len(rows))
            read_per_img = sum(r.read_s for r in rows) / max(1, len(rows))
            write_per_img = sum(r.write_s for r in rows) / max(1, len(rows))
            print(f"engine={args.engine} device={args.device} workers={args.workers} batch_size={bs} "
                  f"images={args.copies} ok={stats.ok} failed={stats.failed} iters={args.rigid_iters}+{args.iters} "
                  f"wall={wall:.1f}s images/min={60 * args.copies / wall:.1f} | per image: targets {read_per_img:.2f}s "
                  f"fit {fit_per_img:.2f}s write {write_per_img:.2f}s", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
