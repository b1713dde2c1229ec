"""GAN inversion: find the StyleGAN2 latent that reproduces a photo of a face.

:func:`invert` optimises ``w`` (one latent for all layers, ``space="w"``) or ``W+`` (one per layer,
``space="w+"``, the W* of seed 000) so that ``G.synthesis(w)`` matches the target face, with

* a **pixel** loss: mean squared error in [-1, 1];
* an **identity** loss: the distance of recon3d's identity-network descriptors of the two faces
  (:func:`recon3d.nn.identity.identity_distance`, dlib's metric: same person below 0.6);
* a **feature** loss: L1 between normalised identity-network activations
  (:func:`recon3d.nn.identity.feature_distance`, our stand-in for a perceptual loss; not LPIPS);
* for W+, a small penalty ``w_reg`` on the spread of the per-layer latents around their mean, which
  keeps them near the generator's learned range.

The target must be a face aligned to recon3d's template (:func:`recon3d.ops.align.align_face`, the
frame the generators were trained in) at the generator's resolution, float in [-1, 1]; the chips of
the identity network are placed by the template (:func:`~recon3d.nn.identity.aligned_chip_matrix`).
Optimisation starts from ``G.w_avg`` (the mean face) with Adam, the learning rate ramped up over
the first 5 % of the steps and down with a cosine over the last 25 % (as NVIDIA's projector does);
the noise inputs are held fixed (seeded). The result records the losses every ``record_every``
steps and the final descriptor distance, so callers can say how faithful the inversion is.

It works at the prior's resolution (the shipped StyleGAN2 is 64x64): a larger photo is compared at
64x64, so fine detail is not recovered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ShapeError
from .identity import (
    IdentityNet,
    aligned_chip_matrix,
    extract_chip,
    feature_distance,
    identity_distance,
    load_identity_net,
)
from .stylegan2 import StyleGenerator

__all__ = ["InversionConfig", "InversionResult", "invert"]


@dataclass(frozen=True)
class InversionConfig:
    """Settings of :func:`invert` (the defaults were chosen on held-out faces-128 photos)."""

    space: str = "w+"
    steps: int = 300
    lr: float = 0.05
    pixel: float = 1.0
    identity: float = 0.5
    feature: float = 1.0
    #: W+ only: weight of the per-layer spread penalty
    w_reg: float = 0.01
    noise_seed: int = 0
    record_every: int = 25


@dataclass
class InversionResult:
    """``ws`` ``(N, n_latent, w_dim)`` (every layer's latent; for ``space="w"`` all rows equal),
    ``image`` the reconstruction ``(N, 3, res, res)`` in [-1, 1], ``identity_distance`` per face (dlib
    metric between target and reconstruction), ``history`` of loss records."""

    ws: torch.Tensor
    image: torch.Tensor
    identity_distance: np.ndarray
    history: list[dict] = field(default_factory=list)


def _lr(cfg: InversionConfig, step: int) -> float:
    t = step / max(cfg.steps, 1)
    ramp = min(1.0, t / 0.05) * min(1.0, 0.5 - 0.5 * np.cos(np.pi * min(1.0, (1 - t) / 0.25)))
    return cfg.lr * ramp


def invert(G: StyleGenerator, target: torch.Tensor, config: InversionConfig = InversionConfig(), *,
           id_net: IdentityNet | None = None,
           progress: Callable[[int, dict], object] | None = None) -> InversionResult:
    """Invert aligned faces ``target`` ``(N, 3, res, res)`` in [-1, 1] into ``G``'s latent space.

    Args:
        G: a StyleGAN2 generator (:func:`recon3d.nn.generation.load_generator`); not modified.
        target: template-aligned faces at ``G.res``.
        config: space, steps, learning rate and loss weights.
        id_net: the identity network (default: :func:`~recon3d.nn.identity.load_identity_net` on
            G's device).
        progress: called as ``progress(step, record)`` every ``record_every`` steps.

    Raises:
        ShapeError: a target of the wrong shape.
        ValueError: not a StyleGAN2 generator, or an unknown space.
    """
    if not isinstance(G, StyleGenerator):
        raise ValueError("invert(): needs a StyleGAN2 generator (DCGAN has no W space)")
    if config.space not in ("w", "w+"):
        raise ValueError(f"invert(): space must be 'w' or 'w+', got {config.space!r}")
    if target.ndim != 4 or tuple(target.shape[1:]) != (3, G.res, G.res):
        raise ShapeError(f"invert(): target must be (N, 3, {G.res}, {G.res}) aligned faces, got {tuple(target.shape)}")
    dev = next(G.parameters()).device
    net = id_net if id_net is not None else load_identity_net(device=dev)
    n = len(target)
    tgt = target.to(dev).float()
    m = np.broadcast_to(aligned_chip_matrix(G.res), (n, 2, 3))
    g = torch.Generator().manual_seed(config.noise_seed)
    noise = [torch.randn(1, 1, h, w, generator=g).to(dev).expand(n, -1, -1, -1) for h, w in G.noise_shapes()]
    grads = [p.requires_grad for p in G.parameters()]
    G.requires_grad_(False)
    net_grads = [p.requires_grad for p in net.parameters()]
    net.requires_grad_(False)
    with torch.no_grad():
        tchips = extract_chip((tgt + 1) / 2, m)
    w0 = G.w_avg.detach().clone()[None].expand(n, -1)
    if config.space == "w":
        w = w0.clone().requires_grad_(True)
    else:
        w = w0[:, None].expand(-1, G.n_latent, -1).clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=config.lr, betas=(0.9, 0.999))
    history: list[dict] = []
    try:
        for step in range(config.steps + 1):
            ws = w[:, None].expand(-1, G.n_latent, -1) if config.space == "w" else w
            img = G.synthesis(ws, noise)
            chips = extract_chip(((img + 1) / 2).clamp(0, 1), m)
            l_pix = F.mse_loss(img, tgt, reduction="none").mean((1, 2, 3))
            l_id = identity_distance(net, chips, tchips)
            l_feat = feature_distance(net, chips, tchips)
            loss = config.pixel * l_pix + config.identity * l_id + config.feature * l_feat
            if config.space == "w+" and config.w_reg > 0:
                loss = loss + config.w_reg * (w - w.mean(1, keepdim=True)).pow(2).mean((1, 2))
            if step % config.record_every == 0 or step == config.steps:
                rec = {"step": step, "loss": loss.detach().mean().item(), "pixel_mse": l_pix.detach().mean().item(),
                       "identity_distance": l_id.detach().mean().item(), "feature": l_feat.detach().mean().item()}
                history.append(rec)
                if progress is not None:
                    progress(step, rec)
            if step == config.steps:
                break
            for gr in opt.param_groups:
                gr["lr"] = _lr(config, step)
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            opt.step()
    finally:
        for p, r in zip(G.parameters(), grads, strict=True):
            p.requires_grad_(r)
        for p, r in zip(net.parameters(), net_grads, strict=True):
            p.requires_grad_(r)
    ws = (w[:, None].expand(-1, G.n_latent, -1) if config.space == "w" else w).detach()
    return InversionResult(ws=ws, image=img.detach().clamp(-1, 1), identity_distance=l_id.detach().cpu().numpy(),
                           history=history)
