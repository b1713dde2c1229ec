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

The sample folders are re-read at the start of an epoch when synthesis has added files since, so
training may start while synthesis still runs.
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
import torch.nn.functional as F

from ...camera import pose_angles_to_matrix
from ...data.landmark_set import SampleSet, augment_batch, load_samples
from ...nn.landmarks import LandmarkNet, encode_targets, gather_cells, rot6d_to_matrix
from ...ops import metrics
from ...ops.crop import crop_box_from_landmarks
from ..loop import LoopConfig, run_training

__all__ = ["TrainConfig", "LandmarkRecipe", "landmark_loss", "pip_loss", "evaluate", "evaluate_photos", "train", "nme_per_image",
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
    #: ``"pip"`` head (:func:`pip_loss`): weights of the sub-cell offsets and neighbour votes (cells),
    #: the depth (crop half-widths) and the geodesic pose error (radians); the cell score weighs 1
    pip_w_offset: float = 5.0
    pip_w_depth: float = 2.0
    pip_w_pose: float = 1.0


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
        xy, _, p = (t.cpu() for t in net.predict(x.to(device)))
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


N_TARGET = 68 * 3 + 3


def _weighted(per_sample: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean of ``(B,)`` losses, weighted by the sample weights in the target's last column when the
    target has one (see :meth:`LandmarkRecipe.batch`)."""
    if target.shape[1] == N_TARGET:
        return per_sample.mean()
    w = target[:, N_TARGET]
    return (per_sample * w).sum() / w.sum().clamp_min(1e-8)


def landmark_loss(pred: torch.Tensor, target: torch.Tensor, w_depth: float, w_pose: float) -> torch.Tensor:
    """L1 on x, y, ``w_depth`` x L1 on depth, ``w_pose`` x L1 on the pose, for ``(B, 68*3 + 3)``
    network outputs and :func:`~recon3d.nn.landmarks.encode_targets` targets (optionally with a
    sample-weight column)."""
    err = (pred - target[:, :N_TARGET]).abs()
    nl = 68 * 3
    e = err[:, :nl].view(-1, 68, 3)
    per = e[..., :2].mean((1, 2)) + w_depth * e[..., 2].mean(1) + w_pose * err[:, nl:].mean(1)
    return _weighted(per, target)


def pip_loss(pred: dict, target: torch.Tensor, net: LandmarkNet, w_offset: float, w_depth: float,
             w_pose: float) -> torch.Tensor:
    """Loss of the ``"pip"`` head (:class:`~recon3d.nn.landmarks.LandmarkNet`) for
    :func:`~recon3d.nn.landmarks.encode_targets` targets (optionally with a sample-weight column):

    * cross-entropy of each landmark's cell over the G x G cells (the cell holding the label);
    * ``w_offset`` x L1 of the sub-cell offset at that cell and of the neighbour votes (the
      neighbours' positions relative to the landmark's cell), in cells;
    * ``w_depth`` x L1 of the depth at that cell (crop half-widths);
    * ``w_pose`` x the geodesic distance between the predicted and the true head rotation, radians.
    """
    B = target.shape[0]
    size = net.config["input_size"]
    half = size / 2.0
    t = target[:, :68 * 3].view(B, 68, 3)
    heat = pred["heat"]
    G = heat.shape[-1]
    u = ((t[..., :2] * half + (half - 0.5)) + 0.5) / net.cell_size()  # label in cell units
    c = u.floor().clamp(0, G - 1)
    idx = (c[..., 1] * G + c[..., 0]).long()  # (B, 68)
    ce = F.cross_entropy(heat.flatten(2).transpose(1, 2), idx, reduction="none").mean(1)
    off = gather_cells(pred["off"], idx)
    e_off = (off - (u - c)).abs().mean((1, 2))
    nb = torch.tensor(net.nb, device=target.device)  # (68, K)
    nb_t = u[:, nb] - c[:, :, None, :]  # (B, 68, K, 2)
    e_nb = (gather_cells(pred["nb"], idx) - nb_t).abs().mean((1, 2, 3))
    e_z = (gather_cells(pred["z"][:, :, None], idx)[:, :, 0] - t[..., 2]).abs().mean(1)
    R = rot6d_to_matrix(pred["pose"])
    Rt = pose_angles_to_matrix(torch.deg2rad(target[:, 68 * 3:N_TARGET] * 90.0))
    cos = ((R * Rt).sum((1, 2)) - 1.0) / 2.0
    geo = torch.acos(cos.clamp(-1.0 + 1e-6, 1.0 - 1e-6))
    per = ce + w_offset * (e_off + e_nb) + w_depth * e_z + w_pose * geo
    return _weighted(per, target)


class LandmarkRecipe:
    """The landmark task for :func:`recon3d.train.loop.run_training` (see the module doc).

    ``extra``: more synthesized sets as ``(root, weight)`` (e.g. views of pseudo-labelled photos,
    :mod:`recon3d.data.pseudo_labels`): their training views join the batches with that loss weight
    (the main set weighs 1). Validation uses the main set's held-out photos only, so runs with and
    without extra data are scored on the same views.
    """

    def __init__(self, root: str | Path, config: TrainConfig, *, net: LandmarkNet | None = None,
                 extra: list[tuple[str | Path, float]] = ()):
        self.root, self.cfg = Path(root), config
        self.extra = [(Path(r), float(w)) for r, w in extra]
        self.head = net.head if net is not None else "fc"
        self.net = net
        self.val = load_samples(self.root, "val")
        self.data: SampleSet | None = None
        self.weight: np.ndarray | None = None
        self._sig: list = []
        self.n_parts: list[int] = []

    def config(self) -> dict:
        return {**asdict(self.cfg), "head": self.head, "extra": [[str(r), w] for r, w in self.extra]}

    def start_epoch(self, epoch: int, step_in_epoch: int) -> int:
        cfg = self.cfg
        roots = [(self.root, 1.0), *self.extra]
        sig = [(r, w, sorted(f.name for f in (r / "samples").glob("*.npz"))) for r, w in roots]
        if self.data is None or sig != self._sig:  # (re)read only when synthesis added files
            self.data = self.weight = None  # free the old copy first: the sets are gigabytes
            parts = [(load_samples(r, "train"), w) for r, w in roots]
            self.n_parts = [len(p) for p, _ in parts]
            self.weight = np.concatenate([np.full(len(p), w, np.float32) for p, w in parts])
            if len(parts) == 1:
                self.data = parts[0][0]
            else:
                fields = {}
                for f in ("images", "lmk", "lmk_z", "pose_deg"):
                    fields[f] = np.concatenate([getattr(p, f) for p, _ in parts])
                    for p, _ in parts:
                        setattr(p, f, None)
                self.data = SampleSet(**fields)
            self._sig = sig
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
        y = encode_targets(lmk, lz, pose)
        if self.extra:
            y = torch.cat([y, torch.from_numpy(self.weight[idx])[:, None]], 1)
        return x, y

    def loss(self, pred, target: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        if self.head == "pip":
            return pip_loss(pred, target, self.net, c.pip_w_offset, c.pip_w_depth, c.pip_w_pose)
        return landmark_loss(pred, target, c.w_depth, c.w_pose)

    def report(self, net: LandmarkNet, device: torch.device) -> dict:
        ev = evaluate(net, self.val, device=device)
        parts = {f"n_train_{i}": n for i, n in enumerate(self.n_parts[1:], 1)}
        return {"n_train": len(self.data) if self.data is not None else 0, **parts, **{f"val_{k}": v for k, v in ev.items()}}

    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        if "gen" in state:
            self.gen.set_state(state["gen"].cpu())


def train(root: str | Path, out_dir: str | Path, config: TrainConfig = TrainConfig(), *, device: str = "cpu",
          resume: bool = True, net: LandmarkNet | None = None, extra: list[tuple[str | Path, float]] = (),
          log_fn: Callable[[str], None] | None = None) -> tuple[LandmarkNet, list[dict]]:
    """Train (or resume training) and return ``(net, history of this run)``.

    ``extra``: more sets with their loss weights (:class:`LandmarkRecipe`). ``out_dir/last.pt`` is the checkpoint (every ``checkpoint_minutes`` and at the end of each
    epoch); ``out_dir/history.jsonl`` gets one line per epoch (:mod:`recon3d.train.loop`).
    """
    torch.manual_seed(config.seed)
    net = net or LandmarkNet()
    res = run_training(net, LandmarkRecipe(root, config, net=net, extra=extra), config, out_dir, device=device,
                       resume=resume,
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
