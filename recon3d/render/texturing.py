"""Texture sampling (nvdiffrast's ``texture``) through ``torch.nn.functional.grid_sample``."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..conventions import uv_to_grid_sample
from ..errors import ShapeError

__all__ = ["texture"]


def _neighbour_scale(uvp: torch.Tensor, valid: torch.Tensor | None, dim: int) -> torch.Tensor:
    """Texel footprint along one image axis: the smaller of the two one-sided differences
    between valid neighbours (inf-free; 0 where no neighbour is valid)."""
    n = uvp.shape[dim]
    a = uvp.narrow(dim, 1, n - 1)
    b = uvp.narrow(dim, 0, n - 1)
    d = (a - b).norm(dim=-1)  # (..., n-1) along dim
    if valid is not None:
        ok = valid.narrow(dim, 1, n - 1) & valid.narrow(dim, 0, n - 1)
        d = torch.where(ok, d, torch.full_like(d, math.inf))
    inf_pad_shape = list(d.shape)
    inf_pad_shape[dim] = 1
    pad = torch.full(inf_pad_shape, math.inf, dtype=d.dtype, device=d.device)
    fwd = torch.cat([d, pad], dim=dim)
    bwd = torch.cat([pad, d], dim=dim)
    m = torch.minimum(fwd, bwd)
    return torch.where(torch.isinf(m), torch.zeros_like(m), m)


def texture(tex: torch.Tensor, uv: torch.Tensor, *, filter: str = "bilinear",
            mask: torch.Tensor | None = None, max_mip_level: int | None = None) -> torch.Tensor:
    """Sample a texture at per-pixel UV coordinates.

    Args:
        tex: ``(B, Ht, Wt, C)`` (or ``(1, ...)``, broadcast) float texture, **top row first**.
        uv: ``(B, H, W, 2)`` UV coordinates, OBJ convention (origin bottom-left, v up), e.g.
            from :func:`~recon3d.render.interpolate`; mapped with
            :func:`recon3d.conventions.uv_to_grid_sample` (texel centres at
            ``(u*Wt - 0.5, (1-v)*Ht - 0.5)``). Out-of-range uv is clamped to the border.
        filter: ``"bilinear"``, or ``"mip"`` (trilinear: an average-pooled mip pyramid with the
            level chosen from finite differences of ``uv`` between neighbouring pixels).
        mask: optional ``(B, H, W)`` or ``(B, H, W, 1)`` coverage; with ``"mip"``, differences to
            uncovered neighbours are ignored (avoids blurring at silhouettes).
        max_mip_level: coarsest level used by ``"mip"`` (default: down to 1 texel).

    Returns:
        ``(B, H, W, C)``, differentiable w.r.t. ``tex`` and ``uv`` (the mip level selection
        itself is not differentiated). Background pixels are *not* masked here.

    Raises:
        ShapeError: on wrong shapes; ValueError: unknown filter.

    >>> tex = torch.tensor([[[[1.0], [2.0]], [[3.0], [4.0]]]])  # top row (1, 2), bottom row (3, 4)
    >>> uv = torch.tensor([[[[0.25, 0.25], [0.75, 0.75]]]])     # bottom-left and top-right texel
    >>> texture(tex, uv).flatten().tolist()
    [3.0, 2.0]
    """
    if tex.dim() != 4 or uv.dim() != 4 or uv.shape[-1] != 2:
        raise ShapeError(f"texture(): tex must be (B, Ht, Wt, C) and uv (B, H, W, 2), got {tuple(tex.shape)} "
                         f"and {tuple(uv.shape)}")
    if tex.shape[0] not in (1, uv.shape[0]):
        raise ShapeError(f"texture(): tex batch must be 1 or {uv.shape[0]}, got {tuple(tex.shape)}")
    if not (torch.is_floating_point(tex) and torch.is_floating_point(uv)):
        raise ShapeError(f"texture(): tex and uv must be floating point, got {tex.dtype} and {uv.dtype}")
    if filter not in ("bilinear", "mip"):
        raise ValueError(f"texture(): filter must be 'bilinear' or 'mip', got {filter!r}")
    B = uv.shape[0]
    t = tex.permute(0, 3, 1, 2)
    if t.shape[0] != B:
        t = t.expand(B, -1, -1, -1)
    grid = uv_to_grid_sample(uv).to(t.dtype)

    def sample(level_tex: torch.Tensor) -> torch.Tensor:
        return F.grid_sample(level_tex, grid, mode="bilinear", padding_mode="border", align_corners=False)

    if filter == "bilinear":
        return sample(t).permute(0, 2, 3, 1)

    Ht, Wt = tex.shape[1], tex.shape[2]
    pyramid = [t]
    while min(pyramid[-1].shape[-2:]) > 1 and (max_mip_level is None or len(pyramid) <= max_mip_level):
        pyramid.append(F.avg_pool2d(pyramid[-1], 2, ceil_mode=True))
    with torch.no_grad():
        uvp = uv.detach() * uv.new_tensor([Wt, Ht])
        valid = None
        if mask is not None:
            valid = (mask[..., 0] if mask.dim() == 4 else mask) > 0
        rho = torch.maximum(_neighbour_scale(uvp, valid, 2), _neighbour_scale(uvp, valid, 1))
        level = torch.log2(rho.clamp(min=1.0)).clamp(max=len(pyramid) - 1)  # (B, H, W)
    out = None
    for i, lt in enumerate(pyramid):
        w = (1.0 - (level - i).abs()).clamp(min=0.0)
        if not bool((w > 0).any()):
            continue
        s = sample(lt) * w[:, None].to(t.dtype)
        out = s if out is None else out + s
    return out.permute(0, 2, 3, 1)
