"""StyleGAN2 generator and discriminator in plain PyTorch (no custom CUDA ops), sized for a CPU.

The layout follows Karras et al., "Analyzing and improving the image quality of StyleGAN" (CVPR 2020),
the StyleGAN2 of seed 003 (its Fig. 5 and Fig. 6) and the prior of seeds 000 and 002:

* **mapping network**: pixel-normalised ``z`` through ``n_mlp`` equalised-learning-rate linear
  layers (learning-rate multiplier ``lr_mlp``, leaky ReLU) to ``w``;
* **synthesis network**: a learned 4x4 constant, then per resolution two *modulated 3x3
  convolutions with weight demodulation* (the first upsamples x2), each followed by a per-pixel
  noise input (learned per-layer strength), a bias and a leaky ReLU; a 1x1 modulated *toRGB* per
  resolution (no demodulation) whose outputs are upsampled and summed (the *skip* generator);
  ``n_latent = 2 log2(res) - 2`` style inputs, so per-layer ``w`` (W+) and style mixing work;
* **discriminator**: fromRGB, *residual* blocks (two 3x3 convolutions, the second at half
  resolution, plus a 1x1 skip, summed and divided by sqrt 2), a *minibatch standard deviation*
  feature, a 3x3 convolution and two linear layers to one logit.

What differs from NVIDIA's code, on purpose: upsampling and downsampling are bilinear resampling
(``F.interpolate`` / ``F.avg_pool2d``) instead of the transposed convolution with a [1,3,3,1] FIR
filter (no custom op, the same role: smooth resampling), and the modulated convolution scales the
*activations* by the style and the output by the demodulation coefficient instead of building one
weight per sample. That is the same function (``tests/nn/test_stylegan2.py`` compares it with an
explicit per-sample convolution) without a grouped convolution, which is faster on a CPU. The
channel widths are a table per resolution (:data:`CPU_CHANNELS`, profiled for a 2-core CPU; pass
``channels`` for the paper's 512-wide layers on a GPU); the code runs at any power-of-two
resolution from 8 up.

Truncation: the generator keeps the running mean of ``w`` seen in training (``w_avg``, updated by the
trainer); ``truncation=psi`` moves every ``w`` towards it (psi 1 is no truncation).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ShapeError
from .registry import NetworkSpec

__all__ = ["StyleGenerator", "StyleDiscriminator", "EqualLinear", "EqualConv2d", "ModulatedConv2d",
           "CPU_CHANNELS", "STYLEGAN2_G", "STYLEGAN2_D", "G_FORMAT", "D_FORMAT"]

G_FORMAT = "recon3d-stylegan2-generator-v1"
D_FORMAT = "recon3d-stylegan2-discriminator-v1"

#: channels per resolution for CPU training (64² generator: 3.2 M parameters, 1.6 s per batch-16 step on one core)
CPU_CHANNELS = {4: 256, 8: 256, 16: 128, 32: 64, 64: 32, 128: 16, 256: 16, 512: 16, 1024: 16}

_SQRT2 = math.sqrt(2.0)


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    """Leaky ReLU (0.2) with StyleGAN's gain sqrt 2, which keeps unit variance."""
    return F.leaky_relu(x, 0.2) * _SQRT2


class EqualLinear(nn.Module):
    """Linear layer with an equalised learning rate: weights stored as N(0, 1) / lr_mul, scaled at run
    time by lr_mul / sqrt(fan_in); bias scaled by lr_mul."""

    def __init__(self, cin: int, cout: int, *, bias_init: float = 0.0, lr_mul: float = 1.0, act: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin) / lr_mul)
        self.bias = nn.Parameter(torch.full((cout,), float(bias_init) / lr_mul))
        self.scale, self.lr_mul, self.act = lr_mul / math.sqrt(cin), lr_mul, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return _lrelu(y) if self.act else y


class EqualConv2d(nn.Module):
    """Convolution with an equalised learning rate (weights N(0, 1), scaled by 1/sqrt(fan_in))."""

    def __init__(self, cin: int, cout: int, k: int, *, bias: bool = True, act: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.scale, self.pad, self.act = 1 / math.sqrt(cin * k * k), k // 2, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, self.weight * self.scale, self.bias, padding=self.pad)
        return _lrelu(y) if self.act else y


class ModulatedConv2d(nn.Module):
    """StyleGAN2 modulated convolution: weight w[o, i] scaled per sample by the style s[i] (an affine map of
    ``w``), then (``demodulate``) each output channel divided by sqrt(sum_i,k (w s)^2 + eps).

    Computed as conv(x * s, w) * d, which equals the per-sample convolution with the modulated,
    demodulated weight. ``up=True`` upsamples the input x2 (bilinear) first.
    """

    def __init__(self, cin: int, cout: int, k: int, style_dim: int, *, demodulate: bool = True, up: bool = False,
                 eps: float = 1e-8):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.affine = EqualLinear(style_dim, cin, bias_init=1.0)
        self.scale, self.pad, self.demodulate, self.up, self.eps = 1 / math.sqrt(cin * k * k), k // 2, demodulate, up, eps

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        s = self.affine(w)  # (N, cin)
        weight = self.weight * self.scale
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        y = F.conv2d(x * s[:, :, None, None], weight, padding=self.pad)
        if self.demodulate:
            # sum_{i,k} (w[o,i,k] s[i])^2 = sum_i s[i]^2 sum_k w[o,i,k]^2: no per-sample weight tensor
            d = torch.rsqrt(s.pow(2) @ weight.pow(2).sum(dim=(2, 3)).t() + self.eps)  # (N, cout)
            y = y * d[:, :, None, None]
        return y


class _StyledConv(nn.Module):
    """Modulated conv + per-pixel noise (learned strength) + bias + leaky ReLU."""

    def __init__(self, cin: int, cout: int, style_dim: int, up: bool = False):
        super().__init__()
        self.conv = ModulatedConv2d(cin, cout, 3, style_dim, up=up)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(cout))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        y = self.conv(x, w)
        if noise is None:
            noise = torch.randn(y.shape[0], 1, y.shape[2], y.shape[3], device=y.device, dtype=y.dtype)
        return _lrelu(y + self.noise_strength * noise + self.bias[None, :, None, None])


class _ToRGB(nn.Module):
    def __init__(self, cin: int, style_dim: int, out_ch: int = 3):
        super().__init__()
        self.conv = ModulatedConv2d(cin, out_ch, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(out_ch))

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        y = self.conv(x, w) + self.bias[None, :, None, None]
        if skip is not None:
            y = y + F.interpolate(skip, scale_factor=2, mode="bilinear", align_corners=False)
        return y


def _channels(channels: dict | None, res: int) -> dict[int, int]:
    table = {int(k): int(v) for k, v in (channels or CPU_CHANNELS).items()}
    missing = [r for r in _resolutions(res) if r not in table]
    if missing:
        raise ShapeError(f"StyleGAN2: no channel count for resolution(s) {missing}")
    return table


def _resolutions(res: int) -> list[int]:
    if res < 8 or res & (res - 1):
        raise ShapeError(f"StyleGAN2: resolution must be a power of two >= 8, got {res}")
    return [2 ** i for i in range(2, int(math.log2(res)) + 1)]


class StyleGenerator(nn.Module):
    """StyleGAN2 generator (mapping + skip synthesis); images in [-1, 1], NCHW RGB.

    Args:
        res: output side (power of two >= 8).
        z_dim, w_dim: latent sizes.
        n_mlp: mapping layers.
        channels: feature channels per resolution (default :data:`CPU_CHANNELS`).
        lr_mlp: learning-rate multiplier of the mapping network (0.01 as in the paper).
    """

    def __init__(self, res: int = 64, z_dim: int = 256, w_dim: int = 256, n_mlp: int = 4,
                 channels: dict | None = None, lr_mlp: float = 0.01):
        super().__init__()
        ch = _channels(channels, res)
        self.config = {"res": res, "z_dim": z_dim, "w_dim": w_dim, "n_mlp": n_mlp,
                       "channels": {str(r): ch[r] for r in _resolutions(res)}, "lr_mlp": lr_mlp}
        self.res, self.z_dim, self.w_dim = res, z_dim, w_dim
        self.mapping = nn.Sequential(*[EqualLinear(z_dim if i == 0 else w_dim, w_dim, lr_mul=lr_mlp, act=True)
                                       for i in range(n_mlp)])
        self.const = nn.Parameter(torch.randn(1, ch[4], 4, 4))
        self.conv1 = _StyledConv(ch[4], ch[4], w_dim)
        self.to_rgb1 = _ToRGB(ch[4], w_dim)
        self.convs, self.to_rgbs = nn.ModuleList(), nn.ModuleList()
        for r in _resolutions(res)[1:]:
            self.convs.append(_StyledConv(ch[r // 2], ch[r], w_dim, up=True))
            self.convs.append(_StyledConv(ch[r], ch[r], w_dim))
            self.to_rgbs.append(_ToRGB(ch[r], w_dim))
        self.n_latent = 2 * int(math.log2(res)) - 2
        #: running mean of w over training (the truncation centre)
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def noise_shapes(self) -> list[tuple[int, int]]:
        """(height, width) of every noise input, in the order :meth:`synthesis` takes them."""
        return [(4, 4)] + [(r, r) for r in _resolutions(self.res)[1:] for _ in range(2)]

    def map(self, z: torch.Tensor, truncation: float = 1.0) -> torch.Tensor:
        """``z`` (N, z_dim) -> ``w`` (N, w_dim), truncated towards ``w_avg`` by ``truncation``."""
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ShapeError(f"StyleGenerator: z must be (N, {self.z_dim}), got {tuple(z.shape)}")
        z = z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)
        w = self.mapping(z)
        if truncation != 1.0:
            w = self.w_avg + truncation * (w - self.w_avg)
        return w

    def synthesis(self, ws: torch.Tensor, noise: list[torch.Tensor | None] | None = None) -> torch.Tensor:
        """Per-layer styles ``ws`` (N, n_latent, w_dim) or one ``w`` (N, w_dim) -> images (N, 3, res, res).

        ``noise``: one tensor (N or 1, 1, h, w) per :meth:`noise_shapes` entry (None: fresh random noise).
        """
        if ws.ndim == 2:
            ws = ws[:, None].expand(-1, self.n_latent, -1)
        if ws.ndim != 3 or ws.shape[1] != self.n_latent or ws.shape[2] != self.w_dim:
            raise ShapeError(f"StyleGenerator: ws must be (N, {self.n_latent}, {self.w_dim}), got {tuple(ws.shape)}")
        noise = noise if noise is not None else [None] * len(self.noise_shapes())
        x = self.const.expand(ws.shape[0], -1, -1, -1)
        x = self.conv1(x, ws[:, 0], noise[0])
        rgb = self.to_rgb1(x, ws[:, 1], None)
        i = 1
        for j, to_rgb in enumerate(self.to_rgbs):
            x = self.convs[2 * j](x, ws[:, i], noise[1 + 2 * j])
            x = self.convs[2 * j + 1](x, ws[:, i + 1], noise[2 + 2 * j])
            rgb = to_rgb(x, ws[:, i + 2], rgb)
            i += 2
        return rgb

    def forward(self, z: torch.Tensor, truncation: float = 1.0, noise: list | None = None) -> torch.Tensor:
        """``z`` (N, z_dim) -> images (N, 3, res, res) in about [-1, 1]."""
        return self.synthesis(self.map(z, truncation), noise)


class _DBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = EqualConv2d(cin, cin, 3, act=True)
        self.conv2 = EqualConv2d(cin, cout, 3, act=True)
        self.skip = EqualConv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.avg_pool2d(self.conv1(x), 2))
        return (y + self.skip(F.avg_pool2d(x, 2))) / _SQRT2


class StyleDiscriminator(nn.Module):
    """StyleGAN2 residual discriminator with minibatch standard deviation; (N, 3, res, res) -> (N,) logits."""

    def __init__(self, res: int = 64, channels: dict | None = None, mbstd_group: int = 4):
        super().__init__()
        ch = _channels(channels, res)
        rs = _resolutions(res)
        self.config = {"res": res, "channels": {str(r): ch[r] for r in rs}, "mbstd_group": mbstd_group}
        self.res, self.mbstd_group = res, mbstd_group
        self.from_rgb = EqualConv2d(3, ch[res], 1, act=True)
        self.blocks = nn.Sequential(*[_DBlock(ch[r], ch[r // 2]) for r in reversed(rs[1:])])
        self.final_conv = EqualConv2d(ch[4] + 1, ch[4], 3, act=True)
        self.fc = EqualLinear(ch[4] * 16, ch[4], act=True)
        self.out = EqualLinear(ch[4], 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The 4x4 feature map before the minibatch-stddev layer."""
        if x.ndim != 4 or x.shape[1:] != (3, self.res, self.res):
            raise ShapeError(f"StyleDiscriminator: input must be (N, 3, {self.res}, {self.res}), got {tuple(x.shape)}")
        return self.blocks(self.from_rgb(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.head(x)).squeeze(1)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """The (N, C) feature the output layer scores (after minibatch stddev, the final conv and the fc
        layer); a conditional discriminator projects its condition onto it."""
        h = self.features(x)
        n, c, hh, ww = h.shape
        g = min(self.mbstd_group, n)
        while n % g:
            g -= 1
        sd = h.view(g, n // g, c, hh, ww)
        sd = (sd - sd.mean(0)).pow(2).mean(0).add(1e-8).sqrt().mean(dim=(1, 2, 3))  # (n // g,)
        sd = sd.view(1, n // g, 1, 1, 1).expand(g, -1, 1, hh, ww).reshape(n, 1, hh, ww)
        h = self.final_conv(torch.cat([h, sd], 1))
        return self.fc(h.flatten(1))


STYLEGAN2_G = NetworkSpec(name="stylegan2", cls=StyleGenerator, format=G_FORMAT, what="StyleGAN2 generator",
                          asset="recon3d_stylegan2_64_v1.safetensors")
#: the shipped discriminator is for fine-tuning the shipped generator (``train_gan --init ... --init-d ...``)
STYLEGAN2_D = NetworkSpec(name="stylegan2-d", cls=StyleDiscriminator, format=D_FORMAT, what="StyleGAN2 discriminator",
                          asset="recon3d_stylegan2_64_v1_d.safetensors")
