"""recon3d.train.recipes.latent_pose: a training step of the seed-000 latent pose editor, its data checks and CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon3d.data.latents import InvertedLatents, generator_checksum
from recon3d.nn.stylegan2 import StyleGenerator
from recon3d.train.recipes.latent_pose import (
    LatentPoseRecipe,
    LatentPoseTrainConfig,
    PoseConditionedD,
    build_latent_pose,
)


@pytest.fixture(scope="module")
def tiny_G():
    torch.manual_seed(0)
    return StyleGenerator(32, z_dim=16, w_dim=16, channels={4: 16, 8: 16, 16: 8, 32: 8}).eval()


def _real(G, n=4, sha=None):
    rng = np.random.default_rng(0)
    arrays = {"photo": rng.integers(0, 255, (n, 3, G.res, G.res), dtype=np.uint8),
              "ws": rng.normal(size=(n, G.n_latent, G.w_dim)).astype(np.float16),
              "id_dist": np.zeros(n, np.float32)}
    return InvertedLatents(items=np.arange(n), arrays=arrays, skipped={},
                           meta={"generator": sha or generator_checksum(G)})


def test_a_step_trains_the_encoder_and_the_discriminator_only(tiny_G):
    cfg = LatentPoseTrainConfig(batch=4, widths=(8, 8, 8, 8), fpn=8, real_fraction=0.5)
    net = build_latent_pose(tiny_G, cfg, init_d=False)
    assert isinstance(net["D"], PoseConditionedD)
    recipe = LatentPoseRecipe(tiny_G, cfg, real=_real(tiny_G), val=_real(tiny_G))
    x, ws, is_real, u = recipe.batch(0, 0)
    assert x.shape == (4, 3, 32, 32) and ws.shape == (4, tiny_G.n_latent, 16) and is_real.tolist() == [1, 1, 0, 0]
    b2 = recipe.batch(0, 0)
    assert torch.equal(b2[0], x) and torch.equal(b2[3], u)  # a pure function of the step (resumable)
    opts = recipe.optimizers(net)
    before = {k: [p.detach().clone() for p in net[k].parameters()] for k in net}
    g_before = [p.detach().clone() for p in tiny_G.parameters()]
    out = recipe.train_step(net, opts, (x, ws, is_real, u), 0)
    assert all(np.isfinite(v) for v in out.values())
    assert {"pix", "id", "feat", "yaw_err", "d_loss", "g_adv", "cycle_pix"} <= set(out)
    for k in net:
        assert any(not torch.equal(a, b) for a, b in zip(before[k], net[k].parameters(), strict=True)), k
    assert all(torch.equal(a, b) for a, b in zip(g_before, tiny_G.parameters(), strict=True))  # the prior is frozen
    rep = recipe.report(net, torch.device("cpu"))
    assert {"val_mirror_psnr", "val_mirror_id_dist", "val_yaw_err_30"} <= set(rep)


def test_latents_of_another_prior_are_refused(tiny_G):
    with pytest.raises(ValueError, match="another generator"):
        LatentPoseRecipe(tiny_G, LatentPoseTrainConfig(batch=2), real=_real(tiny_G, sha="0" * 16))


def test_pose_conditioned_d_starts_as_its_base():
    from recon3d.nn.stylegan2 import StyleDiscriminator

    torch.manual_seed(0)
    base = StyleDiscriminator(32, channels={4: 16, 8: 16, 16: 8, 32: 8})
    D = PoseConditionedD(base)
    x = torch.rand(4, 3, 32, 32)
    assert torch.allclose(D(x, torch.tensor([-40.0, 0.0, 10.0, 40.0])), base(x), atol=1e-6)


def test_training_cli_exports_weights_with_the_prior_checksum(tmp_path, capsys):
    from pipelines import train_latent_pose as cli
    from recon3d.nn.latent_pose import load_latent_pose

    w = tmp_path / "e.safetensors"
    assert cli.main(["--out", str(tmp_path / "run"), "--steps", "1", "--batch", "2", "--lambda-adv", "0",
                     "--lambda-cycle", "0", "--export", str(w), "-q"]) == 0
    E, meta = load_latent_pose(w)
    assert meta["generator"] and meta["steps"] == 1 and "research" in meta["licence"]
    assert cli.main(["--out", str(tmp_path / "run2"), "--real-fraction", "2"]) == 2
    assert cli.main(["--out", str(tmp_path / "run2"), "--latents", str(tmp_path / "none")]) == 2
    assert "error:" in capsys.readouterr().err
