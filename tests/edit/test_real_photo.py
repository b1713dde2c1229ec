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
