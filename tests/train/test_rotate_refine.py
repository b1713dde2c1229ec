"""recon3d.train.recipes.rotate_refine: sample mirroring, the regressor crop, the mirror-pair mask, a few
training steps (tiny sizes, random samples) and the training / data CLIs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon3d.data.rotation_pairs import RotationPairs
from recon3d.train.recipes.rotate_refine import (
    PoseDiscriminator,
    RefineRecipe,
    RefineTrainConfig,
    build_refiner,
    flip_sample,
    mirror_valid,
    regressor_crop_grid,
    train_refiner,
)


def _pairs(n=6, res=64, seed=0) -> RotationPairs:
    rng = np.random.default_rng(seed)
    u8 = lambda: (rng.random((n, 3, res, res)) * 255).astype(np.uint8)  # noqa: E731
    masks = np.zeros((n, 3, res, res), bool)
    masks[:, 1, 16:48, 16:48] = True  # the face
    masks[:, 0, 16:24, 40:48] = True  # no source
    masks[:, 2] = True
    kind = np.arange(n) % 3
    masks[kind == 1, 2] = False  # free samples: no truth
    t = np.asarray([[x, y] for y in np.linspace(-0.5, 0.6, 8) for x in np.linspace(-0.5, 0.5, 9)][:68], np.float32)
    lmk = np.concatenate([t, np.zeros((68, 1), np.float32)], 1)
    arrays = {"warp": u8(), "source": u8(), "ident": u8(), "target": u8(), "masks": masks,
              "lmk_src": np.repeat(lmk[None], n, 0), "lmk_tgt": np.repeat(lmk[None] * 0.9, n, 0),
              "emb": rng.standard_normal((n, 128)).astype(np.float32),
              "pose": np.zeros((n, 2, 3), np.float32), "kind": kind}
    return RotationPairs(items=np.arange(n), arrays=arrays, skipped={}, meta={})


def test_flip_sample_twice_is_the_identity_and_swaps_sides():
    img = torch.rand(2, 3, 8, 8)
    lm = torch.rand(2, 68, 3) * 2 - 1
    (fi,), (fl,) = flip_sample([img], [lm])
    assert torch.equal(fi, img.flip(3))
    assert torch.allclose(fl[:, 0, 0], -lm[:, 16, 0]) and torch.equal(fl[:, 0, 2], lm[:, 16, 2])
    (bi,), (bl,) = flip_sample([fi], [fl])
    assert torch.equal(bi, img) and torch.allclose(bl, lm)


def test_regressor_crop_matches_the_regressors_own_box():
    from recon3d.nn.landmarks import INPUT_SIZE
    from recon3d.ops.crop import crop_box_from_landmarks

    res = 128
    lm = torch.rand(1, 68, 3) * 1.2 - 0.6
    grid, box = regressor_crop_grid(lm, res)
    assert grid.shape == (1, INPUT_SIZE, INPUT_SIZE, 2)
    px = ((lm[0, :, :2] + 1) / 2 * res - 0.5).numpy()
    x0, y0, x1, _ = crop_box_from_landmarks(px)
    assert abs(float(box[0, 0]) - x0) < 1e-3 and abs(float(box[0, 1]) - y0) < 1e-3
    assert abs(float(box[0, 2]) * 128 - (x1 - x0)) < 1e-3


def test_mirror_valid_cuts_only_mirror_samples():
    p = _pairs()
    m = mirror_valid(torch.as_tensor(p.arrays["masks"]), torch.as_tensor(p.arrays["kind"]), 4)
    k = p.arrays["kind"]
    assert m[k == 0, 2].sum() < torch.as_tensor(p.arrays["masks"])[k == 0, 2].sum()
    assert m[k == 0, 2, 0, 0].logical_not().all() and m[k == 0, 2, 32, 32].all()
    assert torch.equal(m[k == 2], torch.as_tensor(p.arrays["masks"])[k == 2])


def test_pose_discriminator_shapes():
    d = PoseDiscriminator(64, width=8)
    assert d(torch.rand(3, 3, 64, 64), torch.rand(3, 68, 3)).shape == (3,)


def test_training_steps_change_the_network(tmp_path):
    cfg = RefineTrainConfig(res=64, batch=3, max_steps=2, max_minutes=None, widths=(4, 8, 8, 16), eval_every=2,
                            log_every=1)
    torch.manual_seed(cfg.seed)
    before = {k: v.clone() for k, v in build_refiner(cfg)["G"].state_dict().items()}
    res = train_refiner(_pairs(), tmp_path / "run", cfg, val=_pairs(seed=1), log_fn=lambda m: None)
    after = res.net["G"].state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(changed) > len(before) // 2
    rec = res.history[-1]
    for k in ("train_pix", "train_pas", "train_id", "train_pose", "train_d_loss", "val_psnr", "val_psnr_warp"):
        assert np.isfinite(rec[k]), k
    assert (tmp_path / "run" / "last.pt").is_file()
    with pytest.raises(ValueError, match="fewer than one batch"):
        RefineRecipe(_pairs(2), cfg)
    with pytest.raises(ValueError, match="trains at"):
        RefineRecipe(_pairs(), RefineTrainConfig(res=128, batch=2))


def test_training_cli_trains_exports_and_rejects_bad_input(tmp_path, monkeypatch, capsys):
    from pipelines import make_rotation_pairs
    from pipelines import train_rotation_refiner as cli
    from recon3d.data import rotation_pairs as RP
    from recon3d.data._chunks import ChunkStore
    from recon3d.nn.rotate_refine import load_rotation_refiner

    pairs = _pairs(9, res=128)
    out = tmp_path / "pairs"
    out.mkdir()
    (out / "config.json").write_text('{"res": 128}')
    ChunkStore(out, RP._fields(128)).write({i: {k: v[i] for k, v in pairs.arrays.items()} for i in range(9)})
    exp = tmp_path / "r.safetensors"
    args = ["--pairs", str(out), "--out", str(tmp_path / "run"), "--steps", "1", "--batch", "2", "--lambda-id", "0",
            "--lambda-pose", "0", "-q"]
    assert cli.main(args + ["--export", str(exp), "--no-pas"]) == 0
    net = load_rotation_refiner(exp)
    assert net.res == 128 and not net.uses_pas
    assert cli.main(["--pairs", str(tmp_path / "nothing")] + args[2:]) == 2
    assert "not a rotation pair folder" in capsys.readouterr().err
    assert make_rotation_pairs.main([str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 2
    assert make_rotation_pairs.main([str(out), "--out", str(tmp_path / "x"), "--n", "0"]) == 2
    assert "--n must be >= 1" in capsys.readouterr().err


def test_identity_hinge_is_zero_while_the_output_is_the_warp(tmp_path):
    """L_id_warp pays only for identity lost against the warp: a fresh refiner returns the warp exactly (its last
    layer starts at zero), so the first step's hinge is 0 while the plain identity term is not."""
    cfg = RefineTrainConfig(res=64, batch=3, max_steps=1, max_minutes=None, widths=(4, 8, 8, 16), eval_every=None,
                            log_every=1, lambda_id_warp=5.0)
    res = train_refiner(_pairs(), tmp_path / "run", cfg, log_fn=lambda m: None)
    rec = res.history[-1]
    assert rec["train_id_warp"] == 0.0
    assert rec["train_id"] > 0.0


def test_identity_hinge_margin_asks_for_more_than_the_warp(tmp_path):
    """With a margin m the hinge is max(0, ID(Y) - ID(W) + m): at the fresh refiner's first step (Y = W) it is m."""
    cfg = RefineTrainConfig(res=64, batch=3, max_steps=1, max_minutes=None, widths=(4, 8, 8, 16), eval_every=None,
                            log_every=1, lambda_id_warp=5.0, id_warp_margin=0.05)
    rec = train_refiner(_pairs(), tmp_path / "run", cfg, log_fn=lambda m: None).history[-1]
    assert rec["train_id_warp"] == pytest.approx(0.05, abs=1e-6)
