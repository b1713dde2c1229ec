"""Recipe: training :class:`~recon3d.nn.occluder.OccluderNet` with the one loop of
:mod:`recon3d.train.loop`.

Data (:mod:`recon3d.data.occluders`): face crops of annotated photos (several jittered crops per
photo, a hash split holds 5 % of the photos out) and a bank of random occluder shapes. Every step
pastes random occluders over a random batch of training crops (the batch is seeded by the step,
so a resumed run sees the same batches) and the network learns the pasted masks: binary
cross-entropy + 0.5 x soft Dice (:func:`occluder_loss`). The run is bounded by time: AdamW, linear
warm-up over 100 steps, then a cosine over ``max_minutes``. Every 200 steps a history record with
the IoU on a fixed pasted validation batch and the false-positive rate on its clean crops.
CPU time: the shipped weights took 35 minutes on 2 cores (18 k steps of batch 32) on the 870 HELEN
train photos of 300-W (assets/README.md).

Do not train on photos you evaluate de-occlusion on (bench/occlusion.py uses AFLW2000-3D, HELEN
test and AFW by default).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ...data.occluders import paste_occluders, shape_bank
from ...nn.occluder import OccluderNet, load_occluder_net, occluder_input
from ..loop import LoopConfig, run_training

__all__ = ["OccluderTrainConfig", "OccluderRecipe", "OccluderRun", "occluder_loss", "train"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OccluderTrainConfig(LoopConfig):
    """Training hyper-parameters (the defaults of ``pipelines.train_occluder``): the loop's settings
    (:class:`~recon3d.train.loop.LoopConfig`; one endless epoch bounded by ``max_minutes``) with this
    task's defaults, plus the batch size and the shape bank (its size, spectacle frames or not)."""

    max_minutes: float = 30.0
    lr: float = 3e-3
    #: a history record (validation IoU) every this many steps
    eval_every: int = 200
    checkpoint_minutes: float = 3.0
    log_every: int = 0
    batch: int = 32
    #: size of the random shape bank (:func:`recon3d.data.occluders.shape_bank`); ``frames`` adds
    #: spectacle-frame outlines to it
    shapes: int = 3000
    frames: bool = False


def occluder_loss(logit: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy + 0.5 x soft Dice of ``(B, 1, S, S)`` logits against {0, 1} masks."""
    p = torch.sigmoid(logit)
    dice = 1 - (2 * (p * target).flatten(1).sum(1) + 1) / ((p + target).flatten(1).sum(1) + 1)
    return F.binary_cross_entropy_with_logits(logit, target) + 0.5 * dice.mean()


class OccluderRecipe:
    """The occluder task for :func:`recon3d.train.loop.run_training` (see the module doc).

    Args:
        crops: ``(N, 3, S, S)`` uint8 face crops; ``val``: ``(N,)`` bool held-out flags
            (:func:`recon3d.data.occluders.face_crops`).
        config: the hyper-parameters.

    Raises:
        ValueError: fewer training crops than one batch.
    """

    def __init__(self, crops: np.ndarray, val: np.ndarray, config: OccluderTrainConfig):
        self.cfg = config
        self.bank = torch.from_numpy(shape_bank(config.shapes, seed=config.seed, frames=config.frames))
        self.train_crops = torch.from_numpy(crops[~val])
        va = torch.from_numpy(crops[val])
        log.info("%d training crops, %d validation crops", len(self.train_crops), len(va))
        if len(va) == 0:
            log.warning("no photo hashed into the validation split; validating on training crops")
            va = self.train_crops[:64]
        self.n_val = len(va)
        if len(self.train_crops) < config.batch:
            raise ValueError(f"only {len(self.train_crops)} training crops (batch {config.batch})")
        self.vx, self.vy = paste_occluders(va[:256].float() / 255, self.bank, torch.Generator().manual_seed(12345))

    def config(self) -> dict:
        return asdict(self.cfg)

    def start_epoch(self, epoch: int, step_in_epoch: int) -> None:
        return None  # one endless epoch

    def batch(self, step_in_epoch: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + step)
        idx = torch.randint(0, len(self.train_crops), (self.cfg.batch,), generator=g)
        x, y = paste_occluders(self.train_crops[idx].float() / 255, self.bank, g)
        return occluder_input(x), y

    def loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return occluder_loss(pred, target)

    @torch.no_grad()
    def report(self, net: OccluderNet, device: torch.device) -> dict:
        p = (torch.sigmoid(net(occluder_input(self.vx).to(device))) > 0.5).cpu()
        t = self.vy > 0.5
        inter = (p & t).flatten(1).sum(1).float()
        union = (p | t).flatten(1).sum(1).float()
        has = t.flatten(1).any(1)
        fp_empty = p[~has].float().mean() if (~has).any() else torch.tensor(float("nan"))
        return {"val_iou": float((inter[has] / union[has]).mean()), "val_fp_on_clean": float(fp_empty)}

    def state_dict(self) -> dict:
        return {}  # batches are seeded by the step

    def load_state_dict(self, state: dict) -> None:
        pass


@dataclass
class OccluderRun:
    """A finished (or budget-stopped) run: the network, this run's history, the total steps and
    training seconds, the final validation numbers and the crop counts."""

    net: OccluderNet
    history: list[dict] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    val: dict = field(default_factory=dict)
    n_train_crops: int = 0
    n_val_crops: int = 0

    def export_meta(self, **extra) -> dict:
        """The training summary written into exported weights (plus ``extra``, e.g. the data)."""
        return {"steps": self.steps, "minutes": round(self.seconds / 60, 1), **self.val,
                "n_train_crops": self.n_train_crops, "n_val_crops": self.n_val_crops, **extra}


def train(crops: np.ndarray, val: np.ndarray, out_dir: str | Path, config: OccluderTrainConfig = OccluderTrainConfig(),
          *, init: str | Path | None = None, device: str = "cpu",
          log_fn: Callable[[str], None] | None = None) -> OccluderRun:
    """Train (or resume from ``out_dir/last.pt``) and return the :class:`OccluderRun`.

    Args:
        crops, val: the face crops and their held-out flags.
        out_dir: checkpoint and ``history.jsonl`` folder.
        config: hyper-parameters and budget.
        init: start from these exported weights (fine-tuning); ignored when resuming.
        device: ``"cpu"`` or CUDA.

    Raises:
        ValueError: fewer training crops than one batch.
        AssetError: ``init`` is not an occluder-net file.
    """
    recipe = OccluderRecipe(crops, val, config)
    torch.manual_seed(config.seed)
    net = OccluderNet()
    if init is not None:
        net.load_state_dict(load_occluder_net(init)[0].state_dict())
    res = run_training(net, recipe, config, out_dir, device=device, log_fn=log_fn)
    ev = recipe.report(res.net, torch.device(device))
    log.info("done: %d steps, val IoU %.3f", res.step, ev["val_iou"])
    return OccluderRun(net=res.net, history=res.history, steps=res.step, seconds=res.seconds, val=ev,
                       n_train_crops=len(recipe.train_crops), n_val_crops=recipe.n_val)
