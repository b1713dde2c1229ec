"""The learned de-occlusion fill ``N_G`` (Yin's thesis 5.3.4): a gated-convolution encoder-decoder
with self-attention at the bottleneck that inpaints the occluded part of a template-aligned face.

Inputs (all ``(B, C, S, S)``, images in [-1, 1]):

* ``I_n``: the face with its occluded pixels replaced by noise (the network never sees the
  occluder's colour, so it cannot copy it);
* ``M_o``: the occlusion mask (1 = replace);
* ``I_m``: the fitted 3DMM rendered at the face's pose (albedo lit by the fitted SH; 0 off the face),
  the shape and skin-tone prior of the thesis. ``prior=False`` builds the ablation without it.
* ``I_p`` (with ``base=True``, the default): the thesis's Poisson pseudo-ground truth, the render
  Poisson-blended into the hole (:func:`poisson_base`: its gradients, the photo's colours at the hole's
  border). The network then predicts a correction of ``I_p`` (its last layer starts at zero, so an
  untrained network already gives the blend). The thesis supervises with ``I_p``; using it as the
  starting point as well is our choice, made because CPU training budgets are short: the network
  starts from a face-coloured, shaded fill and learns the detail (eyes, brows, skin texture) on top.

Layout (``widths=(w0, w1, w2, w3)``): a 5x5 gated conv at full size, three stride-2 gated convs
(the last two scales with a :class:`~recon3d.nn.blocks.GatedResBlock`), ``bottleneck`` gated residual
blocks with dilations 1, 2, 4, 8, ... and a SAGAN :class:`~recon3d.nn.blocks.SelfAttention2d` at
1/8 size, then three nearest-neighbour up-samplings, each followed by a gated conv on the
concatenated encoder features of that scale (U-Net skips), and a linear 3x3 conv + tanh. The thesis
does not give widths; the defaults are sized for CPU training at 128² (about 1.8 GMAC a face).

:meth:`Inpainter.inpaint` does the whole step: noise in the hole, forward, and the composite
``M_o * out + (1 - M_o) * image``, so every pixel outside the hole is the input's.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ShapeError
from .blocks import GatedConv2d, GatedResBlock, SelfAttention2d
from .registry import NetworkSpec, load_network

__all__ = ["Inpainter", "INPAINTER", "INPAINTER_ASSET", "load_inpainter", "hole_noise", "poisson_base"]

INPAINTER_FORMAT = "recon3d-inpainter-v1"
#: the shipped weights (assets/)
INPAINTER_ASSET = "recon3d_inpainter_128_v1.safetensors"


def hole_noise(shape: tuple[int, ...], generator: torch.Generator | None = None, *,
               device: torch.device | str | None = None) -> torch.Tensor:
    """The noise that replaces occluded pixels: Gaussian, std 0.5, clipped to [-1, 1] (``shape`` NCHW)."""
    n = torch.randn(shape, generator=generator) * 0.5
    return n.clamp(-1, 1).to(device) if device is not None else n.clamp(-1, 1)


def poisson_base(image: torch.Tensor, hole: torch.Tensor, render: torch.Tensor, coverage: torch.Tensor) -> torch.Tensor:
    """``I_p``: ``render`` Poisson-blended into ``image`` over ``hole`` (gradients of the render, values of
    the image at the hole's border; :func:`recon3d.ops.poisson.poisson_paste`), per sample.

    The render is first extended past its ``coverage`` (nearest covered pixel), so a hole crossing the
    face's silhouette does not take the jump to the render's black background as a gradient.

    Args:
        image: ``(B, 3, S, S)`` in [-1, 1]; hole, coverage: ``(B, 1, S, S)`` in {0, 1}; render: ``(B, 3, S, S)``
            in [-1, 1].

    Returns:
        ``(B, 3, S, S)`` in [-1, 1] on ``image``'s device, equal to ``image`` outside the hole.
    """
    from scipy import ndimage

    from ..ops.poisson import poisson_paste

    out = []
    for b in range(image.shape[0]):
        h = hole[b, 0].detach().cpu().numpy() > 0.5
        img = ((image[b].detach().cpu().double().numpy().transpose(1, 2, 0) + 1) / 2).clip(0, 1)
        if not h.any():
            out.append(img)
            continue
        r = ((render[b].detach().cpu().double().numpy().transpose(1, 2, 0) + 1) / 2).clip(0, 1)
        cov = coverage[b, 0].detach().cpu().numpy() > 0.5
        if cov.any() and not cov.all():
            idx = ndimage.distance_transform_edt(~cov, return_distances=False, return_indices=True)
            r = r[idx[0], idx[1]]
        out.append(poisson_paste(img, r, h))
    arr = np.stack(out).transpose(0, 3, 1, 2)
    res = (torch.from_numpy(np.ascontiguousarray(arr)).to(image) * 2 - 1).clamp(-1, 1)
    return torch.where(hole > 0.5, res, image)


class Inpainter(nn.Module):
    """``N_G``: ``(I_n, M_o, I_m) -> (B, 3, S, S)`` in [-1, 1] (see the module doc).

    Args:
        res: the side the network is trained at (any multiple of 8 runs; the stages resize to it).
        widths: channels at full, 1/2, 1/4 and 1/8 size.
        bottleneck: gated residual blocks at 1/8 size (dilations 1, 2, 4, 8, ...).
        attention: SAGAN self-attention at the bottleneck.
        prior: take the 3DMM render ``I_m`` as input.
        base: also take the Poisson blend ``I_p`` and predict a correction of it (needs ``prior``).
    """

    def __init__(self, res: int = 128, widths: tuple | list = (16, 32, 64, 128), bottleneck: int = 4,
                 attention: bool = True, prior: bool = True, base: bool = True):
        super().__init__()
        if res % 8:
            raise ValueError(f"Inpainter: res must be a multiple of 8, got {res}")
        w = [int(c) for c in widths]
        if len(w) != 4:
            raise ValueError(f"Inpainter: widths must give 4 channel counts, got {widths!r}")
        base = bool(base) and bool(prior)
        self.config = {"res": int(res), "widths": w, "bottleneck": int(bottleneck), "attention": bool(attention),
                       "prior": bool(prior), "base": base}
        self.res, self.uses_prior, self.uses_base = int(res), bool(prior), base
        cin = 3 + 1 + (3 if prior else 0) + (3 if base else 0)
        self.head = GatedConv2d(cin, w[0], 5)
        self.down1 = GatedConv2d(w[0], w[1], 3, stride=2)
        self.down2 = nn.Sequential(GatedConv2d(w[1], w[2], 3, stride=2), GatedResBlock(w[2]))
        self.down3 = GatedConv2d(w[2], w[3], 3, stride=2)
        mid: list[nn.Module] = []
        for i in range(bottleneck):
            mid.append(GatedResBlock(w[3], dilation=2 ** (i % 4)))
            if attention and i == bottleneck // 2 - 1:
                mid.append(SelfAttention2d(w[3]))
        if attention and bottleneck < 2:
            mid.append(SelfAttention2d(w[3]))
        self.mid = nn.Sequential(*mid)
        self.up3 = nn.Sequential(GatedConv2d(w[3] + w[2], w[2], 3), GatedResBlock(w[2]))
        self.up2 = GatedConv2d(w[2] + w[1], w[1], 3)
        self.up1 = GatedConv2d(w[1] + w[0], w[0], 3)
        self.to_rgb = nn.Conv2d(w[0], 3, 3, padding=1)
        if base:  # a correction of I_p: zero at the start
            nn.init.zeros_(self.to_rgb.weight)
            nn.init.zeros_(self.to_rgb.bias)

    def forward(self, noised: torch.Tensor, hole: torch.Tensor, render: torch.Tensor | None = None,
                base: torch.Tensor | None = None) -> torch.Tensor:
        """noised ``(B, 3, S, S)``, hole ``(B, 1, S, S)``, render ``(B, 3, S, S)`` (required when the
        network uses the prior), base ``(B, 3, S, S)`` ``I_p`` (required when it uses the base) ->
        ``(B, 3, S, S)`` in [-1, 1], the whole face (not composited)."""
        parts = [noised, hole]
        if self.uses_prior:
            if render is None:
                raise ValueError("Inpainter: this network takes the 3DMM render I_m; pass render=")
            parts.append(render)
        if self.uses_base:
            if base is None:
                raise ValueError("Inpainter: this network corrects the Poisson blend I_p; pass base= (poisson_base)")
            parts.append(base)
        x = torch.cat(parts, 1)
        f0 = self.head(x)
        f1 = self.down1(f0)
        f2 = self.down2(f1)
        f3 = self.mid(self.down3(f2))
        u = F.interpolate(f3, scale_factor=2.0, mode="nearest")
        u = self.up3(torch.cat([u, f2], 1))
        u = F.interpolate(u, scale_factor=2.0, mode="nearest")
        u = self.up2(torch.cat([u, f1], 1))
        u = F.interpolate(u, scale_factor=2.0, mode="nearest")
        u = self.up1(torch.cat([u, f0], 1))
        if self.uses_base:
            return (base + self.to_rgb(u)).clamp(-1, 1)
        return torch.tanh(self.to_rgb(u))

    def inpaint(self, image: torch.Tensor, hole: torch.Tensor, render: torch.Tensor | None = None, *,
                coverage: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Fill ``hole`` of ``image`` (``(B, 3, S, S)`` in [-1, 1], ``S`` a multiple of 8): noise in the hole,
        the Poisson base when the network uses one (``coverage``: the render's ``(B, 1, S, S)`` face
        mask; default: where the render is not black), forward, composite. Returns ``(B, 3, S, S)``, equal
        to ``image`` where ``hole`` is 0."""
        if image.ndim != 4 or image.shape[1] != 3 or hole.shape[-2:] != image.shape[-2:] or hole.shape[1] != 1:
            raise ShapeError(f"Inpainter.inpaint(): expected image (B, 3, S, S) and hole (B, 1, S, S), got "
                             f"{tuple(image.shape)} and {tuple(hole.shape)}")
        noise = hole_noise(tuple(image.shape), generator, device=image.device).to(image.dtype)
        noised = image * (1 - hole) + noise * hole
        base = None
        if self.uses_base and render is not None:
            cov = coverage if coverage is not None else (render > -0.99).any(1, keepdim=True).to(image.dtype)
            base = poisson_base(image, hole, render, cov)
        out = self(noised, hole, render, base)
        return hole * out + (1 - hole) * image


INPAINTER = NetworkSpec(name="inpainter", cls=Inpainter, format=INPAINTER_FORMAT, what="de-occlusion inpainter",
                        asset=INPAINTER_ASSET)


def load_inpainter(weights: str | os.PathLike | None = None, *,
                   device: torch.device | str | None = None) -> Inpainter:
    """The inpainter in eval mode: ``weights`` (a file of this format), else the shipped one. Cached."""
    net, _ = load_network(INPAINTER, Path(weights) if weights is not None else None, device=device)
    return net.eval()
