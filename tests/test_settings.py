"""The one configuration path (fitter.settings): config files in three formats, flat and sectioned
keys, the errors, and the command-line rule shared by ``prdlfit fit`` and ``prdlfit batch``."""
from __future__ import annotations

import json

import pytest

from fitter.batch.command import build_job
from fitter.batch.quality import QualityConfig
from fitter.cli import fit_settings
from fitter.config import FitConfig
from fitter.settings import Overrides, Settings, load_settings, read_config_file, route_keys, section_fields
from fitter.targets.pipeline import TargetConfig

FAKE = "test_batch:FakeBackend"

#: one set of settings, non-default in every section, written three ways
SECTIONED = {
    "fit": {"iters": 17, "optimizer": "lbfgs", "loss_weights": {"chamfer": 0.5}, "anchors": [8, 8]},
    "targets": {"size": 160, "margin": 0.25, "preprocess": {"outline": False}},
    "quality": {"max_nme": 0.2, "require_converged": False},
    "run": {"model": "sfm", "batch_size": 3, "overlay": False},
}
FLAT = {k: v for section in SECTIONED.values() for k, v in section.items()}

TOML = '''
iters = 17
optimizer = "lbfgs"
anchors = [8, 8]
size = 160
margin = 0.25
max_nme = 0.2
require_converged = false
model = "sfm"
batch_size = 3
overlay = false

[loss_weights]
chamfer = 0.5

[preprocess]
outline = false
'''


def _write(tmp_path, name, data):
    p = tmp_path / name
    if name.endswith(".json"):
        p.write_text(json.dumps(data))
    elif name.endswith(".toml"):
        p.write_text(data)
    else:
        import yaml

        p.write_text(yaml.safe_dump(data))
    return p


def _expected(s: Settings) -> None:
    assert s.fit.iters == 17 and s.fit.optimizer == "lbfgs" and s.fit.anchors == (8, 8)
    assert s.fit.loss_weights["chamfer"] == 0.5 and s.fit.loss_weights["prdl"] == FitConfig().loss_weights["prdl"]
    assert s.targets.size == 160 and s.targets.margin == 0.25 and s.targets.preprocess.outline is False
    assert s.quality == QualityConfig(min_part_iou=0.5, max_nme=0.2, require_converged=False)
    assert (s.run.model, s.run.batch_size, s.run.overlay) == ("sfm", 3, False)


@pytest.mark.parametrize("name, data", [
    ("sectioned.yaml", SECTIONED), ("flat.yml", FLAT), ("sectioned.json", SECTIONED), ("flat.json", FLAT),
    ("flat.toml", TOML),
])
def test_three_formats_flat_and_sectioned_give_the_same_settings(tmp_path, name, data):
    _expected(load_settings(_write(tmp_path, name, data)))


def test_sectioned_toml_and_mixed_keys(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('iters = 17\n[fit]\noptimizer = "lbfgs"\nanchors = [8, 8]\n[fit.loss_weights]\nchamfer = 0.5\n'
                 '[targets]\nsize = 160\nmargin = 0.25\n[targets.preprocess]\noutline = false\n'
                 '[quality]\nmax_nme = 0.2\nrequire_converged = false\n[run]\nmodel = "sfm"\nbatch_size = 3\n'
                 'overlay = false\n')
    _expected(load_settings(p))


def test_defaults_without_a_file():
    s = load_settings()
    assert s.fit == FitConfig(device=s.fit.device) and s.targets == TargetConfig() and s.quality == QualityConfig()
    assert s.fit.device in ("cpu", "cuda")  # auto resolved here
    assert load_settings(resolve=False).fit.device == "auto"
    assert s.run.batch_size is None and fit_settings(None, Overrides()).run.batch_size == 1


@pytest.mark.parametrize("text, message", [
    ("iters: 5\nbogus_key: 1\n", "unknown config keys: bogus_key"),
    ("fit:\n  bogus: 1\n", "unknown config keys: fit.bogus"),
    ("targets:\n  iters: 3\n", "unknown config keys: targets.iters"),  # a fit key in the wrong section
    ("fit: 3\n", "section fit must be a mapping"),
    ("iters: 5\nfit:\n  iters: 6\n", "iters is given twice"),
    ("iters: abc\n", "iters must be an integer, got 'abc'"),
    ("max_nme: lots\n", "max_nme must be a number"),
    ("batch_size: 0\n", "batch_size must be >= 1"),
    ("overlay: maybe\n", "overlay must be true or false"),
    ("- a\n- b\n", "must hold a mapping"),
    ("iters: [\n", "config"),
])
def test_bad_files_are_one_line_errors_naming_the_file(tmp_path, text, message):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(ValueError) as info:
        load_settings(p)
    line = str(info.value)
    assert message in line and line.startswith(f"config {p}:") and "\n" not in line


def test_bad_json_toml_and_suffix_name_the_file(tmp_path):
    for name, text in (("c.json", "{iters: 3"), ("c.toml", "iters = ["), ("c.ini", "iters=3")):
        p = tmp_path / name
        p.write_text(text)
        with pytest.raises(ValueError, match=f"config {p}:"):
            read_config_file(p)


def test_flat_routing_by_field_name_and_ambiguity():
    sections = {"a": ("x", "y"), "b": ("y", "z")}
    assert route_keys({"x": 1, "z": 2, "b": {"y": 3}}, sections, owner={}) == {"a": {"x": 1}, "b": {"z": 2, "y": 3}}
    with pytest.raises(ValueError, match="key 'y' is a setting of a and b; put it in a a: or b: section"):
        route_keys({"y": 1}, sections, owner={})
    assert route_keys({"y": 1}, sections, owner={"y": "b"}) == {"a": {}, "b": {"y": 1}}
    # the real sections share only `device`: flat it is the fit's, the facer's is set in targets:
    shared = [k for k in section_fields()["fit"] if k in section_fields()["targets"]]
    assert shared == ["device"]
    routed = route_keys({"device": "cpu", "targets": {"device": "cuda"}}, section_fields())
    assert routed["fit"] == {"device": "cpu"} and routed["targets"] == {"device": "cuda"}


def test_command_line_overrides_the_file(tmp_path):
    p = _write(tmp_path, "c.yaml", SECTIONED)
    s = load_settings(p, Overrides(iters=4, losses=("prdl=0",), size=224, model="ict", batch_size=1, overlay=True,
                                   max_nme=0.1, landmarks=tmp_path, seed=3, device="cpu"))
    assert s.fit.iters == 4 and s.fit.seed == 3 and s.fit.device == "cpu" and s.fit.optimizer == "lbfgs"
    assert s.fit.loss_weights["prdl"] == 0.0 and s.fit.loss_weights["chamfer"] == 0.5  # file's other weight kept
    assert s.targets.size == 224 and s.targets.margin == 0.25
    assert s.targets.landmarks == "file" and s.targets.landmark_file == str(tmp_path)
    assert s.quality.max_nme == 0.1 and s.quality.require_converged is False
    assert (s.run.model, s.run.batch_size, s.run.overlay) == ("ict", 1, True)
    _expected(load_settings(p, Overrides()))  # nothing given: the file's values stay
    with pytest.raises(ValueError, match="lr must be a finite number"):  # a bad command-line value
        load_settings(p, Overrides(lr=float("nan")))


def test_fit_and_batch_merge_file_and_command_line_the_same_way(tmp_path):
    p = _write(tmp_path, "c.yaml", SECTIONED)
    fit = fit_settings(p, Overrides(iters=4, rigid_iters=2, losses=("lmk=0.002",), seed=5, device="cpu"))
    job = build_job(str(tmp_path), str(tmp_path / "o"), None, "cpu", None, 0, "local", None, False, None, None, 4, 2,
                    ("lmk=0.002",), str(p), None, None, None, True, True, 5, None, False, FAKE)
    assert job.backend.fit_config == fit.fit and job.backend.target_config == fit.targets
    assert job.quality == fit.quality and job.backend.model == fit.run.model == "sfm"
    assert job.batch_size == fit.run.batch_size == 3 and job.backend.overlay is fit.run.overlay is False
    job = build_job(str(tmp_path), str(tmp_path / "o"), None, None, None, 0, "local", None, False, None, None, None,
                    None, (), None, None, None, None, True, True, None, None, False, FAKE)
    assert job.batch_size == 4 and job.backend.overlay is True and job.backend.fit_config.device in ("cpu", "cuda")
    assert isinstance(job.backend.target_config, TargetConfig)  # never None: fit.json records it
    ray = build_job(str(tmp_path), str(tmp_path / "o"), None, None, None, 0, "ray", None, False, None, None, None,
                    None, (), None, None, None, None, True, True, None, None, False, FAKE)
    assert ray.backend.fit_config.device == "auto"  # resolved by each Ray worker where it runs


def test_batch_command_reads_toml_and_run_section(tmp_path):
    from click.testing import CliRunner
    from conftest import make_corpus

    from fitter.cli import main

    make_corpus(tmp_path / "in", good=1)
    cfg = tmp_path / "c.toml"
    cfg.write_text('[run]\nmodel = "fake"\n[fit]\niters = 3\n')
    r = CliRunner().invoke(main, ["batch", str(tmp_path / "in"), "-o", str(tmp_path / "o"), "--backend", FAKE,
                                  "--workers", "0", "--no-progress", "--no-report", "--no-parquet",
                                  "--config", str(cfg)])
    assert r.exit_code == 0, r.output
    recorded = json.loads((tmp_path / "o" / "settings.json").read_text())
    assert recorded["model"] == "fake" and recorded["fit"]["iters"] == 3
    cfg.write_text("bogus = 1\n")
    r = CliRunner().invoke(main, ["batch", str(tmp_path / "in"), "-o", str(tmp_path / "o2"), "--backend", FAKE,
                                  "--workers", "0", "--config", str(cfg)])
    assert r.exit_code == 2 and f"config {cfg}: unknown config keys: bogus" in r.output


def test_fit_options_of_the_scripts_parse_as_json_and_are_checked():
    from fitter.config import PAPER_FIT_OPTIONS, PAPER_LOSS_WEIGHTS, parse_fit_options

    assert parse_fit_options(["rel_tol=1e-4", "anchors=[8, 8]", "camera=weak", "profile_id_prior=0"]) == {
        "rel_tol": 1e-4, "anchors": [8, 8], "camera": "weak", "profile_id_prior": 0}
    for bad, message in (("rel_tol", "KEY=VALUE"), ("no_such_field=1", "no_such_field"), ("rel_tol=-1", "rel_tol")):
        with pytest.raises(ValueError, match=message):
            parse_fit_options([bad])
    paper = FitConfig(loss_weights=PAPER_LOSS_WEIGHTS, **PAPER_FIT_OPTIONS)
    assert paper.model_landmarks == "vertices" and paper.profile_id_prior == paper.profile_exp_prior == 0.0
    assert paper.profile_jaw_weight == 1.0 and FitConfig().profile_jaw_weight < 1.0
    assert FitConfig().profile_id_prior > 0 and FitConfig().profile_exp_prior > 0  # the default leans on the priors at profile
