"""The learned UV completion (issue 15 item 4): the UV generator (:mod:`recon3d.nn.uv_generator`) corrects the
classical completion (mirror + Poisson, :func:`recon3d.texture.complete_texture`) on the texels the photo
does not show.

The generator runs at its own resolution (128²): the partial texture, the prior and the classical completion
are area-averaged down to it (a texel counts as seen when most of it is), and the generator's correction of the
classical completion is upsampled bilinearly and added to the full-resolution classical completion on the
unseen texels. Seen texels are never changed, and the classical completion's detail (mirrored texels) is
kept at full resolution: the generator changes the low and middle frequencies of what the photo does not show.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .unwrap import UVRaster

__all__ = ["net_correction", "TEXTURE_METHODS", "DEFAULT_TEXTURE_METHOD"]

#: the completion methods of ``reconstruct --texture``
TEXTURE_METHODS = ("poisson", "net")
#: what ``reconstruct`` and ``rotate`` use unless told otherwise (the benchmark decides, docs/benchmarks/texture.md)
DEFAULT_TEXTURE_METHOD = "poisson"


def _down(x: torch.Tensor, R: int) -> torch.Tensor:
    return x if x.shape[-1] == R and x.shape[-2] == R else F.adaptive_avg_pool2d(x, (R, R))


def net_correction(texture: torch.Tensor, visible: torch.Tensor, prior: torch.Tensor, base: torch.Tensor,
                   uvr: UVRaster, generator=None) -> torch.Tensor:
    """The UV generator's correction of the classical completion ``base``.

    Args:
        texture: ``(B, Ht, Wt, 3)`` photo colours (shading baked in) on the ``visible`` texels.
        visible: ``(B, Ht, Wt)`` bool.
        prior: ``(B, Ht, Wt, 3)`` (or batch 1) the fitted albedo times the fitted shading in UV.
        base: ``(B, Ht, Wt, 3)`` the classical completion of ``texture`` into ``prior`` (seen texels kept).
        uvr: the layout raster.
        generator: a :class:`~recon3d.nn.uv_generator.UVGenerator` (default: the shipped one, on ``texture``'s
            device).

    Returns:
        ``(B, Ht, Wt, 3)``: what the generator adds to ``base``; 0 on seen texels and off the layout.
    """
    from ..nn.uv_generator import load_uv_generator

    net = generator if generator is not None else load_uv_generator(device=texture.device)
    p = next(net.parameters())
    R = int(net.res)
    B = texture.shape[0]
    layout = uvr.mask.to(texture.device)[None, None].to(texture.dtype)
    vis = visible[:, None].to(texture.dtype) * layout

    def chw(x):
        return x.permute(0, 3, 1, 2).expand(B, -1, -1, -1)

    tex, pri, bas = chw(texture), chw(prior), chw(base)
    lay_s = (_down(layout, R) > 0.5).to(texture.dtype).expand(B, -1, -1, -1)
    vfrac = _down(vis, R)
    seen_s = (vfrac > 0.5).to(texture.dtype) * lay_s
    tex_s = _down(tex * vis, R) / vfrac.clamp_min(1e-6)
    base_s = _down(bas, R)
    with torch.no_grad():
        # the hole's noise from a fixed seed: the same photo always gives the same texture
        y_s = net.complete(*(t.to(p.device, p.dtype) for t in (tex_s.clamp(0, 1), seen_s, _down(pri, R).clamp(0, 1),
                                                               base_s.clamp(0, 1), lay_s)),
                           generator=torch.Generator().manual_seed(0)).to(texture)
    corr = (y_s - base_s) * (lay_s - seen_s)
    if corr.shape[-2:] != tex.shape[-2:]:
        corr = F.interpolate(corr, size=tex.shape[-2:], mode="bilinear", align_corners=False)
    hole = layout - vis
    return (corr * hole).permute(0, 2, 3, 1)
