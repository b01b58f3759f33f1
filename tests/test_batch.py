"""Batch fitting (fitter/batch): discovery, manifest, resume, failures, quality, engines.

Most tests inject :class:`FakeBackend` (cheap: no model, no optimization) through the backend's
``module:Class`` name; the real-fitter tests at the end run the SIGKILL/resume scenario and the Ray
engine on real photos with tiny iteration counts (marked slow, still part of the suite).
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import numpy as np
import pytest
from conftest import FAKE_BACKEND, make_corpus, noise_image
from PIL import Image

from fitter.batch import discover as D
from fitter.batch import manifest as M
from fitter.batch.backend import BackendSpec
from fitter.batch.discover import ImageItem
from fitter.batch.quality import QualityConfig, QualityMetrics, assess, cleaned_fit_labels, present_part_iou
from fitter.batch.runner import BatchJob, BatchStopped, JobLock, plan_job, run_job
from fitter.config import FitConfig
from fitter.errors import ImageReadError, ModelError, NoFaceError, PrdlfitError
from fitter.fallback import fit_with_fallback
from fitter.outputs.atomic import write_text_atomic
from fitter.result import Camera, FitResult, LossHistory
from fitter.targets.types import CropTransform, Targets
from morphable_models.model import PART_NAMES

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
FAKE = FAKE_BACKEND


# ------------------------------------------------------------------------------------------ fakes
def fake_targets(path: str) -> Targets:
    lm = np.zeros((68, 2), np.float32)
    lm[36], lm[45] = (2.0, 4.0), (6.0, 4.0)
    masks = np.zeros((8, 8), np.uint8)
    masks[2:6, 2:6] = PART_NAMES.index("skin") + 1
    return Targets(landmarks=lm, landmark_valid=np.ones(68, bool),
                   part_points={p: np.zeros((0, 2), np.float32) for p in PART_NAMES}, part_masks=masks,
                   occlusion=np.zeros((8, 8), bool), crop=CropTransform.identity(8, 8), source=str(path))


def fake_result(t: Targets) -> FitResult:
    bad = "nan" in Path(t.source).name
    v = np.full((4, 2), np.nan if bad else 1.0, np.float32)
    z = np.zeros(3, np.float32)
    return FitResult(model_name="fake", exp_names=[], id_coeffs=np.zeros(2, np.float32),
                     exp_coeffs=np.zeros(0, np.float32),
                     rotation=np.eye(3, dtype=np.float32), translation=z, euler_deg=z,
                     camera=Camera("perspective", 100.0, 4.0, 4.0, 8, 8), vertices_model=np.zeros((4, 3), np.float32),
                     vertices_camera=np.zeros((4, 3), np.float32), vertices_image=v, visible=np.ones(4, bool),
                     landmarks2d=t.landmarks.copy(), landmarks3d=np.zeros((68, 3), np.float32), part_points={},
                     history=LossHistory(), converged=True, iterations=10, seconds=0.01,
                     final_losses={"total": float("nan") if bad else 1.5, "prdl": 1.0}, targets=t)


class FakeBackend:
    """Stands in for the fitter. Images are decoded with PIL; a uniform image has no face; a name
    containing ``nan`` gives a NaN fit, ``poor`` a low Part IoU, ``crash`` kills the worker.
    Env: FAKE_FIT_DELAY (s per fit call), FAKE_FIT_LOG (file that gets one line per fitted image)."""

    def __init__(self, spec: BackendSpec):
        self.spec = spec

    @classmethod
    def preflight(cls, spec: BackendSpec) -> None:
        if spec.model != "fake":
            raise ModelError(f"cannot load model {spec.model}: file not found")

    def build_targets(self, path: str) -> List[Targets]:
        name = Path(path).name
        if "crash" in name:
            os._exit(3)
        try:
            with Image.open(path) as im:
                g = np.asarray(im.convert("L"), np.float32)
        except Exception as err:  # noqa: BLE001
            raise ImageReadError(f"cannot read image {name}: {type(err).__name__}") from None
        if g.std() < 1.0:
            raise NoFaceError(f"no face found in {name}")
        return [fake_targets(path)]

    def fit(self, targets):
        time.sleep(float(os.environ.get("FAKE_FIT_DELAY", "0")))
        log = os.environ.get("FAKE_FIT_LOG")
        if log:
            data = "".join(f"{Path(t.source).name}\n" for t in targets).encode()
            fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            os.write(fd, data)
            os.close(fd)
        return [fake_result(t) for t in targets]

    def write(self, result: FitResult, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out_dir / "mesh.obj", "v 0 0 0\n")
        write_text_atomic(out_dir / "fit.json", json.dumps({"source": result.targets.source, "pid": os.getpid()}))

    def metrics(self, result: FitResult) -> QualityMetrics:
        poor = "poor" in Path(result.targets.source).name
        return QualityMetrics(part_iou=0.2 if poor else 0.8, part_iou_parts={"skin": 0.2 if poor else 0.8},
                              nme=0.03, converged=True, iterations=result.iterations)


def job(inp: Path, out: Path, **kw) -> BatchJob:
    spec = BackendSpec(model=kw.pop("model", "fake"), fit_config=FitConfig(device="cpu"), backend=FAKE)
    kw.setdefault("workers", 0)
    kw.setdefault("progress", False)
    return BatchJob(input=inp, out=out, backend=spec, **kw)


def fit_log(monkeypatch, tmp_path) -> Path:
    log = tmp_path / "fits.log"
    monkeypatch.setenv("FAKE_FIT_LOG", str(log))
    return log


def fitted_names(log: Path) -> List[str]:
    return log.read_text().split() if log.exists() else []


# ---------------------------------------------------------------------------------- discovery
def test_discover_walks_sorted_with_unique_output_names(tmp_path):
    root = tmp_path / "in"
    for rel in ("b/x.jpg", "a/x.jpg", "x.png", "y.jpg", "sub/report.jpg", ".hidden.jpg", ".cache/z.jpg", "notes.txt"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"?")
    out = root / "results"  # an output folder inside the input is not walked
    (out / "old").mkdir(parents=True)
    (out / "old" / "overlay.png").write_bytes(b"?")
    items = D.discover(root, exclude=[out])
    assert [i.image for i in items] == ["a/x.jpg", "b/x.jpg", "sub/report.jpg", "x.png", "y.jpg"]
    names = {i.image: i.output for i in items}
    assert names["a/x.jpg"] == "a__x" and names["b/x.jpg"] == "b__x" and names["x.png"] == "x"
    assert names["y.jpg"] == "y"
    assert names["sub/report.jpg"].startswith("report_")  # 'report' is the job's own folder
    assert D.discover(root, exclude=[out]) == items  # deterministic
    assert all(Path(i.path).is_absolute() for i in items)


def test_output_names_same_stem_same_folder():
    assert D.output_names(["x.jpg", "x.png", "y.jpg"]) == ["x_jpg", "x_png", "y"]


def test_list_file_relative_absolute_comments_duplicates(tmp_path):
    (tmp_path / "imgs").mkdir()
    a = noise_image(tmp_path / "imgs" / "a.png")
    lst = tmp_path / "list.txt"
    lst.write_text(f"# photos\nimgs/a.png\n\n{a}\nimgs/missing.jpg\n")
    items = D.discover(lst)
    assert [i.image for i in items] == ["imgs/a.png", "imgs/missing.jpg"]  # the absolute duplicate dropped
    assert items[0].path == str(a.resolve()) and items[1].output == "missing"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        D.discover(tmp_path / "nope")
    (tmp_path / "data.csv").write_text("x")
    with pytest.raises(ValueError, match="must be a folder"):
        D.discover(tmp_path / "data.csv")


def test_shards_partition_stably_and_limit_takes_the_first(tmp_path):
    items = [ImageItem(f"img{i:03d}.jpg", f"/x/img{i:03d}.jpg", f"img{i:03d}") for i in range(200)]
    shards = [D.select(items, (i, 3)) for i in range(3)]
    seen = [it.image for s in shards for it in s]
    assert sorted(seen) == [it.image for it in items]  # disjoint and complete
    assert all(40 < len(s) < 95 for s in shards)
    # membership depends only on the name: removing other images does not move anyone
    assert D.select(items[50:], (1, 3)) == [it for it in shards[1] if it in items[50:]]
    assert D.select(items, (2, 3), limit=5) == shards[2][:5]
    assert D.select(items, limit=0) == []
    assert D.parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(ValueError, match="--shard"):
            D.parse_shard(bad)


# ----------------------------------------------------------------------------------- manifest
def test_manifest_tolerates_torn_line_and_latest_row_wins(tmp_path):
    path = tmp_path / "manifest.jsonl"
    with M.ManifestWriter(path) as w:
        w.append(M.ManifestRow("a.jpg", "failed", reason="read: boom", error_kind="read"))
        w.append(M.ManifestRow("b.jpg", "ok", output="b", final_losses={"total": float("nan")}))
        w.append(M.ManifestRow("a.jpg", "ok", output="a", part_iou=0.7))
    with open(path, "ab") as f:  # a process killed in the middle of a write
        f.write(b'{"image": "c.jpg", "status": "o')
    latest = M.read_latest(path)
    assert set(latest) == {"a.jpg", "b.jpg"}
    assert latest["a.jpg"].status == "ok" and latest["a.jpg"].part_iou == 0.7
    assert latest["b.jpg"].final_losses == {"total": None}  # NaN stored as null: valid JSON
    w = M.ManifestWriter(path)  # reopening cuts the torn tail, so the next row starts on its own line
    assert w.repaired_bytes > 0
    w.append(M.ManifestRow("c.jpg", "ok", output="c"))
    w.close()
    lines = path.read_bytes().splitlines()
    assert len(lines) == 4 and all(json.loads(l)["image"] for l in lines)
    assert set(M.read_index(path)) == {"a.jpg", "b.jpg", "c.jpg"}


def test_manifest_failed_append_leaves_file_valid(tmp_path, monkeypatch):
    path = tmp_path / "manifest.jsonl"
    w = M.ManifestWriter(path)
    w.append(M.ManifestRow("a.jpg", "ok", output="a"))
    before = path.read_bytes()
    real_write = os.write

    def short_write(fd, data):  # the disk fills up halfway through the line
        real_write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(M.os, "write", short_write)
    with pytest.raises(OSError):
        w.append(M.ManifestRow("b.jpg", "ok", output="b"))
    monkeypatch.undo()
    assert path.read_bytes() == before
    w.append(M.ManifestRow("c.jpg", "ok", output="c"))
    w.close()
    assert set(M.read_latest(path)) == {"a.jpg", "c.jpg"}


def test_parquet_export_has_latest_rows_and_flat_columns(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "manifest.jsonl"
    with M.ManifestWriter(path) as w:
        w.append(M.ManifestRow("a.jpg", "failed", reason="fit: x", error_kind="fit"))
        w.append(M.ManifestRow("a.jpg", "ok", output="a", part_iou=0.6, part_iou_parts={"nose": 0.5},
                               final_losses={"total": 2.0, "prdl": 1.0}, quality="suspect",
                               quality_reasons=["not converged (20 iterations)"], iterations=20, converged=False))
        w.append(M.ManifestRow("b.jpg", "failed", reason="no_face: none", error_kind="no_face"))
    assert M.export_parquet(path, tmp_path / "m.parquet") == 2
    t = pq.read_table(tmp_path / "m.parquet").to_pylist()
    assert [r["image"] for r in t] == ["a.jpg", "b.jpg"]
    assert t[0]["status"] == "ok" and t[0]["iou/nose"] == 0.5 and t[0]["iou/skin"] is None
    assert t[0]["loss/prdl"] == 1.0 and t[0]["quality_reasons"] == ["not converged (20 iterations)"]
    assert t[1]["error_kind"] == "no_face" and t[1]["loss/total"] is None


# ------------------------------------------------------------------------------------ quality
def test_quality_flags_and_metric_helpers():
    q = QualityConfig(min_part_iou=0.5, max_nme=0.08, require_converged=True)
    assert assess(QualityMetrics(0.7, nme=0.05, converged=True), q).flag == "good"
    flag = assess(QualityMetrics(0.3, nme=0.2, converged=False, iterations=30), q)
    assert flag.flag == "suspect" and len(flag.reasons) == 3
    assert "part IoU 0.300 < 0.5" in flag.reasons[0] and "NME" in flag.reasons[1] and "30" in flag.reasons[2]
    assert assess(QualityMetrics(None, nme=None, converged=True), QualityConfig(None, None, False)).flag == "good"
    with pytest.raises(ValueError):
        QualityConfig(min_part_iou=1.5)
    skin, nose = PART_NAMES.index("skin") + 1, PART_NAMES.index("nose") + 1
    pred = np.zeros((10, 10), np.uint8)
    pred[:, :] = skin
    pred[4:6, 4:6] = nose
    occ = np.zeros((10, 10), bool)
    occ[9] = True
    cleaned = cleaned_fit_labels(pred, occ, np.array([0.0, 1.0, -3.0]))  # skin with y < 3 is forehead
    body = cleaned[3:9]
    assert (cleaned[:3] == 0).all() and (cleaned[9] == 0).all() and (body[body != nose] == skin).all()
    assert cleaned[5, 5] == nose
    target = np.zeros((10, 10), np.uint8)
    target[3:9] = skin
    ious = present_part_iou(cleaned, target)
    assert set(ious) == {"skin"} and ious["skin"] == pytest.approx(56 / 60)


# ------------------------------------------------------------------------- fit fallback (stages)
def test_fit_fallback_isolates_failures():
    ts = [fake_targets(f"/x/{n}.png") for n in ("a", "boom", "c", "has_nan")]
    calls = []

    def fit(batch):
        calls.append([Path(t.source).stem for t in batch])
        if any("boom" in t.source for t in batch):
            raise RuntimeError("CUDA out of memory")
        return [fake_result(t) for t in batch]

    out = fit_with_fallback(fit, ts)
    assert calls[0] == ["a", "boom", "c", "has_nan"] and ["a"] in calls and ["boom"] in calls
    assert [o.result is not None for o in out] == [True, False, True, False]
    assert out[1].kind == "fit" and "RuntimeError: CUDA out of memory" in out[1].reason
    assert out[3].kind == "nan" and out[3].reason.startswith("nan:")
    calls.clear()
    out = fit_with_fallback(lambda b: [fake_result(t) for t in b], [ts[0], ts[3], ts[2]])
    assert out[0].batch_size == 3 and out[1].kind == "nan" and out[2].result is not None


# -------------------------------------------------------------------------- runs (fake backend)
def test_run_records_good_and_bad_images(tmp_path, monkeypatch):
    corpus = make_corpus(tmp_path / "in")
    log = fit_log(monkeypatch, tmp_path)
    stats = run_job(job(tmp_path / "in", tmp_path / "out", batch_size=3), log=lambda m: None)
    rows = M.read_latest(tmp_path / "out" / "manifest.jsonl")
    assert set(rows) == set(corpus["good"]) | set(corpus["bad"])
    for name in corpus["good"]:
        r = rows[name]
        assert r.status == "ok" and r.quality == "good" and r.reason == ""
        assert (tmp_path / "out" / r.output / "fit.json").is_file() and r.part_iou == 0.8
    for name, kind in corpus["bad"].items():
        r = rows[name]
        assert r.status == "failed" and r.error_kind == kind and r.reason.startswith(kind + ":"), r
        assert "\n" not in r.reason and name.split(".")[0] in r.reason or kind == "nan"
        assert not (tmp_path / "out" / Path(name).stem).exists()
    assert stats.ok == len(corpus["good"]) and stats.failed == len(corpus["bad"])
    assert sorted(set(fitted_names(log))) == sorted(corpus["good"] + ["has_nan.png"])
    summary = json.loads((tmp_path / "out" / "report" / "summary.json").read_text())
    assert summary["ok"] == 6 and summary["failed"] == 5 and summary["failures_by_kind"]["read"] == 3
    assert (tmp_path / "out" / "report" / "histograms.png").stat().st_size > 1000
    assert (tmp_path / "out" / "manifest.parquet").is_file()


def test_resume_skips_done_and_refits_incomplete(tmp_path, monkeypatch):
    make_corpus(tmp_path / "in", good=5)
    log = fit_log(monkeypatch, tmp_path)
    j = job(tmp_path / "in", tmp_path / "out", batch_size=2, report=False, parquet=False)
    run_job(j, log=lambda m: None)
    n_first = len(fitted_names(log))
    out = tmp_path / "out"
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("*/fit.json")}
    stats = run_job(j, log=lambda m: None)
    assert stats.planned == 0 and stats.done_before == 5 and len(fitted_names(log)) == n_first
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/fit.json")} == mtimes
    # img01: outputs lost (fit.json gone) -> refit; img02: killed after its outputs, before its row
    (out / "img01" / "fit.json").unlink()
    lines = (out / "manifest.jsonl").read_bytes().splitlines(keepends=True)
    (out / "manifest.jsonl").write_bytes(b"".join(l for l in lines if b'"img02.png"' not in l))
    (out / "img02" / "stale.tmp").write_text("from the killed attempt")
    stats = run_job(j, log=lambda m: None)
    assert stats.planned == 2 and stats.ok == 2
    assert sorted(fitted_names(log)[n_first:]) == ["img01.png", "img02.png"]
    assert not (out / "img02" / "stale.tmp").exists()  # the incomplete folder was cleared
    rows = M.read_latest(out / "manifest.jsonl")
    assert all(rows[f"img{i:02d}.png"].status == "ok" for i in range(5))


def test_failed_images_are_skipped_unless_retry_failed(tmp_path, monkeypatch):
    corpus = make_corpus(tmp_path / "in", good=2)
    log = fit_log(monkeypatch, tmp_path)
    j = job(tmp_path / "in", tmp_path / "out", report=False, parquet=False)
    run_job(j, log=lambda m: None)
    n = len(fitted_names(log))
    stats = run_job(j, log=lambda m: None)
    assert stats.planned == 0 and stats.failed_skipped == len(corpus["bad"])
    j.retry_failed = True
    stats = run_job(j, log=lambda m: None)
    assert stats.planned == len(corpus["bad"]) and stats.failed == len(corpus["bad"])
    assert fitted_names(log)[n:] == ["has_nan.png"]  # the others fail again before fitting
    assert len((tmp_path / "out" / "manifest.jsonl").read_text().splitlines()) == 2 + 2 * len(corpus["bad"])


def test_limit_and_shard_bound_the_job(tmp_path, monkeypatch):
    make_corpus(tmp_path / "in", good=6)
    j = job(tmp_path / "in", tmp_path / "out", limit=3, report=False, parquet=False)
    assert run_job(j, log=lambda m: None).planned == 3
    assert run_job(j, log=lambda m: None).planned == 0  # the same command: the same 3 images
    first = set(M.read_latest(tmp_path / "out" / "manifest.jsonl"))
    assert first == {i.image for i in D.discover(tmp_path / "in")[:3]}
    j.limit, j.shard = None, (0, 2)
    stats = run_job(j, log=lambda m: None)
    shard0 = {i.image for i in D.discover(tmp_path / "in") if D.shard_of(i.image, 2) == 0}
    rows = set(M.read_latest(tmp_path / "out" / "manifest.jsonl"))
    assert stats.total == len(shard0) and shard0 <= rows and rows - first <= shard0


def test_disk_full_stops_cleanly_and_rerun_finishes(tmp_path, monkeypatch):
    make_corpus(tmp_path / "in", good=6)
    log = fit_log(monkeypatch, tmp_path)
    calls = {"n": 0}
    real_write = FakeBackend.write

    def full_disk(self, result, out_dir):
        calls["n"] += 1
        if calls["n"] >= 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(out_dir / "mesh.obj"))
        real_write(self, result, out_dir)

    monkeypatch.setattr(FakeBackend, "write", full_disk)
    j = job(tmp_path / "in", tmp_path / "out", batch_size=2, report=False, parquet=False)
    with pytest.raises(BatchStopped, match="disk full") as info:
        run_job(j, log=lambda m: None)
    assert info.value.exit_code == 75
    rows = M.read_latest(tmp_path / "out" / "manifest.jsonl")  # valid, with the failure recorded
    full = [r for r in rows.values() if r.error_kind == "enospc"]
    assert full and all("No space left on device" in r.reason for r in full)
    assert len(rows) < 11  # it stopped instead of failing every later image
    monkeypatch.setattr(FakeBackend, "write", real_write)
    stats = run_job(j, log=lambda m: None)  # space freed: the same command finishes (enospc is retried)
    rows = M.read_latest(tmp_path / "out" / "manifest.jsonl")
    assert stats.stopped == "" and all(rows[f"img{i:02d}.png"].status == "ok" for i in range(6))
    assert len(fitted_names(log)) >= 6


def test_read_only_or_unusable_output_dir_fails_before_work(tmp_path, monkeypatch):
    make_corpus(tmp_path / "in", good=1)
    # We run as root, so chmod cannot make a folder read-only: use a path under a regular file ...
    (tmp_path / "file").write_text("x")
    with pytest.raises(PrdlfitError, match="cannot create output folder"):
        run_job(job(tmp_path / "in", tmp_path / "file" / "out"), log=lambda m: None)
    # ... and a folder whose write probe fails as on a read-only mount (EROFS).
    import fitter.outputs.folder as F  # the batch runner's output-folder checks live here

    def ro(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(F.tempfile, "mkstemp", ro)
    (tmp_path / "ro").mkdir()
    with pytest.raises(PrdlfitError, match="not writable: Read-only file system"):
        run_job(job(tmp_path / "in", tmp_path / "ro"), log=lambda m: None)
    assert list((tmp_path / "ro").iterdir()) == []


def test_missing_model_and_busy_output_fail_before_work(tmp_path):
    make_corpus(tmp_path / "in", good=1)
    with pytest.raises(ModelError, match="cannot load model"):
        run_job(job(tmp_path / "in", tmp_path / "out", model="nope.obj"), log=lambda m: None)
    assert not (tmp_path / "out" / "manifest.jsonl").exists()
    lock = JobLock(tmp_path / "out")
    try:
        with pytest.raises(PrdlfitError, match="another batch run"):
            run_job(job(tmp_path / "in", tmp_path / "out"), log=lambda m: None)
    finally:
        lock.release()


class BrokenBackend(FakeBackend):
    """Passes the parent's preflight but cannot be built in a worker (e.g. no GPU memory there)."""

    def __init__(self, spec):
        raise RuntimeError("CUDA error: out of memory")


def test_worker_that_cannot_start_stops_the_run(tmp_path):
    make_corpus(tmp_path / "in", good=2)
    j = job(tmp_path / "in", tmp_path / "out", report=False, parquet=False)
    j.backend.backend = "test_batch:BrokenBackend"
    with pytest.raises(PrdlfitError, match="worker setup failed: RuntimeError: CUDA error") as info:
        run_job(j, log=lambda m: None)
    assert not isinstance(info.value, BatchStopped)
    assert M.read_latest(tmp_path / "out" / "manifest.jsonl") == {}  # no image blamed for it


def test_plan_never_reuses_a_finished_folder_of_another_image(tmp_path):
    out = tmp_path / "out"
    (out / "x").mkdir(parents=True)
    (out / "x" / "fit.json").write_text("{}")
    index = {"old/x.jpg": M.RowState("ok", "", "x", 0)}
    items = [ImageItem("x.jpg", "/in/x.jpg", "x")]
    plan = plan_job(items, index, out, retry_failed=False)
    assert plan.todo[0].output.startswith("x_") and plan.todo[0].image == "x.jpg"


def test_cli_one_line_errors(tmp_path):
    from click.testing import CliRunner

    from fitter.batch.command import batch_command

    make_corpus(tmp_path / "in", good=1)
    (tmp_path / "file").write_text("x")
    base = [str(tmp_path / "in"), "--backend", FAKE, "--workers", "0", "--no-progress"]
    runner = CliRunner()
    r = runner.invoke(batch_command, base + ["-o", str(tmp_path / "file" / "o"), "--model", "fake"])
    assert r.exit_code == 1 and r.stderr.strip().startswith("error: cannot create output folder")
    assert len(r.stderr.strip().splitlines()) == 1
    r = runner.invoke(batch_command, base + ["-o", str(tmp_path / "o"), "--model", "missing.obj"])
    assert r.exit_code == 5 and r.stderr.strip() == "error: cannot load model missing.obj: file not found"
    r = runner.invoke(batch_command, base + ["-o", str(tmp_path / "o"), "--model", "fake", "--shard", "3/2"])
    assert r.exit_code == 2 and "--shard 3/2" in r.stderr
    r = runner.invoke(batch_command, base + ["-o", str(tmp_path / "o"), "--model", "fake", "--loss", "bogus=1"])
    assert r.exit_code == 2 and "unknown loss term 'bogus'" in r.stderr
    r = runner.invoke(batch_command, base + ["-o", str(tmp_path / "o"), "--model", "fake", "--max-nme", "0.1"])
    assert r.exit_code == 0, r.output
    assert M.read_latest(tmp_path / "o" / "manifest.jsonl")["img00.png"].status == "ok"


def test_config_file_sections_and_command_line_precedence(tmp_path):
    from fitter.batch.command import build_job

    cfg = tmp_path / "c.yaml"
    cfg.write_text("iters: 50\nloss_weights: {prdl: 0.5}\nquality: {max_nme: 0.2, require_converged: false}\n"
                   "fit: {rigid_iters: 7, anchors: [8, 8]}\n")
    j = build_job(str(tmp_path), str(tmp_path / "o"), "fake", "cpu", 3, 0, "local", None, False, 5, "1/3", None,
                  None, ("lmk=0.002",), str(cfg), 0.4, None, None, True, False, 11, False, False, FAKE)
    fc = j.backend.fit_config
    assert (fc.iters, fc.rigid_iters, fc.anchors, fc.seed, fc.device) == (50, 7, (8, 8), 11, "cpu")
    assert fc.loss_weights["prdl"] == 0.5 and fc.loss_weights["lmk"] == 0.002
    assert j.quality == QualityConfig(min_part_iou=0.4, max_nme=0.2, require_converged=False)
    assert (j.shard, j.limit, j.batch_size, j.parquet) == ((1, 3), 5, 3, False)
    cfg.write_text("quality: {max_nmee: 1}\n")
    with pytest.raises(ValueError, match="unknown config keys: quality.max_nmee"):
        build_job(str(tmp_path), "o", "fake", "auto", 3, 0, "local", None, False, None, None, None, None, (),
                  str(cfg), None, None, None, True, True, None, True, False, FAKE)


# --------------------------------------------------------------------- process pool, SIGKILL
@pytest.mark.slow
def test_local_pool_survives_a_worker_that_dies(tmp_path, monkeypatch):
    make_corpus(tmp_path / "in", good=3)
    noise_image(tmp_path / "in" / "crash.png", seed=5)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), str(REPO)]))
    stats = run_job(job(tmp_path / "in", tmp_path / "out", workers=1, batch_size=4, report=False, parquet=False),
                    log=lambda m: None)
    rows = M.read_latest(tmp_path / "out" / "manifest.jsonl")
    assert rows["crash.png"].status == "failed" and rows["crash.png"].error_kind == "worker_crash"
    assert all(rows[f"img{i:02d}.png"].status == "ok" for i in range(3))
    assert stats.ok == 3 and rows["blank.png"].error_kind == "no_face"


def _wait_for_ok_rows(manifest: Path, n: int, proc, timeout: float) -> int:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if manifest.exists():
            ok = sum(1 for r in M.read_latest(manifest).values() if r.status == "ok")
            if ok >= n:
                return ok
        if proc.poll() is not None:
            raise AssertionError(f"batch ended (rc {proc.returncode}) before it could be killed")
        time.sleep(0.05)
    raise AssertionError("no progress before the timeout")


def _children(pid: int) -> List[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _kill_and_resume(inp: Path, out: Path, args: List[str], env: dict, kill_after: int, timeout: float):
    """Run, SIGKILL once ``kill_after`` images are ok, rerun to the end; return (killed-run ok rows
    with their fit.json mtimes, final latest rows, all raw rows)."""
    cmd = [sys.executable, "-m", "fitter.batch", str(inp), "-o", str(out), "--no-progress"] + args
    log = open(out.parent / "killed_run.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log)
    try:
        _wait_for_ok_rows(out / "manifest.jsonl", kill_after, proc, timeout)
        workers = _children(proc.pid)
        assert workers, "the batch runs its fits in worker processes"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    t0 = time.time()  # the workers die with the parent: no orphan keeps writing outputs
    while any(_alive(pid) for pid in workers) and time.time() - t0 < 10:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in workers)
    first = {k: r for k, r in M.read_latest(out / "manifest.jsonl").items() if r.status == "ok"}
    assert first, "nothing finished before the kill"
    mtimes = {k: (out / r.output / "fit.json").stat().st_mtime_ns for k, r in first.items()}
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr
    raw = [json.loads(l) for l in (out / "manifest.jsonl").read_text().splitlines()]
    return mtimes, M.read_latest(out / "manifest.jsonl"), raw


def _assert_exactly_once(out: Path, good: List[str], bad: List[str], mtimes: dict, latest: dict, raw: List[dict]):
    for name in good:
        ok_rows = [d for d in raw if d["image"] == name and d["status"] == "ok"]
        assert len(ok_rows) == 1, (name, ok_rows)  # fitted exactly once
        assert (out / ok_rows[0]["output"] / "fit.json").is_file()
    for name, t in mtimes.items():  # the first run's outputs were not rewritten
        assert (out / latest[name].output / "fit.json").stat().st_mtime_ns == t
    for name in bad:
        assert latest[name].status == "failed" and latest[name].reason, latest[name]
    assert set(latest) == set(good) | set(bad)
    dirs = {p.name for p in out.iterdir() if p.is_dir() and p.name != "report"}
    assert dirs == {latest[n].output for n in good}  # no stray folders of killed attempts


@pytest.mark.slow
def test_sigkill_midway_then_resume_fake_backend(tmp_path):
    corpus = make_corpus(tmp_path / "in", good=12)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), str(REPO)]), FAKE_FIT_DELAY="0.25")
    mtimes, latest, raw = _kill_and_resume(
        tmp_path / "in", tmp_path / "out", ["--backend", FAKE, "--model", "fake", "--workers", "1",
                                            "--batch-size", "2"], env, kill_after=4, timeout=120)
    _assert_exactly_once(tmp_path / "out", corpus["good"], list(corpus["bad"]), mtimes, latest, raw)
    assert (tmp_path / "out" / "manifest.parquet").is_file()


# ------------------------------------------------------------------ the real fitter (slow, run)
def _real_fitter_available() -> str:
    import importlib.util

    for mod in ("fitter.optimize", "fitter.targets.pipeline", "fitter.outputs.writer", "morphable_models.registry"):
        if importlib.util.find_spec(mod) is None:
            return f"{mod} is not there yet"
    return ""


@pytest.fixture(scope="module")
def real_env(shared, tmp_path_factory):
    missing = _real_fitter_available()
    if missing:
        pytest.skip(f"real fitter not available: {missing}")
    model = shared / "models" / "ict-facekit"
    env = dict(os.environ, PYTHONPATH=str(REPO), MPLBACKEND="Agg")
    return env, str(model)


def _real_args(model: str, tmp_path: Path) -> List[str]:
    """Tiny fits: 10 + 10 iterations, a coarse PRDL (12x12 anchors, few points); photos over 3 MP
    are downscaled on read (the default limit is 40 MP). Via --config."""
    cfg = tmp_path / "small.yaml"
    cfg.write_text("fit:\n  anchors: [12, 12]\n  max_skin_points: 400\n  max_part_points: 120\n"
                   "targets:\n  max_pixels: 3000000\n")
    return ["--model", model, "--device", "cpu", "--rigid-iters", "10", "--iters", "10", "--batch-size", "4",
            "--no-overlay", "--config", str(cfg)]


def make_real_corpus(shared: Path, root: Path) -> dict:
    """18 inputs: real photos, hard-but-valid variants, and bad files; names sort bad ones first."""
    import cv2

    imgs = shared / "images"
    root.mkdir(parents=True)
    good, bad, either = [], [], []

    def put(name: str, src: Path):
        shutil.copyfile(src, root / name)
        good.append(name)

    celeba = sorted((imgs / "celeba-samples").glob("*.jpg"))
    helen = sorted((imgs / "300w-train").glob("*.jpg"))[:2]
    for i, p in enumerate(celeba[:5]):
        put(f"c{i}_{p.name}", p)
    put("d2_3ddfa.png", imgs / "3ddfa-v3-examples" / "2.png")
    for i, p in enumerate(helen):
        put(f"h{i}_{p.name}", p)
    photo = Image.open(celeba[0]).convert("RGB")
    photo.convert("L").save(root / "g_gray.jpg")
    rgba = photo.convert("RGBA")
    rgba.putalpha(200)
    rgba.save(root / "g_rgba.png")
    bgr16 = cv2.cvtColor(np.asarray(photo), cv2.COLOR_RGB2BGR).astype(np.uint16) * 257
    cv2.imwrite(str(root / "g_16bit.png"), bgr16)
    # "huge": over the read limit (lowered to 3 MP by the test config, see _real_args), so it is
    # downscaled on read; a 40+ MP photo takes the same path
    photo.resize((2000, 2450), Image.BILINEAR).save(root / "g_huge.jpg", quality=85)
    two = Image.new("RGB", (2 * photo.width, photo.height))
    two.paste(photo, (0, 0))
    two.paste(Image.open(celeba[1]).convert("RGB").resize(photo.size), (photo.width, 0))
    two.save(root / "g_two_faces.jpg")
    good += ["g_gray.jpg", "g_rgba.png", "g_16bit.png", "g_huge.jpg", "g_two_faces.jpg"]
    canvas = Image.new("RGB", (900, 900), (120, 120, 120))
    canvas.paste(photo.resize((36, 44)), (430, 420))
    canvas.save(root / "t_tiny_face.jpg")
    either.append("t_tiny_face.jpg")
    (root / "b_empty.jpg").write_bytes(b"")
    raw = celeba[2].read_bytes()
    (root / "b_truncated.jpg").write_bytes(raw[: len(raw) // 4])
    (root / "b_text.jpg").write_text("not an image\n")
    Image.new("RGB", (400, 400), (90, 90, 90)).save(root / "b_blank_no_face.png")
    bad += ["b_empty.jpg", "b_truncated.jpg", "b_text.jpg", "b_blank_no_face.png"]
    return {"good": good, "bad": bad, "either": either}


def test_real_backend_missing_or_wrong_model_fails_before_work(tmp_path, real_env):
    from click.testing import CliRunner

    from fitter.batch.command import batch_command

    (tmp_path / "in").mkdir()
    noise_image(tmp_path / "in" / "a.png")
    (tmp_path / "wrong.npz").write_text("not a model")
    cases = ((str(tmp_path / "missing.npz"), "no such file"), (str(tmp_path / "wrong.npz"), "is not a model file"))
    for model, words in cases:
        r = CliRunner().invoke(batch_command, [str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", model,
                                               "--workers", "0", "--no-progress"])
        assert r.exit_code == ModelError.exit_code, r.output
        assert r.stderr.startswith("error: ") and words in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "manifest.jsonl").exists()


@pytest.mark.slow
def test_sigkill_midway_then_resume_real_fitter(shared, tmp_path, real_env):
    env, model = real_env
    corpus = make_real_corpus(shared, tmp_path / "in")
    out = tmp_path / "out"
    mtimes, latest, raw = _kill_and_resume(tmp_path / "in", out, _real_args(model, tmp_path) + ["--workers", "1"], env,
                                           kill_after=2, timeout=600)
    _assert_exactly_once(out, corpus["good"] + [n for n in corpus["either"] if latest[n].ok],
                         corpus["bad"] + [n for n in corpus["either"] if not latest[n].ok], mtimes, latest, raw)
    kinds = {n: latest[n].error_kind for n in corpus["bad"]}
    assert kinds == {"b_empty.jpg": "read", "b_truncated.jpg": "read", "b_text.jpg": "read",
                     "b_blank_no_face.png": "no_face"}
    ok = latest["c0_" + sorted((shared / "images" / "celeba-samples").glob("*.jpg"))[0].name]
    assert ok.quality in ("good", "suspect") and 0.0 < ok.part_iou <= 1.0 and ok.nme is not None
    assert latest["g_two_faces.jpg"].ok  # the largest face is fitted (targets.all_faces is off)
    assert (out / "manifest.parquet").is_file() and (out / "report" / "histograms.png").is_file()


@pytest.mark.slow
def test_ray_engine_real_fitter(shared, tmp_path, real_env):
    pytest.importorskip("ray", reason="--engine ray needs Ray, an optional package (pip install \".[ray]\")")
    env, model = real_env
    inp = tmp_path / "in"
    inp.mkdir()
    for p in sorted((shared / "images" / "celeba-samples").glob("*.jpg"))[:3]:
        shutil.copyfile(p, inp / p.name)
    (inp / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    cmd = [sys.executable, "-m", "fitter.batch", str(inp), "-o", str(tmp_path / "out"), "--no-progress",
           "--engine", "ray", "--workers", "2"] + _real_args(model, tmp_path) + ["--batch-size", "2"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = M.read_latest(tmp_path / "out" / "manifest.jsonl")
    assert sorted(n for n, r_ in rows.items() if r_.ok) == sorted(p.name for p in inp.glob("0*.jpg"))
    assert rows["broken.jpg"].error_kind == "read"
    assert all((tmp_path / "out" / rows[n].output / "fit.json").is_file() for n in rows if rows[n].ok)
    assert len({r_.worker for r_ in rows.values()}) == 2  # two batches went to two Ray actors
