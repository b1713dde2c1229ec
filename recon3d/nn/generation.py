"""Face generation with the shipped (or a user's) generators: seeded sampling, truncation, interpolation.

>>> import torch
>>> from recon3d.nn.stylegan2 import StyleGenerator
>>> G = StyleGenerator(8, z_dim=8, w_dim=8, n_mlp=1, channels={4: 4, 8: 4}).eval()
>>> a, b = generate(G, 2, seed=3), generate(G, 2, seed=3)
>>> tuple(a.shape), bool(torch.equal(a, b))
((2, 3, 8, 8), True)

Everything random (latents and StyleGAN2's noise inputs) is drawn from one CPU ``torch.Generator``
seeded by ``seed``, so the same seed gives the same faces on any machine and device (up to float
rounding on CUDA). ``truncation`` psi < 1 trades variety for typicality: StyleGAN2 moves ``w``
towards the training mean ``w_avg``; DCGAN, which has no ``w``, scales ``z``.
"""

from __future__ import annotations

import math
import os

import torch
from torch import nn

from ..errors import ShapeError
from .dcgan import DCGAN_G, DCGenerator
from .registry import load_network
from .stylegan2 import STYLEGAN2_G, StyleGenerator

__all__ = ["GENERATORS", "load_generator", "latents", "generate", "interpolate", "slerp", "generator_checksum"]

#: architecture name -> generator spec (shipped weights in assets/)
GENERATORS = {"stylegan2": STYLEGAN2_G, "dcgan": DCGAN_G}


def load_generator(arch: str = "stylegan2", path: str | os.PathLike | None = None, *,
                   device: torch.device | str | None = None) -> tuple[nn.Module, dict]:
    """``(generator in eval mode, meta)``: the shipped ``arch`` generator, or the file at ``path``
    (a ``pipelines.train_gan --export`` file of that architecture). Cached; do not train it."""
    if arch not in GENERATORS:
        raise ValueError(f"unknown generator {arch!r}; choose from {sorted(GENERATORS)}")
    G, meta = load_network(GENERATORS[arch], path, device=device)
    return G.float(), meta


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def latents(G: nn.Module, n: int, seed: int) -> torch.Tensor:
    """``n`` latents ``z`` (n, z_dim) of ``G`` for ``seed`` (CPU)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return torch.randn(n, G.z_dim, generator=_gen(seed))


def _noise(G: StyleGenerator, n: int, g: torch.Generator, device: torch.device) -> list[torch.Tensor]:
    return [torch.randn(n, 1, h, w, generator=g).to(device) for h, w in G.noise_shapes()]


@torch.no_grad()
def generate(G: nn.Module, n: int | None = None, seed: int = 0, *, z: torch.Tensor | None = None,
             truncation: float = 1.0, batch: int = 32) -> torch.Tensor:
    """Images (n, 3, res, res) in [-1, 1] on the CPU, from ``n`` seeded latents or the given ``z``.

    StyleGAN2's noise inputs come from the same seeded generator (after the latents), so the output
    is a function of (weights, seed, n, truncation).
    """
    dev = next(G.parameters()).device
    g = _gen(seed)
    if z is None:
        if n is None:
            raise ValueError("generate(): give n or z")
        z = torch.randn(n, G.z_dim, generator=g)
    if z.ndim != 2 or z.shape[1] != G.z_dim:
        raise ShapeError(f"generate(): z must be (N, {G.z_dim}), got {tuple(z.shape)}")
    out = []
    for zc in z.split(batch):
        if isinstance(G, StyleGenerator):
            out.append(G(zc.to(dev), truncation=truncation, noise=_noise(G, len(zc), g, dev)).cpu())
        elif isinstance(G, DCGenerator):
            out.append(G(zc.to(dev), truncation=truncation).cpu())
        else:
            out.append(G(zc.to(dev)).cpu())
    return torch.cat(out).clamp(-1, 1)


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between latents (rows) ``a`` and ``b`` at ``t`` in [0, 1].

    >>> a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    >>> [round(v, 4) for v in slerp(a, b, 0.5)[0].tolist()]
    [0.7071, 0.7071]
    """
    na, nb = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    cos = ((a / na) * (b / nb)).sum(-1, keepdim=True).clamp(-1, 1)
    omega = torch.acos(cos)
    so = torch.sin(omega)
    lin = (1 - t) * a + t * b
    sl = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / so.clamp_min(1e-8)
    return torch.where(so.abs() < 1e-6, lin, sl)


@torch.no_grad()
def interpolate(G: nn.Module, keys: int = 4, frames_per_key: int = 12, seed: int = 0, *,
                truncation: float = 1.0) -> torch.Tensor:
    """A looping walk through ``keys`` seeded latents (spherical interpolation in ``z``), one frame
    batch (keys * frames_per_key, 3, res, res) in [-1, 1]; the noise inputs are held fixed so only the
    latent moves."""
    if keys < 2 or frames_per_key < 1:
        raise ValueError("interpolate(): need keys >= 2 and frames_per_key >= 1")
    z = latents(G, keys, seed)
    zs = [slerp(z[i:i + 1], z[(i + 1) % keys:(i + 1) % keys + 1], f / frames_per_key)
          for i in range(keys) for f in range(frames_per_key)]
    zz = torch.cat(zs)
    dev = next(G.parameters()).device
    if isinstance(G, StyleGenerator):
        g = _gen(seed + 1)
        noise = [t.expand(len(zz), -1, -1, -1) for t in _noise(G, 1, g, dev)]
        out = [G(zz[i:i + 32].to(dev), truncation=truncation, noise=[t[i:i + 32] for t in noise]).cpu()
               for i in range(0, len(zz), 32)]
        return torch.cat(out).clamp(-1, 1)
    return generate(G, z=zz, truncation=truncation)


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, columns) of a near-square contact sheet of ``n`` images.

    >>> grid_shape(64), grid_shape(10)
    ((8, 8), (3, 4))
    """
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def generator_checksum(G: torch.nn.Module) -> str:
    """A short SHA-256 of a generator's weights (what an inverted latent is only valid for)."""
    import hashlib

    h = hashlib.sha256()
    for k, v in sorted(G.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]
