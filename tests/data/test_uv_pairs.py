"""recon3d.data.uv_pairs: the UV generator's samples (a photo's texels hidden by turning the head)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import recon3d.data.uv_pairs as UP
from recon3d.errors import Recon3DError
from recon3d.ops.morphology import erode
from recon3d.train.recipes.uv_generator import render_uv


def test_turn_yaw_stays_within_range():
    rng = np.random.default_rng(0)
    for yaw in (-70.0, -20.0, 0.0, 30.0, 70.0):
        for _ in range(50):
            d = UP.turn_yaw(yaw, rng)
            assert 25 <= abs(d) <= 65 and abs(yaw + d) <= 75 + 1e-9


@pytest.mark.parametrize("turn", [-50.0, 40.0])
def test_turned_sample_hides_real_texels_on_the_turned_side(astronaut_fit, turn):
    s = UP.turned_sample(astronaut_fit, turn, frame=64)
    assert s["tex"].shape == (3, 64, 64) and s["photo"].shape == (3, 64, 64) and s["uv"].shape == (4, 64, 64)
    vis, vis_h = s["vis"]
    hid = vis & ~vis_h
    assert not (vis_h & ~vis).any()  # the turned view sees no texel the photo does not
    assert hid.sum() > 100
    # the hidden texels are on one half of the (mirror symmetric) layout: the side turned away
    cols = np.nonzero(hid)[1]
    left, right = (cols < 32).sum(), (cols >= 32).sum()
    assert max(left, right) > 3 * min(left, right)
    # the classical completion keeps every texel still seen, and differs from the truth where it made them up
    base, tex = s["base"].astype(np.float32), s["tex"].astype(np.float32)
    assert np.abs(base - tex)[:, vis_h].max() < 2e-3
    assert np.abs(base - tex)[:, hid].mean() > 0.01
    np.testing.assert_allclose(s["pose"][1, 0] - s["pose"][0, 0], turn, atol=1e-4)


def test_rendering_the_pseudo_ground_truth_at_the_photo_pose_gives_the_photo(astronaut_fit):
    s = UP.turned_sample(astronaut_fit, 30.0, frame=64)
    t = {k: torch.from_numpy(np.asarray(v, np.float32))[None] for k, v in s.items()}
    cov0 = t["cov"][:, 0:1]
    r0 = render_uv(t["full"], t["uv"][:, :2], cov0)
    m = torch.from_numpy(erode(s["cov"][0], 2))
    assert m.sum() > 800
    err = (r0 - t["photo"] / 255).abs().mean(1)[0][m].mean()
    assert err < 0.06, err
    # at the turned pose the same texture covers a face of about the same size elsewhere in the frame
    assert 0.5 < s["cov"][1].sum() / s["cov"][0].sum() < 2.0


def test_build_is_resumable_and_records_failures(tmp_path):
    from PIL import Image
    from skimage.data import astronaut

    good = tmp_path / "src" / "a.png"
    bad = tmp_path / "src" / "b.png"
    good.parent.mkdir()
    Image.fromarray(astronaut()[:300, 100:400]).save(good)
    Image.fromarray(np.zeros((96, 96, 3), np.uint8)).save(bad)  # no face
    out = tmp_path / "pairs"
    assert UP.build_uv_pairs([good, bad], out, progress=False) == 2
    assert UP.uv_pairs_size(out) == (1, 1)
    assert UP.build_uv_pairs([good, bad], out, progress=False) == 0  # nothing left to do
    pairs = UP.load_uv_pairs(out)
    assert len(pairs) == 1 and list(pairs.skipped) == [1] and pairs.arrays["tex"].shape[1:] == (3, 128, 128)
    with pytest.raises(Recon3DError, match="other settings"):
        UP.build_uv_pairs([good, bad], out, seed=5, progress=False)
    with pytest.raises(Recon3DError, match="not a UV pair folder"):
        UP.load_uv_pairs(tmp_path / "src")
