"""recon3d.train.recipes.uv_generator: the UV generator's losses, augmentation and training step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon3d.data.uv_pairs import UVPairs, turned_sample
from recon3d.train.recipes.uv_generator import (
    PatchDiscriminator,
    UVRecipe,
    UVTrainConfig,
    build_uv_generator,
    flip_uv_batch,
    hidden_l1,
    render_uv,
    uv_masks,
)


@pytest.fixture(scope="module")
def pairs(astronaut_fit):
    samples = [turned_sample(astronaut_fit, t, frame=64) for t in (-55.0, -35.0, 30.0, 50.0)]
    arrays = {k: np.stack([s[k] for s in samples]) for k in samples[0]}
    return UVPairs(items=np.arange(4), arrays=arrays, skipped={}, meta={"res": 64, "frame": 64})


def _t(pairs, i):
    return {k: torch.from_numpy(np.asarray(v[i:i + 1], np.float32)) for k, v in pairs.arrays.items()}


def test_mirroring_a_sample_mirrors_its_renders(pairs):
    p = _t(pairs, 0)
    p = {k: p[k] for k in ("tex", "uv", "cov", "photo", "full")}
    f = flip_uv_batch(p, torch.tensor([True]))
    for ch, cv in ((slice(0, 2), 0), (slice(2, 4), 1)):
        cov = p["cov"][:, cv:cv + 1]
        a = render_uv(f["full"], f["uv"][:, ch], f["cov"][:, cv:cv + 1])
        b = render_uv(p["full"], p["uv"][:, ch], cov).flip(3)
        inner = torch.nn.functional.max_pool2d(1 - cov, 5, 1, 2) < 0.5  # away from the silhouette
        assert inner.sum() > 300
        assert (a - b).abs()[inner.expand_as(a).flip(3)].mean() < 0.02
    back = flip_uv_batch(f, torch.tensor([True]))
    for k in p:
        torch.testing.assert_close(back[k], p[k])
    same = flip_uv_batch(p, torch.tensor([False]))
    torch.testing.assert_close(same["uv"], p["uv"])


def test_regions_and_losses_on_known_inputs():
    lay = torch.ones(8, 8, dtype=torch.bool)
    m = uv_masks(lay)
    assert m["ctr"].sum() == 32 and m["half"].sum() == 32 and not m["half"][:, 4:].any()
    y = torch.zeros(1, 3, 4, 4)
    t = torch.full((1, 3, 4, 4), 0.5)
    hid = torch.zeros(1, 1, 4, 4)
    hid[..., :2] = 1
    assert hidden_l1(y, t, hid).item() == pytest.approx(0.5)
    assert hidden_l1(y, t, torch.zeros_like(hid)).item() == 0.0
    d = PatchDiscriminator(width=4, depth=3)
    assert d(torch.zeros(3, 3, 64, 32)).shape == (3,)


def test_a_training_step_changes_the_weights_and_is_reported(pairs, astronaut_fit):
    cfg = UVTrainConfig(res=64, batch=4, widths=(8, 8, 16, 16), bottleneck=2, max_minutes=None, max_steps=1)
    net = build_uv_generator(cfg)
    assert set(net) == {"G", "D_face", "D_ctr", "D_half"}
    recipe = UVRecipe(pairs, cfg, val=pairs, layout=astronaut_fit.uvr.mask)
    opts = recipe.optimizers(net)
    before = {k: [p.detach().clone() for p in net[k].parameters()] for k in net}
    b = recipe.batch(0, 0)
    out = recipe.train_step(net, opts, b, 0)
    assert all(np.isfinite(v) for v in out.values())
    assert {"hid", "rec", "sym", "tv", "id", "g_adv", "d_loss"} <= set(out)
    for k in net:
        changed = any((p - q).abs().sum() > 0 for p, q in zip(net[k].parameters(), before[k], strict=True))
        assert changed, k
    rep = recipe.report(net, torch.device("cpu"))
    assert rep["val_l1_hidden"] > 0 and rep["val_l1_hidden_poisson"] > 0
    # the same step draws the same samples (resumable runs)
    b2 = recipe.batch(0, 0)
    torch.testing.assert_close(b[0]["tex"], b2[0]["tex"])
    torch.testing.assert_close(b[1], b2[1])


def test_the_recipe_refuses_mismatched_samples(pairs):
    with pytest.raises(ValueError, match="trains at 128"):
        UVRecipe(pairs, UVTrainConfig(batch=2, lambda_id=0))
    with pytest.raises(ValueError, match="fewer than one batch"):
        UVRecipe(pairs, UVTrainConfig(res=64, batch=8, lambda_id=0))


def test_training_cli_trains_exports_and_rejects_bad_input(tmp_path, capsys):
    from pipelines import make_uv_pairs
    from pipelines import train_uv_generator as cli
    from recon3d.data import uv_pairs as UP
    from recon3d.data._chunks import ChunkStore
    from recon3d.nn.uv_generator import load_uv_generator

    fit128 = UP.fit_photo(_astronaut_crop())
    samples = [UP.turned_sample(fit128, t) for t in (-40.0, 45.0)]
    out = tmp_path / "pairs"
    out.mkdir()
    (out / "config.json").write_text('{"res": 128, "frame": 128}')
    ChunkStore(out, UP._fields(128, 128)).write(dict(enumerate(samples)))
    exp = tmp_path / "g.safetensors"
    args = ["--pairs", str(out), "--out", str(tmp_path / "run"), "--steps", "1", "--batch", "2", "--lambda-id", "0", "-q"]
    assert cli.main(args + ["--export", str(exp)]) == 0
    net = load_uv_generator(exp)
    assert net.res == 128
    assert cli.main(["--pairs", str(tmp_path / "nothing")] + args[2:]) == 2
    assert "not a UV pair folder" in capsys.readouterr().err
    assert make_uv_pairs.main([str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 2
    assert make_uv_pairs.main([str(out), "--out", str(tmp_path / "x"), "--chunk", "0"]) == 2
    assert "--chunk must be >= 1" in capsys.readouterr().err


def _astronaut_crop():
    from skimage.data import astronaut

    return astronaut()[:300, 100:400].astype(np.float32) / 255
