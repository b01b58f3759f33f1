"""A rendered photo through the whole front end, as ``prdlfit fit`` reads a photo: written as a PNG,
then ``build_targets(PNG, TargetConfig())``. Shared by the benchmarks that render their own faces
(``bench_cross_model.py``, ``bench_eye_closure.py``)."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from fitter.errors import ImageReadError, NoFaceError
from fitter.outputs.writer import write_png
from fitter.targets.pipeline import TargetConfig, build_targets
from fitter.targets.types import Targets


def through_front_end(image: np.ndarray, path: str) -> Tuple[Optional[Targets], Optional[str]]:
    """Write ``image`` [H, W, 3] uint8 RGB to ``path`` (PNG) and build the largest face's targets from
    the file: (targets, None), or (None, why) when the front end finds no face or cannot read it."""
    write_png(path, image)
    try:
        return build_targets(path, TargetConfig())[0], None
    except (NoFaceError, ImageReadError) as err:
        return None, str(err)
