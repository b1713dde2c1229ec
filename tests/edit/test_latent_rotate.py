"""recon3d.edit.latent_rotate and ``rotate --method latent``: the seed-000 editor on a real photo."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from recon3d.errors import AssetError, ShapeError
from recon3d.nn import NETWORKS, save_network
from recon3d.nn.latent_pose import PoseEncoder


def _encoder(path, *, trained: bool, generator=None):
    torch.manual_seed(0)
    E = PoseEncoder(64, 10, 256, widths=(8, 8, 8, 8, 8), fpn=8)
    if trained:
        for h in E.heads:
            torch.nn.init.normal_(h.out.weight, std=0.05)
        torch.nn.init.normal_(E.direction)
    save_network(E, path, NETWORKS["latent_pose"], meta={} if generator is None else {"generator": generator},
                 half=False)
    return path


@pytest.fixture(scope="module")
def photo():
    from skimage.data import astronaut

    return astronaut()


def test_untrained_encoder_returns_the_inversion_and_a_trained_one_changes_it(photo, tmp_path):
    from recon3d.edit.latent_rotate import latent_rotate

    r = latent_rotate(photo, [-20, 20], encoder_weights=_encoder(tmp_path / "z.safetensors", trained=False), steps=3,
                      frontal=True)
    assert r.face.shape == (64, 64, 3) and len(r.views) == 3 and r.ws.shape == (10, 256)
    assert [round(v.target_yaw - r.pose_deg[0], 3) for v in r.views[:2]] == [-20, 20]
    assert r.views[2].target_yaw == 0.0
    for v in r.views:  # no change of W*: every view is the inversion
        assert torch.allclose(v.image, r.inverted, atol=1e-5)
        assert -1 <= v.identity_cos <= 1 and len(v.pose_deg) == 3
    s = latent_rotate(photo, [30], absolute=True, lmk_px=r.lmk_px, steps=3,
                      encoder_weights=_encoder(tmp_path / "t.safetensors", trained=True))
    assert s.views[0].target_yaw == 30.0
    assert not torch.allclose(s.views[0].image, s.inverted, atol=1e-3)


def test_bad_arguments(photo, tmp_path):
    from recon3d.edit.latent_rotate import latent_rotate

    w = _encoder(tmp_path / "z.safetensors", trained=False)
    with pytest.raises(ShapeError):
        latent_rotate(photo, [120], encoder_weights=w)
    with pytest.raises(ShapeError):
        latent_rotate(photo, [10], lmk_px=np.zeros((5, 2)), encoder_weights=w)
    with pytest.raises(AssetError, match="another StyleGAN2 prior"):
        latent_rotate(photo, [10], steps=1, encoder_weights=_encoder(tmp_path / "o.safetensors", trained=False,
                                                                     generator="0" * 16))


def test_rotate_cli_method_latent(tmp_path, capsys):
    from pipelines import rotate as rot_cli

    w = _encoder(tmp_path / "t.safetensors", trained=True)
    out = tmp_path / "out"
    args = ["--demo", "astronaut", "--method", "latent", "--latent-weights", str(w), "--invert-steps", "2",
            "--yaw", "-30", "30", "--frontalize", "--gif", "--out", str(out)]
    assert rot_cli.main(args) == 0
    d = out / "astronaut"
    rec = json.loads((d / "astronaut_rotate.json").read_text())
    assert rec["method"] == "latent" and rec["resolution"] == 64 and len(rec["outputs"]) == 2
    for o in rec["outputs"]:
        assert (d / o["image"]).is_file() and len(o["pose_measured_deg"]) == 3 and "identity_cos" in o
    for f in ("astronaut_face.png", "astronaut_inverted.png", "astronaut_frontal.png", "astronaut_grid.png",
              "astronaut_turntable.gif"):
        assert (d / f).is_file(), f
    capsys.readouterr()
    assert rot_cli.main(["--demo", "astronaut", "--method", "latent", "--pitch", "10", "--out", str(out)]) == 2
    assert rot_cli.main(["--demo", "astronaut", "--method", "latent", "--latent-weights",
                         str(tmp_path / "none.safetensors"), "--out", str(out)]) == 1
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error")]
    assert err[0].startswith("error: --method latent edits yaw only") and err[1].startswith("error: --method latent:")
