"""recon3d.edit.identity.face_descriptor(backend="torch"): the PyTorch port gives dlib's descriptor."""

from __future__ import annotations

import numpy as np
import pytest

from recon3d.edit.identity import face_descriptor


def _image_and_points():
    from recon3d.nn.face_chip import _MEAN_FACE_X, _MEAN_FACE_Y

    rng = np.random.default_rng(0)
    img = np.kron(rng.random((42, 40, 3)), np.ones((8, 8, 1)))[:330, :310]
    img = (img * 255).astype(np.uint8)
    pts = np.zeros((68, 2))
    pts[17:] = np.stack([_MEAN_FACE_X, _MEAN_FACE_Y], 1)
    pts[:17] = np.stack([np.linspace(0, 1, 17), 0.3 + 0.6 * np.sin(np.linspace(0, np.pi, 17))], 1)
    return img, pts * 160 + (70.4, 80.6)


def test_torch_backend_matches_dlib_with_given_landmarks():
    pytest.importorskip("dlib")
    img, pts = _image_and_points()
    a = face_descriptor(img, lmk_px=pts)
    b = face_descriptor(img, lmk_px=pts, backend="torch")
    assert b.shape == (128,) and b.dtype == np.float64
    assert np.linalg.norm(a - b) < 1e-3


def test_unknown_backend_is_refused():
    img, pts = _image_and_points()
    with pytest.raises(ValueError, match="backend"):
        face_descriptor(img, lmk_px=pts, backend="arcface")
