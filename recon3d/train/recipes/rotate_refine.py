"""Recipe: the learned rotation refiner (:mod:`recon3d.nn.rotate_refine`, thesis ch. 3) on the one loop.

Samples are the three kinds of :mod:`recon3d.data.rotation_pairs` (``mirror`` and ``cycle`` with a ground
truth ``T``, ``free`` without), mirrored at random (images, masks and landmarks together). Objective
(``Y`` the refined view, ``P`` the PAS output, ``V`` where ``T`` is defined; images in [-1, 1]):

    L = 10 L_pix + 2 L_pas + 0.5 L_id + 1 L_pose + 0.1 L_tv + 0.01 L_adv (+ lambda_id_warp L_id_warp, off by default)

* ``L_pix``: L1 of ``Y - T`` over ``V`` (thesis eq. 3.9; the mirror pairs are seed 000's exact
  supervision, the cycle pairs its back-projection). A mirror pair's background is the mirrored one, which a
  real rotation does not give: its ``V`` is cut to ``mirror_margin`` pixels around the face;
* ``L_pas``: L1 of ``P - T`` over ``V`` plus 0.1 times the same on the reconstruction of the source
  (eq. 3.1; the PAS's TV term is in ``L_tv``);
* ``L_id``: the identity distance (:func:`recon3d.nn.identity.identity_distance`, dlib's metric; our
  identity network stands in for LightCNN) of ``Y`` to ``T``, or to the source photo for ``free`` samples;
* ``L_id_warp``: the hinge ``max(0, ID(Y) - ID(W) + m)`` per sample, ``W`` the warp, ``ID`` the same distance to
  the same reference and ``m`` the margin ``id_warp_margin`` (default 0): the output pays only where it is not
  at least ``m`` closer to the person than the warp it started from (the refiner's repairs must not cost identity);
* ``L_pose``: our landmark regressor (:mod:`recon3d.nn.landmarks`, frozen, differentiable) run on ``Y``:
  L1 of its 68 landmarks to the target pose's (frame units) plus that of its yaw and pitch (/ 90 degrees);
* ``L_tv``: total variation of ``Y`` and ``P`` (eqs. 3.6-3.7, L1 form);
* ``L_adv``: a projection discriminator conditioned on the target landmarks (:class:`PoseDiscriminator`,
  the thesis's choice), hinge loss (eq. 3.14) against the ground-truth views.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...conventions import IBUG68_MIRROR
from ...data.augment import to_float
from ...data.rotation_pairs import RotationPairs
from ...nn.identity import aligned_chip_matrix, extract_chip, identity_distance, load_identity_net
from ...nn.landmarks import (
    INPUT_SIZE,
    MEAN,
    POSE_REGRESSOR,
    STD,
    STORED_SIZE,
    load_regressor_net,
    regressor_crop_grid,
)
from ...nn.preprocess import standardise
from ...nn.registry import load_network
from ...nn.rotate_refine import ROTATION_REFINER, RotationRefiner, landmark_condition
from ..loop import LoopConfig, run_training
from ._base import GDRecipe
from .inpaint import masked_psnr

__all__ = ["RefineTrainConfig", "RefineRecipe", "PoseDiscriminator", "build_refiner", "train_refiner",
           "regressor_crop_grid", "flip_sample", "mirror_valid"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RefineTrainConfig(LoopConfig):
    """Hyper-parameters of a refiner run (defaults of ``pipelines.train_rotation_refiner``)."""

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
    lambda_pas: float = 2.0
    lambda_id: float = 0.5
    #: weight of the identity hinge against the warp (``L_id_warp``; 0: off)
    lambda_id_warp: float = 0.0
    #: how much closer (identity distance) than the warp the hinge asks the output to be
    id_warp_margin: float = 0.0
    lambda_pose: float = 1.0
    lambda_tv: float = 0.1
    lambda_adv: float = 0.01
    #: mirror samples are scored only this many pixels around the face (their background is mirrored, a real
    #: rotation's is not)
    mirror_margin: int = 6
    #: the pixel attention sampler (False: the thesis's ablation)
    pas: bool = True
    widths: tuple = (16, 32, 64, 128)
    blocks: int = 2


class PoseDiscriminator(nn.Module):
    """Projection discriminator (Miyato & Koyama 2018) conditioned on the target landmarks: stride-2 convs
    with leaky ReLU down to 4², summed features ``h``, logit ``w . h + <embed(landmarks), h>``."""

    def __init__(self, res: int = 128, width: int = 16):
        super().__init__()
        layers: list[nn.Module] = []
        c_in, c, s = 3, width, res
        while s > 4:
            layers += [nn.utils.spectral_norm(nn.Conv2d(c_in, c, 4, 2, 1)), nn.LeakyReLU(0.2)]
            c_in, c, s = c, min(8 * width, 2 * c), s // 2
        self.features = nn.Sequential(*layers)
        self.out = nn.utils.spectral_norm(nn.Linear(c_in, 1))
        self.embed = nn.utils.spectral_norm(nn.Linear(68 * 3, c_in))

    def forward(self, x: torch.Tensor, lmk: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.features(x), 0.2).sum((2, 3))
        return self.out(h)[:, 0] + (self.embed(lmk.flatten(1)) * h).sum(1)


def flip_sample(images: list[torch.Tensor], lmks: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Mirror NCHW images/masks left-right and frame landmarks ``(B, 68, 3)`` with them (x negated, left and
    right swapped, depth kept)."""
    perm = list(IBUG68_MIRROR)
    out_l = []
    for lm in lmks:
        m = lm[:, perm].clone()
        m[..., 0] = -m[..., 0]
        out_l.append(m)
    return [im.flip(3) for im in images], out_l


def mirror_valid(masks: torch.Tensor, kind: torch.Tensor, margin: int) -> torch.Tensor:
    """``masks`` ``(N, 3, S, S)`` bool (no source, face, target valid) with the valid region of the ``mirror``
    samples cut to ``margin`` pixels around the face."""
    out = masks.clone()
    mir = torch.nonzero(kind == 0)[:, 0]
    for chunk in mir.split(256):
        face = out[chunk, 1:2].float()
        near = F.max_pool2d(face, 2 * margin + 1, 1, margin) > 0.5 if margin > 0 else face > 0.5
        out[chunk, 2:3] &= near
    return out


def _masked_l1(a: torch.Tensor, b: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Per-sample mean |a - b| over the pixels of ``m`` (B, 1, H, W); 0 where ``m`` is empty."""
    num = ((a - b).abs() * m).flatten(1).sum(1)
    return num / (m.flatten(1).sum(1) * a.shape[1]).clamp_min(1)


def _tv(x: torch.Tensor) -> torch.Tensor:
    return (x[..., :, 1:] - x[..., :, :-1]).abs().mean() + (x[..., 1:, :] - x[..., :-1, :]).abs().mean()


class RefineRecipe(GDRecipe):
    """The refining task for :func:`recon3d.train.loop.run_training` (see the module doc).

    Args:
        pairs: the training samples.
        config: the run's settings.
        val: held-out samples (with ground truth) scored in each history record: PSNR of the warp and of the
            refined view over ``V``.
        identity_net, regressor_net: the frozen networks of ``L_id`` and ``L_pose`` (default: the shipped ones).
    """

    def __init__(self, pairs: RotationPairs, config: RefineTrainConfig, *, val: RotationPairs | None = None,
                 identity_net=None, regressor_net=None):
        self.cfg = config
        if len(pairs) < config.batch:
            raise ValueError(f"{len(pairs)} samples, fewer than one batch of {config.batch}")
        a = pairs.arrays
        if a["warp"].shape[-1] != config.res:
            raise ValueError(f"samples are {a['warp'].shape[-1]}², the refiner trains at {config.res}²")
        self.a = {k: torch.as_tensor(v) for k, v in a.items()}
        self.a["masks"] = mirror_valid(self.a["masks"], self.a["kind"], config.mirror_margin)
        self.n = len(pairs)
        self.val = val
        self.idnet = identity_net if identity_net is not None or max(config.lambda_id, config.lambda_id_warp) <= 0 else load_identity_net()
        if self.idnet is not None:
            self.idnet.requires_grad_(False).eval()
        self.reg = regressor_net
        if self.reg is None and config.lambda_pose > 0:
            self.reg = load_regressor_net(POSE_REGRESSOR)[0]
        if self.reg is not None:
            self.reg.requires_grad_(False).eval()
        self.chip_m = aligned_chip_matrix(config.res)

    # -- loop protocol -------------------------------------------------------------------------
    @staticmethod
    def unpack(a: dict[str, torch.Tensor], ids: torch.Tensor, flip: torch.Tensor | None = None) -> tuple:
        """``(warp, source, ident, target, masks (B, 2), valid (B, 1), lmk_src, lmk_tgt, emb, pose, has_gt)`` of
        samples ``ids`` (images in [-1, 1]); ``flip`` ``(B,)`` bool mirrors those samples."""
        warp, source, ident, target = (to_float(a[k][ids]) for k in ("warp", "source", "ident", "target"))
        mk = a["masks"][ids].float()
        masks, valid = mk[:, :2], mk[:, 2:3]
        ls, lt = a["lmk_src"][ids].float(), a["lmk_tgt"][ids].float()
        pose = a["pose"][ids].float()
        if flip is not None and bool(flip.any()):
            (fw, fs, fi, ft, fm, fv), (fls, flt) = flip_sample([warp, source, ident, target, masks, valid], [ls, lt])
            f4 = flip[:, None, None, None]
            warp, source, ident, target, masks, valid = (torch.where(f4, x1, x0) for x0, x1 in
                                                        ((warp, fw), (source, fs), (ident, fi), (target, ft),
                                                         (masks, fm), (valid, fv)))
            f3 = flip[:, None, None]
            ls, lt = torch.where(f3, fls, ls), torch.where(f3, flt, lt)
            pose = torch.where(f3, pose * torch.tensor([-1.0, 1.0, -1.0]), pose)
        has_gt = (valid.flatten(1).sum(1) > 0).float()
        return warp, source, ident, target, masks, valid, ls, lt, a["emb"][ids].float(), pose, has_gt

    def batch(self, step_in_epoch: int, step: int) -> tuple:
        gen = torch.Generator().manual_seed(self.cfg.seed * 7919 + step)
        ids = torch.randint(0, self.n, (self.cfg.batch,), generator=gen)
        flip = torch.rand(self.cfg.batch, generator=gen) < 0.5
        return self.unpack(self.a, ids, flip)

    def pose_loss(self, y: torch.Tensor, lmk_tgt: torch.Tensor, pose_tgt: torch.Tensor) -> torch.Tensor:
        """``L_pose`` per sample (see the module doc)."""
        from ...nn.landmarks import decode

        grid, (box) = regressor_crop_grid(lmk_tgt, self.cfg.res)
        crop = F.grid_sample((y + 1) / 2, grid.to(y), mode="bilinear", padding_mode="border", align_corners=False)
        out = self.reg(standardise(crop, MEAN, STD))
        if isinstance(out, dict):
            raise ValueError("the pose loss needs a regressor with the fc head (v1)")
        xy, _, pose = decode(out, INPUT_SIZE)
        m = (STORED_SIZE - INPUT_SIZE) / 2
        x0, y0, s = box[:, 0:1], box[:, 1:2], box[:, 2:3]
        fx = x0 + (xy[..., 0] + m + 0.5) * s - 0.5
        fy = y0 + (xy[..., 1] + m + 0.5) * s - 0.5
        res = self.cfg.res
        pred = torch.stack([(fx + 0.5) / res * 2 - 1, (fy + 0.5) / res * 2 - 1], -1)
        lm = (pred - lmk_tgt[..., :2]).abs().mean((1, 2))
        return lm + ((pose[:, :2] - pose_tgt[:, :2]) / 90).abs().mean(1)

    def train_step(self, net: nn.ModuleDict, opts: dict, batch: tuple, step: int) -> dict[str, float]:
        cfg = self.cfg
        G = net["G"]
        dev = next(G.parameters()).device
        warp, source, ident, target, masks, valid, ls, lt, emb, pose, has_gt = (t.to(dev) for t in batch)
        out: dict[str, float] = {}
        adv = "D" in net and cfg.lambda_adv > 0 and bool(has_gt.any())
        if adv:
            D = net["D"]
            with torch.no_grad():
                fake, _ = G.refine(warp, source, masks, ls, lt, emb)
            real_ids = has_gt > 0
            d_loss = (F.relu(1 - D(target[real_ids], lt[real_ids])).mean() + F.relu(1 + D(fake, lt)).mean())
            opts["D"].zero_grad(set_to_none=True)
            d_loss.backward()
            opts["D"].step()
            out["d_loss"] = d_loss.item()
            D.requires_grad_(False)
        y, sampled = G.refine(warp, source, masks, ls, lt, emb)
        n_gt = has_gt.sum().clamp_min(1)
        pix = (_masked_l1(y, target, valid) * has_gt).sum() / n_gt
        loss = cfg.lambda_pix * pix
        out["pix"] = pix.item()
        out["pix_warp"] = float((_masked_l1(warp, target, valid) * has_gt).sum() / n_gt)
        tv = _tv(y)
        if G.uses_pas and cfg.lambda_pas > 0:
            pas = (_masked_l1(sampled, target, valid) * has_gt).sum() / n_gt
            # eq. 3.1's reconstruction term: the source through the PAS conditioned on its own pose returns itself
            rec, _ = G.pas(source, source, G.cond_mlp(landmark_condition(ls, ls)))
            pas = pas + 0.1 * (rec - source).abs().mean()
            loss = loss + cfg.lambda_pas * pas
            out["pas"] = pas.item()
            tv = tv + _tv(sampled)
        loss = loss + cfg.lambda_tv * tv
        out["tv"] = tv.item()
        if (cfg.lambda_id > 0 or cfg.lambda_id_warp > 0) and self.idnet is not None:
            m = np.broadcast_to(self.chip_m, (len(y), 2, 3))
            ref = torch.where(has_gt[:, None, None, None] > 0, target, ident)
            with torch.no_grad():
                rc = extract_chip((ref + 1) / 2, m)
            d_y = identity_distance(self.idnet, extract_chip(((y + 1) / 2).clamp(0, 1), m), rc)
            idl = d_y.mean()
            loss = loss + cfg.lambda_id * idl
            out["id"] = idl.item()
            if cfg.lambda_id_warp > 0:
                with torch.no_grad():
                    d_w = identity_distance(self.idnet, extract_chip(((warp + 1) / 2).clamp(0, 1), m), rc)
                hinge = F.relu(d_y - d_w + cfg.id_warp_margin).mean()
                loss = loss + cfg.lambda_id_warp * hinge
                out["id_warp"] = hinge.item()
        if cfg.lambda_pose > 0 and self.reg is not None:
            pl = self.pose_loss(y, lt, pose[:, 1]).mean()
            loss = loss + cfg.lambda_pose * pl
            out["pose"] = pl.item()
        if adv:
            g_adv = -net["D"](y, lt).mean()
            loss = loss + cfg.lambda_adv * g_adv
            out["g_adv"] = g_adv.item()
            net["D"].requires_grad_(True)
        opts["G"].zero_grad(set_to_none=True)
        loss.backward()
        opts["G"].step()
        out["loss"] = loss.item()
        return out

    @torch.no_grad()
    def report(self, net: nn.ModuleDict, device: torch.device) -> dict:
        if self.val is None:
            return {}
        a = {k: torch.as_tensor(v) for k, v in self.val.arrays.items()}
        a["masks"] = mirror_valid(a["masks"], a["kind"], self.cfg.mirror_margin)
        ids = torch.nonzero(a["masks"][:, 2].flatten(1).any(1))[:, 0]
        if not len(ids):
            return {}
        G = net["G"]
        was = G.training
        G.eval()
        ys, ws, ts, vs = [], [], [], []
        for chunk in ids.split(16):
            warp, source, ident, target, masks, valid, ls, lt, emb, pose, _ = (t.to(device) for t in self.unpack(a, chunk))
            ys.append(G(warp, source, masks, ls, lt, emb))
            ws.append(warp)
            ts.append(target)
            vs.append(valid)
        G.train(was)
        y, w, t, v = (torch.cat(x) for x in (ys, ws, ts, vs))
        return {"val_psnr": float(masked_psnr(y, t, v).mean()), "val_psnr_warp": float(masked_psnr(w, t, v).mean()),
                "val_l1": float(_masked_l1(y, t, v).mean() / 2), "val_l1_warp": float(_masked_l1(w, t, v).mean() / 2)}


def build_refiner(config: RefineTrainConfig) -> nn.ModuleDict:
    """A fresh ``ModuleDict``: ``G`` the :class:`~recon3d.nn.rotate_refine.RotationRefiner` and, when the
    adversarial term is on, ``D`` the :class:`PoseDiscriminator`."""
    nets: dict[str, nn.Module] = {"G": RotationRefiner(config.res, widths=config.widths, blocks=config.blocks,
                                                       pas=config.pas)}
    if config.lambda_adv > 0:
        nets["D"] = PoseDiscriminator(config.res)
    return nn.ModuleDict(nets)


def train_refiner(pairs: RotationPairs, out_dir: str | Path, config: RefineTrainConfig = RefineTrainConfig(), *,
                  init: str | Path | None = None, val: RotationPairs | None = None, device: str = "cpu",
                  log_fn=None, progress=None):
    """Train (or resume from ``out_dir/last.pt``) the refiner; ``init``: exported refiner weights of the same
    configuration to fine-tune (ignored when a checkpoint resumes). Returns the loop's ``LoopResult``."""
    torch.manual_seed(config.seed)
    net = build_refiner(config)
    if init is not None:
        g0, _ = load_network(ROTATION_REFINER, init, cached=False)
        if g0.config != net["G"].config:
            raise ValueError(f"{init}: a refiner with another configuration ({g0.config}) than this run's "
                             f"({net['G'].config})")
        net["G"] = g0.float().train()
    recipe = RefineRecipe(pairs, config, val=val)
    return run_training(net, recipe, config, out_dir, device=device, log_fn=log_fn, progress=progress)
