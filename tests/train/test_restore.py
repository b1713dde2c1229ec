"""The restorer recipe: eye/mouth boxes, seeded pairs, references that are not the target, FreezeD, and an
L1 run whose loss falls."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from recon3d.data.faces import FaceSet
from recon3d.train.recipes.restore import (
    RestoreRecipe,
    RestoreTrainConfig,
    build_restorer,
    region_boxes,
    train_restorer,
)

TINY = {32: 8, 16: 8, 8: 16, 4: 16}
TINY_PRIOR = {"res": 32, "z_dim": 16, "w_dim": 16, "n_mlp": 2, "channels": {4: 16, 8: 16, 16: 8, 32: 8}}


def _faces(n: int = 24, res: int = 32) -> FaceSet:
    """Smooth random faces-like images: two dark 'eyes' and a 'mouth' on a coloured disc."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, res), torch.linspace(0, 1, res), indexing="ij")
    imgs = []
    for _ in range(n):
        col = torch.rand(3, 1, 1, generator=g) * 120 + 100
        face = (((xx - 0.5) ** 2 + (yy - 0.55) ** 2) < 0.16).float()
        eyes = (((xx - 0.35) ** 2 + (yy - 0.42) ** 2) < 0.004).float() + (((xx - 0.65) ** 2 + (yy - 0.42) ** 2) < 0.004).float()
        mouth = ((abs(xx - 0.5) < 0.12) & (abs(yy - 0.75) < 0.03)).float()
        img = face * col * (1 - 0.7 * eyes - 0.5 * mouth) + 20
        imgs.append(img.clamp(0, 255).to(torch.uint8))
    return FaceSet(torch.stack(imgs), [f"k{i}" for i in range(n)], Path("."), res)


def _cfg(**kw) -> RestoreTrainConfig:
    base = dict(variant="unet-l1", res=32, batch=4, max_minutes=None, eval_every=None, log_every=0, warmup_steps=0)
    base.update(kw)
    return RestoreTrainConfig(**base)


def test_region_boxes_sit_on_the_template():
    b = region_boxes(64)
    for x0, y0, x1, y1 in b.values():
        assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
    assert b["left_eye"][2] <= b["right_eye"][2] and b["left_eye"][0] < b["right_eye"][0]
    assert b["mouth"][1] > b["left_eye"][3] - 4  # the mouth is below the eyes
    assert b["left_eye"][2] - b["left_eye"][0] == 16 and b["mouth"][2] - b["mouth"][0] == 24


def test_pairs_are_seeded_and_vary_by_step(tmp_path):
    faces = _faces()
    r1 = RestoreRecipe(faces, _cfg(), tmp_path)
    r2 = RestoreRecipe(faces, _cfg(), tmp_path)
    a, b = r1.batch(0, 3), r2.batch(0, 3)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    lq, hq, ref = a
    assert lq.shape == hq.shape == (4, 3, 32, 32) and ref.numel() == 0
    assert not torch.equal(lq, hq)
    assert not torch.equal(r1.batch(0, 4)[0], lq)


def test_reference_is_another_view_not_the_target(tmp_path):
    cfg = _cfg(variant="refsr", p_self_reference=0.0)
    rec = RestoreRecipe(_faces(), cfg, tmp_path, identity_net=torch.nn.Identity())
    lq, hq, ref = rec.batch(0, 1)
    assert ref.shape == hq.shape
    assert (ref - hq).abs().mean() > 0.02
    rec0 = RestoreRecipe(_faces(), _cfg(variant="refsr", p_self_reference=1.0), tmp_path, identity_net=torch.nn.Identity())
    lq0, _, ref0 = rec0.batch(0, 1)
    assert torch.equal(ref0, lq0)  # no reference: the input is its own


def test_adversarial_step_keeps_frozen_layers(tmp_path):
    from recon3d.errors import AssetError
    from recon3d.nn.identity import dlib_identity_dat_path

    try:
        dlib_identity_dat_path()
    except AssetError as e:
        pytest.skip(str(e))
    torch.manual_seed(0)
    net = build_restorer("ours", 32, net_kwargs={"channels": TINY, "prior_config": TINY_PRIOR})
    assert set(net) == {"G", "D", "D_left_eye", "D_right_eye", "D_mouth"}
    rec = RestoreRecipe(_faces(), _cfg(variant="ours"), tmp_path)
    opts = rec.optimizers(net)
    frozen = net["D"].from_rgb.weight.clone()
    later = net["D"].out.weight.clone()
    g0 = net["G"].encoder.from_rgb[0].weight.clone()
    st = rec.train_step(net, opts, rec.batch(0, 0), 0)
    assert {"d_loss", "l1", "g_adv", "l_adv", "fm", "fp", "loss"} <= set(st)
    assert torch.equal(net["D"].from_rgb.weight, frozen)
    assert not torch.equal(net["D"].out.weight, later)
    assert not torch.equal(net["G"].encoder.from_rgb[0].weight, g0)


def test_l1_unet_learns(tmp_path):
    faces = _faces()
    torch.manual_seed(0)
    rec = RestoreRecipe(faces, _cfg(), tmp_path)
    lq, hq, _ = rec.batch(0, 10 ** 6)
    net0 = build_restorer("unet-l1", 32, net_kwargs={"channels": TINY})["G"]
    before = (net0(lq) - hq).abs().mean().item()
    res = train_restorer(faces, tmp_path / "run", _cfg(lr=3e-3, max_steps=150), net_kwargs={"channels": TINY})
    after = (res.net["G"](lq) - hq).abs().mean().item()
    assert res.step == 150 and (tmp_path / "run" / "last.pt").exists()
    assert after < 0.9 * before


def test_unknown_variant():
    with pytest.raises(ValueError, match="variant"):
        build_restorer("gfpgan", 64)


def test_content_only_run_skips_the_discriminators(tmp_path):
    """lambda_g = lambda_l = 0 (the warm-up / fine-tuning setting): no D step, D untouched."""
    torch.manual_seed(0)
    net = build_restorer("no-prior", 32, net_kwargs={"channels": TINY})
    rec = RestoreRecipe(_faces(), _cfg(variant="no-prior", lambda_g=0.0, lambda_l=0.0, lambda_fm=0.0, lambda_fp=0.0),
                        tmp_path, identity_net=torch.nn.Identity())
    opts = rec.optimizers(net)
    d0 = net["D"].out.weight.clone()
    st = rec.train_step(net, opts, rec.batch(0, 0), 0)
    assert "d_loss" not in st and "g_adv" not in st and "fp" not in st
    assert torch.equal(net["D"].out.weight, d0)


def test_fast_sr_variant_clips_its_gradient(tmp_path):
    """refsr-fast: the low-resolution residual network with a reference; the clipped gradient norm is reported
    and the step changes the trunk."""
    torch.manual_seed(0)
    net = build_restorer("refsr-fast", 32, net_kwargs={"width": 8, "depth": 2})
    assert net["G"].config["kind"] == "lowres" and net["G"].uses_reference
    cfg = _cfg(variant="refsr-fast", lambda_g=0.0, lambda_l=0.0, lambda_fm=0.0, lambda_fp=0.0, grad_clip=1e-3)
    rec = RestoreRecipe(_faces(), cfg, tmp_path, identity_net=torch.nn.Identity())
    opts = rec.optimizers(net)
    w0 = net["G"].lr_in[0].weight.clone()
    st = rec.train_step(net, opts, rec.batch(0, 0), 0)
    assert st["grad_norm"] > 1e-3  # the norm before clipping
    assert not torch.equal(net["G"].lr_in[0].weight, w0)
