"""Benchmark: one-time conversion and load-from-cache times of the morphable models.

Usage: python scripts/bench_model_load.py [--bfm PATH/face_model.npy] [--repeats 5] [--no-convert]
Sources: $PRDLFIT_ICT_SOURCE / $PRDLFIT_SFM_SOURCE (default: ../shared/models next to the repo).
Conversions go to a temporary cache so the user's cache is untouched.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PRDLFIT_SHARED", REPO.parent / "shared"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bfm", default=None, help="a 3DDFA-V3 face_model.npy to include")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-convert", action="store_true", help="skip the conversion timing (needs a cache)")
    args = ap.parse_args()
    os.environ.setdefault("PRDLFIT_ICT_SOURCE", str(SHARED / "models" / "ict-facekit"))
    os.environ.setdefault("PRDLFIT_SFM_SOURCE", str(SHARED / "models" / "sfm-3448"))

    import torch

    from morphable_models import registry

    sources = {"ict": os.environ["PRDLFIT_ICT_SOURCE"], "sfm": os.environ["PRDLFIT_SFM_SOURCE"]}
    if args.bfm:
        sources["bfm"] = args.bfm
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        cache = None if args.no_convert else tmp
        for name, src in sources.items():
            if not Path(src).exists():
                print(f"{name}: source {src} not found, skipped")
                continue
            if not args.no_convert:
                t0 = time.perf_counter()
                path = registry.prepare(name, source=src, cache_dir=cache, progress=False, force=True)
                convert_s = time.perf_counter() - t0
            else:
                path, convert_s = registry.prepare(name, cache_dir=cache, progress=False), float("nan")
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                model = registry.load(name, cache_dir=cache)
                times.append(time.perf_counter() - t0)
            size_mb = path.stat().st_size / 2**20
            print(f"{name}: convert {convert_s:6.2f} s | load from cache median {statistics.median(times) * 1e3:7.1f} ms "
                  f"(min {min(times) * 1e3:.1f}) | {size_mb:.1f} MiB | V={model.num_points} "
                  f"(mesh {model.num_mesh_vertices}) F={model.triangles.shape[0]} id={model.num_id} exp={model.num_exp}")
            print("      parts: " + ", ".join(f"{k}={int(v.numel())}" for k, v in model.parts.items()))
            if torch.cuda.is_available():
                t0 = time.perf_counter()
                model.to("cuda")
                torch.cuda.synchronize()
                print(f"      to('cuda'): {(time.perf_counter() - t0) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
