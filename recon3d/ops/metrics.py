"""Landmark metrics, one implementation each.

:func:`nme` is the normalised mean error every recon3d benchmark, the regressor's training loop and
the model builder report: the mean point-to-point distance over the landmarks divided by
``sqrt(w * h)`` of the ground-truth landmark bounding box (AFLW2000-3D / 3DDFA protocol).
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ShapeError

__all__ = ["NME_NORMS", "nme"]

#: Normalisers understood by :func:`nme`.
NME_NORMS = ("box",)


def nme(pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor, *, norm: str = "box",
        eps: float = 1e-9) -> np.ndarray | torch.Tensor:
    """Normalised mean landmark error per image.

    ``mean_l |pred_l - gt_l| / sqrt(w * h)``, with ``w, h`` the width and height of the bounding box of
    the ground-truth landmarks (``norm="box"``); ``w * h`` is clamped to at least ``eps`` so a
    degenerate box gives a large finite error instead of inf/NaN.

    Args:
        pred: ``(B, L, 2)`` (or ``(L, 2)``) predicted landmarks, pixels; numpy or torch.
        gt: the ground truth, same shape and the same array type as ``pred``.
        norm: the normaliser; only ``"box"`` (sqrt of the ground-truth box area).
        eps: lower bound of the box area ``w * h`` (square pixels).

    Returns:
        ``(B,)`` (or a 0-d value for unbatched input), numpy for numpy input, torch (same device and
        dtype) for torch input.

    Raises:
        ShapeError: ``pred`` and ``gt`` differ in shape or are not ``(..., L, 2)``.
        ValueError: unknown ``norm``.

    A 40 x 10 box normalises by sqrt(400) = 20 (not 40, the width, nor 10, the height):

    >>> gt = np.array([[[0.0, 0.0], [40.0, 0.0], [40.0, 10.0], [0.0, 10.0]]])
    >>> nme(gt + [3.0, 4.0], gt).tolist()
    [0.25]
    >>> float(nme(torch.tensor(gt[0] + [3.0, 4.0]), torch.tensor(gt[0])))
    0.25
    """
    if norm not in NME_NORMS:
        raise ValueError(f"nme(): unknown norm {norm!r}; expected one of {NME_NORMS}")
    if tuple(pred.shape) != tuple(gt.shape) or len(gt.shape) not in (2, 3) or gt.shape[-1] != 2:
        raise ShapeError(f"nme(): pred and gt must both be (B, L, 2) or (L, 2), got {tuple(pred.shape)} "
                         f"and {tuple(gt.shape)}")
    if isinstance(gt, torch.Tensor):
        pred = torch.as_tensor(pred, dtype=gt.dtype, device=gt.device)
        wh = gt.amax(-2) - gt.amin(-2)
        area = (wh[..., 0] * wh[..., 1]).clamp(min=eps)
        return (pred - gt).norm(dim=-1).mean(-1) / area.sqrt()
    gt = np.asarray(gt)
    wh = gt.max(-2) - gt.min(-2)
    area = np.maximum(wh[..., 0] * wh[..., 1], eps)
    return np.linalg.norm(np.asarray(pred) - gt, axis=-1).mean(-1) / np.sqrt(area)
