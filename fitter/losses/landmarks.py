"""68-point landmark term with dynamic jaw-contour marching.

iBUG-68 order: 0-16 jaw (0 at the person's right = image left of a frontal face, 8 chin),
17-21 / 22-26 right / left brow, 27-30 nose bridge, 31-35 nose base, 36-41 / 42-47 right / left eye,
48-59 outer lip, 60-67 inner lip.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from morphable_models.model import EYE_LIDS_68

#: Weight of the jaw contour points 0-16 in the landmark term (FitConfig.jaw_landmark_weight; 0.5
#: until session 20, when the jaw's weight fading towards profile, FitConfig.profile_jaw_weight, made
#: 1 pay: BENCHMARKS.md "Session 20").
JAW_WEIGHT = 1.0

#: the jaw points that fade (0-16 but the chin, 8, which keeps its weight of at least 1)
_FADING_JAW = [i for i in range(17) if i != 8]


def default_landmark_weights(device: Optional[torch.device] = None, dtype: Optional[torch.dtype] = None,
                             jaw: Optional[float] = None) -> Tensor:
    """Per-landmark weights [68].

    - Jaw 0-16: ``jaw`` (None: :data:`JAW_WEIGHT`), the chin 8 at least 1.0. Annotators and detectors fix these points only up
      to a slide along the jawline, and the marched model contour matches the silhouette only
      approximately, so their error is largely tangential noise.
    - Eye corners (36, 39, 42, 45) and mouth corners (48, 54): 2.0. Sharp, well-localized points
      that pin down pose, eye shape and expression.
    - Other eye-lid and outer-lip points: 1.5 (good localization, drive expression).
    - Chin, brows, nose, inner lip: 1.0 (inner lip points of a closed mouth coincide and depend on
      the model's lip geometry; brows are fuzzy along their length).
    """
    w = torch.ones(68, device=device, dtype=dtype or torch.float32)
    jaw = JAW_WEIGHT if jaw is None else float(jaw)
    w[0:17] = jaw
    w[8] = max(1.0, jaw)
    w[36:48] = 1.5
    w[48:60] = 1.5
    w[[36, 39, 42, 45, 48, 54]] = 2.0
    return w


def fade_jaw_weights(weights: Tensor, ramp: Tensor, at_profile: float) -> Tensor:
    """Per-face landmark weights whose jaw points (but the chin) fade from their weight to
    ``at_profile`` times it as the head turns.

    Args:
        weights: [68] per-landmark weights (:func:`default_landmark_weights`).
        ramp: [B] 0 (frontal) to 1 (profile), :func:`fitter.losses.profile_ramp` of the yaw.
        at_profile: the jaw's factor at ramp 1 (1 = no fading).
    Returns:
        [B, 68]: ``w_k · (1 − (1 − at_profile) · ramp)`` for the fading jaw points, ``w_k`` elsewhere.
    """
    if weights.dim() != 1 or ramp.dim() != 1:
        raise ValueError(f"weights must be [68] and ramp [B], got {tuple(weights.shape)} and {tuple(ramp.shape)}")
    out = weights.to(ramp.dtype).unsqueeze(0).repeat(ramp.shape[0], 1)
    out[:, _FADING_JAW] = out[:, _FADING_JAW] * (1.0 - (1.0 - float(at_profile)) * ramp).unsqueeze(1)
    return out


def _check_landmark_inputs(pred: Tensor, target: Tensor, valid: Tensor) -> None:
    """pred and target [B, K, 2], valid [B, K]; ValueError naming the bad shape."""
    if pred.dim() != 3 or pred.shape[-1] != 2 or target.shape != pred.shape:
        raise ValueError(f"pred and target must both be [B, K, 2], got {tuple(pred.shape)} and {tuple(target.shape)}")
    if valid.shape != pred.shape[:2]:
        raise ValueError(f"valid must be {tuple(pred.shape[:2])}, got {tuple(valid.shape)}")


#: iBUG-68 (upper, lower) pairs across each eye's lids (0-based; 37-41, 38-40 right eye, 43-47,
#: 44-46 left eye) and across the inner lips (61-67, 62-66, 63-65): the openings of
#: :func:`closure_loss`.
EYE_PAIRS = tuple(pair for pairs, _ in EYE_LIDS_68.values() for pair in pairs)
LIP_PAIRS = ((61, 67), (62, 66), (63, 65))


def closure_loss(pred: Tensor, target: Tensor, valid: Tensor, pairs=EYE_PAIRS, one_sided: bool = False) -> Tensor:
    """Mean squared error of the openings between paired landmarks (eye and lip closure).

    ``Σ_k v_k ‖g(p_u − p_l) − g(t_u − t_l)‖² / max(Σ_k v_k, 1)`` over pairs k = (u, l), valid
    where both points are. The landmark term scores each lid where the detector put it; a fit
    whose eye sits a few pixels off can lower that by leaving a closed eye open (the model's lid
    closes onto its own lower lid). The opening is what the expression decides, whatever the
    offset, so this term scores it directly (the "eye closure" term of DECA-style fitting).

    With ``one_sided`` (the eyes' term, since session 22), lids that have passed each other count as closed:
    ``g(d) = d − min(d·n, 0) n``, where n [B, 2] is the face's image "up" (from the chin, point 8,
    to the top of the nose, point 27, of ``pred``), so only the part of a gap that points down is
    dropped. A linear model's closing shapes overshoot (ICT-FaceKit's full blink carries the upper
    lid past the lower one, more so on an identity with narrower eyes); without this the term
    charges a fully closed eye for closing as far as its shape goes. ``one_sided=False`` (the lips'
    term: lips that pass each other are pressed, which their shapes say otherwise) is the plain
    difference of the gaps.

    Args:
        pred: [B, 68, 2] projected model landmarks, pixels. target: [B, 68, 2] pixels.
        valid: [B, 68] bool. pairs: (upper, lower) index pairs. one_sided: see above.
    Returns:
        [B] pixels².
    """
    _check_landmark_inputs(pred, target, valid)
    up = torch.tensor([u for u, _ in pairs], device=pred.device)
    lo = torch.tensor([lw for _, lw in pairs], device=pred.device)
    v = valid.to(device=pred.device, dtype=torch.bool)
    ok = v[:, up] & v[:, lo]  # [B, K]
    tgt = target.to(device=pred.device, dtype=pred.dtype)
    gap_t = torch.where(ok.unsqueeze(-1), tgt[:, up] - tgt[:, lo], torch.zeros_like(tgt[:, up]))
    gap_p = pred[:, up] - pred[:, lo]
    if one_sided:
        n = pred[:, 27] - pred[:, 8]
        n = (n / n.norm(dim=-1, keepdim=True).clamp_min(1e-6)).detach().unsqueeze(1)  # [B, 1, 2]
        gap_p = gap_p - (gap_p * n).sum(-1, keepdim=True).clamp_max(0.0) * n
        gap_t = gap_t - (gap_t * n).sum(-1, keepdim=True).clamp_max(0.0) * n
    err = torch.where(ok, (gap_p - gap_t).square().sum(-1), torch.zeros_like(gap_p[..., 0]))
    return err.sum(1) / ok.sum(1).clamp_min(1).to(pred.dtype)


def landmark_loss(pred: Tensor, target: Tensor, valid: Tensor, weights: Optional[Tensor] = None) -> Tensor:
    """Weighted mean squared landmark error.

    ``Σ_k w_k v_k ‖pred_k − target_k‖² / max(Σ_k v_k, 1)``

    Args:
        pred: [B, 68, 2] projected model landmarks, pixels.
        target: [B, 68, 2] detected landmarks, pixels (entries where ``valid`` is False are
            ignored, NaN allowed there).
        valid: [B, 68] bool.
        weights: [68], or [B, 68] per face, or None (all ones).
    Returns:
        [B] pixels².
    """
    _check_landmark_inputs(pred, target, valid)
    v = valid.to(device=pred.device, dtype=torch.bool)
    tgt = torch.where(v.unsqueeze(-1), target.to(device=pred.device, dtype=pred.dtype), pred.detach())
    err = (pred - tgt).square().sum(dim=-1)  # [B, K]
    if weights is not None:
        if weights.shape != pred.shape[1:2] and weights.shape != pred.shape[:2]:
            raise ValueError(f"weights must be [{pred.shape[1]}] or [{pred.shape[0]}, {pred.shape[1]}], "
                             f"got {tuple(weights.shape)}")
        err = err * weights.to(device=pred.device, dtype=pred.dtype)
    err = torch.where(v, err, torch.zeros_like(err))
    return err.sum(dim=1) / v.sum(dim=1).clamp_min(1).to(pred.dtype)


def jaw_outward_directions(points_img: Tensor, landmarks68: Tensor) -> Tensor:
    """[B, 17, 2] image directions pointing out of the face across the jaw line at each jaw landmark.

    The jaw's tangent at landmark j is the chord between the model's own landmark vertices j-1 and
    j+1 in the current projection (one-sided at 0 and 16); the outward normal is that chord turned
    by +90° in image axes, ``n = (-t_y, t_x)``: the jaw runs 0 → 16 from the person's right ear down
    round the chin, so this points left on the right cheek, down at the chin and right on the left
    cheek, and follows the head's roll and pitch. Not normalized (only its direction is used).

    Args:
        points_img: [B, V, 2] projected vertices, pixels. landmarks68: [68] long vertex indices.
    """
    lmk = landmarks68.to(device=points_img.device, dtype=torch.long)
    jaw = points_img[:, lmk[:17]]  # [B, 17, 2]
    nxt = torch.cat([jaw[:, 1:], jaw[:, -1:]], dim=1)
    prv = torch.cat([jaw[:, :1], jaw[:, :-1]], dim=1)
    t = nxt - prv
    return torch.stack([-t[..., 1], t[..., 0]], dim=-1)


def march_contour_landmarks(points_img: Tensor, contour_candidates: Tensor, landmarks68: Tensor) -> Tensor:
    """Landmark vertices with the jaw (0-16) moved to the current face outline.

    The model's ``contour_candidates[j]`` run along the face from the inner cheek towards the
    profile (ear side) at jaw landmark j, across the jaw line. The outline is the candidate that
    lies furthest out of the face along the jaw's outward normal at j
    (:func:`jaw_outward_directions`): on the cheeks that is the extreme image x, near the chin
    (where the jaw line runs almost horizontally) the lowest point, whatever the head's roll. As
    the head yaws, the far side's cheek turns away and the extreme candidate slides towards the
    inner face, where the silhouette is; the near side's slides towards the ear. The chin (8) keeps
    its fixed vertex. A row of all padding keeps the fixed vertex too.

    Args:
        points_img: [B, V, 2] projected vertices, pixels.
        contour_candidates: [17, L] long vertex indices, padded with -1.
        landmarks68: [68] long fixed landmark vertices.
    Returns:
        [B, 68] long vertex indices.
    """
    if points_img.dim() != 3 or points_img.shape[-1] != 2:
        raise ValueError(f"points_img must be [B, V, 2], got {tuple(points_img.shape)}")
    if contour_candidates.dim() != 2 or contour_candidates.shape[0] != 17:
        raise ValueError(f"contour_candidates must be [17, L], got {tuple(contour_candidates.shape)}")
    if landmarks68.shape != (68,):
        raise ValueError(f"landmarks68 must be [68], got {tuple(landmarks68.shape)}")
    device = points_img.device
    B = points_img.shape[0]
    cand = contour_candidates.to(device=device, dtype=torch.long)
    lmk = landmarks68.to(device=device, dtype=torch.long)
    out = lmk.unsqueeze(0).expand(B, 68).clone()
    if cand.shape[1] == 0:
        return out
    pad = cand < 0
    pts = points_img.detach()
    xy = pts[:, cand.clamp_min(0)]  # [B, 17, L, 2]
    normal = jaw_outward_directions(pts, lmk)  # [B, 17, 2]
    outward = (xy * normal.unsqueeze(2)).sum(-1)  # [B, 17, L]
    score = torch.where(pad, torch.full_like(outward, -float("inf")), outward)
    best = score.argmax(dim=-1)  # [B, 17]
    chosen = cand.unsqueeze(0).expand(B, -1, -1).gather(2, best.unsqueeze(-1)).squeeze(-1)  # [B, 17]
    use = ~pad.all(dim=1)  # [17]
    use[8] = False
    jaw = torch.where(use.unsqueeze(0), chosen, out[:, :17])
    out[:, :17] = jaw
    return out
