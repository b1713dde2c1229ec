"""recon3d.edit on a real photo with the default model (one fast reconstruction of skimage's astronaut
per module, ~3 s). The default model and detector ship with the package: a failure to reconstruct is a
failure of this test, not a skip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon3d.edit import deocclude, rotate_views
from recon3d.ops.morphology import dilate, erode


@pytest.fixture(scope="module")
def rec():
    from skimage.data import astronaut

    from recon3d.reconstruct import ReconstructConfig, reconstruct

    return reconstruct(astronaut(), config=ReconstructConfig(fast=True, texture_size=256))


def test_rotate_zero_reproduces_astronaut(rec):
    r0, r20 = rotate_views(rec, [(0.0, 0.0), (20.0, 0.0)])
    img = rec.image.numpy()
    inner = erode(r0.mask.numpy(), 3)
    err = np.abs(r0.image.numpy() - img)[inner]
    # stated tolerance on a real photo: mean |diff| < 0.03 inside the face (texture resampling)
    assert err.mean() < 0.03, err.mean()
    far = ~dilate(r0.mask.numpy(), 10)
    assert np.abs(r0.image.numpy() - img)[far].mean() < 1e-3
    assert (r20.mask ^ r0.mask).sum() > 100


def test_deocclude_astronaut_keeps_outside(rec):
    res = deocclude(rec)
    keep = ~res.occlusion_mask
    assert torch.equal(res.image[keep], rec.image[keep])
    # a clean frontal face: only a small part is called occluded
    assert res.occlusion_mask.sum() < 0.15 * res.face_mask.sum()


def test_learned_fill_on_astronaut_ignores_the_occluders_colour(rec):
    """The shipped inpainter on a black bar over the mouth: pixels outside the mask are the input's, and the
    fill is face-coloured, not the bar's black (the network sees noise where the occluder is)."""
    from dataclasses import replace

    img = rec.image.clone()
    lmk = rec.fit.lmk_px[0].numpy()
    x0, y0 = lmk[48:68].min(0).astype(int) - 4
    x1, y1 = lmk[48:68].max(0).astype(int) + 4
    mask = torch.zeros(img.shape[:2], dtype=torch.bool)
    mask[y0:y1, x0:x1] = True
    img[mask] = 0.0
    occluded = replace(rec, image=img)
    res = deocclude(occluded, mask=mask, fill="net")
    assert torch.equal(res.image[~mask], img[~mask])
    filled = res.image[mask]
    skin = rec.image[erode(res.face_mask.numpy(), 5) & ~mask.numpy()].mean(0)
    assert filled.mean() > 0.5 * skin.mean()  # not the bar's black
    assert (filled.mean(0) - rec.image[mask].mean(0)).abs().max() < 0.15  # close to the real mouth region's colour
