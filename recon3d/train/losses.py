"""Training losses on the identity network (:mod:`recon3d.nn.identity`, dlib's face recognition
ResNet in PyTorch), for generators, restorers and refiners.

* :func:`identity_loss`: the euclidean distance of the two 128-d descriptors, dlib's own metric
  (its network was trained so that the same person lies below 0.6), so the loss reads in the
  units of that threshold; ``metric="cosine"`` gives ``1 - cos`` instead (the ArcFace-style loss).
* :func:`feature_matching_loss`: L1 between channel-normalised intermediate activations
  (:meth:`~recon3d.nn.identity.IdentityNet.features`), our perceptual-loss stand-in. It is **not**
  LPIPS (no learned linear heads, a face network instead of VGG/AlexNet) and is named for what it is.

Inputs are either aligned ``(B, 3, 150, 150)`` chips or ``(B, 3, H, W)`` images with their
chip matrices (:func:`~recon3d.nn.identity.face_chip_transform`); images are cut with the
differentiable :func:`~recon3d.nn.identity.extract_chip`. All are float RGB in [0, 1]. Both losses
return per-sample ``(B,)`` tensors and are differentiable with respect to both inputs (detach the
target yourself). Pass the network in eval mode (e.g. :func:`~recon3d.nn.identity.load_identity_net`
with ``cached=False`` if you might modify it); its parameters should be frozen
(``requires_grad_(False)``) when only the generator trains.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..errors import ShapeError
from ..nn.identity import CHIP_SIZE, extract_chip

__all__ = ["identity_loss", "feature_matching_loss"]


def _chips(x: torch.Tensor, matrices, what: str) -> torch.Tensor:
    if matrices is not None:
        return extract_chip(x, matrices)
    if x.ndim != 4 or tuple(x.shape[1:]) != (3, CHIP_SIZE, CHIP_SIZE):
        raise ShapeError(f"{what}: without matrices the input must be (B, 3, {CHIP_SIZE}, {CHIP_SIZE}) chips, "
                         f"got {tuple(x.shape)}")
    return x


def identity_loss(net, a: torch.Tensor, b: torch.Tensor, *, matrices_a=None, matrices_b=None,
                  metric: str = "l2") -> torch.Tensor:
    """Identity distance of ``a`` and ``b`` per sample.

    Args:
        net: an :class:`~recon3d.nn.identity.IdentityNet`.
        a: ``(B, 3, 150, 150)`` chips, or ``(B, 3, H, W)`` images with ``matrices_a``.
        b: the same for the other side (often the target, detached).
        matrices_a: ``(B, 2, 3)`` chip matrices of ``a`` (None: ``a`` is already chips).
        matrices_b: the same for ``b``.
        metric: ``"l2"`` (default): ``|d_a - d_b|``, dlib's metric (same person below 0.6);
            ``"cosine"``: ``1 - cos(d_a, d_b)``.

    Returns:
        ``(B,)`` losses.

    Raises:
        ShapeError: inputs are neither chips nor images with matrices, or batch sizes differ.
        ValueError: unknown ``metric``.
    """
    if metric not in ("l2", "cosine"):
        raise ValueError(f"identity_loss(): metric must be 'l2' or 'cosine', got {metric!r}")
    da = net(_chips(a, matrices_a, "identity_loss()"))
    db = net(_chips(b, matrices_b, "identity_loss()"))
    if da.shape != db.shape:
        raise ShapeError(f"identity_loss(): a and b give {tuple(da.shape)} and {tuple(db.shape)} descriptors")
    if metric == "l2":
        return (da - db).pow(2).sum(1).add(1e-12).sqrt()
    return 1 - torch.nn.functional.cosine_similarity(da, db, dim=1, eps=1e-8)


def feature_matching_loss(net, a: torch.Tensor, b: torch.Tensor, weights: Sequence[float] | None = None, *,
                          matrices_a=None, matrices_b=None) -> torch.Tensor:
    """Feature-matching loss on the identity network's intermediate activations, per sample.

    For each activation map (:meth:`~recon3d.nn.identity.IdentityNet.features`: the stem and the
    five residual levels) the features at each position are divided by their L2 norm over the
    channels, then the mean absolute difference is taken; the layers are summed with ``weights``.

    Args:
        net: an :class:`~recon3d.nn.identity.IdentityNet`.
        a, b: chips, or images with ``matrices_a`` / ``matrices_b`` (as :func:`identity_loss`).
        weights: one weight per feature map (6); default ``1/6`` each.

    Returns:
        ``(B,)`` losses.

    Raises:
        ShapeError: bad inputs (see :func:`identity_loss`).
        ValueError: ``weights`` of the wrong length.
    """
    fa = net.features(_chips(a, matrices_a, "feature_matching_loss()"))
    fb = net.features(_chips(b, matrices_b, "feature_matching_loss()"))
    w = [1.0 / len(fa)] * len(fa) if weights is None else list(weights)
    if len(w) != len(fa):
        raise ValueError(f"feature_matching_loss(): {len(fa)} feature maps, got {len(w)} weights")
    total = 0
    for wi, x, y in zip(w, fa, fb, strict=True):
        if x.shape != y.shape:
            raise ShapeError(f"feature_matching_loss(): feature maps {tuple(x.shape)} and {tuple(y.shape)} differ")
        x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-6)
        y = y / y.norm(dim=1, keepdim=True).clamp_min(1e-6)
        total = total + wi * (x - y).abs().mean((1, 2, 3))
    return total
