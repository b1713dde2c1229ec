"""The GAN recipe on the one loop: each player's loss falls when only it trains, R1 and EMA act as
documented, and a resumed run continues exactly."""

from pathlib import Path

import pytest
import torch

from recon3d.data.faces import FaceSet
from recon3d.train.loop import CHECKPOINT
from recon3d.train.recipes.gan import GanRecipe, GanTrainConfig, build_gan, train_gan

TINY = {4: 16, 8: 16, 16: 8}


def _faces(n: int = 32, res: int = 16) -> FaceSet:
    """Blobs: a bright disc of random position and colour on a dark background (an easy distribution)."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(res), torch.arange(res), indexing="ij")
    imgs = []
    for _ in range(n):
        cx, cy = torch.randint(4, res - 4, (2,), generator=g)
        disc = ((xx - cx) ** 2 + (yy - cy) ** 2 < 9).float()
        col = torch.rand(3, 1, 1, generator=g) * 155 + 100
        imgs.append((disc * col + 10).clamp(0, 255).to(torch.uint8))
    return FaceSet(torch.stack(imgs), [f"k{i}" for i in range(n)], Path("."), res)


def _cfg(**kw) -> GanTrainConfig:
    base = dict(arch="stylegan2", res=16, batch=8, g_kwargs={"channels": TINY, "z_dim": 16, "w_dim": 16, "n_mlp": 2},
                d_kwargs={"channels": TINY}, max_minutes=None, eval_every=None, log_every=0, grid=2)
    base.update(kw)
    return GanTrainConfig(**base)


def _fixed_losses(net, recipe, real):
    """D's and G's losses on a fixed real batch and fixed latents."""
    g = torch.Generator().manual_seed(99)
    z = torch.randn(len(real), net["G"].z_dim, generator=g)
    with torch.no_grad():
        fake = net["G"](z, noise=[torch.zeros(1, 1, h, w) for h, w in net["G"].noise_shapes()]) \
            if hasattr(net["G"], "noise_shapes") else net["G"](z)
        d_loss = torch.nn.functional.softplus(net["D"](fake)).mean() + torch.nn.functional.softplus(-net["D"](real)).mean()
        g_loss = torch.nn.functional.softplus(-net["D"](fake)).mean()
    return float(d_loss), float(g_loss)


@pytest.mark.parametrize("arch", ["stylegan2", "dcgan"])
def test_each_players_loss_falls_when_only_it_trains(tmp_path, arch):
    torch.manual_seed(0)
    kw = {} if arch == "stylegan2" else {"g_kwargs": {"ngf": 8, "nz": 16}, "d_kwargs": {"ndf": 8}}
    cfg = _cfg(arch=arch, **kw)
    faces = _faces()
    real = faces.images[:8].float() / 127.5 - 1
    for player, idx in (("D", 0), ("G", 1)):
        net = build_gan(arch, 16, cfg.g_kwargs, cfg.d_kwargs)
        net.train()
        recipe = GanRecipe(faces, cfg, tmp_path)
        opts = recipe.optimizers(net)
        other = "G" if player == "D" else "D"
        for gr in opts[other].param_groups:
            gr["lr"] = 0.0  # only `player` learns
        before = _fixed_losses(net, recipe, real)[idx]
        for step in range(1, 16):  # step 0 would add R1; not the point here
            recipe.train_step(net, opts, recipe.batch(step, step), step)
        after = _fixed_losses(net, recipe, real)[idx]
        assert after < before - 0.05, (player, before, after)


def test_r1_on_its_steps_and_ema_follows(tmp_path):
    torch.manual_seed(0)
    cfg = _cfg(r1_every=4)
    net = build_gan("stylegan2", 16, cfg.g_kwargs, cfg.d_kwargs)
    recipe = GanRecipe(_faces(), cfg, tmp_path)
    opts = recipe.optimizers(net)
    assert "r1" in recipe.train_step(net, opts, recipe.batch(0, 0), 0)
    assert "r1" not in recipe.train_step(net, opts, recipe.batch(1, 1), 1)
    assert cfg.resolved().r1_gamma == pytest.approx(2e-4 * 16 ** 2 / 8)
    # lazy regularisation: D's Adam is slowed by r1_every / (r1_every + 1)
    assert opts["D"].param_groups[0]["lr"] == pytest.approx(2e-3 * 4 / 5)
    run = train_gan(_faces(), tmp_path / "ema", _cfg(max_steps=5, ema_decay=0.5))
    g, e = run.net["G"].state_dict(), run.net["G_ema"].state_dict()
    assert not torch.equal(g["const"], e["const"])  # the average lags behind
    assert torch.equal(g["w_avg"], e["w_avg"])  # buffers are copied
    copy = train_gan(_faces(), tmp_path / "copy", _cfg(arch="dcgan", max_steps=3, g_kwargs={"ngf": 8, "nz": 16},
                                                     d_kwargs={"ndf": 8}))
    for k, v in copy.net["G"].state_dict().items():  # DCGAN: decay 0, G_ema is G
        assert torch.equal(v, copy.net["G_ema"].state_dict()[k]), k


def test_resumed_run_equals_an_uninterrupted_one(tmp_path):
    whole = train_gan(_faces(), tmp_path / "a", _cfg(max_steps=6))
    train_gan(_faces(), tmp_path / "b", _cfg(max_steps=3))
    assert (tmp_path / "b" / CHECKPOINT).is_file()
    resumed = train_gan(_faces(), tmp_path / "b", _cfg(max_steps=6))
    assert resumed.steps == 6
    for k, v in whole.net.state_dict().items():
        torch.testing.assert_close(v, resumed.net.state_dict()[k], rtol=0, atol=0, msg=k)
    assert (tmp_path / "a" / "samples" / "latest.png").is_file()


def test_bad_configs(tmp_path):
    with pytest.raises(ValueError, match="architecture"):
        _cfg(arch="biggan").resolved()
    with pytest.raises(ValueError, match="fewer than one batch"):
        GanRecipe(_faces(4), _cfg(), tmp_path)
    with pytest.raises(ValueError, match="16²"):
        GanRecipe(_faces(32, res=16), _cfg(res=32), tmp_path)


def test_fd_estimator_is_zero_on_its_own_reference_and_grows_with_a_shift():
    from recon3d.train.recipes.gan import FdEstimator

    faces = _faces(40)
    fd = FdEstimator(faces.images)
    same = faces.images.float() / 127.5 - 1
    assert abs(fd(same)) < 1e-6
    assert fd((same * 0.3).clamp(-1, 1)) > fd((same * 0.9).clamp(-1, 1)) > 1e-6  # darker, further away
