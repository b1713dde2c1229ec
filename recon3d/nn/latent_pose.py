"""Latent pose editing (seed 000): an encoder that turns a face's StyleGAN2 latent to a target yaw.

Seed 000 rotates a face without a 3D model: the photo is inverted into the prior's W+ space (``W*``), an
encoder reads the photo together with a constant channel holding the target pose and outputs a change
``Delta W`` of every style, and the prior renders ``G(W* + Delta W)``. Only the encoder (and, in training, a
pose-conditioned discriminator) learns; the prior, the inversion and the pose predictor stay fixed.

:class:`PoseEncoder` is their encoder at CPU size: a residual backbone (stride-2 basic blocks from the prior's
resolution down to 4²), a feature pyramid (top-down sums at 4², 8² and 16²) and one map-to-style head per W+
layer (stride-2 convolutions to 1², then a linear layer), with pSp's assignment of layers to pyramid levels:
the coarse styles (4² and 8² synthesis layers) read the 4² level, the middle ones (16², 32²) the 8² level, the
fine ones the 16² level. The last linear layer of every head starts at zero, so an untrained encoder returns
``W*`` unchanged (tested). The pose channel holds the target yaw / 90 degrees.

Everything works at the prior's resolution (the shipped StyleGAN2 is 64x64, template-aligned faces), and the
prior only knows the poses it was trained on (faces-128: 90 % of its faces within about +-22 degrees of yaw),
which bounds what an edit can reach. :func:`edit_latents` applies an encoder; ``recon3d.edit.latent_rotate``
is the photo-level use (alignment, inversion, edit, pose and identity of every output).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ShapeError
from .registry import NetworkSpec, load_network

__all__ = ["PoseEncoder", "LATENT_POSE", "LATENT_POSE_ASSET", "load_latent_pose", "edit_latents", "style_levels",
           "fixed_noise", "YAW_SCALE"]

LATENT_POSE_FORMAT = "recon3d-latent-pose-v1"
#: the shipped weights (assets/)
LATENT_POSE_ASSET = "recon3d_latent_pose_64_v1.safetensors"
#: the pose channel holds yaw / YAW_SCALE (degrees)
YAW_SCALE = 90.0


def style_levels(n_latent: int) -> list[int]:
    """The pyramid level (0: 4², 1: 8², 2: 16²) each of ``n_latent`` W+ layers reads: layers of the 4² and 8²
    synthesis blocks (the first three) are coarse, those of 16² and 32² (the next four) middle, the rest fine."""
    return [0 if i < 3 else 1 if i < 7 else 2 for i in range(n_latent)]


class _Block(nn.Module):
    """Basic residual block: two 3x3 convolutions with leaky ReLU, the first strided; 1x1 strided skip."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1, stride) if (cin != cout or stride != 1) else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.c2(F.leaky_relu(self.c1(x), 0.2))
        return F.leaky_relu(y + self.skip(x), 0.2)


class _MapToStyle(nn.Module):
    """pSp's map2style: stride-2 3x3 convolutions from an ``s``² feature down to 1², then a linear layer
    (zero-initialised: no change until trained)."""

    def __init__(self, c: int, s: int, w_dim: int):
        super().__init__()
        layers: list[nn.Module] = []
        while s > 1:
            layers += [nn.Conv2d(c, c, 3, 2, 1), nn.LeakyReLU(0.2)]
            s //= 2
        self.convs = nn.Sequential(*layers)
        self.out = nn.Linear(c, w_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.convs(x).flatten(1))


class PoseEncoder(nn.Module):
    """``(image (B, 3, R, R) in [-1, 1], target yaw (B,) degrees) -> Delta W (B, n_latent, w_dim)``.

    Args:
        res: the prior's resolution (a power of two >= 32).
        n_latent, w_dim: the prior's W+ shape (:attr:`StyleGenerator.n_latent`, ``w_dim``).
        widths: channels of the stem and of each stride-2 stage down to 4² (``log2(res) - 1`` values).
        fpn: channels of the pyramid and the style heads.
    """

    def __init__(self, res: int = 64, n_latent: int = 10, w_dim: int = 256, widths: tuple | list = (32, 64, 128, 128, 256),
                 fpn: int = 128):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        stages = res.bit_length() - 1 - 2  # res -> 4
        if res < 32 or res & (res - 1) or len(widths) != stages + 1:
            raise ValueError(f"PoseEncoder: res must be a power of two >= 32 and widths must have {stages + 1} "
                             f"values, got res {res}, widths {widths}")
        self.config = {"res": res, "n_latent": n_latent, "w_dim": w_dim, "widths": list(widths), "fpn": fpn}
        self.res, self.n_latent, self.w_dim = res, n_latent, w_dim
        self.stem = nn.Sequential(nn.Conv2d(4, widths[0], 3, 1, 1), nn.LeakyReLU(0.2))
        self.stages = nn.ModuleList(_Block(widths[i], widths[i + 1], 2) for i in range(stages))
        # lateral 1x1 convolutions at 4², 8², 16² (the last three stages' outputs)
        self.lateral = nn.ModuleList(nn.Conv2d(widths[-1 - i], fpn, 1) for i in range(3))
        self.levels = style_levels(n_latent)
        self.heads = nn.ModuleList(_MapToStyle(fpn, 4 << lv, w_dim) for lv in self.levels)

    def forward(self, image: torch.Tensor, yaw: torch.Tensor) -> torch.Tensor:
        if image.ndim != 4 or tuple(image.shape[1:]) != (3, self.res, self.res):
            raise ShapeError(f"PoseEncoder: image must be (B, 3, {self.res}, {self.res}), got {tuple(image.shape)}")
        yaw = torch.as_tensor(yaw, dtype=image.dtype, device=image.device).reshape(-1)
        if yaw.numel() == 1:
            yaw = yaw.expand(image.shape[0])
        if yaw.shape[0] != image.shape[0]:
            raise ShapeError(f"PoseEncoder: {yaw.shape[0]} target poses for {image.shape[0]} images")
        plane = (yaw / YAW_SCALE)[:, None, None, None].expand(-1, 1, self.res, self.res)
        x = self.stem(torch.cat([image, plane], 1))
        feats = []
        for st in self.stages:
            x = st(x)
            feats.append(x)
        p4 = self.lateral[0](feats[-1])
        p8 = self.lateral[1](feats[-2]) + F.interpolate(p4, scale_factor=2, mode="bilinear", align_corners=False)
        p16 = self.lateral[2](feats[-3]) + F.interpolate(p8, scale_factor=2, mode="bilinear", align_corners=False)
        pyr = (p4, p8, p16)
        return torch.stack([head(pyr[lv]) for head, lv in zip(self.heads, self.levels, strict=True)], 1)


LATENT_POSE = NetworkSpec("latent_pose", PoseEncoder, LATENT_POSE_FORMAT, "latent pose encoder", LATENT_POSE_ASSET)


def load_latent_pose(weights: str | os.PathLike | None = None, *,
                     device: torch.device | str | None = None) -> tuple[PoseEncoder, dict]:
    """The latent pose encoder in eval mode and its metadata (``meta["generator"]``: the checksum of the prior it
    was trained with): ``weights`` (a file of this format), else the shipped one. Cached."""
    net, meta = load_network(LATENT_POSE, Path(weights) if weights is not None else None, device=device)
    return net.eval(), meta


def fixed_noise(G: nn.Module, n: int = 1, seed: int = 0, device: torch.device | str | None = None) -> list[torch.Tensor]:
    """StyleGAN2 noise inputs drawn once from ``seed`` and shared by all ``n`` faces (as
    :func:`recon3d.nn.inversion.invert` holds them), so an edit changes the latent only."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(1, 1, h, w, generator=g).to(device).expand(n, -1, -1, -1) for h, w in G.noise_shapes()]


def edit_latents(encoder: PoseEncoder, ws: torch.Tensor, image: torch.Tensor, yaw: torch.Tensor) -> torch.Tensor:
    """``W* + encoder(image, yaw)``: the latents ``ws`` ``(B, L, W)`` of ``image`` turned to target yaws
    ``yaw`` (degrees, ``(B,)`` or one value).

    Raises:
        ShapeError: ``ws`` does not have the encoder's W+ shape.
    """
    if ws.ndim != 3 or tuple(ws.shape[1:]) != (encoder.n_latent, encoder.w_dim) or ws.shape[0] != image.shape[0]:
        raise ShapeError(f"edit_latents(): ws must be ({image.shape[0]}, {encoder.n_latent}, {encoder.w_dim}), "
                         f"got {tuple(ws.shape)}")
    return ws + encoder(image, yaw)
