"""Recipe: the learned UV texture generator (:mod:`recon3d.nn.uv_generator`, thesis 4.3.2) on the one loop.

Samples (:mod:`recon3d.data.uv_pairs`): a photo's unwrapped UV map seen from a turned pose (``vis_h``), its
classical completion ``base``, the 3DMM prior, the pseudo ground truth ``UV_bl`` (``full``) of the photo's
own view, the real texels the turn hid, and the maps that render a UV map at the photo's pose and at the
turned one. Mirrored at random (UV map, photo and render maps together); the hole's noise is drawn per step,
seeded by the step, so a resumed run sees the same samples.

Objective (thesis eq. 4.11, with one term of ours, ``L_hid``), ``Y`` the completed UV map:

    L = 10 L_hid + L_rec + 0.01 L_adv + 0.1 L_sym + 0.5 L_id + 0.1 L_tv

* ``L_hid`` (ours): L1 of ``Y`` on the photo's texels the turn hid, against those real texels: the only
  exact supervision of the completion there is (the thesis has only the blend ``UV_bl``).
* ``L_rec`` (eq. 4.8): L1 of ``Y`` to ``UV_bl`` on the layout, plus L1 of ``Y`` rendered at the photo's pose
  to the photo on the face's pixels.
* ``L_adv`` (eq. 4.7, non-saturating BCE), three discriminators: ``D_ctr`` on the centre band of the UV map
  (real: ``UV_bl`` of the quarter of the photos that see most of it: near-frontal ones), ``D_half`` on one
  half with the other half mirrored onto it (real: the quarter of the halves seen most: the near side of
  turned faces; the thesis's ``D_sd``), ``D_face`` on the face masked out of the photo (real) and on ``Y``
  rendered at the photo's pose and at the turned one (fake). The fake half is the one the turn hid most.
* ``L_sym`` (eq. 4.9): L1 of ``Y`` to its mirror image on the hole (the layout is mirror symmetric).
* ``L_id`` (eq. 4.10): the identity distance (:func:`recon3d.nn.identity.identity_distance`, our identity
  network stands in for FaceNet) of ``Y`` rendered at the turned pose to the masked photo.
* ``L_tv``: total variation of ``Y`` on the (1 texel grown) hole.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...data.uv_pairs import UVPairs
from ...nn.identity import aligned_chip_matrix, extract_chip, identity_distance, load_identity_net
from ...nn.inpaint import hole_noise
from ...nn.registry import load_network
from ...nn.uv_generator import UV_GENERATOR, UVGenerator
from ...render import texture as sample_texture
from ..loop import LoopConfig, run_training
from ._base import GDRecipe
from .gan import _nonsat_d

__all__ = ["UVTrainConfig", "UVRecipe", "PatchDiscriminator", "uv_masks", "render_uv", "flip_uv_batch",
           "build_uv_generator", "train_uv_generator", "hidden_l1"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UVTrainConfig(LoopConfig):
    """Hyper-parameters of a UV generator run (defaults of ``pipelines.train_uv_generator``)."""

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
    lambda_hid: float = 10.0
    lambda_rec: float = 1.0
    lambda_adv: float = 0.01
    lambda_sym: float = 0.1
    lambda_id: float = 0.5
    lambda_tv: float = 0.1
    widths: tuple = (16, 32, 64, 128)
    bottleneck: int = 4
    attention: bool = True


class PatchDiscriminator(nn.Module):
    """A small discriminator for any input size: stride-2 3x3 convs with leaky ReLU (``depth`` of them,
    channels doubling from ``width`` up to ``8 * width``), the mean over positions, one linear logit."""

    def __init__(self, width: int = 16, depth: int = 4):
        super().__init__()
        layers: list[nn.Module] = []
        c_in, c = 3, width
        for _ in range(depth):
            layers += [nn.Conv2d(c_in, c, 3, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(c, c, 3, 1, 1), nn.LeakyReLU(0.2)]
            c_in, c = c, min(8 * width, 2 * c)
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c_in, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean((2, 3)))[:, 0]


def uv_masks(layout: torch.Tensor) -> dict[str, torch.Tensor]:
    """The partial discriminators' regions of a ``(R, R)`` layout: ``"ctr"`` the centre band (the middle half
    of the columns) and ``"half"`` the left half, as ``(R, R)`` bool masks inside the layout."""
    R = layout.shape[-1]
    cols = torch.arange(R)
    ctr = (cols >= R // 4) & (cols < R - R // 4)
    return {"ctr": layout & ctr[None, :], "half": layout & (cols < R // 2)[None, :]}


def render_uv(uv_map: torch.Tensor, uv_px: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """A UV map ``(B, 3, R, R)`` rendered through per-pixel UV coordinates ``uv_px`` ``(B, 2, F, F)`` on the
    coverage ``cov`` ``(B, 1, F, F)``: ``(B, 3, F, F)``, 0 off the face; differentiable in ``uv_map``."""
    out = sample_texture(uv_map.permute(0, 2, 3, 1), uv_px.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    return out * cov


def flip_uv_batch(parts: dict[str, torch.Tensor], flip: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mirror the samples where ``flip`` ``(B,)`` is true: UV maps and frames left-right, and the U coordinate
    of the render maps to ``1 - u`` (the layout is mirror symmetric)."""
    f = flip[:, None, None, None]
    out = {k: torch.where(f, v.flip(3), v) for k, v in parts.items()}
    uv = out["uv"].clone()
    cov = out["cov"]
    for ch, cv in ((0, 0), (2, 1)):
        flipped_u = torch.where(cov[:, cv] > 0.5, 1 - uv[:, ch], uv[:, ch])
        uv[:, ch] = torch.where(flip[:, None, None], flipped_u, uv[:, ch])
    out["uv"] = uv
    return out


def hidden_l1(y: torch.Tensor, target: torch.Tensor, hid: torch.Tensor) -> torch.Tensor:
    """Per-sample mean L1 (colours in [0, 1]) of ``y`` to ``target`` ``(B, 3, R, R)`` on ``hid`` ``(B, 1, R, R)``."""
    return ((y - target).abs() * hid).flatten(1).sum(1) / (3 * hid.flatten(1).sum(1)).clamp_min(1)


def _tv(y: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    g = F.max_pool2d(m, 3, 1, 1)
    dx = (y[..., :, 1:] - y[..., :, :-1]).abs() * g[..., :, 1:]
    dy = (y[..., 1:, :] - y[..., :-1, :]).abs() * g[..., 1:, :]
    return ((dx.flatten(1).sum(1) + dy.flatten(1).sum(1)) / (3 * g.flatten(1).sum(1)).clamp_min(1)).mean()


class UVRecipe(GDRecipe):
    """The UV completion task for :func:`recon3d.train.loop.run_training` (see the module doc).

    Args:
        pairs: training samples (:func:`recon3d.data.uv_pairs.load_uv_pairs`).
        config: the run's settings.
        val: optional held-out samples, scored in each history record (L1 on the hidden real texels, network
            and classical completion).
        layout: ``(R, R)`` bool UV layout (default: the default model's at ``config.res``).
        identity_net: the frozen network of ``L_id`` (default: the shipped one).
    """

    def __init__(self, pairs: UVPairs, config: UVTrainConfig, *, val: UVPairs | None = None,
                 layout: torch.Tensor | None = None, identity_net=None):
        self.cfg = config
        if len(pairs) < config.batch:
            raise ValueError(f"{len(pairs)} UV samples, fewer than one batch of {config.batch}")
        R = int(pairs.arrays["tex"].shape[-1])
        if R != config.res:
            raise ValueError(f"the samples' UV maps are {R}², the generator trains at {config.res}²")
        if layout is None:
            from ...morphable.default import load_default_model
            from ...texture import uv_raster

            layout = uv_raster(load_default_model(), resolution=R).mask
        self.layout = layout.bool().cpu()
        self.a = {k: torch.as_tensor(v) for k, v in pairs.arrays.items()}
        self.val = val
        reg = uv_masks(self.layout)
        vis = self.a["vis"][:, 0]
        ctr = _share(vis, reg["ctr"])
        self.real_ctr = torch.nonzero(ctr >= torch.quantile(ctr, 0.75))[:, 0]
        left = _share(vis, reg["half"])
        right = _share(vis, reg["half"].flip(1))
        q = torch.quantile(torch.cat([left, right]), 0.75)
        self.real_side = [torch.nonzero(left >= q)[:, 0], torch.nonzero(right >= q)[:, 0]]
        log.info("UV samples: %d, real centre bands %d, real halves %d + %d", len(pairs), len(self.real_ctr),
                 len(self.real_side[0]), len(self.real_side[1]))
        self.idnet = identity_net
        if self.idnet is None and config.lambda_id > 0:
            self.idnet = load_identity_net()
        if self.idnet is not None:
            self.idnet.requires_grad_(False).eval()
        self.chip_m = aligned_chip_matrix(int(self.a["photo"].shape[-1]))

    # -- samples -----------------------------------------------------------------------------------
    def _parts(self, ids: torch.Tensor, arrays: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        p = {k: arrays[k][ids].float() for k in ("tex", "prior", "full", "base", "uv")}
        p["vis"] = arrays["vis"][ids].float()
        p["cov"] = arrays["cov"][ids].float()
        p["photo"] = arrays["photo"][ids].float() / 255
        return p

    def batch(self, step_in_epoch: int, step: int) -> tuple:
        gen = torch.Generator().manual_seed(self.cfg.seed * 7919 + step)
        n = len(self.a["tex"])
        ids = torch.randint(0, n, (self.cfg.batch,), generator=gen)
        p = flip_uv_batch(self._parts(ids, self.a), torch.rand(len(ids), generator=gen) < 0.5)
        noise = hole_noise(tuple(p["tex"].shape), gen)
        real = self._real_uv(gen)
        return p, noise, real

    def _real_uv(self, gen: torch.Generator) -> dict[str, torch.Tensor]:
        """Real crops for the partial discriminators: centre bands and (mirrored onto the left) halves of
        ``UV_bl`` of the photos that see them."""
        b = self.cfg.batch
        out = {}
        if len(self.real_ctr):
            pick = self.real_ctr[torch.randint(0, len(self.real_ctr), (b,), generator=gen)]
            out["ctr"] = self.a["full"][pick].float()
        sides = [(s, k) for k, s in enumerate(self.real_side) if len(s)]
        if sides:
            rows = []
            for j in range(b):
                s, k = sides[j % len(sides)]
                u = self.a["full"][s[int(torch.randint(0, len(s), (1,), generator=gen))]].float()
                rows.append(u.flip(2) if k == 1 else u)  # the right half mirrored onto the left
            out["half"] = torch.stack(rows)
        return out

    # -- the generator and the losses ------------------------------------------------------------------
    def complete(self, G: UVGenerator, p: dict, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Y, hole)``: the composited UV map in [0, 1] and the generator's hole ``(B, 1, R, R)``."""
        lay = self.layout.to(p["tex"].device, p["tex"].dtype)[None, None]
        seen = p["vis"][:, 1:2] * lay
        hole = lay - seen
        x = p["tex"] * 2 - 1
        out = G(x * seen + noise * hole, hole, p["prior"] * 2 - 1, p["base"] * 2 - 1)
        return ((seen * x + hole * out + 1) / 2).clamp(0, 1) * lay, hole

    def _crops(self, y: torch.Tensor) -> dict[str, torch.Tensor]:
        R = y.shape[-1]
        return {"ctr": y[..., R // 4:R - R // 4], "half": y[..., : R // 2]}

    def _fake_half(self, y: torch.Tensor, p: dict) -> torch.Tensor:
        """The half of ``Y`` the turn hid most (mirrored onto the left): the side the generator made up."""
        hid = (p["vis"][:, 0] - p["vis"][:, 1]).clamp_min(0)
        R = y.shape[-1]
        right_more = hid[..., R // 2:].flatten(1).sum(1) > hid[..., : R // 2].flatten(1).sum(1)
        return torch.where(right_more[:, None, None, None], y.flip(3), y)[..., : R // 2]

    def train_step(self, net: nn.ModuleDict, opts: dict, batch: tuple, step: int) -> dict[str, float]:
        cfg = self.cfg
        G = net["G"]
        dev = next(G.parameters()).device
        p, noise, real = batch
        p = {k: v.to(dev) for k, v in p.items()}
        noise = noise.to(dev)
        real = {k: v.to(dev) for k, v in real.items()}
        out: dict[str, float] = {}
        cov0, cov1 = p["cov"][:, 0:1], p["cov"][:, 1:2]
        masked = p["photo"] * cov0
        adv = cfg.lambda_adv > 0 and "D_face" in net
        ds = [k for k in ("ctr", "half") if k in real and f"D_{k}" in net] if adv else []
        if adv:
            with torch.no_grad():
                y0, _ = self.complete(G, p, noise)
                fake = {"ctr": self._crops(y0)["ctr"], "half": self._fake_half(y0, p)}
                r0 = render_uv(y0, p["uv"][:, :2], cov0)
                r1 = render_uv(y0, p["uv"][:, 2:], cov1)
            d_loss = _nonsat_d(net["D_face"](masked * 2 - 1), net["D_face"](torch.cat([r0, r1]) * 2 - 1))
            for k in ds:
                real_k = self._crops(real[k])[k] if k == "ctr" else real[k][..., : real[k].shape[-1] // 2]
                d_loss = d_loss + _nonsat_d(net[f"D_{k}"](real_k * 2 - 1), net[f"D_{k}"](fake[k] * 2 - 1))
            for o in ("D_face", *(f"D_{k}" for k in ds)):
                opts[o].zero_grad(set_to_none=True)
            d_loss.backward()
            for o in ("D_face", *(f"D_{k}" for k in ds)):
                opts[o].step()
            out["d_loss"] = d_loss.item()
            for k in ("D_face", *(f"D_{k}" for k in ds)):
                net[k].requires_grad_(False)
        y, hole = self.complete(G, p, noise)
        hid = (p["vis"][:, 0:1] - p["vis"][:, 1:2]).clamp_min(0)
        l_hid = hidden_l1(y, p["tex"], hid).mean()
        lay = self.layout.to(dev, y.dtype)[None, None]
        r0 = render_uv(y, p["uv"][:, :2], cov0)
        l_rec = ((y - p["full"]).abs() * lay).sum() / (3 * lay.sum() * len(y)) \
            + ((r0 - masked).abs() * cov0).sum() / (3 * cov0.sum()).clamp_min(1)
        both = hole * hole.flip(3)
        l_sym = ((y - y.flip(3)).abs() * both).sum() / (3 * both.sum()).clamp_min(1)
        l_tv = _tv(y, hole)
        loss = cfg.lambda_hid * l_hid + cfg.lambda_rec * l_rec + cfg.lambda_sym * l_sym + cfg.lambda_tv * l_tv
        out.update(hid=l_hid.item(), rec=l_rec.item(), sym=l_sym.item(), tv=l_tv.item())
        r1 = None
        if cfg.lambda_id > 0 and self.idnet is not None:
            r1 = render_uv(y, p["uv"][:, 2:], cov1)
            m = np.broadcast_to(self.chip_m, (len(y), 2, 3))
            with torch.no_grad():
                ref = extract_chip(masked, m)
            idl = identity_distance(self.idnet, extract_chip(r1, m), ref).mean()
            loss = loss + cfg.lambda_id * idl
            out["id"] = idl.item()
        if adv:
            r1 = render_uv(y, p["uv"][:, 2:], cov1) if r1 is None else r1
            g_adv = F.softplus(-net["D_face"](torch.cat([r0, r1]) * 2 - 1)).mean()
            fake = {"ctr": self._crops(y)["ctr"], "half": self._fake_half(y, p)}
            for k in ds:
                g_adv = g_adv + F.softplus(-net[f"D_{k}"](fake[k] * 2 - 1)).mean()
            loss = loss + cfg.lambda_adv * g_adv
            out["g_adv"] = g_adv.item()
            for k in ("D_face", *(f"D_{k}" for k in ds)):
                net[k].requires_grad_(True)
        opts["G"].zero_grad(set_to_none=True)
        loss.backward()
        opts["G"].step()
        out["loss"] = loss.item()
        return out

    @torch.no_grad()
    def report(self, net: nn.ModuleDict, device: torch.device) -> dict:
        if self.val is None:
            return {}
        va = {k: torch.as_tensor(v) for k, v in self.val.arrays.items()}
        gen = torch.Generator().manual_seed(10 ** 6 + self.cfg.seed)  # the same noise at every report
        ids = torch.arange(len(self.val))
        p = {k: v.to(device) for k, v in self._parts(ids, va).items()}
        noise = hole_noise(tuple(p["tex"].shape), gen).to(device)
        G = net["G"]
        was = G.training
        G.eval()
        y, _ = self.complete(G, p, noise)
        G.train(was)
        hid = (p["vis"][:, 0:1] - p["vis"][:, 1:2]).clamp_min(0)
        return {"val_l1_hidden": float(hidden_l1(y, p["tex"], hid).mean()),
                "val_l1_hidden_poisson": float(hidden_l1(p["base"], p["tex"], hid).mean())}


def _share(vis: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Per sample, the share of ``region`` ``(R, R)`` seen in ``vis`` ``(N, R, R)``."""
    r = region.to(vis.dtype)
    return (vis * r).flatten(1).sum(1) / r.sum().clamp_min(1)


def build_uv_generator(config: UVTrainConfig) -> nn.ModuleDict:
    """A fresh ``ModuleDict``: ``G`` the :class:`~recon3d.nn.uv_generator.UVGenerator` and, when the
    adversarial term is on, ``D_face``, ``D_ctr`` and ``D_half`` (:class:`PatchDiscriminator`)."""
    nets: dict[str, nn.Module] = {"G": UVGenerator(config.res, widths=config.widths, bottleneck=config.bottleneck,
                                                   attention=config.attention)}
    if config.lambda_adv > 0:
        for k in ("D_face", "D_ctr", "D_half"):
            nets[k] = PatchDiscriminator()
    return nn.ModuleDict(nets)


def train_uv_generator(pairs: UVPairs, out_dir: str | Path, config: UVTrainConfig = UVTrainConfig(), *,
                       init: str | Path | None = None, val: UVPairs | None = None, device: str = "cpu",
                       log_fn=None, progress=None):
    """Train (or resume from ``out_dir/last.pt``) the UV generator; ``init``: exported generator weights of the
    same configuration to fine-tune (ignored when a checkpoint resumes). Returns the loop's ``LoopResult``."""
    torch.manual_seed(config.seed)
    net = build_uv_generator(config)
    if init is not None:
        g0, _ = load_network(UV_GENERATOR, init, cached=False)
        if g0.config != net["G"].config:
            raise ValueError(f"{init}: a UV generator with another configuration ({g0.config}) than this run's "
                             f"({net['G'].config})")
        net["G"] = g0.float().train()
    recipe = UVRecipe(pairs, config, val=val)
    return run_training(net, recipe, config, out_dir, device=device, log_fn=log_fn, progress=progress)
