"""Recipe: the latent pose editor (:mod:`recon3d.nn.latent_pose`, seed 000) on the one loop.

Samples: a face ``x`` at the prior's resolution with its latent ``W*``. Two sources, mixed per batch:

* **generated** faces: ``z`` drawn from the step's seed, ``w = G.map(z, truncation)``, ``x = G(w)``: the
  latent is exact, and the supply is endless;
* **real** faces inverted once (:mod:`recon3d.data.latents`): ``x`` is the photo, ``W*`` its inversion, as at
  inference.

The source yaw ``y_s`` is our landmark regressor's reading of ``x`` (:func:`recon3d.nn.landmarks.frame_pose`,
the Hopenet role); the encoder reads it with the target yaw. A sample's target is either seed 000's **mirror** pair, target yaw ``-y_s`` and target image
the flipped ``x`` (exact supervision for free), or a **random** target yaw in ``[-max_yaw, max_yaw]``, whose
target image is ``x`` itself at a small pixel weight (seed 000: "the weighting for pixel-wise loss will be
reduced"). With ``Y = G(W* + E(x, y_t))`` and the loss weights of :class:`LatentPoseTrainConfig`:

    L = L_fwd + lambda_cycle * L_cycle (seed 000 eqs. 7-8)
    L_fwd = lambda_pix L2(Y, T) + lambda_id ID(Y, T) + lambda_feat FEAT(Y, T) + lambda_adv GAN(Y | y_t)
            + lambda_pose |P(Y) - y_t| / 90

* ``ID``: the identity distance of recon3d's identity network (dlib's metric; ArcFace's role), ``FEAT`` its
  normalised activations (:func:`recon3d.nn.identity.feature_distance`, the LPIPS stand-in: no LPIPS backbone
  weights exist offline);
* ``GAN``: the non-saturating logistic loss of a pose-conditioned discriminator (:class:`PoseConditionedD`: the
  shipped StyleGAN2 discriminator plus a projection of the yaw; real images are the real faces and their mirrors
  at their read yaws);
* ``P``: the regressor's yaw (frozen, differentiable); pitch is held at the source's;
* ``L_cycle`` (back-projection): the same terms for ``G(W* + Delta + E(Y, y_s))`` against ``x``, without the GAN
  (``Y``'s own yaw, as the regressor reads it, is the second pass's source yaw).

Our additions: ``lambda_delta`` times the mean squared ``Delta W`` keeps the edit near the input's latent (the
e4e-style regulariser; 0 turns it off), and the encoder's gradient norm is clipped to ``grad_clip``. G, the identity network and the regressor never change.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...data.latents import InvertedLatents, generator_checksum
from ...nn.identity import (
    aligned_chip_matrix,
    extract_chip,
    feature_distance,
    identity_distance,
    load_identity_net,
)
from ...nn.landmarks import POSE_REGRESSOR, frame_pose, load_regressor_net
from ...nn.latent_pose import (
    LATENT_POSE,
    YAW_SCALE,
    PoseEncoder,
    edit_latents,
    fit_yaw_direction,
    fixed_noise,
)
from ...nn.registry import load_network
from ...nn.stylegan2 import STYLEGAN2_D, StyleDiscriminator
from ..loop import LoopConfig, run_training
from ._base import GDRecipe

__all__ = ["LatentPoseTrainConfig", "LatentPoseRecipe", "PoseConditionedD", "build_latent_pose", "train_latent_pose"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LatentPoseTrainConfig(LoopConfig):
    """Hyper-parameters of a latent pose run (defaults of ``pipelines.train_latent_pose``)."""

    batch: int = 8
    lr: float = 5e-4
    d_lr: float = 1e-4
    weight_decay: float = 0.0
    warmup_steps: int = 20
    schedule: str = "cosine"
    max_minutes: float | None = 60.0
    checkpoint_minutes: float = 3.0
    log_every: int = 10
    eval_every: int | None = 100
    #: truncation of the generated samples' latents
    truncation: float = 0.8
    #: share of each batch drawn from the inverted real faces (when a latent folder is given)
    real_fraction: float = 0.5
    #: share of samples with a random target yaw (the rest: mirror pairs)
    random_fraction: float = 0.5
    #: random target yaws within +-max_yaw (the shipped prior's faces: 90 % within +-22 degrees)
    max_yaw: float = 30.0
    #: the encoder's W+ styles that change, and whether they share one change (see recon3d.nn.latent_pose)
    edit_layers: int = 7
    shared: bool = True
    lambda_pix: float = 1.0
    #: pixel weight of the random-target samples (their target image is the input itself)
    lambda_pix_random: float = 0.1
    lambda_id: float = 0.5
    lambda_feat: float = 0.8
    lambda_pose: float = 4.0
    lambda_adv: float = 0.05
    lambda_cycle: float = 1.0
    lambda_delta: float = 0.01
    #: the encoder's gradient norm is clipped to this (0: off); without it a run diverged after 300 steps
    grad_clip: float = 1.0
    widths: tuple = (32, 64, 128, 128, 256)
    fpn: int = 128


class PoseConditionedD(nn.Module):
    """A projection discriminator conditioned on yaw (Miyato & Koyama 2018) on the StyleGAN2 one: logit
    ``out(h) + <embed(yaw / 90), h>`` with ``h`` :meth:`StyleDiscriminator.head`; the embedding starts at zero,
    so a discriminator initialised from the shipped one starts as that one."""

    def __init__(self, base: StyleDiscriminator):
        super().__init__()
        self.base = base
        self.embed = nn.Linear(1, base.out.weight.shape[1], bias=False)  # the width of head()'s feature
        nn.init.zeros_(self.embed.weight)

    def forward(self, x: torch.Tensor, yaw: torch.Tensor) -> torch.Tensor:
        h = self.base.head(x)
        return self.base.out(h)[:, 0] + (self.embed((yaw / YAW_SCALE)[:, None]) * h).sum(1)


class LatentPoseRecipe(GDRecipe):
    """The latent pose task for :func:`recon3d.train.loop.run_training` (see the module doc).

    Args:
        G: the frozen StyleGAN2 prior.
        config: the run's settings.
        real: inverted real faces of this prior (None: generated faces only).
        val: held-out inverted faces scored in every history record (mirror-pair PSNR and identity, yaw error
            at +-30 degrees).
        identity_net, regressor_net: the frozen identity network and landmark regressor (default: shipped).

    Raises:
        ValueError: ``real`` was inverted into another generator, or has the wrong latent shape.
    """

    def __init__(self, G, config: LatentPoseTrainConfig, *, real: InvertedLatents | None = None,
                 val: InvertedLatents | None = None, identity_net=None, regressor_net=None):
        self.cfg = config
        self.G = G.eval().requires_grad_(False)
        sha = generator_checksum(G)
        for name, s in (("real", real), ("val", val)):
            if s is not None and s.meta.get("generator") != sha:
                raise ValueError(f"the {name} latents were inverted into another generator "
                                 f"({s.meta.get('generator')}, this one is {sha}); rebuild them")
        self.real = None if real is None else (torch.as_tensor(real.arrays["photo"]), torch.as_tensor(real.arrays["ws"]))
        self.val = val
        self.idnet = (identity_net if identity_net is not None else load_identity_net()).requires_grad_(False).eval()
        self.reg = (regressor_net if regressor_net is not None else load_regressor_net(POSE_REGRESSOR)[0]).requires_grad_(False).eval()
        self.chip_m = aligned_chip_matrix(G.res)
        self.noise = fixed_noise(G)

    # -- data ----------------------------------------------------------------------------------
    def batch(self, step_in_epoch: int, step: int) -> tuple:
        """``(x (B, 3, R, R) in [-1, 1], ws (B, L, W), is_real (B,), u (B,) in [0, 1): the target draw)``."""
        cfg = self.cfg
        gen = torch.Generator().manual_seed(cfg.seed * 7919 + step)
        n_real = int(round(cfg.batch * cfg.real_fraction)) if self.real is not None else 0
        xs, wss = [], []
        if n_real:
            ids = torch.randint(0, len(self.real[0]), (n_real,), generator=gen)
            xs.append(self.real[0][ids].float() / 127.5 - 1)
            wss.append(self.real[1][ids].float())
        n_gen = cfg.batch - n_real
        if n_gen:
            z = torch.randn(n_gen, self.G.z_dim, generator=gen)
            with torch.no_grad():
                w = self.G.map(z, cfg.truncation)[:, None].expand(-1, self.G.n_latent, -1).contiguous()
                xs.append(self.G.synthesis(w, self.noise).clamp(-1, 1))
            wss.append(w)
        is_real = torch.tensor([True] * n_real + [False] * n_gen)
        u = torch.rand(cfg.batch, generator=gen)
        return torch.cat(xs), torch.cat(wss), is_real, u

    # -- losses --------------------------------------------------------------------------------
    def _chips(self, img: torch.Tensor) -> torch.Tensor:
        return extract_chip(((img + 1) / 2).clamp(0, 1), np.broadcast_to(self.chip_m, (len(img), 2, 3)))

    def _terms(self, y: torch.Tensor, target: torch.Tensor, pix_w: torch.Tensor, yaw_t: torch.Tensor,
               pitch_t: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        pix = ((y - target) ** 2).mean((1, 2, 3))
        with torch.no_grad():
            tc = self._chips(target)
        yc = self._chips(y)
        idd = identity_distance(self.idnet, yc, tc)
        feat = feature_distance(self.idnet, yc, tc)
        pose = frame_pose(self.reg, y)
        pl = ((pose[:, 0] - yaw_t).abs() + 0.5 * (pose[:, 1] - pitch_t).abs()) / YAW_SCALE
        total = (cfg.lambda_pix * pix_w * pix + cfg.lambda_id * idd + cfg.lambda_feat * feat + cfg.lambda_pose * pl)
        return {"total": total.mean(), "pix": pix.mean(), "id": idd.mean(), "feat": feat.mean(),
                "yaw_err": (pose[:, 0] - yaw_t).abs().mean(), "yaw": pose[:, 0].detach()}

    def train_step(self, net: nn.ModuleDict, opts: dict, batch: tuple, step: int) -> dict[str, float]:
        cfg = self.cfg
        E = net["G"]
        dev = next(E.parameters()).device
        x, ws, is_real, u = (t.to(dev) for t in batch)
        noise = [n.to(dev) for n in self.noise]
        with torch.no_grad():
            pose_s = frame_pose(self.reg, x)
        yaw_s, pitch_s = pose_s[:, 0], pose_s[:, 1]
        rand = u < cfg.random_fraction
        span = 2 * cfg.max_yaw
        yaw_rand = (u / max(cfg.random_fraction, 1e-6)) * span - cfg.max_yaw
        yaw_t = torch.where(rand, yaw_rand, -yaw_s)
        target = torch.where(rand[:, None, None, None], x, x.flip(3))
        pix_w = torch.where(rand, torch.full_like(u, cfg.lambda_pix_random / max(cfg.lambda_pix, 1e-12)),
                            torch.ones_like(u))
        out: dict[str, float] = {}
        adv = "D" in net and cfg.lambda_adv > 0
        delta = E(x, yaw_t, yaw_s)
        y = self.G.synthesis(ws + delta, noise)
        if adv:
            D = net["D"]
            real_img = torch.cat([x, x.flip(3)])
            real_yaw = torch.cat([yaw_s, -yaw_s])
            d_loss = F.softplus(-D(real_img, real_yaw)).mean() + F.softplus(D(y.detach(), yaw_t)).mean()
            opts["D"].zero_grad(set_to_none=True)
            d_loss.backward()
            opts["D"].step()
            out["d_loss"] = d_loss.item()
            D.requires_grad_(False)
        fwd = self._terms(y, target, pix_w, yaw_t, pitch_s)
        loss = fwd["total"]
        for k in ("pix", "id", "feat", "yaw_err"):
            out[k] = fwd[k].item()
        if cfg.lambda_delta > 0:
            reg = delta.pow(2).mean()
            loss = loss + cfg.lambda_delta * reg
            out["delta"] = reg.item()
        if adv:
            g_adv = F.softplus(-net["D"](y, yaw_t)).mean()
            loss = loss + cfg.lambda_adv * g_adv
            out["g_adv"] = g_adv.item()
            net["D"].requires_grad_(True)
        if cfg.lambda_cycle > 0:
            back = self.G.synthesis(ws + delta + E(y, yaw_s, fwd["yaw"]), noise)
            cyc = self._terms(back, x, torch.ones_like(u), yaw_s, pitch_s)
            loss = loss + cfg.lambda_cycle * cyc["total"]
            out["cycle_pix"] = cyc["pix"].item()
        opts["G"].zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            out["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(E.parameters(), cfg.grad_clip))
        opts["G"].step()
        out["loss"] = loss.item()
        return out

    @torch.no_grad()
    def report(self, net: nn.ModuleDict, device: torch.device) -> dict:
        if self.val is None:
            return {}
        E = net["G"]
        was = E.training
        E.eval()
        x = torch.as_tensor(self.val.arrays["photo"][:32]).float().to(device) / 127.5 - 1
        ws = torch.as_tensor(self.val.arrays["ws"][:32]).float().to(device)
        noise = [n.to(device) for n in self.noise]
        yaw_s = frame_pose(self.reg, x)[:, 0]
        y = self.G.synthesis(edit_latents(E, ws, x, -yaw_s, yaw_s), noise).clamp(-1, 1)
        t = x.flip(3)
        psnr = 10 * torch.log10(4.0 / ((y - t) ** 2).mean((1, 2, 3)).clamp_min(1e-10))
        idd = identity_distance(self.idnet, self._chips(y), self._chips(t))
        errs = []
        for yaw in (-30.0, 30.0):
            z = self.G.synthesis(edit_latents(E, ws, x, torch.full_like(yaw_s, yaw), yaw_s), noise)
            errs.append((frame_pose(self.reg, z)[:, 0] - yaw).abs())
        E.train(was)
        return {"val_mirror_psnr": float(psnr.mean()), "val_mirror_id_dist": float(idd.mean()),
                "val_yaw_err_30": float(torch.cat(errs).mean())}


def build_latent_pose(G, config: LatentPoseTrainConfig, *, init_d: bool = True) -> nn.ModuleDict:
    """A fresh ``ModuleDict``: ``G`` the :class:`~recon3d.nn.latent_pose.PoseEncoder` for ``G``'s W+ (the key is
    the trained network's, as in every GD recipe) and, with the adversarial term on, ``D`` a
    :class:`PoseConditionedD` on the shipped StyleGAN2 discriminator (``init_d``; else a fresh one)."""
    nets: dict[str, nn.Module] = {"G": PoseEncoder(G.res, G.n_latent, G.w_dim, widths=config.widths, fpn=config.fpn,
                                                   edit_layers=config.edit_layers, shared=config.shared)}
    if config.lambda_adv > 0:
        if init_d:
            base, _ = load_network(STYLEGAN2_D, None, cached=False)
            base = base.float().train()
        else:
            base = StyleDiscriminator(G.res)
        nets["D"] = PoseConditionedD(base)
    return nn.ModuleDict(nets)


def train_latent_pose(G, out_dir: str | Path, config: LatentPoseTrainConfig = LatentPoseTrainConfig(), *,
                      real: InvertedLatents | None = None, val: InvertedLatents | None = None,
                      init: str | Path | None = None, device: str = "cpu", log_fn=None, progress=None,
                      init_d: bool = True):
    """Train (or resume from ``out_dir/last.pt``) the latent pose encoder for the prior ``G``; ``init``: exported
    encoder weights of the same configuration to fine-tune (ignored when a checkpoint resumes). Returns the
    loop's ``LoopResult``."""
    torch.manual_seed(config.seed)
    G = G.to(device)
    net = build_latent_pose(G, config, init_d=init_d)
    if init is not None:
        e0, _ = load_network(LATENT_POSE, init, cached=False)
        if e0.config != net["G"].config:
            raise ValueError(f"{init}: an encoder with another configuration ({e0.config}) than this run's "
                             f"({net['G'].config})")
        net["G"] = e0.float().train()
    recipe = LatentPoseRecipe(G, config, real=real, val=val)
    if init is None and not (Path(out_dir) / "last.pt").is_file():
        # start from the linear yaw direction of the prior (InterfaceGAN's kind of edit); the heads learn the rest
        v, r2 = fit_yaw_direction(G, recipe.reg, seed=config.seed)
        with torch.no_grad():
            net["G"].direction.copy_(v.to(net["G"].direction))
        log.info("fitted yaw direction: R² %.3f on %d generated faces", r2, 1024)
    return run_training(net, recipe, config, out_dir, device=device, log_fn=log_fn, progress=progress)
