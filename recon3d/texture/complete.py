"""Completing a partial (unwrapped) UV texture: mirror + Poisson blending into the 3DMM albedo.

Follows the pseudo-UV-map generation of the thesis (ch. 4.3.2.1, eq. 4.6 and fig. 4.4 (h)):
the incomplete real texture ``UV_gt`` is blended into the fitted 3DMM albedo map ``UV_bfm`` by
Poisson image editing, ``laplacian(f) = div(v)`` over Omega with ``f = f*`` on the boundary, where
Omega is the domain of real texture, ``v`` the gradient of ``UV_gt`` (the *source*) and ``f*``
the 3DMM albedo ``UV_bfm`` (the *target*, kept outside Omega); then the mirrored (flipped)
``UV_gt`` is blended into its symmetric missing parts in the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from .._checks import check_float, check_shapes
from ..errors import ShapeError
from ..ops.poisson import poisson_blend
from .unwrap import UVRaster

__all__ = ["CompletionResult", "complete_texture", "mirror_texture", "FILL_SPACES"]

log = logging.getLogger(__name__)

#: spaces of the last fill of :func:`complete_texture` (``keep_visible=True``)
FILL_SPACES = ("log", "linear")
#: colours below this are taken as this on the log fill (a black texel would give no gain at all)
LOG_FLOOR = 1e-3


@dataclass(frozen=True)
class CompletionResult:
    """A completed UV texture and where each texel came from.

    Attributes:
        texture: ``(B, Ht, Wt, 3)`` completed texture (finite everywhere; outside the layout it
            is the nearest layout colour for ``pad_px`` texels, then 0).
        filled_from_mirror: ``(B, Ht, Wt)`` bool, missing texels whose mirror texel was visible.
        filled_from_model: ``(B, Ht, Wt)`` bool, layout texels filled from the 3DMM albedo.
        texture_before_blend: ``(B, Ht, Wt, 3)`` the composite before Poisson blending: visible
            texels, then mirrored copies, then the albedo (0 outside the layout).
    """

    texture: torch.Tensor
    filled_from_mirror: torch.Tensor
    filled_from_model: torch.Tensor
    texture_before_blend: torch.Tensor

    def to(self, device: torch.device | str) -> "CompletionResult":
        return CompletionResult(self.texture.to(device), self.filled_from_mirror.to(device),
                                self.filled_from_model.to(device), self.texture_before_blend.to(device))

    def detach(self) -> "CompletionResult":
        return CompletionResult(self.texture.detach(), self.filled_from_mirror, self.filled_from_model,
                                self.texture_before_blend.detach())


def mirror_texture(texture: torch.Tensor, uvr: UVRaster) -> torch.Tensor:
    """Each texel's mirror texel value (``col -> Wt-1-col``), 0 where it has no mirror in the layout.

    Args:
        texture: ``(B, Ht, Wt, C)`` or ``(B, Ht, Wt)``.
        uvr: a raster of a mirror-symmetric layout.

    Returns:
        Same shape as ``texture``.

    Raises:
        ShapeError: when the layout is not symmetric or shapes mismatch.
    """
    if not uvr.uv_symmetric:
        raise ShapeError("mirror_texture(): the UV layout is not mirror symmetric (uv_symmetric=False)")
    Ht, Wt = uvr.resolution
    if tuple(texture.shape[1:3]) != (Ht, Wt):
        raise ShapeError(f"mirror_texture(): texture must be (B, {Ht}, {Wt}, ...), got {tuple(texture.shape)}")
    B = texture.shape[0]
    flat = texture.reshape((B, Ht * Wt) + tuple(texture.shape[3:]))
    idx = uvr.flip_index.to(texture.device).flatten()
    ok = idx >= 0
    out = torch.zeros_like(flat)
    out[:, ok] = flat[:, idx[ok]]
    return out.view(texture.shape)


def complete_texture(
    texture: torch.Tensor,
    visible: torch.Tensor,
    albedo_uv: torch.Tensor,
    uvr: UVRaster,
    *,
    mirror: bool = True,
    keep_visible: bool = False,
    guidance: str = "source",
    pad_px: int = 2,
    clamp: bool = True,
    fill_space: str = "log",
) -> CompletionResult:
    """Fill the invisible part of an unwrapped texture by mirroring and Poisson blending.

    Pass 1 (mirror): a missing texel whose mirror texel is visible takes that texel's colour
    (only for a mirror-symmetric layout). Pass 2 (Poisson, thesis eq. 4.6):

    * ``keep_visible=False`` (the thesis): *source* = real texture, *target* = ``albedo_uv``.
      First Omega = visible texels: the result keeps the gradients of the real texture there and
      meets the albedo at Omega's border (the real texture's colour is shifted smoothly towards the
      albedo). Then Omega = mirrored texels, source = the mirrored real texture, target = the first
      result. Outside both the albedo is kept, so there are no seams at all.
    * ``keep_visible=True``: the visible texels are kept exactly; the mirrored texels are blended
      with the visible ones as target, then the rest of the layout takes the *gradients of the
      albedo* (source) with the real texture as Dirichlet boundary (target). With ``fill_space="log"``
      (the default) that last fill is solved on log colours: the real texture's border sets a *gain*
      on the albedo rather than an offset, so a dark border (hair, a shadow, background the fit let in)
      darkens the filled skin in proportion and never drives it to black; ``"linear"`` is the additive
      fill of earlier versions.

    Texels outside the layout are never used (zero-flux boundary).

    Args:
        texture: ``(B, Ht, Wt, 3)`` float partial texture (e.g. ``UnwrapResult.texture``).
        visible: ``(B, Ht, Wt)`` bool, the real texels.
        albedo_uv: ``(B, Ht, Wt, 3)`` (or ``(1, Ht, Wt, 3)``, broadcast) fitted 3DMM albedo in UV,
            e.g. :func:`~recon3d.texture.bake_vertex_attr_to_uv` of ``model.albedo(coeffs)``.
        uvr: the layout raster.
        mirror: do pass 1 (ignored with a warning in the log for a non-symmetric layout).
        keep_visible: see above.
        guidance: ``"source"`` or ``"mixed"`` (see :func:`~recon3d.ops.poisson.poisson_blend`).
        pad_px: grow the result this many texels outside the layout (for bilinear sampling at seams).
        clamp: clamp the result to [0, 1] (Poisson blending can overshoot).
        fill_space: ``"log"`` or ``"linear"``: the space of the last fill with ``keep_visible=True`` (above).

    Returns:
        :class:`CompletionResult`.

    Raises:
        ShapeError: on wrong shapes or dtypes.
    """
    where = "complete_texture()"
    Ht, Wt = uvr.resolution
    d = check_shapes(where, texture=(texture, f"B {Ht} {Wt} 3"), visible=(visible, f"B {Ht} {Wt}"),
                     albedo_uv=(albedo_uv, f"* {Ht} {Wt} 3"))
    check_float(where, texture=texture, albedo_uv=albedo_uv)
    if visible.dtype != torch.bool:
        raise ShapeError(f"{where}: visible must be bool, got {visible.dtype}")
    B = d["B"]
    if albedo_uv.shape[0] not in (1, B):
        raise ShapeError(f"{where}: albedo_uv must have batch 1 or {B}, got {tuple(albedo_uv.shape)}")
    if pad_px < 0:
        raise ShapeError(f"{where}: pad_px must be >= 0, got {pad_px}")
    if fill_space not in FILL_SPACES:
        raise ValueError(f"{where}: fill_space must be one of {', '.join(FILL_SPACES)}, got {fill_space!r}")
    dev, dtype = texture.device, texture.dtype
    layout = uvr.mask.to(dev)
    vis = visible & layout[None]
    albedo = albedo_uv.to(dtype).expand(B, -1, -1, -1)

    do_mirror = mirror and uvr.uv_symmetric
    if mirror and not uvr.uv_symmetric:
        log.warning("complete_texture(): UV layout is not mirror symmetric; skipping the mirror pass")
    if do_mirror:
        tex_m = mirror_texture(texture, uvr)
        vis_m = mirror_texture(vis, uvr)
        mirrored = layout[None] & ~vis & vis_m
    else:
        tex_m = torch.zeros_like(texture)
        mirrored = torch.zeros_like(vis)
    from_model = layout[None] & ~vis & ~mirrored

    before = torch.where(vis[..., None], texture, torch.where(mirrored[..., None], tex_m, albedo))
    before = before * layout[None, ..., None].to(dtype)

    lay_np = layout.cpu().numpy()
    out = []
    for b in range(B):
        t_b = texture[b].detach().cpu().numpy()
        tm_b = tex_m[b].detach().cpu().numpy()
        a_b = albedo[b].detach().cpu().numpy()
        v_b = vis[b].cpu().numpy()
        m_b = mirrored[b].cpu().numpy()
        if not keep_visible:
            r = poisson_blend(a_b, t_b, v_b, domain=lay_np, guidance=guidance)
            if m_b.any():
                r = poisson_blend(r, tm_b, m_b, domain=lay_np, guidance=guidance)
        else:
            real = v_b | m_b
            r = np.where(v_b[..., None], t_b, np.where(m_b[..., None], tm_b, a_b))
            if m_b.any():
                r = poisson_blend(r, tm_b, m_b, domain=real, guidance=guidance)
            if v_b.any() or m_b.any():
                r = _fill(r, a_b, lay_np & ~real, lay_np, guidance, fill_space)
            else:
                r = a_b.copy()
        out.append(torch.from_numpy(np.ascontiguousarray(r)))
    result = torch.stack(out).to(device=dev, dtype=dtype) * layout[None, ..., None].to(dtype)
    if clamp:
        result = result.clamp(0.0, 1.0)
    if pad_px:
        result = _pad_outside(result, layout, pad_px)
    return CompletionResult(texture=result, filled_from_mirror=mirrored, filled_from_model=from_model,
                            texture_before_blend=before)


def _fill(r: np.ndarray, src: np.ndarray, omega: np.ndarray, domain: np.ndarray, guidance: str,
          space: str) -> np.ndarray:
    """``r`` with ``omega`` filled by the gradients of ``src`` (Dirichlet boundary ``r``), additively or on logs."""
    if space == "linear":
        return poisson_blend(r, src, omega, domain=domain, guidance=guidance)
    sol = poisson_blend(np.log(np.maximum(r, LOG_FLOOR)), np.log(np.maximum(src, LOG_FLOOR)), omega, domain=domain,
                        guidance=guidance)
    return np.where(omega[..., None], np.exp(sol), r).astype(r.dtype, copy=False)


def _pad_outside(tex: torch.Tensor, layout: torch.Tensor, steps: int) -> torch.Tensor:
    """Grow ``tex`` (B, Ht, Wt, C) outwards from ``layout`` by ``steps`` texels (mean of filled 4-neighbours)."""
    filled = layout.to(tex.dtype)[None, ..., None].expand(tex.shape[0], -1, -1, 1).clone()
    tex = tex * filled
    for _ in range(steps):
        s = torch.zeros_like(tex)
        c = torch.zeros_like(filled)
        for src, dst in (((slice(1, None),), (slice(None, -1),)), ((slice(None, -1),), (slice(1, None),))):
            s[:, dst[0]] += tex[:, src[0]]
            c[:, dst[0]] += filled[:, src[0]]
            s[:, :, dst[0]] += tex[:, :, src[0]]
            c[:, :, dst[0]] += filled[:, :, src[0]]
        new = (filled == 0) & (c > 0)
        tex = torch.where(new, s / c.clamp_min(1), tex)
        filled = torch.where(new, torch.ones_like(filled), filled)
    return tex
