"""The one training loop (recon3d.train.loop): exact resume, time budget, history, checkpoints."""

from __future__ import annotations

import json
import time

import pytest
import torch
from torch import nn

from recon3d.train.loop import CHECKPOINT, LoopConfig, learning_rate, run_training


class _Toy:
    """A tiny regression task whose batches use a stateful generator (as the landmark recipe does)."""

    def __init__(self, n: int = 48, batch: int = 8, sleep: float = 0.0):
        g = torch.Generator().manual_seed(1)
        self.x = torch.randn(n, 3, 6, 6, generator=g)
        self.y = self.x.mean((1, 2, 3))[:, None] * 2.0 + 0.5
        self.batch_size, self.sleep = batch, sleep

    def config(self) -> dict:
        return {"batch": self.batch_size}

    def start_epoch(self, epoch: int, step_in_epoch: int) -> int:
        self.perm = torch.randperm(len(self.x), generator=torch.Generator().manual_seed(epoch))
        self.gen = torch.Generator().manual_seed(1000 + epoch)
        return len(self.x) // self.batch_size

    def batch(self, step_in_epoch: int, step: int):
        if self.sleep:
            time.sleep(self.sleep)
        idx = self.perm[step_in_epoch * self.batch_size:(step_in_epoch + 1) * self.batch_size]
        return self.x[idx] + 0.05 * torch.randn(len(idx), 3, 6, 6, generator=self.gen), self.y[idx]

    def loss(self, pred, target):
        return ((pred - target) ** 2).mean()

    def report(self, net, device) -> dict:
        with torch.no_grad():
            return {"val_mse": float(((net(self.x.to(device)).cpu() - self.y) ** 2).mean())}

    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["gen"])


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 1))


def _same(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def test_resume_mid_epoch_continues_exactly(tmp_path):
    cfg = LoopConfig(lr=1e-2, warmup_steps=3, epochs=3, log_every=0)
    whole = run_training(_net(), _Toy(), cfg, tmp_path / "a")
    assert whole.step == 18 and whole.epoch == 3 and len(whole.history) == 3
    assert whole.history[-1]["train_loss"] < 0.5 * whole.history[0]["train_loss"]  # it learns
    # stop after 4 steps (inside epoch 0), then resume in a new process-like setting
    first = run_training(_net(), _Toy(), LoopConfig(lr=1e-2, warmup_steps=3, epochs=3, log_every=0, max_steps=4),
                         tmp_path / "b")
    assert first.step == 4 and first.epoch == 0
    st = torch.load(tmp_path / "b" / CHECKPOINT, weights_only=True)  # plain tensors and numbers only
    assert (int(st["step"]), int(st["epoch"]), int(st["step_in_epoch"])) == (4, 0, 4)
    rest = run_training(_net(), _Toy(), cfg, tmp_path / "b")
    assert rest.step == 18 and [h["epoch"] for h in rest.history] == [1, 2, 3]
    assert _same(rest.net, whole.net)  # same batches, same schedule: bit-identical weights
    lines = [json.loads(s) for s in (tmp_path / "b" / "history.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["step"]) for r in lines] == [(0, 4), (1, 6), (2, 12), (3, 18)]
    # a finished run resumed does nothing
    again = run_training(_net(), _Toy(), cfg, tmp_path / "b")
    assert again.history == [] and again.step == 18 and _same(again.net, whole.net)


def test_time_budget_stops_and_is_kept_across_resumes(tmp_path):
    cfg = LoopConfig(lr=1e-2, epochs=None, max_minutes=0.4 / 60, log_every=0)
    r = run_training(_net(), _Toy(sleep=0.05), cfg, tmp_path)
    assert 0 < r.step < 40 and r.seconds >= 0.4
    assert r.history[-1]["step"] == r.step  # a record at the stop (after those at the epoch ends)
    st = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert int(st["step"]) == r.step and float(st["elapsed"]) >= 0.4
    # the budget is spent: a rerun resumes, does no step and changes nothing
    r2 = run_training(_net(), _Toy(sleep=0.05), cfg, tmp_path)
    assert r2.step == r.step and r2.history == [] and _same(r2.net, r.net)


def test_progress_callback_and_no_resume(tmp_path):
    seen = []
    cfg = LoopConfig(lr=1e-2, epochs=1, log_every=2)
    run_training(_net(), _Toy(), cfg, tmp_path, progress=seen.append)
    assert [s["step"] for s in seen] == [2, 4, 6] and all(s["steps_per_epoch"] == 6 for s in seen)
    assert seen[0]["lr"] == pytest.approx(learning_rate(cfg, 1, 1 / 6))
    r = run_training(_net(), _Toy(), cfg, tmp_path, resume=False)  # starts over
    assert r.step == 6 and len(r.history) == 1


@pytest.mark.gpu
def test_runs_on_cuda(tmp_path):
    cfg = LoopConfig(lr=1e-2, warmup_steps=3, epochs=2, log_every=0)
    r = run_training(_net(), _Toy(), cfg, tmp_path, device="cuda")
    assert next(r.net.parameters()).is_cuda and r.step == 12
    cpu = run_training(_net(), _Toy(), cfg, tmp_path / "cpu")
    assert abs(r.history[-1]["val_mse"] - cpu.history[-1]["val_mse"]) < 1e-3
    # a CUDA checkpoint resumes on the CPU
    st = torch.load(tmp_path / CHECKPOINT, map_location="cpu", weights_only=True)
    assert int(st["step"]) == 12
