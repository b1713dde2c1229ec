"""recon3d.train.recipes.inpaint: the content losses on known inputs, the discriminator's shape, and
that a few training steps change the network (tiny sizes, random faces and renders)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from recon3d.data.deocclusion import RenderCache
from recon3d.data.faces import FaceSet
from recon3d.train.recipes.inpaint import (
    InpaintTrainConfig,
    VGGDiscriminator,
    inpaint_losses,
    masked_psnr,
    train_inpainter,
)


def _masks(b=2, s=32):
    hole = torch.zeros(b, 1, s, s)
    hole[:, :, 8:16, 8:24] = 1
    face = torch.zeros(b, 1, s, s)
    face[:, :, :, :16] = 1  # the hole is half on the face, half off it
    return hole, face


def test_losses_vanish_on_the_target_and_read_in_their_units():
    g = torch.Generator().manual_seed(0)
    t = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    hole, face = _masks()
    zero = inpaint_losses(t, t, hole, face)
    assert all(float(zero[k]) < 1e-5 for k in ("pix", "bg", "ssim"))  # TV is of the output alone
    y = t + 0.2 * hole * face - 0.4 * hole * (1 - face)
    terms = inpaint_losses(y, t, hole, face)
    assert terms["pix"].item() == pytest.approx(0.2, abs=1e-5)
    assert terms["bg"].item() == pytest.approx(0.4, abs=1e-5)
    assert terms["ssim"].item() > 0.01
    flat = torch.zeros_like(t)
    assert inpaint_losses(flat, t, hole, face)["tv"].item() == 0.0
    assert inpaint_losses(t, flat, hole, face)["tv"].item() > 0.1
    # OHEM: keeping only the hardest pixels can only raise the mean
    assert inpaint_losses(y, t, hole, face, ohem=0.2)["ssim"] >= inpaint_losses(y, t, hole, face, ohem=1.0)["ssim"]


def test_masked_psnr_and_discriminator():
    t = torch.zeros(1, 3, 32, 32)
    hole, _ = _masks(1)
    y = t + 0.2 * hole  # an error of 0.1 in [0, 1] units inside the hole, none outside
    assert masked_psnr(y, t, hole).item() == pytest.approx(20.0, abs=1e-3)
    d = VGGDiscriminator(32, width=4)
    assert d(torch.randn(3, 3, 32, 32)).shape == (3,)


def test_training_steps_change_the_network(tmp_path):
    g = torch.Generator().manual_seed(0)
    n = 6
    faces = FaceSet(images=(torch.rand(n, 3, 32, 32, generator=g) * 255).to(torch.uint8),
                    keys=[f"f/{i}" for i in range(n)], root=Path("."), res=32)
    cov = np.zeros((n, 1, 32, 32), bool)
    cov[:, :, 4:28, 6:26] = True
    holes = np.zeros((n, 1, 32, 32), bool)
    holes[:, :, 8:16, 4:28] = True
    occluded = np.where(holes, 10, faces.images.numpy()).astype(np.uint8)
    rng = np.random.default_rng(0)
    cache = RenderCache(indices=np.arange(n), renders=(rng.random((n, 3, 32, 32)) * 255).astype(np.uint8),
                        coverage=cov, occluded=occluded, holes=holes, skipped={}, meta={})
    cfg = InpaintTrainConfig(res=32, batch=2, max_steps=2, max_minutes=None, widths=(4, 8, 8, 16), bottleneck=2,
                             eval_every=2, log_every=1, ssim_target="poisson")
    val = (faces.images[:2].numpy(), occluded[:2], holes[:2], cache.renders[:2], cache.coverage[:2])
    from recon3d.train.recipes.inpaint import build_inpainter

    torch.manual_seed(cfg.seed)
    before = {k: v.clone() for k, v in build_inpainter(cfg)["G"].state_dict().items()}
    res = train_inpainter(faces, cache, tmp_path / "run", cfg, val=val, log_fn=lambda m: None)
    after = res.net["G"].state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(changed) > len(before) // 2
    rec = res.history[-1]
    for k in ("train_pix", "train_ssim", "train_id", "train_d_loss", "val_psnr_hole", "val_psnr_hole_input"):
        assert np.isfinite(rec[k]), k
    assert (tmp_path / "run" / "last.pt").is_file()
    assert rec["val_psnr_hole_poisson"] > rec["val_psnr_hole_input"]  # the Poisson start beats the occluder
    with pytest.raises(ValueError, match="fewer than one batch"):
        train_inpainter(faces, RenderCache(np.arange(1), cache.renders[:1], cov[:1], occluded[:1], holes[:1], {}, {}),
                        tmp_path / "x", cfg)


def test_training_cli_trains_and_exports_and_rejects_bad_input(tmp_path, monkeypatch, capsys):
    from PIL import Image

    from pipelines import make_deocclusion_set
    from pipelines import train_inpainter as cli
    from recon3d.data import deocclusion as D
    from recon3d.nn.inpaint import load_inpainter

    root = tmp_path / "faces"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)).save(root / f"f{i:02d}.png")
    monkeypatch.setattr(D, "render_prior", lambda image, pad=D.PAD: (np.asarray(image, np.uint8) // 2,
                                                                       np.ones((1, 128, 128), bool)))
    fc = str(tmp_path / "fc")
    assert make_deocclusion_set.main([str(root), "--out", str(tmp_path / "r"), "--n", "8", "--cache-dir", fc, "-q"]) == 0
    assert make_deocclusion_set.main([str(tmp_path / "nope"), "--out", str(tmp_path / "r")]) == 2
    assert make_deocclusion_set.main([str(root), "--out", str(tmp_path / "r"), "--n", "0"]) == 2
    exp = tmp_path / "inp.safetensors"
    args = ["--data", str(root), "--renders", str(tmp_path / "r"), "--out", str(tmp_path / "run"), "--steps", "1",
            "--batch", "2", "--lambda-id", "0", "--cache-dir", fc, "-q"]
    assert cli.main(args + ["--export", str(exp)]) == 0
    net = load_inpainter(exp)
    assert net.res == 128 and net.uses_prior
    assert cli.main(args[:2] + ["--renders", str(tmp_path / "nothing")] + args[4:]) == 2
    assert "not a render cache" in capsys.readouterr().err
