"""recon3d.edit.restore: faces of a degraded photo found, aligned, restored and pasted back in place.

The restorers are tiny random-weight networks (``tiny_restorers`` in conftest): the tests check the
geometry and bookkeeping of the stage, not the quality of a trained model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import recon3d
import recon3d.edit.restore as R
from recon3d.errors import ImageError, NoFaceError, Recon3DError


def _changed(out: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return np.abs(out.astype(np.int16) - ref.astype(np.int16)).max(-1) > 0


def _inside(mask: np.ndarray, box) -> bool:
    ys, xs = np.nonzero(mask)
    x0, y0, x1, y1 = box
    return bool(xs.min() >= x0 and ys.min() >= y0 and xs.max() < x1 and ys.max() < y1)


def _grown(box, frac: float, scale: int = 1):
    x0, y0, x1, y1 = (float(v) * scale for v in box)
    gx, gy = frac * (x1 - x0), frac * (y1 - y0)
    return x0 - gx, y0 - gy, x1 + gx, y1 + gy


@pytest.fixture(scope="module")
def restored(blurred_astronaut, tiny_restorers):
    return R.restore(blurred_astronaut, weights=tiny_restorers["blind"])


def test_face_pasted_in_place(restored, blurred_astronaut):
    r = restored
    assert r.image.shape == blurred_astronaut.shape and r.image.dtype == np.uint8
    assert len(r.faces) == 1 and r.scale == 1 and not r.aligned and r.net_res == 32
    face = r.faces[0]
    changed = _changed(r.image, blurred_astronaut)
    assert changed.sum() > 2000  # the face was replaced
    assert _inside(changed, face.paste_box_xyxy)  # nothing outside the pasted face changed
    assert _inside(changed, _grown(face.box_xyxy, 0.2))  # ... which is the detected face
    xs = np.nonzero(changed)[1]
    assert xs.max() - xs.min() > 0.8 * (face.box_xyxy[2] - face.box_xyxy[0])  # and of the face's size
    assert face.work_res % 32 == 0 and face.work_res >= face.box_xyxy[2] - face.box_xyxy[0]
    assert face.identity_cosine is None or -1.0 <= face.identity_cosine <= 1.0
    s = r.summary()
    assert s["faces"][0]["method"] == face.method and len(s["faces"][0]["lmk_px"]) == 68
    assert set(r.timings) >= {"load", "detect", "restore", "paste"}


def test_paste_round_trip_keeps_the_photo(monkeypatch, blurred_astronaut, tiny_restorers):
    """With an identity 'network' the aligned face warped back reproduces the photo: the alignment and
    its inverse agree (up to two bicubic resamplings)."""
    monkeypatch.setattr(R, "restore_aligned", lambda net, faces, reference=None: faces.clone())
    r = R.restore(blurred_astronaut, weights=tiny_restorers["blind"], identity=False)
    x0, y0, x1, y1 = r.faces[0].paste_box_xyxy
    err = np.abs(r.image.astype(float) - blurred_astronaut)[y0:y1, x0:x1].mean()
    assert err < 1.5, err


def test_scale_2(blurred_astronaut, tiny_restorers):
    r = R.restore(blurred_astronaut, weights=tiny_restorers["blind"], scale=2, identity=False)
    H, W = blurred_astronaut.shape[:2]
    assert r.image.shape == (2 * H, 2 * W, 3) and r.scale == 2
    bg = np.asarray(Image.fromarray(blurred_astronaut).resize((2 * W, 2 * H), Image.BICUBIC))
    changed = _changed(r.image, bg)
    face = r.faces[0]
    assert _inside(changed, face.paste_box_xyxy) and _inside(changed, _grown(face.box_xyxy, 0.2, scale=2))
    assert face.work_res >= 2 * (face.box_xyxy[2] - face.box_xyxy[0])  # aligned at a multiple of 32


def test_aligned_crop(tiny_restorers):
    crop = (np.random.default_rng(0).random((48, 48, 3)) * 255).astype(np.uint8)
    r = R.restore(crop, weights=tiny_restorers["blind"], aligned=True, scale=2, identity=False)
    assert r.image.shape == (96, 96, 3) and r.aligned and r.faces[0].method == "aligned"
    with pytest.raises(ImageError, match="square"):
        R.restore(crop[:, :40], weights=tiny_restorers["blind"], aligned=True)


def test_no_face_and_bad_arguments(tiny_restorers):
    flat = np.full((96, 96, 3), 128, np.uint8)
    with pytest.raises(NoFaceError, match="no face found"):
        R.restore(flat, weights=tiny_restorers["blind"])
    with pytest.raises(ValueError, match="scale"):
        R.restore(flat, weights=tiny_restorers["blind"], scale=0)
    with pytest.raises(ImageError, match="too small"):
        R.restore(np.zeros((8, 8, 3), np.uint8), weights=tiny_restorers["blind"])
    with pytest.raises(Recon3DError, match="not found"):
        R.restore(flat, weights="missing.safetensors")


def test_given_landmarks_skip_detection(monkeypatch, blurred_astronaut, restored, tiny_restorers):
    def no_detector(*a, **k):
        raise AssertionError("detect_faces() called")

    monkeypatch.setattr(R, "detect_faces", no_detector)
    r = R.restore(blurred_astronaut, weights=tiny_restorers["blind"], landmarks=restored.faces[0].lmk_px,
                  identity=False)
    assert r.faces[0].method == "landmarks"
    assert np.abs(r.image.astype(int) - restored.image).mean() < 0.5  # the same faces, the same paste


def test_reference_model(blurred_astronaut, tiny_restorers):
    ref = np.ascontiguousarray(blurred_astronaut[:, ::-1])  # "another photo" of the same person
    r = R.restore(blurred_astronaut, ref, weights=tiny_restorers["ref"], identity=False)
    assert r.reference and r.image.shape == blurred_astronaut.shape
    with pytest.raises(Recon3DError, match="takes no reference"):
        R.restore(blurred_astronaut, ref, weights=tiny_restorers["blind"])
    with pytest.raises(NoFaceError, match="reference"):
        R.restore(blurred_astronaut, np.full((96, 96, 3), 90, np.uint8), weights=tiny_restorers["ref"])


def test_restore_photo_and_public_name(blurred_astronaut, tiny_restorers):
    assert recon3d.restore is R.restore
    li = R.restore_photo(blurred_astronaut, weights=tiny_restorers["blind"])
    assert tuple(li.image.shape) == blurred_astronaut.shape and li.image.dtype == torch.float32


def test_paste_mask():
    m = R.paste_mask(32)
    assert m.shape == (32, 32) and m.max() == 1.0 and m.min() == 0.0
    assert np.allclose(m, m[::-1]) and np.allclose(m, m.T)
