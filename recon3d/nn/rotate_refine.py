"""The learned rotation refiner (Yin's thesis ch. 3, issue 16 item 2): pixel attention sampling (PAS)
followed by a CIN U-Net, refining recon3d's 3D-guided rotation of a face.

All inputs live in the refiner's frame (:mod:`recon3d.edit._learned_rotate`): a ``res``² crop aligned on
the face template by the landmarks of the rotated mesh. Images are in [-1, 1].

* **Condition.** The 68 model landmarks at the source and the target pose (``(B, 68, 3)`` each: x, y in
  [-1, 1] of the frame, relative depth) go through an MLP to a vector ``c``; the decoder's CIN layers also
  see the source's identity descriptor (128-d, :mod:`recon3d.nn.identity`; the thesis conditions its
  decoder on LightCNN features).
* **PAS** (:class:`PixelAttentionSampler`, thesis 3.3.2): an embedder of stride-2 convs with conditional
  instance norm (:class:`~recon3d.nn.blocks.ConditionalInstanceNorm2d`, condition ``c``) and SAGAN
  self-attention reads the source photo aligned by its exposed half (``I_tf``) together with the warp,
  and ends in a 512-d vector; the sampler (fully connected + ReLU) turns it into a sampling map. The
  thesis's sampler outputs the full ``H x W x 2`` map; ours outputs it at ``grid``² (16² by default: the
  full map from 512 features would take 17 M weights at 128²), upsampled bilinearly and added to the
  identity grid (its last layer starts at zero, so an untrained PAS returns ``I_tf`` unchanged).
* **Refiner** (:class:`RotationRefiner`, the thesis's CIN U-Net inpainter): the warp, the PAS output, the
  no-source mask and the face mask, three stride-2 stages (conv + CIN + LeakyReLU), residual blocks with
  self-attention at 1/8 size, a decoder with U-Net skips, and a 3x3 conv whose output is added to the
  warp (it starts at zero, so an untrained refiner returns the warp: our choice for short CPU budgets).
  ``pas=False`` builds the thesis's ablation: the U-Net reads ``I_tf`` directly.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_shapes
from .blocks import ConditionalInstanceNorm2d, SelfAttention2d
from .registry import NetworkSpec, load_network

__all__ = ["PixelAttentionSampler", "RotationRefiner", "ROTATION_REFINER", "REFINER_ASSET", "load_rotation_refiner",
           "landmark_condition", "identity_grid"]

REFINER_FORMAT = "recon3d-rotation-refiner-v1"
#: the shipped weights (assets/)
REFINER_ASSET = "recon3d_rotation_refiner_128_v2.safetensors"


def identity_grid(B: int, H: int, W: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """``(B, H, W, 2)`` ``grid_sample`` coordinates (``align_corners=False``) that return the input unchanged."""
    ys = (torch.arange(H, device=device, dtype=dtype) + 0.5) / H * 2 - 1
    xs = (torch.arange(W, device=device, dtype=dtype) + 0.5) / W * 2 - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], -1)[None].expand(B, H, W, 2)


def landmark_condition(lmk_src: torch.Tensor, lmk_tgt: torch.Tensor) -> torch.Tensor:
    """``(B, 408)``: the source and target landmarks ``(B, 68, 3)`` flattened side by side."""
    check_shapes("landmark_condition()", lmk_src=(lmk_src, "B 68 3"), lmk_tgt=(lmk_tgt, "B 68 3"))
    return torch.cat([lmk_src.flatten(1), lmk_tgt.flatten(1)], 1)


class _CINConv(nn.Module):
    """conv -> CIN(cond) -> LeakyReLU(0.2)."""

    def __init__(self, cin: int, cout: int, cond: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1)
        self.norm = ConditionalInstanceNorm2d(cout, cond)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.norm(self.conv(x), c), 0.2)


class _CINRes(nn.Module):
    def __init__(self, ch: int, cond: int):
        super().__init__()
        self.a = _CINConv(ch, ch, cond)
        self.b = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return x + self.b(self.a(x, c))


class PixelAttentionSampler(nn.Module):
    """PAS: ``(source (B, 3, S, S), warp (B, 3, S, S), c (B, cond)) -> (sampled, grid (B, S, S, 2))``.

    Args:
        widths: channels of the embedder's four stride-2 stages.
        cond: size of the condition vector.
        grid: side of the predicted sampling map (upsampled to the image).
        max_shift: largest displacement, in units of the half image (``tanh``-bounded).
    """

    def __init__(self, widths: tuple | list = (16, 32, 64, 128), cond: int = 128, grid: int = 16,
                 max_shift: float = 0.25):
        super().__init__()
        w = [int(x) for x in widths]
        self.grid, self.max_shift = int(grid), float(max_shift)
        self.stages = nn.ModuleList()
        cin = 6
        for c_out in w:
            self.stages.append(_CINConv(cin, c_out, cond, stride=2))
            cin = c_out
        self.attn = SelfAttention2d(w[2])
        self.embed = nn.Linear(w[-1] * 16, 512)
        self.sampler = nn.Sequential(nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, self.grid ** 2 * 2))
        nn.init.zeros_(self.sampler[-1].weight)
        nn.init.zeros_(self.sampler[-1].bias)

    def forward(self, source: torch.Tensor, warp: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, _, H, W = source.shape
        x = torch.cat([source, warp], 1)
        for i, stage in enumerate(self.stages):
            x = stage(x, c)
            if i == 2:
                x = self.attn(x)
        v = self.embed(F.adaptive_avg_pool2d(x, 4).flatten(1))
        flow = torch.tanh(self.sampler(v)).view(B, 2, self.grid, self.grid) * self.max_shift
        flow = F.interpolate(flow, size=(H, W), mode="bilinear", align_corners=False).permute(0, 2, 3, 1)
        grid = identity_grid(B, H, W, device=source.device, dtype=source.dtype) + flow
        return F.grid_sample(source, grid, mode="bilinear", padding_mode="border", align_corners=False), grid


class RotationRefiner(nn.Module):
    """``(warp, source, masks, lmk_src, lmk_tgt, emb) -> (B, 3, S, S)`` in [-1, 1] (see the module doc).

    Args:
        res: the side the network is trained at (a multiple of 8).
        widths: channels at full, 1/2, 1/4 and 1/8 size (the PAS embedder uses the same).
        blocks: residual blocks at 1/8 size (self-attention after the first).
        cond: size of the landmark condition vector.
        id_dim: size of the identity descriptor (0: no identity condition).
        pas: use the pixel attention sampler (``False``: the thesis's ablation).
    """

    def __init__(self, res: int = 128, widths: tuple | list = (16, 32, 64, 128), blocks: int = 2, cond: int = 128,
                 id_dim: int = 128, pas: bool = True):
        super().__init__()
        if res % 8:
            raise ValueError(f"RotationRefiner: res must be a multiple of 8, got {res}")
        w = [int(x) for x in widths]
        if len(w) != 4:
            raise ValueError(f"RotationRefiner: widths must give 4 channel counts, got {widths!r}")
        self.config = {"res": int(res), "widths": w, "blocks": int(blocks), "cond": int(cond), "id_dim": int(id_dim),
                       "pas": bool(pas)}
        self.res, self.id_dim, self.uses_pas = int(res), int(id_dim), bool(pas)
        self.cond_mlp = nn.Sequential(nn.Linear(68 * 3 * 2, 256), nn.LeakyReLU(0.2), nn.Linear(256, cond))
        self.pas = PixelAttentionSampler(w, cond) if pas else None
        dcond = cond + (cond if id_dim else 0)
        self.id_proj = nn.Linear(id_dim, cond) if id_dim else None
        self.head = _CINConv(3 + 3 + 2, w[0], cond)
        self.down = nn.ModuleList([_CINConv(w[i], w[i + 1], cond, stride=2) for i in range(3)])
        self.mid = nn.ModuleList([_CINRes(w[3], dcond) for _ in range(max(1, blocks))])
        self.attn = SelfAttention2d(w[3])
        self.up = nn.ModuleList([_CINConv(w[i + 1] + w[i], w[i], dcond) for i in (2, 1, 0)])
        self.to_rgb = nn.Conv2d(w[0], 3, 3, padding=1)
        nn.init.zeros_(self.to_rgb.weight)
        nn.init.zeros_(self.to_rgb.bias)

    def condition(self, lmk_src: torch.Tensor, lmk_tgt: torch.Tensor,
                  emb: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(c, c_dec)``: the landmark condition and the decoder's (landmarks + identity)."""
        c = self.cond_mlp(landmark_condition(lmk_src, lmk_tgt))
        if self.id_proj is None:
            return c, c
        if emb is None:
            raise ValueError("RotationRefiner: this network is conditioned on the source's identity; pass emb=")
        return c, torch.cat([c, self.id_proj(emb.to(c))], 1)

    def refine(self, warp: torch.Tensor, source: torch.Tensor, masks: torch.Tensor, lmk_src: torch.Tensor,
               lmk_tgt: torch.Tensor, emb: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(refined, sampled)``: the output and the PAS output (``source`` itself without PAS)."""
        check_shapes("RotationRefiner()", warp=(warp, "B 3 S S"), source=(source, "B 3 S S"), masks=(masks, "B 2 S S"))
        c, cd = self.condition(lmk_src, lmk_tgt, emb)
        sampled = self.pas(source, warp, c)[0] if self.pas is not None else source
        x = self.head(torch.cat([warp, sampled, masks * 2 - 1], 1), c)
        skips = [x]
        for d in self.down:
            x = d(x, c)
            skips.append(x)
        for i, blk in enumerate(self.mid):
            x = blk(x, cd)
            if i == 0:
                x = self.attn(x)
        for up, skip in zip(self.up, skips[-2::-1], strict=True):
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = up(torch.cat([x, skip], 1), cd)
        return (warp + self.to_rgb(x)).clamp(-1, 1), sampled

    def forward(self, warp: torch.Tensor, source: torch.Tensor, masks: torch.Tensor, lmk_src: torch.Tensor,
                lmk_tgt: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        """warp, source ``(B, 3, S, S)``; masks ``(B, 2, S, S)`` (no source, face) in {0, 1}; landmarks
        ``(B, 68, 3)``; emb ``(B, 128)`` -> ``(B, 3, S, S)``."""
        return self.refine(warp, source, masks, lmk_src, lmk_tgt, emb)[0]


ROTATION_REFINER = NetworkSpec(name="rotation_refiner", cls=RotationRefiner, format=REFINER_FORMAT,
                               what="rotation refiner", asset=REFINER_ASSET)


def load_rotation_refiner(weights: str | os.PathLike | None = None, *,
                          device: torch.device | str | None = None) -> RotationRefiner:
    """The rotation refiner in eval mode: ``weights`` (a file of this format), else the shipped one. Cached."""
    net, _ = load_network(ROTATION_REFINER, Path(weights) if weights is not None else None, device=device)
    return net.eval()
