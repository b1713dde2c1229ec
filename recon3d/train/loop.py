"""The one resumable training loop of recon3d; a *recipe* (:mod:`recon3d.train.recipes`) says what
to feed it.

:func:`run_training` owns everything that is not about the task:

* **optimiser and schedule**: AdamW; the learning rate warms up linearly over ``warmup_steps`` and
  then follows a cosine to 0 over the run (:func:`learning_rate`). The run's progress is the epoch
  progress when ``epochs`` is set, the share of ``max_minutes`` spent when that is set, the larger
  of the two when both are (the schedule ends with the time budget if that comes first).
* **stopping**: after ``epochs`` epochs, when ``max_minutes`` of training time are spent (wall time,
  or with ``clock="cpu"`` the process's CPU time, so that two runs sharing a machine get equal
  compute; both clocks are recorded in every history record and checkpoint; checked
  before every step, so a resumed run whose budget is spent does nothing), or at ``max_steps``
  (a hard stop that does not change the schedule).
* **checkpoints**: ``OUT/last.pt`` (network, optimiser, epoch, step, training time, the recipe's
  own state such as its random generator), written atomically every ``checkpoint_minutes``, at the
  end of every epoch and when the run stops; plain tensors and numbers only, loaded with
  ``torch.load(weights_only=True)``. With ``resume`` a rerun continues from it exactly where it
  stopped (same batches, same schedule).
* **history**: a record ``{"epoch", "step", "train_loss", "seconds", **recipe.report(...)}`` every
  ``eval_every`` steps, at every epoch end and at the stop, appended to ``OUT/history.jsonl``.
* **progress**: a log line (``log_fn``) and a ``progress`` callback every ``log_every`` steps.
* **device and seeds**: the network and batches go to ``device`` (CPU or CUDA, NCHW contiguous);
  ``torch.manual_seed(seed)`` at the start; the recipe seeds its own batches, so training is
  deterministic on the CPU.

A recipe implements :class:`Recipe`. Epochs are the recipe's: ``start_epoch`` returns the number of
steps of the epoch, or None for one endless epoch (a run bounded by time or steps).

**Tasks that are not one network and one loss** (a GAN: generator, discriminator, their EMA copy and
two optimisers) use the same loop through three optional recipe methods:

* ``optimizers(net) -> {name: optimizer}`` replaces the default AdamW; the learning rate of every
  parameter group is its own initial ``lr`` times the schedule's factor (``learning_rate`` over
  ``cfg.lr``), so a group that starts at 0.002 follows the same warm-up and decay shape (with
  ``schedule="constant"`` the factor is 1 after the warm-up). All optimisers are checkpointed.
* ``train_step(net, optimizers, batch, step) -> {name: float}`` does the whole update (it must
  return ``"loss"``; the other numbers are averaged into the history records too);
* ``ema_pair(net) -> (ema_module, module)``: with ``cfg.ema_decay`` set, the loop keeps
  ``ema_module`` an exponential moving average of ``module`` after every step (parameters; buffers
  copied), with the decay ramped up as ``min(ema_decay, (1 + step) / (10 + step))`` so early
  averages do not hold on to the random initialisation. Both live inside ``net``, so they are
  checkpointed with it.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch
from torch import nn

from ..io.atomic import atomic_file

__all__ = ["LoopConfig", "Recipe", "LoopResult", "run_training", "learning_rate", "CHECKPOINT"]

log = logging.getLogger(__name__)

#: file name of the checkpoint inside the output folder
CHECKPOINT = "last.pt"


@dataclass(frozen=True)
class LoopConfig:
    """Schedule, budget, checkpoint and logging settings of a run. A recipe's configuration extends
    it with its task's fields and its own defaults (e.g.
    :class:`recon3d.train.recipes.landmarks.TrainConfig`)."""

    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    #: None: one endless epoch, bounded by ``max_minutes`` or ``max_steps``
    epochs: int | None = None
    #: training-time budget (resumed runs count the time already spent), on ``clock``
    max_minutes: float | None = None
    #: the budget's clock: "wall" (elapsed time) or "cpu" (CPU time of this process, all threads:
    #: equal budgets are equal compute whatever else the machine is doing)
    clock: str = "wall"
    #: stop after this many steps in all (does not change the schedule)
    max_steps: int | None = None
    checkpoint_minutes: float = 5.0
    #: history record every this many steps (None: at epoch ends and at the stop only)
    eval_every: int | None = None
    log_every: int = 50
    seed: int = 0
    #: "cosine" (warm-up then a cosine to 0 over the run) or "constant" (warm-up then flat)
    schedule: str = "cosine"
    #: EMA decay per step of the recipe's ``ema_pair`` (None: no EMA; 0: a plain copy after every step)
    ema_decay: float | None = None


class Recipe(Protocol):
    """What a task gives the loop."""

    def config(self) -> dict:
        """JSON-able configuration, stored in the checkpoint."""

    def start_epoch(self, epoch: int, step_in_epoch: int) -> int | None:
        """Prepare ``epoch`` (resumed at ``step_in_epoch``); return its number of steps (None: endless)."""

    def batch(self, step_in_epoch: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(network input, target)`` of one step, on the CPU."""

    def loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss of the network output."""

    def report(self, net: nn.Module, device: torch.device) -> dict:
        """Validation numbers (and anything else) for a history record; ``net`` is in eval mode."""

    def state_dict(self) -> dict:
        """The recipe's own resumable state (e.g. generator states; tensors and numbers only)."""

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` after ``start_epoch`` of the resumed epoch."""


@dataclass
class LoopResult:
    """What :func:`run_training` returns: the network (eval mode), the history records of this
    run, the total steps, the epoch reached and the total training seconds (all runs)."""

    net: nn.Module
    history: list[dict] = field(default_factory=list)
    step: int = 0
    epoch: int = 0
    seconds: float = 0.0


def learning_rate(cfg: LoopConfig, step: int, progress: float) -> float:
    """Linear warm-up over ``cfg.warmup_steps`` then a cosine over ``progress`` in [0, 1].

    >>> learning_rate(LoopConfig(lr=1.0, warmup_steps=10), 4, 0.0), learning_rate(LoopConfig(lr=1.0), 500, 0.5)
    (0.5, 0.5)
    """
    warm = min(1.0, (step + 1) / max(cfg.warmup_steps, 1))
    if cfg.schedule == "constant":
        return cfg.lr * warm
    return cfg.lr * warm * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


class _Run:
    """Counters, clock and checkpoint of one run."""

    def __init__(self, out: Path, cfg: LoopConfig):
        self.out, self.cfg = out, cfg
        self.epoch = self.step_in_epoch = self.step = 0
        self.t_start = time.perf_counter()
        self.c_start = time.process_time()
        self.t_ckpt = self.t_start

    def wall_seconds(self) -> float:
        return time.perf_counter() - self.t_start

    def cpu_seconds(self) -> float:
        return time.process_time() - self.c_start

    def seconds(self) -> float:
        """Training time on the budget's clock (``cfg.clock``), all runs."""
        return self.cpu_seconds() if self.cfg.clock == "cpu" else self.wall_seconds()

    def resume(self, net: nn.Module, opts: dict[str, torch.optim.Optimizer], dev: torch.device) -> dict | None:
        st = torch.load(self.out / CHECKPOINT, map_location=dev, weights_only=True)
        net.load_state_dict(st["net"])
        saved = st["opts"] if "opts" in st else {"main": st["opt"]}  # "opt": one-optimiser checkpoints
        if set(saved) != set(opts):
            raise ValueError(f"{self.out / CHECKPOINT}: optimisers {sorted(saved)} do not match the recipe's {sorted(opts)}")
        for k, o in opts.items():
            o.load_state_dict(saved[k])
        self.epoch = int(st.get("epoch", 0))
        self.step = int(st["step"] if "step" in st else st["gstep"])  # "gstep": checkpoints before the one loop
        self.step_in_epoch = int(st.get("step_in_epoch", self.step))
        # time so far counts against the budget
        self.t_start = time.perf_counter() - float(st.get("wall_elapsed", st.get("elapsed", 0.0)))
        self.c_start = time.process_time() - float(st.get("cpu_elapsed", 0.0))
        return st.get("recipe")

    def save(self, net: nn.Module, opts: dict[str, torch.optim.Optimizer], recipe: Recipe) -> None:
        with atomic_file(self.out / CHECKPOINT) as fh:
            torch.save({"net": net.state_dict(), "opts": {k: o.state_dict() for k, o in opts.items()}, "epoch": self.epoch,
                        "step_in_epoch": self.step_in_epoch, "step": self.step, "elapsed": self.seconds(),
                        "wall_elapsed": self.wall_seconds(), "cpu_elapsed": self.cpu_seconds(),
                        "config": json.dumps(recipe.config()), "recipe": recipe.state_dict()}, fh)
        self.t_ckpt = time.perf_counter()

    def progress(self, spe: int | None) -> float:
        cfg, p = self.cfg, 0.0
        if cfg.epochs and spe:
            p = (self.epoch + self.step_in_epoch / spe) / cfg.epochs
        if cfg.max_minutes:
            p = max(p, self.seconds() / (cfg.max_minutes * 60))
        return p

    def must_stop(self) -> bool:
        cfg = self.cfg
        return ((cfg.max_minutes is not None and self.seconds() >= cfg.max_minutes * 60)
                or (cfg.max_steps is not None and self.step >= cfg.max_steps))


def run_training(net: nn.Module, recipe: Recipe, cfg: LoopConfig, out_dir: str | Path, *,
                 device: str | torch.device = "cpu", resume: bool = True,
                 log_fn: Callable[[str], None] | None = None,
                 progress: Callable[[dict], Any] | None = None) -> LoopResult:
    """Train ``net`` on ``recipe`` (or resume from ``out_dir/last.pt``); see the module doc.

    Args:
        net: the network (moved to ``device``; trained in place).
        recipe: batches, loss and validation of the task (:class:`Recipe`).
        cfg: schedule, budget, checkpoint and logging settings.
        out_dir: checkpoint and ``history.jsonl`` folder (created).
        device: ``"cpu"`` or a CUDA device.
        resume: continue from the checkpoint when there is one.
        log_fn: where progress lines go (default: this module's logger).
        progress: called every ``log_every`` steps with ``{"epoch", "step", "step_in_epoch",
            "steps_per_epoch", "loss", "lr", "seconds"}``.
    """
    say = log_fn or log.info
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device)
    torch.manual_seed(cfg.seed)
    net = net.to(dev)  # contiguous (NCHW) layout: channels_last backward crashed (SIGSEGV) in torch 2.13.0 on a CPU
    custom = hasattr(recipe, "train_step")
    if hasattr(recipe, "optimizers"):
        opts = dict(recipe.optimizers(net))
    else:
        opts = {"main": torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)}
    for o in opts.values():
        for g in o.param_groups:
            g.setdefault("base_lr", g["lr"])
    ema = recipe.ema_pair(net) if cfg.ema_decay is not None and hasattr(recipe, "ema_pair") else None
    run = _Run(out, cfg)
    saved = None
    if resume and (out / CHECKPOINT).is_file():
        saved = run.resume(net, opts, dev)
        say(f"resumed from {out / CHECKPOINT}: epoch {run.epoch}, step {run.step}")
    history: list[dict] = []
    stats: dict[str, list[float]] = {}

    def record() -> None:
        net.eval()
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):  # reports leave the training stream alone
            rep = recipe.report(net, dev)
        net.train()
        means = {k: float(np.mean(v)) for k, v in stats.items() if v}
        rec = {"epoch": run.epoch, "step": run.step, "train_loss": means.pop("loss", float("nan")),
               "seconds": run.seconds(), "wall_seconds": run.wall_seconds(), "cpu_seconds": run.cpu_seconds(),
               **{f"train_{k}": v for k, v in means.items()}, **rep}
        stats.clear()
        history.append(rec)
        with open(out / "history.jsonl", "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        say(f"epoch {rec['epoch']} step {rec['step']}: train loss {rec['train_loss']:.4f}"
            + "".join(f", {k} {v:.4g}" for k, v in rep.items() if isinstance(v, float)))

    def one_step(lr: float, batch: tuple) -> dict[str, float]:
        for o in opts.values():
            for g in o.param_groups:
                g["lr"] = g["base_lr"] * lr / cfg.lr if cfg.lr else g["base_lr"]
        if custom:
            return recipe.train_step(net, opts, batch, run.step)
        x, y = batch
        loss = recipe.loss(net(x.to(dev).contiguous()), y.to(dev))
        opts["main"].zero_grad(set_to_none=True)
        loss.backward()
        opts["main"].step()
        return {"loss": float(loss.detach())}

    stop = False
    while (cfg.epochs is None or run.epoch < cfg.epochs) and not stop:
        spe = recipe.start_epoch(run.epoch, run.step_in_epoch)
        if saved is not None and run.step_in_epoch > 0:
            recipe.load_state_dict(saved)  # continue the resumed epoch's random stream
        saved = None
        net.train()
        while spe is None or run.step_in_epoch < spe:
            if run.must_stop():
                stop = True
                break
            lr = learning_rate(cfg, run.step, run.progress(spe))
            st = one_step(lr, recipe.batch(run.step_in_epoch, run.step))
            for k, v in st.items():
                stats.setdefault(k, []).append(float(v))
            if ema is not None:
                _ema_update(*ema, min(cfg.ema_decay, (1 + run.step) / (10 + run.step)))
            run.step_in_epoch += 1
            run.step += 1
            if cfg.log_every and run.step % cfg.log_every == 0:
                recent = {k: float(np.mean(v[-cfg.log_every:])) for k, v in stats.items() if v}
                info = {"epoch": run.epoch, "step": run.step, "step_in_epoch": run.step_in_epoch,
                        "steps_per_epoch": spe, "loss": recent.get("loss", float("nan")), "lr": lr,
                        "seconds": run.seconds(), "stats": recent}
                say(f"epoch {run.epoch} step {run.step_in_epoch}/{spe or '-'} "
                    + ", ".join(f"{k} {v:.4f}" for k, v in recent.items()))
                if progress is not None:
                    progress(info)
            if cfg.eval_every and run.step % cfg.eval_every == 0:
                record()
            if time.perf_counter() - run.t_ckpt > cfg.checkpoint_minutes * 60:
                run.save(net, opts, recipe)
        ended = not stop
        if ended:
            run.epoch += 1
            run.step_in_epoch = 0
        if ended or stats:
            record()
        run.save(net, opts, recipe)
    net.eval()
    return LoopResult(net=net, history=history, step=run.step, epoch=run.epoch, seconds=run.seconds())


@torch.no_grad()
def _ema_update(ema: nn.Module, src: nn.Module, decay: float) -> None:
    """``ema <- decay * ema + (1 - decay) * src`` for parameters; buffers copied."""
    for pe, ps in zip(ema.parameters(), src.parameters(), strict=True):
        pe.lerp_(ps.detach(), 1.0 - decay)
    for be, bs in zip(ema.buffers(), src.buffers(), strict=True):
        be.copy_(bs)
