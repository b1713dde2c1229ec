"""Attribute interpolation over rasterised fragments (nvdiffrast's ``interpolate``)."""

from __future__ import annotations

import torch

from ..errors import ShapeError
from .fragments import Fragments

__all__ = ["interpolate"]


def interpolate(attr: torch.Tensor, fragments: Fragments, faces: torch.Tensor) -> torch.Tensor:
    """Interpolate per-vertex attributes at every pixel with the fragments' barycentrics.

    Args:
        attr: ``(B, V, C)`` or ``(V, C)`` (shared across the batch) float attributes.
        fragments: from :func:`~recon3d.render.rasterize` or :func:`~recon3d.render.rasterize_px`.
        faces: ``(F, 3)`` int64 index buffer into ``attr`` (the rasterised faces, or a parallel
            index buffer such as ``uv_faces`` with the same face order).

    Returns:
        ``(B, H, W, C)``; background pixels are 0. Differentiable w.r.t. ``attr`` and, through
        the barycentrics, the vertex positions.

    Raises:
        ShapeError: on shape or dtype mismatch.

    >>> from recon3d.render import rasterize_px
    >>> xyz = torch.tensor([[[0.0, 0, 1], [4, 0, 1], [0, 4, 1]]])
    >>> f = torch.tensor([[0, 1, 2]])
    >>> frags = rasterize_px(xyz, f, (2, 2))
    >>> interpolate(xyz[..., :2], frags, f)[0, 1, 1].tolist()  # attribute = position
    [1.0, 1.0]
    """
    if attr.dim() == 2:
        attr = attr[None]
    if attr.dim() != 3:
        raise ShapeError(f"interpolate(): attr must be (B, V, C) or (V, C), got {tuple(attr.shape)}")
    if not torch.is_floating_point(attr):
        raise ShapeError(f"interpolate(): attr must be floating point, got {attr.dtype}")
    if faces.dim() != 2 or faces.shape[1] != 3 or faces.dtype != torch.int64:
        raise ShapeError(f"interpolate(): faces must be (F, 3) int64, got {tuple(faces.shape)} {faces.dtype}")
    B = fragments.batch_size
    H, W = fragments.image_size
    Ba, V, C = attr.shape
    if Ba not in (1, B):
        raise ShapeError(f"interpolate(): attr batch must be 1 or {B}, got {tuple(attr.shape)}")
    if faces.numel() and int(faces.max()) >= V:
        raise ShapeError(f"interpolate(): faces index up to {int(faces.max())} but attr has V={V}")
    idx = faces.index_select(0, fragments.pix_face)  # (N, 3)
    if Ba == B and B > 1:
        b = torch.div(fragments.pix_index, H * W, rounding_mode="floor")
        idx = idx + (b * V)[:, None]
    vals = attr.reshape(Ba * V, C).index_select(0, idx.reshape(-1)).view(-1, 3, C)  # (N, 3, C)
    bary = fragments.pix_bary.to(attr.dtype)
    out_p = (vals * bary[..., None]).sum(1)  # (N, C)
    out = attr.new_zeros(B * H * W, C).index_put((fragments.pix_index,), out_p)
    return out.view(B, H, W, C)
