"""Recipe: face restorers (seed 002 blind restoration, seed 004 reference-guided SR, the L1 U-Net baseline)
on the one loop of :mod:`recon3d.train.loop`.

Pairs: a batch of aligned training faces (``FaceBatches``), degraded on the fly by
:mod:`recon3d.data.degrade` (every sample its own degradation, seeded by the global sample index, so
a resumed run sees the same pairs): ``task="blind"`` draws from seed 002's ranges
(:data:`~recon3d.data.degrade.DEGRADE_002`, rescaled to the face size), ``task="sr4"`` is half 4x
bicubic down-sampling (the benchmark's Table 2 protocol) and half seed 004's ranges
(:data:`~recon3d.data.degrade.DEGRADE_004`).

The network handed to the loop is a ``ModuleDict``: ``G`` the :class:`~recon3d.nn.restoration.FaceRestorer`
and, unless ``l1_only``, ``D`` the global StyleGAN2 discriminator (initialised from the shipped one;
**FreezeD**: its first ``freeze_d`` layers, from the input side, stay fixed) and three local patch
discriminators on the left eye, right eye and mouth. The crops are boxes around our 68-point
template's eye and mouth landmarks (:data:`recon3d.ops.align.TEMPLATE_68`): the training faces are
aligned to it, so the template's points are the faces' landmarks.

One step: (1) discriminators, non-saturating logistic loss on real (HQ) vs restored, lazy R1 on the
global one; (2) restorer: seed 002's objective

    L = λ_g L_adv,global + λ_l Σ L_adv,local + λ_L1 (L1(out) + Σ_s L1(out_s)) + λ_FM L_FM + λ_FP L_FP

with the paper's weights (λ_g 0.5, λ_l 3, λ_L1 8, λ_FM 0.02, λ_FP 10). ``out_s`` are the decoder's
multi-scale outputs (scales >= 16) against the down-sampled ground truth; L_FM is the feature
matching of :func:`recon3d.nn.identity.feature_distance` (our identity network's activations stand
in for VGG: no VGG weights exist offline), L_FP the face-preserving identity loss
:func:`recon3d.nn.identity.identity_distance` (dlib's metric, L2 of the descriptors). The prior
trains at ``prior_lr_mult`` times the learning rate. ``l1_only`` trains the L1 term on the output
alone (the U-Net baseline). Seed 004's losses (L1, perceptual, identity, eye/mouth discriminators,
adversarial) are the same terms, so the reference model uses the same objective.

Reference model (``reference=True``): the reference is another view of the same face, never the
target's pixels: a re-posed render from :mod:`recon3d.data.references` when ``reference_pool`` has
one for that face, else the face mirrored with a random similarity warp (rotation, scale, shift) and
a colour jitter; with probability ``p_self_reference`` no reference is given (the input is its own),
so the model also works without one.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...data.augment import similarity_warp, to_float
from ...data.degrade import DEGRADE_002, DEGRADE_004, degrade_batch
from ...data.faces import FaceBatches, FaceSet
from ...nn.identity import (
    aligned_chip_matrix,
    extract_chip,
    feature_distance,
    identity_distance,
    load_identity_net,
)
from ...nn.registry import load_network
from ...nn.restoration import RESTORER, FaceRestorer
from ...nn.stylegan2 import STYLEGAN2_D, STYLEGAN2_G, StyleDiscriminator
from ...ops.align import TEMPLATE_68
from ..loop import LoopConfig, run_training
from ._base import TorchRngState
from .gan import _nonsat_d, r1_penalty

__all__ = ["RestoreTrainConfig", "RestoreRecipe", "VARIANTS", "build_restorer", "train_restorer", "region_boxes",
           "PatchDiscriminator", "psnr"]

log = logging.getLogger(__name__)

#: benchmark rows -> FaceRestorer keyword arguments and recipe settings
VARIANTS: dict[str, dict] = {
    "ours": {"net": {"kind": "codec", "block": "mmrb", "prior": True}, "task": "blind", "l1_only": False},
    "no-mmrb": {"net": {"kind": "codec", "block": "res", "prior": True}, "task": "blind", "l1_only": False},
    "no-prior": {"net": {"kind": "codec", "block": "mmrb", "prior": False}, "task": "blind", "l1_only": False},
    "unet-l1": {"net": {"kind": "unet", "prior": False}, "task": "blind", "l1_only": True},
    "refsr": {"net": {"kind": "codec", "block": "mmrb", "prior": True, "reference": True}, "task": "sr4",
              "l1_only": False},
    "refsr-fast": {"net": {"kind": "lowres", "block": "mmrb", "reference": True}, "task": "sr4", "l1_only": False},
    "refsr-fast-res": {"net": {"kind": "lowres", "block": "res", "reference": True}, "task": "sr4", "l1_only": False},
}


@dataclass(frozen=True)
class RestoreTrainConfig(LoopConfig):
    """Hyper-parameters of a restorer run (defaults of ``pipelines.train_restorer``)."""

    variant: str = "ours"
    res: int = 64
    batch: int = 8
    lr: float = 1e-3
    d_lr: float = 2e-4
    prior_lr_mult: float = 0.1
    weight_decay: float = 0.0
    warmup_steps: int = 20
    schedule: str = "cosine"
    max_minutes: float | None = 20.0
    checkpoint_minutes: float = 3.0
    log_every: int = 10
    eval_every: int | None = 100
    lambda_g: float = 0.5
    lambda_l: float = 3.0
    lambda_l1: float = 8.0
    lambda_fm: float = 0.02
    lambda_fp: float = 10.0
    r1_gamma: float = 0.1
    r1_every: int = 16
    #: FreezeD: the global discriminator's first layers kept fixed (fromRGB + this many blocks - 1)
    freeze_d: int = 2
    p_self_reference: float = 0.25
    #: held-out faces scored (PSNR) in each history record
    val_faces: int = 32
    #: the restorer's gradient norm is clipped to this (0: off); without it the lowres trunk at lr 1e-3
    #: jumped to L1 296 at step 80
    grad_clip: float = 0.0


def region_boxes(res: int) -> dict[str, tuple[int, int, int, int]]:
    """``{"left_eye"|"right_eye"|"mouth": (x0, y0, x1, y1)}`` pixel boxes of an aligned ``res``² face around
    the template's landmarks (eyes 36-41 / 42-47, mouth 48-67), square, side 1/4 (eyes) and 3/8 (mouth)
    of the face."""
    t = TEMPLATE_68 * res
    out = {}
    for name, idx, side in (("left_eye", slice(36, 42), res // 4), ("right_eye", slice(42, 48), res // 4),
                            ("mouth", slice(48, 68), 3 * res // 8)):
        cx, cy = t[idx].mean(0)
        x0 = int(np.clip(round(cx - side / 2), 0, res - side))
        y0 = int(np.clip(round(cy - side / 2), 0, res - side))
        out[name] = (x0, y0, x0 + side, y0 + side)
    return out


class PatchDiscriminator(nn.Module):
    """Small discriminator for an eye or mouth crop: three stride-2 conv + leaky ReLU, one logit per sample."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 3, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 3, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 4 * width, 3, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(4 * width, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).mean(dim=(1, 2, 3))


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) of images in [-1, 1]."""
    mse = ((a.clamp(-1, 1) - b) / 2).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return -10 * torch.log10(mse)


def build_restorer(variant: str, res: int, *, prior: str | Path | None = None, prior_d: str | Path | None = None,
                   net_kwargs: dict | None = None) -> nn.ModuleDict:
    """A fresh ``ModuleDict`` for ``variant``: the restorer (its prior copied from the shipped StyleGAN2
    generator, or ``prior``) and, for adversarial variants, the discriminators."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown restorer variant {variant!r}; choose from {sorted(VARIANTS)}")
    v = VARIANTS[variant]
    G = FaceRestorer(res, **{**v["net"], **(net_kwargs or {})})
    if G.has_prior:
        g0, _ = load_network(STYLEGAN2_G, prior, cached=False)
        if g0.config == G.prior.config:
            G.init_prior(g0.float())
        elif prior is not None:
            raise ValueError(f"{prior}: a generator with another configuration than the restorer's prior")
        else:
            log.warning("the shipped generator does not fit this prior (%s): the prior starts untrained", G.prior.config)
    nets = {"G": G}
    if not v["l1_only"]:
        try:
            D = load_network(STYLEGAN2_D, prior_d, cached=False)[0].float()
        except Exception:  # noqa: BLE001 - a missing or mismatched D is replaced by a fresh one
            D = None
        if D is None or D.res != res:
            D = StyleDiscriminator(res)
        nets["D"] = D
        for k in region_boxes(res):
            nets[f"D_{k}"] = PatchDiscriminator()
    return nn.ModuleDict(nets)


def _freeze_d(D: StyleDiscriminator, n: int) -> list[nn.Parameter]:
    """FreezeD: fix fromRGB and the first ``n - 1`` blocks; returns the trainable parameters."""
    frozen = [D.from_rgb] + list(D.blocks)[:max(0, n - 1)] if n > 0 else []
    for m in frozen:
        m.requires_grad_(False)
    ids = {id(p) for m in frozen for p in m.parameters()}
    return [p for p in D.parameters() if id(p) not in ids]


def _reference_warp(hq: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Another view of the same faces: mirrored, a random similarity warp (±10°, ±6 % scale, ±4 % shift) and
    a colour jitter (brightness, contrast, saturation); [-1, 1] in and out."""
    n = len(hq)
    u = torch.rand(n, 6, generator=gen) * 2 - 1
    x = similarity_warp(hq.flip(3), u[:, :4], max_deg=10, max_scale=0.06, max_shift=0.04)
    x01 = (x + 1) / 2
    gray = x01.mean(1, keepdim=True)
    bright = 1 + 0.2 * u[:, 4, None, None, None]
    sat = 1 + 0.3 * u[:, 5, None, None, None]
    x01 = (gray + (x01 - gray) * sat) * bright
    mean = x01.mean(dim=(1, 2, 3), keepdim=True)
    con = 1 + 0.2 * torch.rand(n, 1, 1, 1, generator=gen).mul(2).sub(1)
    return ((x01 - mean) * con + mean).clamp(0, 1) * 2 - 1


class RestoreRecipe(TorchRngState):
    """The restorer task for :func:`recon3d.train.loop.run_training` (see the module doc)."""

    def __init__(self, faces: FaceSet, config: RestoreTrainConfig, out_dir: str | Path, *,
                 val_faces: torch.Tensor | None = None, reference_pool=None, identity_net=None):
        self.cfg = config
        if config.variant not in VARIANTS:
            raise ValueError(f"unknown restorer variant {config.variant!r}; choose from {sorted(VARIANTS)}")
        self.v = VARIANTS[config.variant]
        if faces.res != config.res:
            raise ValueError(f"faces are {faces.res}², the restorer is {config.res}²")
        if len(faces) < config.batch:
            raise ValueError(f"{len(faces)} training faces, fewer than one batch of {config.batch}")
        self.faces, self.out = faces, Path(out_dir)
        self.batches = FaceBatches(faces, config.batch, config.seed)
        self.boxes = region_boxes(config.res)
        self.val = val_faces
        self.idnet = identity_net
        if self.idnet is None and not self.v["l1_only"]:
            self.idnet = load_identity_net()
        if self.idnet is not None:
            self.idnet.requires_grad_(False).eval()
        self.chip_m = np.broadcast_to(aligned_chip_matrix(config.res), (config.batch, 2, 3))
        self.pool_rows = self._pool_rows(reference_pool)
        self.presets = {"002": DEGRADE_002.for_res(config.res), "004": DEGRADE_004.for_res(config.res)}

    def _pool_rows(self, pool) -> dict[int, torch.Tensor]:
        if pool is None:
            return {}
        by_name = {str(n): i for i, n in enumerate(pool.names)}
        imgs = torch.as_tensor(np.asarray(pool.images))
        if imgs.shape[-1] != self.cfg.res:
            imgs = F.interpolate(imgs.float(), size=(self.cfg.res, self.cfg.res), mode="area").round().clamp(0, 255).to(torch.uint8)
        rows = {}
        paths = self.faces.paths or [""] * len(self.faces.keys)
        for i, (key, path) in enumerate(zip(self.faces.keys, paths, strict=True)):
            j = next((by_name[c] for c in (path, key, Path(key).name) if c in by_name), None)
            if j is not None:
                rows[i] = imgs[j]
        log.info("reference pool: re-posed views for %d of %d training faces", len(rows), len(self.faces))
        return rows

    # -- loop protocol -------------------------------------------------------------------------
    def config(self) -> dict:
        d = asdict(self.cfg)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}

    def start_epoch(self, epoch: int, step_in_epoch: int) -> int | None:
        return None

    def degrade(self, hq_u8: torch.Tensor, step: int) -> torch.Tensor:
        """The LQ inputs of a batch: uint8 ``(N, 3, res, res)`` HQ -> float [-1, 1] LQ, seeded by sample index."""
        n = len(hq_u8)
        idx = [step * self.cfg.batch + i for i in range(n)]
        if self.v["task"] == "blind":
            lq, _ = degrade_batch(hq_u8, self.cfg.seed, idx, self.presets["002"])
            return to_float(lq)
        lq004, _ = degrade_batch(hq_u8, self.cfg.seed, idx, self.presets["004"])
        x4 = bicubic_x4(to_float(hq_u8))
        pick = torch.tensor([i % 2 == 0 for i in idx])[:, None, None, None]
        return torch.where(pick, x4, to_float(lq004))

    def batch(self, step_in_epoch: int, step: int) -> tuple:
        ids = self.batches.indices(step)
        hq_u8 = self.faces.images[ids]
        gen = torch.Generator().manual_seed(self.cfg.seed * 7919 + step)
        flip = torch.rand(len(ids), generator=gen) < 0.5
        hq_u8 = torch.where(flip[:, None, None, None], hq_u8.flip(3), hq_u8)
        lq = self.degrade(hq_u8, step)
        hq = to_float(hq_u8)
        ref = torch.zeros(0)
        if self.v["net"].get("reference"):
            ref = _reference_warp(hq, gen)
            for k, i in enumerate(ids.tolist()):
                if i in self.pool_rows and float(torch.rand((), generator=gen)) < 0.5:
                    r = to_float(self.pool_rows[i][None])[0]
                    ref[k] = r.flip(2) if bool(flip[k]) else r
            self_ref = torch.rand(len(ids), generator=gen) < self.cfg.p_self_reference
            ref = torch.where(self_ref[:, None, None, None], lq, ref)
        return lq, hq, ref

    def optimizers(self, net: nn.ModuleDict) -> dict[str, torch.optim.Optimizer]:
        cfg = self.cfg
        G = net["G"]
        prior = [p for n, p in G.named_parameters() if n.startswith("prior.")]
        rest = [p for n, p in G.named_parameters() if not n.startswith("prior.")]
        groups = [{"params": rest, "lr": cfg.lr}]
        if prior:
            groups.append({"params": prior, "lr": cfg.lr * cfg.prior_lr_mult})
        opts = {"G": torch.optim.Adam(groups, lr=cfg.lr, betas=(0.5, 0.99))}
        if "D" in net:
            params = _freeze_d(net["D"], cfg.freeze_d)
            for k in self.boxes:
                params += list(net[f"D_{k}"].parameters())
            c = cfg.r1_every / (cfg.r1_every + 1)
            # the loop scales every group by lr / cfg.lr: give D its own rate through the group's base
            opts["D"] = torch.optim.Adam(params, lr=cfg.d_lr * c, betas=(0.5 ** c, 0.99 ** c))
        return opts

    def _crops(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: x[:, :, y0:y1, x0:x1] for k, (x0, y0, x1, y1) in self.boxes.items()}

    def train_step(self, net: nn.ModuleDict, opts: dict, batch: tuple, step: int) -> dict[str, float]:
        cfg = self.cfg
        G = net["G"]
        dev = next(G.parameters()).device
        lq, hq, ref = (t.to(dev) for t in batch)
        ref = ref if ref.numel() else None
        out: dict[str, float] = {}
        adv = "D" in net and (cfg.lambda_g > 0 or cfg.lambda_l > 0)  # both 0: a content-only (warm-up) run
        if adv:  # discriminators
            G.requires_grad_(False)
            with torch.no_grad():
                fake = G(lq, ref)
            do_r1 = cfg.r1_gamma > 0 and step % cfg.r1_every == 0
            real_in = hq.detach().requires_grad_(do_r1)
            real_logit = net["D"](real_in)
            d_loss = _nonsat_d(real_logit, net["D"](fake))
            rc, fc = self._crops(hq), self._crops(fake)
            for k in self.boxes:
                d_loss = d_loss + _nonsat_d(net[f"D_{k}"](rc[k]), net[f"D_{k}"](fc[k]))
            out["d_loss"] = d_loss.item()
            if do_r1:
                r1 = r1_penalty(real_logit, real_in)
                d_loss = d_loss + cfg.r1_gamma / 2 * r1 * cfg.r1_every
                out["r1"] = r1.item()
            opts["D"].zero_grad(set_to_none=True)
            d_loss.backward()
            opts["D"].step()
            G.requires_grad_(True)
            for k in net:
                if k != "G":
                    net[k].requires_grad_(False)
        res = G.forward_all(lq, ref)
        y = res["out"]
        l1 = (y - hq).abs().mean()
        if not self.v["l1_only"]:
            for s, rgb in res["scales"].items():
                if s >= 16:
                    l1 = l1 + (rgb - F.interpolate(hq, size=(s, s), mode="area")).abs().mean()
        loss = cfg.lambda_l1 * l1 if not self.v["l1_only"] else l1
        out["l1"] = l1.item()
        if adv:
            g_adv = F.softplus(-net["D"](y)).mean()
            fc = self._crops(y)
            l_adv = sum(F.softplus(-net[f"D_{k}"](fc[k])).mean() for k in self.boxes)
            loss = loss + cfg.lambda_g * g_adv + cfg.lambda_l * l_adv
            out.update(g_adv=g_adv.item(), l_adv=float(l_adv.detach()))
            for k in net:
                if k != "G":
                    net[k].requires_grad_(True)
            _freeze_d(net["D"], cfg.freeze_d)
        if not self.v["l1_only"] and (cfg.lambda_fm > 0 or cfg.lambda_fp > 0):
            m = self.chip_m[:len(y)]
            y_chip = extract_chip(((y + 1) / 2).clamp(0, 1), m)
            with torch.no_grad():
                t_chip = extract_chip((hq + 1) / 2, m)
            fm = feature_distance(self.idnet, y_chip, t_chip).mean()
            fp = identity_distance(self.idnet, y_chip, t_chip).mean()
            loss = loss + cfg.lambda_fm * fm + cfg.lambda_fp * fp
            out.update(fm=fm.item(), fp=fp.item())
        opts["G"].zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            out["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(G.parameters(), cfg.grad_clip))
        opts["G"].step()
        out["loss"] = loss.item()
        return out

    @torch.no_grad()
    def report(self, net: nn.ModuleDict, device: torch.device) -> dict:
        if self.val is None or not len(self.val):
            return {}
        G = net["G"]
        was = G.training
        G.eval()
        hq_u8 = self.val.to(torch.uint8)
        lq = self.degrade(hq_u8, 10 ** 7).to(device)  # a fixed set of pairs, never a training index
        hq = to_float(hq_u8).to(device)
        y = G(lq, None)
        G.train(was)
        return {"val_psnr": float(psnr(y, hq).mean()), "val_psnr_input": float(psnr(lq, hq).mean())}


def bicubic_x4(hq: torch.Tensor) -> torch.Tensor:
    """Seed 002's Table 2 input: 4x bicubic down-sampling (antialiased), bicubic back up; [-1, 1] NCHW."""
    s = hq.shape[-1]
    lo = F.interpolate(hq, size=(s // 4, s // 4), mode="bicubic", align_corners=False, antialias=True)
    return F.interpolate(lo, size=(s, s), mode="bicubic", align_corners=False).clamp(-1, 1)


def train_restorer(faces: FaceSet, out_dir: str | Path, config: RestoreTrainConfig = RestoreTrainConfig(), *,
                   init: str | Path | None = None, prior: str | Path | None = None,
                   val_faces: torch.Tensor | None = None, reference_pool=None, net_kwargs: dict | None = None,
                   device: str = "cpu", log_fn=None, progress=None):
    """Train (or resume from ``out_dir/last.pt``) a restorer ``config.variant`` on ``faces``.

    ``init``: an exported restorer of the same variant to fine-tune (ignored when a checkpoint resumes);
    ``prior``: the StyleGAN2 generator the prior starts from (default: the shipped one); ``net_kwargs``
    override the variant's :class:`FaceRestorer` arguments (widths, prior configuration). Returns the loop's :class:`~recon3d.train.loop.LoopResult`.
    """
    torch.manual_seed(config.seed)
    net = build_restorer(config.variant, config.res, prior=prior, net_kwargs=net_kwargs)
    if init is not None:
        g0, _ = load_network(RESTORER, init, cached=False)
        if g0.config != net["G"].config:
            raise ValueError(f"{init}: a restorer with another configuration than variant {config.variant!r}")
        net["G"] = g0.float().train()
    recipe = RestoreRecipe(faces, config, out_dir, val_faces=val_faces, reference_pool=reference_pool)
    return run_training(net, recipe, config, out_dir, device=device, log_fn=log_fn, progress=progress)
