"""The learned UV texture generator (Yin's thesis 4.3.2): completes the partial UV map unwrapped from a photo.

Inputs (``(B, C, R, R)``, colours in [-1, 1], the UV layout of :func:`recon3d.texture.uv_raster` at ``R``):

* the unwrapped photo colours with the unseen texels replaced by noise (:func:`~recon3d.nn.inpaint.hole_noise`);
* the hole: layout texels not seen in the photo;
* the prior: the fitted 3DMM albedo times the fitted shading in UV (``UV_bfm``);
* the base: the classical completion (mirror + Poisson blending into the prior,
  :func:`recon3d.texture.complete_texture`), which the network corrects.

The layout is the de-occlusion inpainter's (:class:`~recon3d.nn.inpaint.Inpainter`: gated convolutions,
dilated gated residual blocks and self-attention at 1/8 size, U-Net skips, a zero-initialised last layer added
to the base), which is what the thesis's UV generator is: an inpainting network. An untrained generator
therefore returns the classical completion exactly. It is a network of its own (format, registry entry,
weights), trained on UV maps (:mod:`recon3d.train.recipes.uv_generator`).

:meth:`UVGenerator.complete` does the whole step, keeps every seen texel and zeroes texels off the layout.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import ShapeError
from .inpaint import Inpainter, hole_noise
from .registry import NetworkSpec, load_network

__all__ = ["UVGenerator", "UV_GENERATOR", "UV_GENERATOR_ASSET", "load_uv_generator"]

UV_GENERATOR_FORMAT = "recon3d-uv-generator-v1"
#: the shipped weights (assets/)
UV_GENERATOR_ASSET = "recon3d_uv_generator_128_v1.safetensors"


class UVGenerator(Inpainter):
    """``(noised, hole, prior, base) -> (B, 3, R, R)`` in [-1, 1] (see the module doc). Arguments as
    :class:`~recon3d.nn.inpaint.Inpainter`; the prior and the base are always used."""

    def __init__(self, res: int = 128, widths: tuple | list = (16, 32, 64, 128), bottleneck: int = 4,
                 attention: bool = True, prior: bool = True, base: bool = True):
        if not (prior and base):
            raise ValueError("UVGenerator: the generator always takes the prior and the classical base")
        super().__init__(res, widths, bottleneck, attention, prior=True, base=True)

    def complete(self, texture: torch.Tensor, visible: torch.Tensor, prior: torch.Tensor, base: torch.Tensor,
                 layout: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Complete a UV map: ``texture``, ``prior``, ``base`` ``(B, 3, R, R)`` in [0, 1]; ``visible`` and
        ``layout`` ``(B, 1, R, R)`` (or ``(1, 1, R, R)``) in {0, 1}, ``R`` a multiple of 8. Returns
        ``(B, 3, R, R)`` in [0, 1]: the seen texels of ``texture``, the network elsewhere on the layout, 0 off it."""
        if texture.ndim != 4 or texture.shape[1] != 3 or texture.shape[-1] % 8 or texture.shape[-2] % 8:
            raise ShapeError(f"UVGenerator.complete(): texture must be (B, 3, R, R) with R a multiple of 8, "
                             f"got {tuple(texture.shape)}")
        for name, t, c in (("visible", visible, 1), ("layout", layout, 1), ("prior", prior, 3), ("base", base, 3)):
            if t.ndim != 4 or t.shape[1] != c or t.shape[-2:] != texture.shape[-2:]:
                raise ShapeError(f"UVGenerator.complete(): {name} must be (B, {c}, {texture.shape[-2]}, "
                                 f"{texture.shape[-1]}), got {tuple(t.shape)}")
        lay = layout.to(texture.dtype).expand(texture.shape[0], -1, -1, -1)
        seen = visible.to(texture.dtype) * lay
        hole = lay - seen
        x = texture * 2 - 1
        noise = hole_noise(tuple(x.shape), generator, device=x.device).to(x.dtype)
        noised = x * seen + noise * hole
        out = self(noised, hole, prior * 2 - 1, base * 2 - 1)
        return ((seen * x + hole * out + 1) / 2).clamp(0, 1) * lay


UV_GENERATOR = NetworkSpec(name="uv_generator", cls=UVGenerator, format=UV_GENERATOR_FORMAT,
                           what="UV texture generator", asset=UV_GENERATOR_ASSET)


def load_uv_generator(weights: str | os.PathLike | None = None, *,
                      device: torch.device | str | None = None) -> UVGenerator:
    """The UV generator in eval mode: ``weights`` (a file of this format), else the shipped one. Cached."""
    net, _ = load_network(UV_GENERATOR, Path(weights) if weights is not None else None, device=device)
    return net.eval()
