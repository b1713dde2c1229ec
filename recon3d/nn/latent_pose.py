"""Latent pose editing (seed 000): an encoder that turns a face's StyleGAN2 latent to a target yaw.

Seed 000 rotates a face without a 3D model: the photo is inverted into the prior's W+ space (``W*``), an
encoder reads the photo together with a constant channel holding the target pose and outputs a change
``Delta W`` of every style, and the prior renders ``G(W* + Delta W)``. Only the encoder (and, in training, a
pose-conditioned discriminator) learns; the prior, the inversion and the pose predictor stay fixed.

:class:`PoseEncoder` is their encoder at CPU size: a residual backbone (stride-2 basic blocks from the prior's
resolution down to 4²) and a feature pyramid (top-down sums at 4², 8² and 16²), read by map-to-style heads
(stride-2 convolutions to 1², then a linear layer). Two things differ from the paper, both measured choices
for a 64² prior trained in minutes on a CPU:

* **Which styles change.** Only the first ``edit_layers`` W+ styles (default 7 of 10: the 4² to 32² synthesis
  layers, where pose lives) receive a change, and by default one change shared by all of them
  (``shared=True``: one head on the 8² level). With a free change per style, the pose reader is fooled: a
  per-face optimisation of ten free styles against our regressor's yaw reads 45 degrees on images that are no
  longer faces, while one shared change of the coarse styles stays a face. ``shared=False`` gives pSp's one
  head per style (coarse styles from the 4² level, middle from 8², fine from 16²) for bigger budgets.
* **What the pose channels hold.** Seed 000 feeds the target pose; we feed it and the source yaw read by our
  regressor (:func:`recon3d.nn.landmarks.frame_pose`), two constant channels (yaw / 90 degrees), and add a
  direction scaled by the change of yaw, ``(target - source) / 90 * v``, to the head's output: a linear path in
  latent space (InterfaceGAN's kind of edit) that the per-face head corrects. Training starts ``v`` from
  :func:`fit_yaw_direction`, a ridge regression of the regressor's yaw on ``w`` over generated faces (R² 0.95
  for the shipped prior); learned from zero in a CPU budget it oscillated.

The heads' last layers and ``v`` start at zero, so an untrained encoder returns ``W*`` unchanged (tested).

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
           "fixed_noise", "YAW_SCALE", "fit_yaw_direction"]

LATENT_POSE_FORMAT = "recon3d-latent-pose-v1"
#: the shipped weights (assets/)
LATENT_POSE_ASSET = "recon3d_latent_pose_64_v1.safetensors"
#: the pose channels hold yaw / YAW_SCALE (degrees)
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
    """``(image (B, 3, R, R) in [-1, 1], target yaw (B,), source yaw (B,), degrees) -> Delta W (B, n_latent, w_dim)``.

    Args:
        res: the prior's resolution (a power of two >= 32).
        n_latent, w_dim: the prior's W+ shape (:attr:`StyleGenerator.n_latent`, ``w_dim``).
        widths: channels of the stem and of each stride-2 stage down to 4² (``log2(res) - 1`` values).
        fpn: channels of the pyramid and the style heads.
        edit_layers: how many of the first W+ styles change (the rest keep ``W*``).
        shared: one change for all edited styles (one head on the 8² level), else one head per style.
    """

    def __init__(self, res: int = 64, n_latent: int = 10, w_dim: int = 256, widths: tuple | list = (32, 64, 128, 128, 256),
                 fpn: int = 128, edit_layers: int = 7, shared: bool = True):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        stages = res.bit_length() - 1 - 2  # res -> 4
        if res < 32 or res & (res - 1) or len(widths) != stages + 1:
            raise ValueError(f"PoseEncoder: res must be a power of two >= 32 and widths must have {stages + 1} "
                             f"values, got res {res}, widths {widths}")
        if not 1 <= edit_layers <= n_latent:
            raise ValueError(f"PoseEncoder: edit_layers must be within [1, {n_latent}], got {edit_layers}")
        self.config = {"res": res, "n_latent": n_latent, "w_dim": w_dim, "widths": list(widths), "fpn": fpn,
                       "edit_layers": edit_layers, "shared": bool(shared)}
        self.res, self.n_latent, self.w_dim, self.edit_layers, self.shared = res, n_latent, w_dim, edit_layers, shared
        self.stem = nn.Sequential(nn.Conv2d(5, widths[0], 3, 1, 1), nn.LeakyReLU(0.2))
        self.stages = nn.ModuleList(_Block(widths[i], widths[i + 1], 2) for i in range(stages))
        # lateral 1x1 convolutions at 4², 8² (and 16² per style): the last stages' outputs
        self.lateral = nn.ModuleList(nn.Conv2d(widths[-1 - i], fpn, 1) for i in range(2 if shared else 3))
        self.levels = [1] if shared else style_levels(n_latent)[:edit_layers]
        self.heads = nn.ModuleList(_MapToStyle(fpn, 4 << lv, w_dim) for lv in self.levels)
        #: the latent direction per 90 degrees of yaw change (fitted by :func:`fit_yaw_direction`, then learned)
        self.direction = nn.Parameter(torch.zeros(w_dim))
        # He initialisation for leaky ReLU keeps the features at unit scale through the stack (PyTorch's default
        # shrinks them ~2x per layer: the heads then start blind and the edit barely moves in a CPU budget)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=0.2)
                nn.init.zeros_(m.bias)

    def _yaws(self, yaw, image: torch.Tensor, name: str) -> torch.Tensor:
        yaw = torch.as_tensor(yaw, dtype=image.dtype, device=image.device).reshape(-1)
        if yaw.numel() == 1:
            yaw = yaw.expand(image.shape[0])
        if yaw.shape[0] != image.shape[0]:
            raise ShapeError(f"PoseEncoder: {yaw.shape[0]} {name} yaws for {image.shape[0]} images")
        return yaw

    def forward(self, image: torch.Tensor, yaw: torch.Tensor, source_yaw: torch.Tensor) -> torch.Tensor:
        if image.ndim != 4 or tuple(image.shape[1:]) != (3, self.res, self.res):
            raise ShapeError(f"PoseEncoder: image must be (B, 3, {self.res}, {self.res}), got {tuple(image.shape)}")
        yaw, src = self._yaws(yaw, image, "target"), self._yaws(source_yaw, image, "source")
        planes = (torch.stack([yaw, src], 1) / YAW_SCALE)[:, :, None, None].expand(-1, 2, self.res, self.res)
        x = self.stem(torch.cat([image, planes], 1))
        feats = []
        for st in self.stages:
            x = st(x)
            feats.append(x)
        p4 = self.lateral[0](feats[-1])
        p8 = self.lateral[1](feats[-2]) + F.interpolate(p4, scale_factor=2, mode="bilinear", align_corners=False)
        pyr = [p4, p8]
        if not self.shared:
            pyr.append(self.lateral[2](feats[-3]) + F.interpolate(p8, scale_factor=2, mode="bilinear",
                                                                  align_corners=False))
        linear = ((yaw - src) / YAW_SCALE)[:, None] * self.direction
        d = torch.stack([head(pyr[lv]) for head, lv in zip(self.heads, self.levels, strict=True)], 1) + linear[:, None]
        if self.shared:
            d = d.expand(-1, self.edit_layers, -1)
        rest = d.new_zeros(d.shape[0], self.n_latent - self.edit_layers, self.w_dim)
        return torch.cat([d, rest], 1)


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


def edit_latents(encoder: PoseEncoder, ws: torch.Tensor, image: torch.Tensor, yaw: torch.Tensor,
                 source_yaw: torch.Tensor) -> torch.Tensor:
    """``W* + encoder(image, yaw, source_yaw)``: the latents ``ws`` ``(B, L, W)`` of ``image`` (whose yaw our
    regressor reads as ``source_yaw``) turned to target yaws ``yaw`` (degrees, ``(B,)`` or one value each).

    Raises:
        ShapeError: ``ws`` does not have the encoder's W+ shape.
    """
    if ws.ndim != 3 or tuple(ws.shape[1:]) != (encoder.n_latent, encoder.w_dim) or ws.shape[0] != image.shape[0]:
        raise ShapeError(f"edit_latents(): ws must be ({image.shape[0]}, {encoder.n_latent}, {encoder.w_dim}), "
                         f"got {tuple(ws.shape)}")
    return ws + encoder(image, yaw, source_yaw)


@torch.no_grad()
def fit_yaw_direction(G: nn.Module, regressor: nn.Module, *, n: int = 1024, truncation: float = 0.8, seed: int = 0,
                      ridge: float = 10.0, batch: int = 64) -> tuple[torch.Tensor, float]:
    """The latent direction that turns ``G``'s faces: a ridge regression of ``regressor``'s yaw
    (:func:`recon3d.nn.landmarks.frame_pose`) on ``w`` over ``n`` seeded generated faces.

    Returns:
        ``(v (w_dim,), r2)``: moving ``w`` by ``t * v`` changes the predicted yaw by ``90 t`` degrees, and the
        fit's coefficient of determination on its own samples.
    """
    from .landmarks import frame_pose

    dev = next(G.parameters()).device
    g = torch.Generator().manual_seed(seed)
    ws, yaws = [], []
    for i in range(0, n, batch):
        k = min(batch, n - i)
        w = G.map(torch.randn(k, G.z_dim, generator=g).to(dev), truncation)
        ws.append(w.double())
        yaws.append(frame_pose(regressor, G.synthesis(w, fixed_noise(G, k, seed, dev)))[:, 0].double())
    W, Y = torch.cat(ws), torch.cat(yaws)
    Wc, Yc = W - W.mean(0), Y - Y.mean()
    a = torch.linalg.solve(Wc.T @ Wc + ridge * torch.eye(W.shape[1], dtype=W.dtype, device=W.device), Wc.T @ Yc)
    r2 = float(1 - ((Yc - Wc @ a) ** 2).mean() / Yc.var().clamp_min(1e-12))
    return (YAW_SCALE * a / (a @ a)).float(), r2
