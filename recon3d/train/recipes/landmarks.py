"""Recipe: training :class:`~recon3d.nn.landmarks.LandmarkNet` on a synthesized set
(``python -m pipelines.synthesize_poses``, :mod:`recon3d.data.landmark_set`) with the one loop of
:mod:`recon3d.train.loop`.

Loss (:func:`landmark_loss`): L1 on the landmark x, y (normalised crop coordinates), plus
``w_depth`` x L1 on their relative depth and ``w_pose`` x L1 on (yaw, pitch, roll) / 90°. AdamW,
linear warm-up then cosine decay over the epochs, or over ``max_minutes`` of wall time when that
budget ends first. Batches: the training views in a seeded random order per epoch, augmented on
the fly (:func:`~recon3d.data.landmark_set.augment_batch`: a random 112² window of the stored 128²
crop, horizontal flip, colour, blur, noise and a random rectangular occluder).

Validation (:func:`evaluate`): 68-point NME normalised by sqrt(w * h) of the ground-truth landmark
box (the AFLW2000-3D protocol) on the held-out photos' views (central window), overall and per
|yaw| bin, and the pose MAE; one history record per epoch.

The sample folder is re-read at every epoch, so training may start while synthesis still runs.
CPU time: the shipped weights took 75 minutes on 2 cores over ~38 k views synthesized from 300-W
(assets/README.md).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ...data.landmark_set import SampleSet, augment_batch, load_samples
from ...nn.landmarks import LandmarkNet, decode, encode_targets
from ...ops import metrics
from ...ops.crop import crop_box_from_landmarks
from ..loop import LoopConfig, run_training

__all__ = ["TrainConfig", "LandmarkRecipe", "landmark_loss", "evaluate", "evaluate_photos", "train", "nme_per_image",
           "YAW_BINS"]

log = logging.getLogger(__name__)

YAW_BINS = ((0, 30), (30, 60), (60, 90))


@dataclass(frozen=True)
class TrainConfig(LoopConfig):
    """Training hyper-parameters (the defaults trained the shipped weights): the loop's settings
    (:class:`~recon3d.train.loop.LoopConfig`: ``lr``, ``weight_decay``, ``warmup_steps``,
    ``max_minutes``, ``max_steps``, ``checkpoint_minutes``, ``seed``, ...) with this task's
    defaults, plus the batch size and the loss weights."""

    epochs: int = 10
    lr: float = 2e-3
    warmup_steps: int = 200
    batch: int = 64
    #: weights of the depth and pose terms of :func:`landmark_loss` (x, y weigh 1)
    w_depth: float = 0.2
    w_pose: float = 0.2


def nme_per_image(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``(N,)`` mean point error / sqrt(w * h) of the ground-truth box, for ``(N, 68, 2)`` arrays.

    >>> g = np.zeros((1, 68, 2)); g[0, :, 0] = np.linspace(0, 10, 68); g[0, :, 1] = np.linspace(0, 10, 68)
    >>> float(nme_per_image(g + 1.0, g)[0]) == float(np.sqrt(2) / 10)
    True
    """
    return metrics.nme(pred, gt)


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


def landmark_loss(pred: torch.Tensor, target: torch.Tensor, w_depth: float, w_pose: float) -> torch.Tensor:
    """L1 on x, y, ``w_depth`` x L1 on depth, ``w_pose`` x L1 on the pose, for ``(B, 68*3 + 3)``
    network outputs and :func:`~recon3d.nn.landmarks.encode_targets` targets."""
    err = (pred - target).abs()
    nl = 68 * 3
    e = err[:, :nl].view(-1, 68, 3)
    return e[..., :2].mean() + w_depth * e[..., 2].mean() + w_pose * err[:, nl:].mean()


class LandmarkRecipe:
    """The landmark task for :func:`recon3d.train.loop.run_training` (see the module doc)."""

    def __init__(self, root: str | Path, config: TrainConfig):
        self.root, self.cfg = Path(root), config
        self.val = load_samples(self.root, "val")
        self.data: SampleSet | None = None

    def config(self) -> dict:
        return asdict(self.cfg)

    def start_epoch(self, epoch: int, step_in_epoch: int) -> int:
        cfg = self.cfg
        self.data = load_samples(self.root, "train")
        if len(self.data) < cfg.batch:
            raise ValueError(f"train(): only {len(self.data)} training samples under {self.root} (batch {cfg.batch})")
        self.perm = torch.randperm(len(self.data), generator=torch.Generator().manual_seed(cfg.seed * 1000 + epoch))
        self.gen = torch.Generator().manual_seed(cfg.seed * 7919 + epoch * 31 + step_in_epoch)
        return len(self.data) // cfg.batch

    def batch(self, step_in_epoch: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        b, d = self.cfg.batch, self.data
        idx = self.perm[step_in_epoch * b:(step_in_epoch + 1) * b].numpy()
        x, lmk, lz, pose = augment_batch(torch.from_numpy(d.images[idx]), torch.from_numpy(d.lmk[idx]),
                                         torch.from_numpy(d.lmk_z[idx]), torch.from_numpy(d.pose_deg[idx]), self.gen)
        return x, encode_targets(lmk, lz, pose)

    def loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return landmark_loss(pred, target, self.cfg.w_depth, self.cfg.w_pose)

    def report(self, net: LandmarkNet, device: torch.device) -> dict:
        ev = evaluate(net, self.val, device=device)
        return {"n_train": len(self.data) if self.data is not None else 0, **{f"val_{k}": v for k, v in ev.items()}}

    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        if "gen" in state:
            self.gen.set_state(state["gen"].cpu())


def train(root: str | Path, out_dir: str | Path, config: TrainConfig = TrainConfig(), *, device: str = "cpu",
          resume: bool = True, net: LandmarkNet | None = None,
          log_fn: Callable[[str], None] | None = None) -> tuple[LandmarkNet, list[dict]]:
    """Train (or resume training) and return ``(net, history of this run)``.

    ``out_dir/last.pt`` is the checkpoint (every ``checkpoint_minutes`` and at the end of each
    epoch); ``out_dir/history.jsonl`` gets one line per epoch (:mod:`recon3d.train.loop`).
    """
    torch.manual_seed(config.seed)
    net = net or LandmarkNet()
    res = run_training(net, LandmarkRecipe(root, config), config, out_dir, device=device, resume=resume,
                       log_fn=log_fn)
    return res.net, res.history


def evaluate_photos(regressor, photos) -> np.ndarray:
    """Per-photo NME of a :class:`~recon3d.nn.landmarks.LandmarkRegressor` started from the crop
    box of the ground truth (``photos``: iterable of ``(image (H, W, 3), gt (68, 2))``); the
    protocol of the shipped weights' recorded check (see assets/manifest.json)."""
    out = []
    for image, gt in photos:
        gt = np.asarray(gt, dtype=np.float64)
        r = regressor(image, crop_box_from_landmarks(gt))
        out.append(nme_per_image(r.lmk_px[None].astype(np.float64), gt[None])[0])
    return np.asarray(out)
