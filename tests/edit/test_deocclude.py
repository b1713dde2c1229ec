"""recon3d.edit.deocclude on a synthetic reconstruction with a pasted occluder."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from recon3d.edit import deocclude, detect_occlusion, make_synthetic_reconstruction
from recon3d.errors import ShapeError
from recon3d.ops.morphology import dilate


@pytest.fixture(scope="module")
def rec():
    return make_synthetic_reconstruction(size=128, yaw_deg=10.0, texture_size=128)


@pytest.fixture(scope="module")
def occluded(rec):
    """The same reconstruction with a dark 'sunglasses' bar pasted over the eyes."""
    img = rec.image.numpy().copy()
    lmk = rec.lmk_detected_px.numpy()[36:48]
    y0, y1 = int(lmk[:, 1].min() - 5), int(lmk[:, 1].max() + 5)
    x0, x1 = int(lmk[:, 0].min() - 5), int(lmk[:, 0].max() + 5)
    m = np.zeros(img.shape[:2], bool)
    m[y0:y1, x0:x1] = True
    img[m] = [0.08, 0.1, 0.09]
    return replace(rec, image=torch.from_numpy(img)), m


@pytest.fixture(scope="module")
def result(occluded):
    return deocclude(occluded[0], cue="photometric")  # the model-explanation test on a toy render


def test_masks_shapes_dtypes(rec, result):
    H, W = rec.image.shape[:2]
    for m in (result.occlusion_mask, result.face_mask, result.visible_face_mask):
        assert m.shape == (H, W) and m.dtype == torch.bool
    assert result.image.shape == (H, W, 3) and result.image.dtype == torch.float32
    assert torch.equal(result.visible_face_mask, result.face_mask & ~result.occlusion_mask)


def test_outside_mask_exactly_unchanged(occluded, result):
    img = occluded[0].image
    keep = ~result.occlusion_mask
    assert torch.equal(result.image[keep], img[keep])
    far = ~torch.from_numpy(dilate(result.face_mask.numpy(), 5))
    assert torch.equal(result.image[far], img[far])


def test_synthetic_occluder_found_and_removed(rec, occluded, result):
    pasted = occluded[1]
    found = result.occlusion_mask.numpy()
    iou = (found & pasted).sum() / (found | pasted).sum()
    assert iou > 0.6, iou  # stated bound: IoU > 0.6 (measured 0.76, the mask is dilated by 2 px)
    clean = rec.image.numpy()
    l1_after = np.abs(result.image.numpy() - clean)[pasted].mean()
    l1_before = np.abs(occluded[0].image.numpy() - clean)[pasted].mean()
    assert l1_after < 0.05 and l1_after < 0.2 * l1_before


def test_clean_face_has_few_false_positives(rec):
    est = detect_occlusion(rec, cue="photometric")
    assert est.occlusion_mask.sum() <= 0.02 * est.face_mask.sum()
    assert est.score.shape == est.face_mask.shape


def test_user_mask_is_honoured(occluded):
    r, _ = occluded
    H, W = r.image.shape[:2]
    m = np.zeros((H, W), bool)
    m[60:70, 50:80] = True
    m[2:6, 2:6] = True  # also off the face: filled smoothly
    res = deocclude(r, mask=m)
    assert np.array_equal(res.occlusion_mask.numpy(), m)
    assert torch.equal(res.image[~torch.from_numpy(m)], r.image[~torch.from_numpy(m)])
    assert not torch.equal(res.image[torch.from_numpy(m)], r.image[torch.from_numpy(m)])
    assert torch.isfinite(res.image).all()
    with pytest.raises(ShapeError, match="deocclude"):
        deocclude(r, mask=np.zeros((H + 1, W), bool))


def test_cue_choice(occluded):
    """cue="net" runs the shipped segmenter (it changes the mask), an unknown cue is refused."""
    a = detect_occlusion(occluded[0], cue="photometric")
    b = detect_occlusion(occluded[0], cue="net")
    both = detect_occlusion(occluded[0], cue="both")
    assert a.occlusion_mask.shape == b.occlusion_mask.shape == both.occlusion_mask.shape
    assert bool((both.occlusion_mask | ~(a.occlusion_mask | b.occlusion_mask)).all())  # union
    with pytest.raises(ValueError, match="cue"):
        detect_occlusion(occluded[0], cue="magic")
