"""Apple ARKit's 52 face blendshapes and which expression shapes of a model feed each of them.

The one table here, :data:`ARKIT_SOURCES`, maps each of the 52 ARKit names (``ARFaceAnchor
.BlendShapeLocation`` raw values, camelCase, in Apple's documentation order) to the ICT-FaceKit
expression shapes (``MorphableModel.exp_names`` of the ``ict`` model) that stand for it:

* 49 ARKit shapes have exactly one ICT shape; the ICT side suffix maps to ARKit's side word,
  ``_L`` -> ``Left``, ``_R`` -> ``Right``. Both name the **person's own** side: ``eyeBlink_L``'s
  displacement lies at +X in model space, the person's own left (model.py's convention; checked
  for every ``_L``/``_R`` pair by ``tests/test_animation_outputs.py`` on the real model), and
  ARKit's ``eyeBlinkLeft`` is the person's left eye too.
* 2 ARKit shapes are split by ICT into a left and a right half: ``browInnerUp`` (``browInnerUp_L``,
  ``browInnerUp_R``) and ``cheekPuff`` (``cheekPuff_L``, ``cheekPuff_R``). Their ARKit weight is the
  **mean** of the two halves' weights (rule :data:`SPLIT_RULE`). The ARKit shape is the symmetric
  whole, i.e. the sum of the halves; for the halves' deltas ``L``, ``R`` the weight ``w`` that best
  reproduces ``w_L L + w_R R`` by ``w (L + R)`` in least squares is
  ``(w_L |L|^2 + w_R |R|^2 + (w_L + w_R) L·R) / |L + R|^2``, which is the mean when the halves are
  mirror images (|L| = |R|). The max would overstate a one-sided raise as a full symmetric one.
  The sources of a split are listed left first.
* ``tongueOut`` has no ICT shape (ICT-FaceKit's 53 shapes have no tongue): its weight is always 0.

A model whose expression names are all ARKit names (a model fitted with ARKit blendshapes
directly) maps each name to itself. Any other model (SFM, BFM) declares no ARKit mapping:
:func:`arkit_sources` returns None for it.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

#: ARKit name -> ICT-FaceKit expression names feeding it (left half first for a split); 52 rows.
ARKIT_SOURCES: Dict[str, Tuple[str, ...]] = {
    "eyeBlinkLeft": ("eyeBlink_L",),
    "eyeLookDownLeft": ("eyeLookDown_L",),
    "eyeLookInLeft": ("eyeLookIn_L",),
    "eyeLookOutLeft": ("eyeLookOut_L",),
    "eyeLookUpLeft": ("eyeLookUp_L",),
    "eyeSquintLeft": ("eyeSquint_L",),
    "eyeWideLeft": ("eyeWide_L",),
    "eyeBlinkRight": ("eyeBlink_R",),
    "eyeLookDownRight": ("eyeLookDown_R",),
    "eyeLookInRight": ("eyeLookIn_R",),
    "eyeLookOutRight": ("eyeLookOut_R",),
    "eyeLookUpRight": ("eyeLookUp_R",),
    "eyeSquintRight": ("eyeSquint_R",),
    "eyeWideRight": ("eyeWide_R",),
    "jawForward": ("jawForward",),
    "jawLeft": ("jawLeft",),
    "jawRight": ("jawRight",),
    "jawOpen": ("jawOpen",),
    "mouthClose": ("mouthClose",),
    "mouthFunnel": ("mouthFunnel",),
    "mouthPucker": ("mouthPucker",),
    "mouthLeft": ("mouthLeft",),
    "mouthRight": ("mouthRight",),
    "mouthSmileLeft": ("mouthSmile_L",),
    "mouthSmileRight": ("mouthSmile_R",),
    "mouthFrownLeft": ("mouthFrown_L",),
    "mouthFrownRight": ("mouthFrown_R",),
    "mouthDimpleLeft": ("mouthDimple_L",),
    "mouthDimpleRight": ("mouthDimple_R",),
    "mouthStretchLeft": ("mouthStretch_L",),
    "mouthStretchRight": ("mouthStretch_R",),
    "mouthRollLower": ("mouthRollLower",),
    "mouthRollUpper": ("mouthRollUpper",),
    "mouthShrugLower": ("mouthShrugLower",),
    "mouthShrugUpper": ("mouthShrugUpper",),
    "mouthPressLeft": ("mouthPress_L",),
    "mouthPressRight": ("mouthPress_R",),
    "mouthLowerDownLeft": ("mouthLowerDown_L",),
    "mouthLowerDownRight": ("mouthLowerDown_R",),
    "mouthUpperUpLeft": ("mouthUpperUp_L",),
    "mouthUpperUpRight": ("mouthUpperUp_R",),
    "browDownLeft": ("browDown_L",),
    "browDownRight": ("browDown_R",),
    "browInnerUp": ("browInnerUp_L", "browInnerUp_R"),
    "browOuterUpLeft": ("browOuterUp_L",),
    "browOuterUpRight": ("browOuterUp_R",),
    "cheekPuff": ("cheekPuff_L", "cheekPuff_R"),
    "cheekSquintLeft": ("cheekSquint_L",),
    "cheekSquintRight": ("cheekSquint_R",),
    "noseSneerLeft": ("noseSneer_L",),
    "noseSneerRight": ("noseSneer_R",),
    "tongueOut": (),
}

#: the 52 ARKit blendshape names, in the order of :data:`ARKIT_SOURCES`.
ARKIT_NAMES: Tuple[str, ...] = tuple(ARKIT_SOURCES)

#: how the weights of a left/right split combine into one ARKit weight (see the module docstring).
SPLIT_RULE = "mean"

#: the 53 ICT-FaceKit expression names the table covers.
ICT_EXP_NAMES: frozenset = frozenset(n for names in ARKIT_SOURCES.values() for n in names)


def arkit_sources(exp_names: Sequence[str]) -> Optional[Dict[str, Tuple[int, ...]]]:
    """Which expression coefficients feed each ARKit shape, for a model's ``exp_names``.

    Returns:
        ARKit name -> indices into ``exp_names`` (left half first for a split, empty when the model
        has no shape for it), for all 52 names in :data:`ARKIT_NAMES` order; or None when the
        model declares no ARKit mapping (its names are neither ICT-FaceKit's 53 nor ARKit names).
    """
    names = list(exp_names)
    if not names or len(set(names)) != len(names):
        return None
    index = {n: i for i, n in enumerate(names)}
    if set(names) == ICT_EXP_NAMES:
        return {a: tuple(index[n] for n in src) for a, src in ARKIT_SOURCES.items()}
    if set(names) <= set(ARKIT_NAMES):
        return {a: ((index[a],) if a in index else ()) for a in ARKIT_NAMES}
    return None


def combine(weights: Sequence[float]) -> float:
    """One ARKit weight from the weights of its source shapes: the mean (:data:`SPLIT_RULE`); 0 if none."""
    weights = [float(w) for w in weights]
    return sum(weights) / len(weights) if weights else 0.0
