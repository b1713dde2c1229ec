"""DCGAN generator and discriminator (Radford et al. 2016), as used by seed 003 for 64x64 faces.

Seed 003 keeps the original DCGAN (its Sec. III.A, Figs. 2-3; its deeper 128x128 variant collapsed):

* **generator**: ``z`` (``nz`` = 100) as a 1x1 map, a 4x4 transposed convolution to ``8 ngf``
  channels, then stride-2 4x4 transposed convolutions halving the channels and doubling the size,
  batch normalisation and ReLU after each, and a final transposed convolution to RGB with tanh;
* **discriminator**: stride-2 4x4 convolutions doubling the channels from ``ndf``, leaky ReLU (0.2)
  everywhere, batch normalisation on all but the first, and a 4x4 valid convolution to one logit;
* weights drawn from N(0, 0.02) (batch-norm scales from N(1, 0.02)); Adam, learning rate 2e-4,
  beta1 0.5 (the training recipe's defaults for this architecture).

No fully connected layers, no pooling. The resolution is a power of two >= 16 (one more
up/down-sampling stage per doubling). Truncation for DCGAN scales ``z`` (it has no ``w`` space).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ShapeError
from .registry import NetworkSpec

__all__ = ["DCGenerator", "DCDiscriminator", "DCGAN_G", "DCGAN_D", "init_dcgan"]


def _stages(res: int) -> int:
    if res < 16 or res & (res - 1):
        raise ShapeError(f"DCGAN: resolution must be a power of two >= 16, got {res}")
    return int(math.log2(res)) - 2  # 64 -> 4 stages: 4 -> 8 -> 16 -> 32 -> 64


def init_dcgan(m: nn.Module) -> None:
    """DCGAN initialisation: conv weights N(0, 0.02), batch-norm scale N(1, 0.02) and shift 0."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class DCGenerator(nn.Module):
    """DCGAN generator: ``z`` (N, nz) -> images (N, 3, res, res) in [-1, 1]."""

    def __init__(self, res: int = 64, nz: int = 100, ngf: int = 64):
        super().__init__()
        n = _stages(res)
        self.config = {"res": res, "nz": nz, "ngf": ngf}
        self.res, self.z_dim = res, nz
        c = ngf * 2 ** (n - 1)
        layers: list[nn.Module] = [nn.ConvTranspose2d(nz, c, 4, 1, 0, bias=False), nn.BatchNorm2d(c), nn.ReLU(True)]
        for _ in range(n - 1):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(c // 2), nn.ReLU(True)]
            c //= 2
        layers += [nn.ConvTranspose2d(c, 3, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        self.apply(init_dcgan)

    def forward(self, z: torch.Tensor, truncation: float = 1.0) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ShapeError(f"DCGenerator: z must be (N, {self.z_dim}), got {tuple(z.shape)}")
        return self.main((z * truncation)[:, :, None, None])


class DCDiscriminator(nn.Module):
    """DCGAN discriminator: (N, 3, res, res) -> (N,) logits."""

    def __init__(self, res: int = 64, ndf: int = 64):
        super().__init__()
        n = _stages(res)
        self.config = {"res": res, "ndf": ndf}
        self.res = res
        layers: list[nn.Module] = [nn.Conv2d(3, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        c = ndf
        for _ in range(n - 1):
            layers += [nn.Conv2d(c, c * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(c * 2), nn.LeakyReLU(0.2, True)]
            c *= 2
        layers += [nn.Conv2d(c, 1, 4, 1, 0, bias=False)]
        self.main = nn.Sequential(*layers)
        self.apply(init_dcgan)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1:] != (3, self.res, self.res):
            raise ShapeError(f"DCDiscriminator: input must be (N, 3, {self.res}, {self.res}), got {tuple(x.shape)}")
        return self.main(x).flatten()


DCGAN_G = NetworkSpec(name="dcgan", cls=DCGenerator, format="recon3d-dcgan-generator-v1", what="DCGAN generator",
                      asset="recon3d_dcgan_64_v1.safetensors")
DCGAN_D = NetworkSpec(name="dcgan-d", cls=DCDiscriminator, format="recon3d-dcgan-discriminator-v1",
                      what="DCGAN discriminator", asset="recon3d_dcgan_64_v1_d.safetensors")
