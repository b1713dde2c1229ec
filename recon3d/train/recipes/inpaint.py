"""Recipe: the learned de-occlusion fill ``N_G`` (:mod:`recon3d.nn.inpaint`, thesis 5.3.4) on the one loop.

Samples: template-aligned training faces with their cached occluder (bank shapes or sunglasses), the
hole ``M_o``, and the 3DMM render ``I_m`` and coverage ``M_m`` fitted to the occluded face
(:mod:`recon3d.data.deocclusion`: a render fitted to the clean face would leak the hidden region),
mirrored at random (all together); the hole's noise is drawn per step, seeded by the step, so a
resumed run sees the same samples. The network gets ``I_n`` (noise in the hole),
``M_o``, ``I_m`` and (``base=True``) the Poisson blend ``I_p`` it corrects; its output ``Y`` is composited (``M_o * out + (1 - M_o) * image``).

Objective, with the thesis's weights as defaults (``T`` the un-occluded face):

    L = 10 L_pix + 5 L_ssim + 5 L_bg + 0.2 L_id + 0.1 L_tv + 0.01 L_adv

* ``L_pix``: L1 of ``Y - T`` on the face region ``M_m`` (mean over the hole's face pixels). The thesis
  restricts it to ``M_m x M_f`` because real occluded photos have no ground truth under the occluder;
  synthetic occluders do, so the hole is included (outside it ``Y = T`` anyway).
* ``L_ssim``: ``1 - SSIM`` (:func:`recon3d.ops.metrics.ssim_map`) with online hard example mining: the mean
  over the worst ``ohem`` share of the hole's pixels. The target is ``T`` (``ssim_target="clean"``) or the
  thesis's Poisson pseudo-ground truth ``I_p`` (``"poisson"``, :func:`recon3d.data.deocclusion.poisson_target`).
* ``L_bg``: L1 on the hole outside the face (an occluder crossing into hair or background).
* ``L_id``: the identity distance of :func:`recon3d.nn.identity.identity_distance` (dlib's metric, our
  identity network stands in for the thesis's ArcFace) between ``Y`` and ``T``.
* ``L_tv``: total variation of ``Y`` inside the (1 px grown) hole.
* ``L_adv``: non-saturating BCE with a VGG-shaped discriminator (:class:`VGGDiscriminator`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...data.augment import to_float
from ...data.deocclusion import RenderCache, poisson_target
from ...data.faces import FaceBatches, FaceSet
from ...nn.identity import aligned_chip_matrix, extract_chip, identity_distance, load_identity_net
from ...nn.inpaint import INPAINTER, Inpainter, hole_noise
from ...nn.registry import load_network
from ...ops.metrics import ssim_map
from ..loop import LoopConfig, run_training
from ._base import GDRecipe
from .gan import _nonsat_d

__all__ = ["InpaintTrainConfig", "InpaintRecipe", "VGGDiscriminator", "inpaint_losses", "train_inpainter",
           "masked_psnr"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InpaintTrainConfig(LoopConfig):
    """Hyper-parameters of an inpainter run (defaults of ``pipelines.train_inpainter``)."""

    res: int = 128
    batch: int = 8
    lr: float = 5e-4
    d_lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 20
    schedule: str = "cosine"
    max_minutes: float | None = 60.0
    checkpoint_minutes: float = 3.0
    log_every: int = 10
    eval_every: int | None = 100
    lambda_pix: float = 10.0
    lambda_ssim: float = 5.0
    lambda_bg: float = 5.0
    lambda_id: float = 0.2
    lambda_tv: float = 0.1
    lambda_adv: float = 0.01
    #: share of the hole's pixels the SSIM term keeps (the hardest ones)
    ohem: float = 0.5
    ssim_target: str = "clean"
    #: the network: no 3DMM render input (the ablation)
    prior: bool = True
    #: the network corrects the Poisson blend I_p (recon3d.nn.inpaint)
    base: bool = True
    attention: bool = True
    widths: tuple = (16, 32, 64, 128)
    bottleneck: int = 4


class VGGDiscriminator(nn.Module):
    """VGG-shaped discriminator (the thesis's): pairs of 3x3 conv + leaky ReLU with average pooling
    between them, down to 4², then one linear logit per sample."""

    def __init__(self, res: int = 128, width: int = 16):
        super().__init__()
        layers: list[nn.Module] = []
        c_in, c, s = 3, width, res
        while s > 4:
            layers += [nn.Conv2d(c_in, c, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(c, c, 3, 1, 1), nn.LeakyReLU(0.2),
                       nn.AvgPool2d(2)]
            c_in, c, s = c, min(8 * width, 2 * c), s // 2
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c_in * s * s, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))[:, 0]


def masked_psnr(y: torch.Tensor, t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) inside ``mask`` of images in [-1, 1] (range 1 after mapping to [0, 1])."""
    se = (((y.clamp(-1, 1) - t) / 2) ** 2).mean(1, keepdim=True) * mask
    mse = se.flatten(1).sum(1) / mask.flatten(1).sum(1).clamp_min(1)
    return -10 * torch.log10(mse.clamp_min(1e-10))


def _masked_mean(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` (B, C, H, W) over the pixels of ``m`` (B, 1, H, W), per sample, then over the batch."""
    num = (x * m).flatten(1).sum(1)
    den = (m.flatten(1).sum(1) * x.shape[1]).clamp_min(1)
    return (num / den).mean()


def inpaint_losses(y: torch.Tensor, target: torch.Tensor, hole: torch.Tensor, face: torch.Tensor, *,
                   ssim_target: torch.Tensor | None = None, ohem: float = 0.5) -> dict[str, torch.Tensor]:
    """The content terms of the module doc: ``{"pix", "ssim", "bg", "tv"}`` (scalars).

    Args:
        y: ``(B, 3, S, S)`` composited output in [-1, 1].
        target: the un-occluded face.
        hole: ``(B, 1, S, S)`` ``M_o`` in {0, 1}.
        face: ``(B, 1, S, S)`` ``M_m`` in {0, 1}.
        ssim_target: the SSIM term's target (default ``target``).
        ohem: share of the hole's pixels kept by the SSIM term (the largest ``1 - SSIM``).
    """
    l1 = (y - target).abs()
    pix = _masked_mean(l1, hole * face)
    bg = _masked_mean(l1, hole * (1 - face))
    st = target if ssim_target is None else ssim_target
    dssim = 1 - ssim_map((y + 1) / 2, (st + 1) / 2)
    terms = []
    for b in range(len(y)):
        v = dssim[b][hole[b] > 0.5]
        if v.numel():
            k = max(1, int(round(ohem * v.numel())))
            terms.append(torch.topk(v, k).values.mean())
    ssim = torch.stack(terms).mean() if terms else y.sum() * 0
    grown = F.max_pool2d(hole, 3, 1, 1)
    dx = (y[..., :, 1:] - y[..., :, :-1]).abs() * grown[..., :, 1:]
    dy = (y[..., 1:, :] - y[..., :-1, :]).abs() * grown[..., 1:, :]
    tv = (dx.flatten(1).sum(1) + dy.flatten(1).sum(1)) / (3 * grown.flatten(1).sum(1)).clamp_min(1)
    return {"pix": pix, "ssim": ssim, "bg": bg, "tv": tv.mean()}


class InpaintRecipe(GDRecipe):
    """The inpainting task for :func:`recon3d.train.loop.run_training` (see the module doc).

    Args:
        faces: the face set the cache was built from (``load_faces(dir, 128, split=...)``).
        cache: its :class:`~recon3d.data.deocclusion.RenderCache`.
        config: the run's settings.
        val: optional ``(faces uint8 (N, 3, S, S), occluded uint8, holes bool, renders uint8, coverage bool)``
            held-out faces (a :class:`~recon3d.data.deocclusion.RenderCache` of the val split) scored (PSNR in
            the hole) in each history record.
    """

    def __init__(self, faces: FaceSet, cache: RenderCache, config: InpaintTrainConfig, *, val=None,
                 identity_net=None):
        self.cfg = config
        if config.ssim_target not in ("clean", "poisson"):
            raise ValueError(f"ssim_target must be 'clean' or 'poisson', got {config.ssim_target!r}")
        if len(cache) < config.batch:
            raise ValueError(f"{len(cache)} cached faces, fewer than one batch of {config.batch}")
        if int(cache.indices.max()) >= len(faces):
            raise ValueError("the render cache indexes faces beyond this face set: build both from one folder and split")
        idx = torch.as_tensor(cache.indices)
        imgs = faces.images[idx]
        if imgs.shape[-1] != config.res:
            raise ValueError(f"faces are {imgs.shape[-1]}², the inpainter trains at {config.res}²")
        self.images = imgs
        self.renders = torch.as_tensor(cache.renders)
        self.coverage = torch.as_tensor(cache.coverage)
        self.occluded = torch.as_tensor(cache.occluded)
        self.holes = torch.as_tensor(cache.holes)
        sub = FaceSet(images=imgs, keys=[faces.keys[i] for i in cache.indices.tolist()], root=faces.root, res=faces.res)
        self.batches = FaceBatches(sub, config.batch, config.seed)
        self.val = val
        self.idnet = identity_net
        if self.idnet is None and config.lambda_id > 0:
            self.idnet = load_identity_net()
        if self.idnet is not None:
            self.idnet.requires_grad_(False).eval()
        self.chip_m = np.broadcast_to(aligned_chip_matrix(config.res), (config.batch, 2, 3))

    # -- loop protocol -------------------------------------------------------------------------
    def make_samples(self, faces_u8: torch.Tensor, occluded_u8: torch.Tensor, holes: torch.Tensor,
                     renders_u8: torch.Tensor, cover: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
        """``(occluded, hole, render, face mask, target, noise, I_p)``: images in [-1, 1], masks in {0, 1};
        ``I_p`` (:func:`~recon3d.data.deocclusion.poisson_target`) is computed when the network or the SSIM
        term uses it, else empty."""
        target, occ, hole = to_float(faces_u8), to_float(occluded_u8), holes.float()
        noise = hole_noise(tuple(target.shape), gen)
        render, face = to_float(renders_u8), cover.float()
        ip = torch.zeros(0)
        if (self.cfg.base and self.cfg.prior) or self.cfg.ssim_target == "poisson":
            ip = poisson_target(occ, render, hole, face)
        return occ, hole, render, face, target, noise, ip

    def batch(self, step_in_epoch: int, step: int) -> tuple:
        ids = self.batches.indices(step)
        gen = torch.Generator().manual_seed(self.cfg.seed * 7919 + step)
        flip = (torch.rand(len(ids), generator=gen) < 0.5)[:, None, None, None]
        parts = (self.images[ids], self.occluded[ids], self.holes[ids], self.renders[ids], self.coverage[ids])
        return self.make_samples(*(torch.where(flip, t.flip(3), t) for t in parts), gen)

    def _g(self, G: nn.Module, occ, hole, render, noise, ip) -> torch.Tensor:
        """The composited output of the generator."""
        base = ip if G.uses_base else None
        return hole * G(occ * (1 - hole) + noise * hole, hole, render, base) + (1 - hole) * occ

    def train_step(self, net: nn.ModuleDict, opts: dict, batch: tuple, step: int) -> dict[str, float]:
        cfg = self.cfg
        G = net["G"]
        dev = next(G.parameters()).device
        occ, hole, render, face, target, noise, ip = (t.to(dev) for t in batch)
        out: dict[str, float] = {}
        adv = "D" in net and cfg.lambda_adv > 0
        if adv:
            with torch.no_grad():
                fake = self._g(G, occ, hole, render, noise, ip)
            d_loss = _nonsat_d(net["D"](target), net["D"](fake))
            opts["D"].zero_grad(set_to_none=True)
            d_loss.backward()
            opts["D"].step()
            out["d_loss"] = d_loss.item()
            net["D"].requires_grad_(False)
        y = self._g(G, occ, hole, render, noise, ip)
        st = ip if cfg.ssim_target == "poisson" else target
        terms = inpaint_losses(y, target, hole, face, ssim_target=st, ohem=cfg.ohem)
        loss = (cfg.lambda_pix * terms["pix"] + cfg.lambda_ssim * terms["ssim"] + cfg.lambda_bg * terms["bg"]
                + cfg.lambda_tv * terms["tv"])
        out.update({k: v.item() for k, v in terms.items()})
        if adv:
            g_adv = F.softplus(-net["D"](y)).mean()
            loss = loss + cfg.lambda_adv * g_adv
            out["g_adv"] = g_adv.item()
            net["D"].requires_grad_(True)
        if cfg.lambda_id > 0 and self.idnet is not None:
            m = self.chip_m[:len(y)]
            yc = extract_chip(((y + 1) / 2).clamp(0, 1), m)
            with torch.no_grad():
                tc = extract_chip((target + 1) / 2, m)
            idl = identity_distance(self.idnet, yc, tc).mean()
            loss = loss + cfg.lambda_id * idl
            out["id"] = idl.item()
        opts["G"].zero_grad(set_to_none=True)
        loss.backward()
        opts["G"].step()
        out["loss"] = loss.item()
        return out

    @torch.no_grad()
    def report(self, net: nn.ModuleDict, device: torch.device) -> dict:
        if self.val is None:
            return {}
        parts = (torch.as_tensor(np.asarray(a)) for a in self.val)
        gen = torch.Generator().manual_seed(10 ** 6 + self.cfg.seed)  # the same noise at every report
        occ, hole, render, face, target, noise, ip = (t.to(device) for t in self.make_samples(*parts, gen))
        G = net["G"]
        was = G.training
        G.eval()
        y = self._g(G, occ, hole, render, noise, ip)
        G.train(was)
        out = {"val_psnr_hole": float(masked_psnr(y, target, hole).mean()),
               "val_psnr_hole_input": float(masked_psnr(occ, target, hole).mean())}
        if ip.numel():
            out["val_psnr_hole_poisson"] = float(masked_psnr(hole * ip + (1 - hole) * occ, target, hole).mean())
        return {**out,
                "val_l1_hole": float(((y - target).abs() / 2 * hole).sum() / (3 * hole.sum()).clamp_min(1))}


def build_inpainter(config: InpaintTrainConfig) -> nn.ModuleDict:
    """A fresh ``ModuleDict``: ``G`` the :class:`~recon3d.nn.inpaint.Inpainter` and, when the adversarial
    term is on, ``D`` the :class:`VGGDiscriminator`."""
    nets: dict[str, nn.Module] = {"G": Inpainter(config.res, widths=config.widths, bottleneck=config.bottleneck,
                                                 attention=config.attention, prior=config.prior, base=config.base)}
    if config.lambda_adv > 0:
        nets["D"] = VGGDiscriminator(config.res)
    return nn.ModuleDict(nets)


def train_inpainter(faces: FaceSet, cache: RenderCache, out_dir: str | Path,
                    config: InpaintTrainConfig = InpaintTrainConfig(), *, init: str | Path | None = None, val=None,
                    device: str = "cpu", log_fn=None, progress=None):
    """Train (or resume from ``out_dir/last.pt``) the inpainter; ``init``: exported inpainter weights of the same
    configuration to fine-tune (ignored when a checkpoint resumes). Returns the loop's ``LoopResult``."""
    torch.manual_seed(config.seed)
    net = build_inpainter(config)
    if init is not None:
        g0, _ = load_network(INPAINTER, init, cached=False)
        if g0.config != net["G"].config:
            raise ValueError(f"{init}: an inpainter with another configuration ({g0.config}) than this run's "
                             f"({net['G'].config})")
        net["G"] = g0.float().train()
    recipe = InpaintRecipe(faces, cache, config, val=val)
    return run_training(net, recipe, config, out_dir, device=device, log_fn=log_fn, progress=progress)
