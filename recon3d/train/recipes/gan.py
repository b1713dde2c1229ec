"""Recipe: unconditional face GANs (DCGAN, StyleGAN2) with the one loop of :mod:`recon3d.train.loop`.

The network handed to the loop is a ``ModuleDict`` of the generator ``G``, the discriminator ``D``
and ``G_ema`` (the generator's exponential moving average, what is exported and sampled). One step:

1. **D step**: real batch (random horizontal flips) and ``G(z)``; non-saturating logistic loss
   ``softplus(D(fake)) + softplus(-D(real))``; every ``r1_every`` steps the lazy R1 penalty
   ``r1_gamma / 2 * |grad_x D(real)|^2``, scaled by ``r1_every`` (Karras et al. 2020, with Adam's
   learning rate and betas adjusted by ``r1_every / (r1_every + 1)`` as they do).
2. **G step**: ``softplus(-D(G(z)))``; for StyleGAN2 with probability ``style_mixing`` two latents
   mixed at a random layer, and every ``pl_every`` steps the optional path-length penalty
   (``pl_weight`` > 0).
3. ``G.w_avg`` follows the mean ``w`` (the truncation centre); the loop updates ``G_ema`` from ``G``.

With ``augment="diffaug"`` both real and fake images pass through the same kind of differentiable
augmentation before D (:func:`recon3d.data.augment.diff_augment`: colour, translation, cutout),
which is what lets small datasets train without D memorising them.

The defaults per architecture are the papers': DCGAN Adam 2e-4, betas (0.5, 0.999), no R1, no EMA
(seed 003); StyleGAN2 Adam 2e-3, betas (0, 0.99), R1 gamma ``2e-4 * res^2 / batch`` (the
StyleGAN2-ADA heuristic), lazy every 16 steps, style mixing 0.9, path length off (it costs a second
generator backward every 4 steps on a CPU). The learning rate is constant after a short warm-up; runs
are bounded by ``max_minutes`` and resume from ``OUT/last.pt``. History records carry the losses,
the mean D logits on real and fake, and an ``FD-dlib`` estimate on ``fd_samples`` images when the
identity network is available. Sample grids of a fixed set of latents go to ``OUT/samples/``.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ...data.augment import diff_augment
from ...data.faces import FaceBatches, FaceSet
from ...io.image import batch_to_uint8, contact_sheet, save_image
from ...nn.dcgan import DCGAN_D, DCGAN_G, DCDiscriminator, DCGenerator
from ...nn.generation import generate
from ...nn.registry import load_network
from ...nn.stylegan2 import STYLEGAN2_D, STYLEGAN2_G, StyleDiscriminator, StyleGenerator
from ..loop import LoopConfig, run_training
from ._base import TorchRngState

__all__ = ["GanTrainConfig", "GanRecipe", "GanRun", "FdEstimator", "build_gan", "train_gan", "save_grid", "ARCHS"]

log = logging.getLogger(__name__)

#: architecture -> (generator spec, discriminator spec)
ARCHS = {"dcgan": (DCGAN_G, DCGAN_D), "stylegan2": (STYLEGAN2_G, STYLEGAN2_D)}

#: per-architecture defaults (None fields of GanTrainConfig take these)
_DEFAULTS = {
    "dcgan": {"lr": 2e-4, "betas": (0.5, 0.999), "r1_gamma": 0.0, "style_mixing": 0.0, "ema_decay": 0.0},
    "stylegan2": {"lr": 2e-3, "betas": (0.0, 0.99), "r1_gamma": None, "style_mixing": 0.9, "ema_decay": 0.999},
}


@dataclass(frozen=True)
class GanTrainConfig(LoopConfig):
    """Hyper-parameters of a GAN run (defaults of ``pipelines.train_gan``). Fields left None take the
    architecture's defaults (module doc)."""

    arch: str = "stylegan2"
    res: int = 64
    batch: int = 16
    lr: float | None = None  # type: ignore[assignment]
    betas: tuple[float, float] | None = None
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: str = "constant"
    max_minutes: float | None = 30.0
    checkpoint_minutes: float = 5.0
    log_every: int = 25
    eval_every: int | None = 500
    #: EMA decay per step (None: the architecture's: 0.999 for StyleGAN2, close to its 10 k-image
    #: half-life at batch 16; 0 for DCGAN, whose batch-norm statistics do not average: G_ema is G)
    ema_decay: float | None = None
    #: R1 weight (None: 2e-4 * res^2 / batch); 0 turns it off
    r1_gamma: float | None = None
    r1_every: int = 16
    style_mixing: float | None = None
    pl_weight: float = 0.0
    pl_every: int = 4
    #: "none" or "diffaug" (colour, translation, cutout before D)
    augment: str = "none"
    #: generator / discriminator widths: StyleGAN2 channel table {res: channels}, DCGAN {"ngf", "ndf"}
    g_kwargs: dict = field(default_factory=dict)
    d_kwargs: dict = field(default_factory=dict)
    #: images per FD-dlib estimate in history records (0: none)
    fd_samples: int = 0
    grid: int = 8

    def resolved(self) -> GanTrainConfig:
        """This config with the architecture's defaults filled in."""
        if self.arch not in ARCHS:
            raise ValueError(f"unknown GAN architecture {self.arch!r}; choose from {sorted(ARCHS)}")
        d = dict(_DEFAULTS[self.arch])
        if d["r1_gamma"] is None:
            d["r1_gamma"] = 2e-4 * self.res ** 2 / self.batch
        kw = {k: v for k, v in d.items() if getattr(self, k) is None}
        from dataclasses import replace
        return replace(self, **kw)


def build_gan(arch: str, res: int, g_kwargs: dict | None = None, d_kwargs: dict | None = None) -> nn.ModuleDict:
    """A fresh ``ModuleDict(G, D, G_ema)`` of ``arch`` at ``res``."""
    if arch == "dcgan":
        G: nn.Module = DCGenerator(res, **(g_kwargs or {}))
        D: nn.Module = DCDiscriminator(res, **(d_kwargs or {}))
    elif arch == "stylegan2":
        G = StyleGenerator(res, **(g_kwargs or {}))
        D = StyleDiscriminator(res, **(d_kwargs or {}))
    else:
        raise ValueError(f"unknown GAN architecture {arch!r}; choose from {sorted(ARCHS)}")
    return _players(G, D)


def _players(G: nn.Module, D: nn.Module) -> nn.ModuleDict:
    """``ModuleDict(G, D, G_ema)`` with ``G_ema`` a frozen copy of ``G`` in eval mode."""
    return nn.ModuleDict({"G": G, "D": D, "G_ema": copy.deepcopy(G).eval().requires_grad_(False)})


def _nonsat_d(real_logit: torch.Tensor, fake_logit: torch.Tensor) -> torch.Tensor:
    return F.softplus(fake_logit).mean() + F.softplus(-real_logit).mean()


def r1_penalty(real_logit: torch.Tensor, real_in: torch.Tensor) -> torch.Tensor:
    """R1: mean over the batch of ``|grad_x D(x)|^2`` at the real inputs (``real_in`` requires grad)."""
    (grad,) = torch.autograd.grad(real_logit.sum(), real_in, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def save_grid(images: torch.Tensor, path: str | Path, ncol: int) -> None:
    """Write images in [-1, 1] (N, 3, H, W) as one PNG contact sheet, ``ncol`` per row, atomically."""
    save_image(path, contact_sheet(batch_to_uint8(images), ncol))


class GanRecipe(TorchRngState):
    """The GAN task for :func:`recon3d.train.loop.run_training` (see the module doc)."""

    def __init__(self, faces: FaceSet, config: GanTrainConfig, out_dir: str | Path,
                 fd_fn: Callable[[torch.Tensor], float] | None = None):
        self.cfg = config.resolved()
        if faces.res != self.cfg.res:
            raise ValueError(f"faces are {faces.res}², the GAN is {self.cfg.res}²")
        if len(faces.images) < self.cfg.batch:
            raise ValueError(f"{len(faces.images)} training faces, fewer than one batch of {self.cfg.batch}")
        self.faces = faces
        self.batches = FaceBatches(faces, self.cfg.batch, self.cfg.seed)
        self.out = Path(out_dir)
        self.fd_fn = fd_fn
        self.grid_z: torch.Tensor | None = None

    # -- loop protocol -------------------------------------------------------------------------
    def config(self) -> dict:
        d = asdict(self.cfg)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}

    def start_epoch(self, epoch: int, step_in_epoch: int) -> int | None:
        return None  # one endless epoch bounded by time or steps

    def batch(self, step_in_epoch: int, step: int) -> tuple[torch.Tensor, None]:
        x = self.batches.batch(step)
        flip = torch.rand(len(x), generator=torch.Generator().manual_seed(self.cfg.seed * 7919 + step)) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return x, None

    def optimizers(self, net: nn.ModuleDict) -> dict[str, torch.optim.Optimizer]:
        cfg = self.cfg
        c = cfg.r1_every / (cfg.r1_every + 1) if cfg.r1_gamma > 0 else 1.0
        b1, b2 = cfg.betas
        gc = cfg.pl_every / (cfg.pl_every + 1) if cfg.pl_weight > 0 else 1.0
        return {"G": torch.optim.Adam(net["G"].parameters(), lr=cfg.lr * gc, betas=(b1 ** gc, b2 ** gc)),
                "D": torch.optim.Adam(net["D"].parameters(), lr=cfg.lr * c, betas=(b1 ** c, b2 ** c))}

    def ema_pair(self, net: nn.ModuleDict) -> tuple[nn.Module, nn.Module]:
        return net["G_ema"], net["G"]

    def _latents(self, G: nn.Module, n: int, dev: torch.device) -> torch.Tensor:
        return torch.randn(n, G.z_dim, device=dev)

    def _generate(self, G: nn.Module, n: int, dev: torch.device, track: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Fake images (and the ws used, for StyleGAN2) with style mixing."""
        z = self._latents(G, n, dev)
        if not isinstance(G, StyleGenerator):
            return G(z), None
        w = G.map(z)
        if track:
            with torch.no_grad():
                G.w_avg.lerp_(w.detach().mean(0), 1 - 0.995)
        ws = w[:, None].expand(-1, G.n_latent, -1)
        if self.cfg.style_mixing > 0 and float(torch.rand(())) < self.cfg.style_mixing:
            cut = int(torch.randint(1, G.n_latent, ()))
            w2 = G.map(self._latents(G, n, dev))
            ws = torch.cat([ws[:, :cut], w2[:, None].expand(-1, G.n_latent - cut, -1)], 1)
        return G.synthesis(ws), ws

    def _d_in(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x) if self.cfg.augment == "diffaug" else x

    def train_step(self, net: nn.ModuleDict, opts: dict, batch: tuple, step: int) -> dict[str, float]:
        cfg = self.cfg
        G, D = net["G"], net["D"]
        dev = next(G.parameters()).device
        real = batch[0].to(dev).contiguous()
        n = len(real)
        # D step
        G.requires_grad_(False)
        D.requires_grad_(True)
        with torch.no_grad():
            fake, _ = self._generate(G, n, dev, track=False)
        do_r1 = cfg.r1_gamma > 0 and step % cfg.r1_every == 0
        real_in = real.detach().requires_grad_(do_r1)
        real_logit = D(self._d_in(real_in))
        fake_logit = D(self._d_in(fake))
        d_loss = _nonsat_d(real_logit, fake_logit)
        out = {"d_loss": d_loss.item(), "d_real": real_logit.detach().mean().item(), "d_fake": fake_logit.detach().mean().item()}
        if do_r1:
            r1 = r1_penalty(real_logit, real_in)
            d_loss = d_loss + cfg.r1_gamma / 2 * r1 * cfg.r1_every
            out["r1"] = r1.item()
        opts["D"].zero_grad(set_to_none=True)
        d_loss.backward()
        opts["D"].step()
        # G step
        G.requires_grad_(True)
        D.requires_grad_(False)
        fake, ws = self._generate(G, n, dev, track=True)
        g_loss = F.softplus(-D(self._d_in(fake))).mean()
        out["g_loss"] = g_loss.item()
        opts["G"].zero_grad(set_to_none=True)
        g_loss.backward()
        if cfg.pl_weight > 0 and ws is not None and step % cfg.pl_every == 0:
            pl = self._path_length(G, n, dev)
            (pl * cfg.pl_weight * cfg.pl_every).backward()
            out["pl"] = pl.item()
        opts["G"].step()
        D.requires_grad_(True)
        out["loss"] = out["g_loss"] + out["d_loss"]
        return out

    def _path_length(self, G: StyleGenerator, n: int, dev: torch.device) -> torch.Tensor:
        """Path-length penalty (deviation of |J^T y| from its running mean), on half a batch."""
        m = max(1, n // 2)
        w = G.map(self._latents(G, m, dev))
        ws = w[:, None].expand(-1, G.n_latent, -1).detach().requires_grad_(True)
        img = G.synthesis(ws)
        y = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
        (g,) = torch.autograd.grad((img * y).sum(), ws, create_graph=True)
        lengths = g.pow(2).sum(2).mean(1).sqrt()
        if not hasattr(self, "_pl_mean"):
            self._pl_mean = torch.zeros((), device=dev)
        self._pl_mean = self._pl_mean.lerp(lengths.mean().detach(), 0.01)
        return (lengths - self._pl_mean).pow(2).mean()

    @torch.no_grad()
    def report(self, net: nn.ModuleDict, device: torch.device) -> dict:
        G = net["G_ema"]
        if self.grid_z is None:
            self.grid_z = torch.randn(self.cfg.grid ** 2, G.z_dim, generator=torch.Generator().manual_seed(12345))
        imgs = generate(G, z=self.grid_z, seed=12345)
        (self.out / "samples").mkdir(parents=True, exist_ok=True)
        save_grid(imgs, self.out / "samples" / "latest.png", self.cfg.grid)
        rep: dict = {}
        if self.fd_fn is not None and self.cfg.fd_samples:
            z = torch.randn(self.cfg.fd_samples, G.z_dim, generator=torch.Generator().manual_seed(777))
            fake = generate(G, z=z, seed=777)
            rep["fd_dlib"] = float(self.fd_fn(fake))
        return rep


class FdEstimator:
    """``FdEstimator(real_uint8)(fake)``: FD-dlib of generated faces (N, 3, res, res) in [-1, 1] against a
    fixed set of real aligned faces (uint8, embedded once). A small-sample estimate for the training
    history; ``bench/generation.py`` is the measurement."""

    def __init__(self, real: torch.Tensor, device: str | torch.device = "cpu"):
        from ...nn.identity import embed_aligned, load_identity_net

        self.net = load_identity_net(device=device)
        self.ref = embed_aligned(real.float() / 127.5 - 1, self.net)

    def __call__(self, fake: torch.Tensor) -> float:
        from ...nn.identity import embed_aligned
        from ...ops.metrics import frechet_distance

        return frechet_distance(embed_aligned(fake, self.net), self.ref)


@dataclass
class GanRun:
    """A finished (or budget-stopped) run: the networks, this run's history, steps and seconds."""

    net: nn.ModuleDict
    history: list[dict] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    config: dict = field(default_factory=dict)

    def export_meta(self, **extra) -> dict:
        """Training summary for the exported weights' metadata."""
        last = self.history[-1] if self.history else {}
        return {"steps": self.steps, "cpu_minutes": round(self.seconds / 60, 1),
                "images_seen": self.steps * int(self.config.get("batch", 0)),
                **{k: v for k, v in last.items() if k.startswith(("fd_", "train_"))}, **extra}


def train_gan(faces: FaceSet, out_dir: str | Path, config: GanTrainConfig = GanTrainConfig(), *,
              init: str | Path | None = None, init_d: str | Path | None = None, device: str = "cpu",
              fd_fn: Callable[[torch.Tensor], float] | None = None,
              log_fn: Callable[[str], None] | None = None,
              progress: Callable[[dict], object] | None = None) -> GanRun:
    """Train (or resume from ``out_dir/last.pt``) a GAN on ``faces``.

    Args:
        faces: the training faces (:func:`recon3d.data.faces.load_faces`), at ``config.res``.
        out_dir: checkpoint, ``history.jsonl`` and ``samples/`` folder.
        config: architecture, budget and hyper-parameters.
        init, init_d: exported generator / discriminator weights to start from (fine-tuning); the
            architecture and widths come from the file. Ignored when a checkpoint is resumed.
        fd_fn: images (N, 3, res, res) in [-1, 1] -> an FD-dlib estimate against real faces.
        log_fn, progress: passed to :func:`~recon3d.train.loop.run_training`.
    """
    cfg = config.resolved()
    torch.manual_seed(cfg.seed)
    g_spec, d_spec = ARCHS[cfg.arch]
    net = build_gan(cfg.arch, cfg.res, cfg.g_kwargs, cfg.d_kwargs)
    if init is not None:
        g0, _ = load_network(g_spec, init, cached=False)
        net = _players(g0.float(), net["D"])
        if init_d is not None:
            net["D"] = load_network(d_spec, init_d, cached=False)[0].float()
        if net["G"].res != cfg.res:
            raise ValueError(f"{init}: a {net['G'].res}² generator, the run is {cfg.res}²")
    recipe = GanRecipe(faces, cfg, out_dir, fd_fn=fd_fn)
    res = run_training(net, recipe, cfg, out_dir, device=device, log_fn=log_fn, progress=progress)
    rep = recipe.report(res.net, torch.device(device))
    log.info("done: %d steps, %.1f minutes%s", res.step, res.seconds / 60,
             f", FD-dlib {rep['fd_dlib']:.2f}" if "fd_dlib" in rep else "")
    hist = res.history + ([{"step": res.step, **rep}] if rep else [])
    return GanRun(net=res.net, history=hist, steps=res.step, seconds=res.seconds, config=recipe.config())
