"""Shared fixtures. The data folder is ../shared next to the repo, or $PRDLFIT_SHARED."""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    return Path(os.environ.get("PRDLFIT_SHARED", REPO.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def shared() -> Path:
    d = shared_dir()
    if not d.is_dir():
        pytest.skip(f"shared data folder not found at {d} (set PRDLFIT_SHARED)")
    return d


@pytest.fixture(scope="session")
def eos_py():
    """eos-py (an optional package, in the ``dev`` extra), which reads the Surrey Face Model files."""
    return pytest.importorskip("eos", reason="reading the Surrey Face Model needs eos-py (pip install eos-py, "
                                             "or pip install -e \".[dev]\")")


@pytest.fixture(scope="session")
def model_cache(shared):
    """Model cache for tests: $PRDLFIT_CACHE = <repo>/.cache (gitignored, reused across runs) and the
    ICT-FaceKit / SFM sources from the shared folder. Yields the cache root."""
    cache = REPO / ".cache"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PRDLFIT_CACHE", str(cache))
        mp.setenv("PRDLFIT_ICT_SOURCE", str(shared / "models" / "ict-facekit"))
        mp.setenv("PRDLFIT_SFM_SOURCE", str(shared / "models" / "sfm-3448"))
        yield cache


@pytest.fixture(scope="session")
def ict_model(model_cache):
    """The ICT-FaceKit model on CPU (converted into the test cache on first use)."""
    import morphable_models

    return morphable_models.load("ict")


@pytest.fixture(scope="session")
def fake_model_file(tmp_path_factory):
    """The synthetic sphere model of test_outputs saved as a model cache file (loads instantly)."""
    from morphable_models.cache import save_model
    from test_outputs import make_fake_model

    path = tmp_path_factory.mktemp("model") / "fake.npz"
    save_model(make_fake_model(), path, converter="test", converter_version=1)
    return path


@pytest.fixture(scope="session")
def fake_result(tmp_path_factory):
    """A per-image output folder written from the fake fit (the sphere model of test_outputs)."""
    from fitter.outputs.writer import write_fit_outputs
    from test_outputs import fake_photo, make_fake_fit, make_fake_model

    model = make_fake_model()
    out = tmp_path_factory.mktemp("res") / "photo"
    write_fit_outputs(make_fake_fit(model), model, out, original_image=fake_photo())
    return out
