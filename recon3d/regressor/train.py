"""Training of :class:`~recon3d.regressor.net.LandmarkNet` on a synthesized set
(``python -m pipelines.synthesize_poses``; one ``.npz`` per source photo in ``ROOT/samples``,
``ROOT/train.txt`` / ``ROOT/val.txt`` list the photo keys of each split).

Loss: L1 on the landmark x, y (normalised crop coordinates), plus ``w_depth`` x L1 on their
relative depth and ``w_pose`` x L1 on (yaw, pitch, roll) / 90°. AdamW, linear warm-up then cosine
decay over the epochs, or over ``max_minutes`` of wall time when that budget ends first. Augmentation (on the fly, per batch): a random 112² window of the stored 128² crop,
horizontal flip (landmark identities mirrored, yaw and roll negated), brightness, contrast,
saturation, grayscale, blur, noise and a random rectangular occluder.

Validation: 68-point NME normalised by sqrt(w * h) of the ground-truth landmark box (the AFLW2000-3D
protocol) on the held-out photos' views (central window), overall and per |yaw| bin.

Checkpoints (``last.pt``: weights, optimiser, epoch, step) are plain tensors and numbers, loaded
with ``torch.load(weights_only=True)``; training resumes from them. The sample folder is re-read at
every epoch, so training may start while synthesis is still running.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..conventions import IBUG68_MIRROR
from .net import INPUT_SIZE, STORED_SIZE, LandmarkNet, decode, encode_targets, normalise

__all__ = ["TrainConfig", "SampleSet", "load_samples", "augment_batch", "evaluate", "evaluate_photos", "train", "nme_per_image",
           "YAW_BINS"]

log = logging.getLogger(__name__)

YAW_BINS = ((0, 30), (30, 60), (60, 90))
_FLIP = torch.tensor(IBUG68_MIRROR, dtype=torch.long)


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters (the defaults trained the shipped weights)."""

    epochs: int = 10
    batch: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    w_depth: float = 0.2
    w_pose: float = 0.2
    seed: int = 0
    #: stop after this long (checkpoint kept); the cosine schedule then ends with the budget
    max_minutes: float | None = None
    checkpoint_minutes: float = 5.0


@dataclass
class SampleSet:
    """Samples in memory: ``images (N, S, S, 3)`` uint8, ``lmk (N, 68, 2)``, ``lmk_z (N, 68)``,
    ``pose_deg (N, 3)`` float32 (crop pixels of the stored ``S``² crop)."""

    images: np.ndarray
    lmk: np.ndarray
    lmk_z: np.ndarray
    pose_deg: np.ndarray

    def __len__(self) -> int:
        return len(self.images)


def load_samples(root: str | Path, split: str | None = None) -> SampleSet:
    """All samples of ``split`` (``"train"``, ``"val"`` or None: every file) under ``root``.
    Photos listed in the split but not synthesized yet are skipped."""
    root = Path(root)
    files = sorted((root / "samples").glob("*.npz"))
    if split is not None:
        lst = root / f"{split}.txt"
        keys = set(lst.read_text().split()) if lst.is_file() else set()
        files = [f for f in files if f.stem in keys]
    imgs, lmk, lz, pose = [], [], [], []
    for f in files:
        try:
            with np.load(f) as z:
                imgs.append(z["images"])
                lmk.append(z["lmk"])
                lz.append(z["lmk_z"])
                pose.append(z["pose_deg"])
        except (OSError, ValueError, KeyError) as e:  # a file being written by another process
            log.warning("skipping %s: %s", f, e)
    if not imgs:
        S = STORED_SIZE
        return SampleSet(np.zeros((0, S, S, 3), np.uint8), np.zeros((0, 68, 2), np.float32),
                         np.zeros((0, 68), np.float32), np.zeros((0, 3), np.float32))
    return SampleSet(np.concatenate(imgs), np.concatenate(lmk).astype(np.float32), np.concatenate(lz).astype(np.float32),
                     np.concatenate(pose).astype(np.float32))


def augment_batch(images: torch.Tensor, lmk: torch.Tensor, lmk_z: torch.Tensor, pose: torch.Tensor,
                  gen: torch.Generator, *, train: bool = True, photometric: bool = True):
    """Crop the network window (random in training, central otherwise) and augment.

    Args:
        images: ``(B, S, S, 3)`` uint8; lmk ``(B, 68, 2)``, lmk_z ``(B, 68)``, pose ``(B, 3)`` float.

        train: random window, flips and (with ``photometric``) colour, blur, noise, occluders;
            otherwise the central window only.

    Returns:
        ``(x (B, 3, 112, 112) normalised, lmk, lmk_z, pose)`` in the window's pixels.
    """
    B, S = images.shape[0], images.shape[1]
    n = INPUT_SIZE
    m = (S - n) // 2
    if train:
        ox = torch.randint(0, S - n + 1, (B,), generator=gen)
        oy = torch.randint(0, S - n + 1, (B,), generator=gen)
    else:
        ox = oy = torch.full((B,), m, dtype=torch.long)
    ar = torch.arange(n)
    rows = (oy[:, None] + ar[None]).clamp(0, S - 1)
    cols = (ox[:, None] + ar[None]).clamp(0, S - 1)
    x = images[torch.arange(B)[:, None, None], rows[:, :, None], cols[:, None, :]]  # (B,n,n,3)
    lmk = lmk - torch.stack([ox, oy], 1)[:, None, :].float()
    lmk_z = lmk_z.clone()
    pose = pose.clone()
    x = normalise(x)
    if not train:
        return x, lmk, lmk_z, pose
    flip = torch.rand(B, generator=gen) < 0.5
    if flip.any():
        x[flip] = x[flip].flip(-1)
        lf = lmk[flip][:, _FLIP]
        lf[..., 0] = (n - 1) - lf[..., 0]
        lmk[flip] = lf
        lmk_z[flip] = lmk_z[flip][:, _FLIP]
        pose[flip] = pose[flip] * torch.tensor([-1.0, 1.0, -1.0])
    if not photometric:
        return x, lmk, lmk_z, pose

    def u(lo, hi, shape=(B, 1, 1, 1)):
        return lo + (hi - lo) * torch.rand(shape, generator=gen)

    gray = x.mean(1, keepdim=True)
    x = gray + (x - gray) * u(0.4, 1.5)
    x = torch.where(torch.rand(B, 1, 1, 1, generator=gen) < 0.1, gray.expand_as(x), x)
    mu = x.mean((1, 2, 3), keepdim=True)
    x = (x - mu) * u(0.6, 1.4) + mu + u(-0.6, 0.6)
    blur = torch.rand(B, generator=gen) < 0.25
    if blur.any():
        xb = F.avg_pool2d(x[blur], 2)
        x[blur] = F.interpolate(xb, size=(n, n), mode="bilinear", align_corners=False)
    x = x + torch.randn(x.shape, generator=gen) * u(0.0, 0.12)
    occ = torch.nonzero(torch.rand(B, generator=gen) < 0.3).ravel().tolist()
    for i in occ:
        w = int(torch.randint(n // 8, n // 2, (1,), generator=gen))
        h = int(torch.randint(n // 8, n // 2, (1,), generator=gen))
        x0 = int(torch.randint(0, n - w, (1,), generator=gen))
        y0 = int(torch.randint(0, n - h, (1,), generator=gen))
        fill = torch.randn(3, 1, 1, generator=gen) + 0.3 * torch.randn(3, h, w, generator=gen)
        x[i, :, y0:y0 + h, x0:x0 + w] = fill
    return x, lmk, lmk_z, pose


def nme_per_image(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``(N,)`` mean point error / sqrt(w * h) of the ground-truth box, for ``(N, 68, 2)`` arrays.

    >>> g = np.zeros((1, 68, 2)); g[0, :, 0] = np.linspace(0, 10, 68); g[0, :, 1] = np.linspace(0, 10, 68)
    >>> float(nme_per_image(g + 1.0, g)[0]) == float(np.sqrt(2) / 10)
    True
    """
    from ..ops.metrics import nme  # body-only change while recon3d/regressor/ moves (hoist it there)

    return nme(pred, gt)


@torch.no_grad()
def evaluate(net: LandmarkNet, data: SampleSet, *, batch: int = 256, device: torch.device | str = "cpu") -> dict:
    """NME (overall and per |yaw| bin) and pose MAE on ``data`` (central window)."""
    net.eval()
    errs, pe = [], []
    gen = torch.Generator().manual_seed(0)
    for i in range(0, len(data), batch):
        sl = slice(i, i + batch)
        x, lmk, _, pose = augment_batch(torch.from_numpy(data.images[sl]), torch.from_numpy(data.lmk[sl]),
                                        torch.from_numpy(data.lmk_z[sl]), torch.from_numpy(data.pose_deg[sl]), gen, train=False)
        xy, _, p = decode(net(x.to(device)).cpu())
        errs.append(nme_per_image(xy.numpy(), lmk.numpy()))
        pe.append(np.abs(p.numpy() - pose.numpy()))
    if not errs:
        return {"n": 0}
    e = np.concatenate(errs)
    pe = np.concatenate(pe)
    yaw = np.abs(data.pose_deg[:, 0])
    out = {"n": len(e), "nme": float(e.mean()), "pose_mae": float(pe.mean())}
    for a, b in YAW_BINS:
        sel = (yaw <= b) & ((yaw > a) | (a == 0))
        out[f"nme_{a}_{b}"] = float(e[sel].mean()) if sel.any() else float("nan")
    return out


def _lr(cfg: TrainConfig, step: int, progress: float) -> float:
    warm = min(1.0, (step + 1) / max(cfg.warmup_steps, 1))
    return cfg.lr * warm * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def train(root: str | Path, out_dir: str | Path, config: TrainConfig = TrainConfig(), *, device: str = "cpu",
          resume: bool = True, net: LandmarkNet | None = None,
          log_fn: Callable[[str], None] | None = None) -> tuple[LandmarkNet, list[dict]]:
    """Train (or resume training) and return ``(net, history)``.

    ``out_dir/last.pt`` is the checkpoint (written atomically every ``checkpoint_minutes`` and at
    the end of each epoch); ``out_dir/history.jsonl`` gets one line per epoch.
    """
    import json
    import os

    say = log_fn or log.info
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device)
    torch.manual_seed(config.seed)
    # contiguous (NCHW) layout: channels_last backward crashed (SIGSEGV) in torch 2.13.0 on an AMD EPYC CPU
    net = (net or LandmarkNet()).to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    epoch, step_in_epoch, gstep, elapsed = 0, 0, 0, 0.0
    ckpt = out / "last.pt"
    if resume and ckpt.is_file():
        st = torch.load(ckpt, map_location=dev, weights_only=True)
        net.load_state_dict(st["net"])
        opt.load_state_dict(st["opt"])
        epoch, step_in_epoch, gstep = int(st["epoch"]), int(st["step_in_epoch"]), int(st["gstep"])
        elapsed = float(st.get("elapsed", 0.0))
        say(f"resumed from {ckpt}: epoch {epoch}, step {step_in_epoch}")

    def save():
        tmp = out / "last.pt.tmp"
        torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "epoch": epoch, "step_in_epoch": step_in_epoch,
                    "gstep": gstep, "elapsed": time.perf_counter() - t_start, "config": json.dumps(asdict(config))}, tmp)
        os.replace(tmp, ckpt)

    val = load_samples(root, "val")
    history = []
    t_start = time.perf_counter() - elapsed  # training time so far counts against max_minutes
    t_ckpt = time.perf_counter()
    stop = False
    while epoch < config.epochs and not stop:
        data = load_samples(root, "train")
        if len(data) < config.batch:
            raise ValueError(f"train(): only {len(data)} training samples under {root} (batch {config.batch})")
        spe = len(data) // config.batch
        perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(config.seed * 1000 + epoch))
        gen = torch.Generator().manual_seed(config.seed * 7919 + epoch * 31 + step_in_epoch)
        net.train()
        losses = []
        t_ep = time.perf_counter()
        while step_in_epoch < spe:
            idx = perm[step_in_epoch * config.batch:(step_in_epoch + 1) * config.batch].numpy()
            x, lmk, lz, pose = augment_batch(torch.from_numpy(data.images[idx]), torch.from_numpy(data.lmk[idx]),
                                             torch.from_numpy(data.lmk_z[idx]), torch.from_numpy(data.pose_deg[idx]), gen)
            tgt = encode_targets(lmk, lz, pose).to(dev)
            pred = net(x.to(dev).contiguous())
            err = (pred - tgt).abs()
            nl = 68 * 3
            e = err[:, :nl].view(-1, 68, 3)
            loss = e[..., :2].mean() + config.w_depth * e[..., 2].mean() + config.w_pose * err[:, nl:].mean()
            progress = (epoch + step_in_epoch / spe) / config.epochs
            if config.max_minutes:  # the schedule ends with the time budget if that comes first
                progress = max(progress, (time.perf_counter() - t_start) / (config.max_minutes * 60))
            for g in opt.param_groups:
                g["lr"] = _lr(config, gstep, progress)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            step_in_epoch += 1
            gstep += 1
            now = time.perf_counter()
            if step_in_epoch % 50 == 0:
                say(f"epoch {epoch} step {step_in_epoch}/{spe} loss {np.mean(losses[-50:]):.4f} "
                    f"({config.batch * 50 / max(now - t_ep, 1e-9):.0f} samples/s)" if step_in_epoch == 50 else
                    f"epoch {epoch} step {step_in_epoch}/{spe} loss {np.mean(losses[-50:]):.4f}")
            if now - t_ckpt > config.checkpoint_minutes * 60:
                save()
                t_ckpt = now
            if config.max_minutes is not None and now - t_start > config.max_minutes * 60:
                stop = True
                break
        if not stop:
            epoch += 1
            step_in_epoch = 0
        ev = evaluate(net, val, device=dev)
        rec = {"epoch": epoch, "step": gstep, "train_loss": float(np.mean(losses)) if losses else float("nan"),
               "n_train": len(data), "seconds": time.perf_counter() - t_start, **{f"val_{k}": v for k, v in ev.items()}}
        history.append(rec)
        with open(out / "history.jsonl", "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        say(f"epoch {epoch} done: train loss {rec['train_loss']:.4f}, val NME {ev.get('nme', float('nan')) * 100:.2f}% "
            f"({ev.get('n', 0)} views), pose MAE {ev.get('pose_mae', float('nan')):.1f} deg")
        save()
        t_ckpt = time.perf_counter()
    net.eval()
    return net, history


def evaluate_photos(regressor, photos) -> np.ndarray:
    """Per-photo NME of a :class:`~recon3d.regressor.net.LandmarkRegressor` started from the crop
    box of the ground truth (``photos``: iterable of ``(image (H, W, 3), gt (68, 2))``); the
    protocol of the shipped weights' recorded check (see assets/manifest.json)."""
    from .synth import crop_box_from_landmarks

    out = []
    for image, gt in photos:
        gt = np.asarray(gt, dtype=np.float64)
        r = regressor(image, crop_box_from_landmarks(gt))
        out.append(nme_per_image(r.lmk_px[None].astype(np.float64), gt[None])[0])
    return np.asarray(out)
