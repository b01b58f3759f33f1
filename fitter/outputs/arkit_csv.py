"""Result folders -> a Live Link Face–style CSV animation track (``prdlfit export --format arkit-csv``).

Layout, as the CSV takes recorded by Epic's Live Link Face app (read by Unreal's Live Link Face
importer and Blender add-ons) have it, one row per frame:

    Timecode,BlendShapeCount,EyeBlinkLeft,...,TongueOut,HeadYaw,HeadPitch,HeadRoll,
    LeftEyeYaw,LeftEyePitch,LeftEyeRoll,RightEyeYaw,RightEyePitch,RightEyeRoll

* the 52 ARKit weights in the app's column order (:data:`LIVE_LINK_FACE_ORDER`, ARKit names with a
  capital first letter); note the app lists ``JawRight`` before ``JawLeft`` and ``MouthRight``
  before ``MouthLeft``. Each column holds the weight of the ARKit shape of that name;
* ``BlendShapeCount`` is 61: the 52 weights plus 9 rotations (head, left eye, right eye). A fit
  has no gaze, so the six eye rotations are 0;
* ``Timecode`` is ``HH:MM:SS:FF.sss`` (``FF`` the frame within the second at ``fps``, ``.sss`` the
  sub-frame, always ``.000`` here); frame ``i`` of the track is the ``i``-th result;
* head yaw/pitch/roll are the fit's (``blendshapes.json`` ``head_pose``, the convention of
  :mod:`fitter.geometry.rotation`), in radians by default (``head_units="degrees"`` keeps degrees).
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Iterable, List, Sequence

from fitter.outputs.blendshapes import read_blendshapes_json
from fitter.outputs.fit_files import read_fit_json

#: the 52 ARKit names in Live Link Face's CSV column order.
LIVE_LINK_FACE_ORDER = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft", "eyeSquintLeft",
    "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight", "jawForward", "jawRight", "jawLeft", "jawOpen", "mouthClose",
    "mouthFunnel", "mouthPucker", "mouthRight", "mouthLeft", "mouthSmileLeft", "mouthSmileRight",
    "mouthFrownLeft", "mouthFrownRight", "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft",
    "mouthStretchRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft",
    "mouthUpperUpRight", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "noseSneerLeft", "noseSneerRight", "tongueOut",
)

HEAD_COLUMNS = ("HeadYaw", "HeadPitch", "HeadRoll")
EYE_COLUMNS = ("LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll", "RightEyeYaw", "RightEyePitch", "RightEyeRoll")
BLEND_SHAPE_COUNT = len(LIVE_LINK_FACE_ORDER) + len(HEAD_COLUMNS) + len(EYE_COLUMNS)  # 61
COMPLETE_MARKER = "fit.json"


def column_name(arkit_name: str) -> str:
    """``eyeBlinkLeft`` -> ``EyeBlinkLeft`` (Live Link Face's spelling)."""
    return arkit_name[0].upper() + arkit_name[1:]


def header() -> List[str]:
    return (["Timecode", "BlendShapeCount"] + [column_name(n) for n in LIVE_LINK_FACE_ORDER]
            + list(HEAD_COLUMNS) + list(EYE_COLUMNS))


def timecode(frame: int, fps: int) -> str:
    """Frame index -> ``HH:MM:SS:FF.000`` at ``fps`` frames per second."""
    if fps < 1 or frame < 0:
        raise ValueError(f"need fps >= 1 and frame >= 0, got fps={fps}, frame={frame}")
    seconds, ff = divmod(int(frame), int(fps))
    minutes, s = divmod(seconds, 60)
    h, m = divmod(minutes, 60)
    return f"{h:02d}:{m:02d}:{s:02d}:{ff:02d}.000"


def result_folders(paths: Iterable[Path], skip: Sequence[str] = ()) -> List[Path]:
    """The result folders of a track, in order.

    Each path is a result folder (it holds ``fit.json``) or a folder of result folders, taken in
    name order (sub-folders named in ``skip``, such as a batch's ``report``, are left out).
    Raises ValueError naming the first folder that is not a complete result.
    """
    out: List[Path] = []
    for p in paths:
        p = Path(p)
        if not p.is_dir():
            raise ValueError(f"{p}: not a folder")
        if (p / COMPLETE_MARKER).is_file():
            out.append(p)
            continue
        subs = sorted(d for d in p.iterdir() if d.is_dir() and d.name not in skip and not d.name.startswith("."))
        if not subs:
            raise ValueError(f"{p}: no fit.json (not a prdlfit result folder, nor a folder of them)")
        for d in subs:
            if not (d / COMPLETE_MARKER).is_file():
                raise ValueError(f"{d}: no fit.json (not a complete prdlfit result)")
        out.extend(subs)
    return out


def frame_values(folder: Path, head_units: str = "radians") -> List[float]:
    """The 61 values of one result: 52 weights (Live Link Face order), head yaw/pitch/roll, 6 eye zeros."""
    if head_units not in ("radians", "degrees"):
        raise ValueError(f"head_units must be radians or degrees, got {head_units!r}")
    path = folder / "blendshapes.json"
    if not path.is_file():
        model = read_fit_json(folder / COMPLETE_MARKER).get("model", {}).get("name", "?")
        raise ValueError(f"{folder}: no blendshapes.json (model {model!r} has no ARKit blendshape names)")
    data = read_blendshapes_json(path)
    weights = data["blendshapes"]
    pose = data["head_pose"]
    scale = math.pi / 180.0 if head_units == "radians" else 1.0
    head = [float(pose[k]) * scale for k in ("yaw", "pitch", "roll")]
    return [float(weights[n]) for n in LIVE_LINK_FACE_ORDER] + head + [0.0] * len(EYE_COLUMNS)


def arkit_csv_text(folders: Sequence[Path], fps: int = 30, head_units: str = "radians") -> str:
    """The CSV of ``folders`` (one row each, frame i = folders[i]); ValueError on a bad folder."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header())
    for i, folder in enumerate(folders):
        w.writerow([timecode(i, fps), BLEND_SHAPE_COUNT] + [f"{v:.6f}" for v in frame_values(folder, head_units)])
    return buf.getvalue()
