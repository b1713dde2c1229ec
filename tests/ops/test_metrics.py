"""Tests of recon3d.ops.metrics (the one NME)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon3d.errors import ShapeError
from recon3d.ops.metrics import nme


def _box(w: float, h: float, n: int = 68) -> np.ndarray:
    """``(n, 2)`` points spanning exactly a ``w x h`` box (corners included)."""
    t = np.linspace(0.0, 1.0, n)
    pts = np.stack([w * t, h * (t**2)], 1)
    pts[0], pts[-1] = (0.0, 0.0), (w, h)
    return pts


def test_zero_error_is_zero():
    g = _box(30.0, 20.0)[None]
    assert nme(g, g).tolist() == [0.0]


def test_constant_offset_analytic():
    g = _box(30.0, 20.0)[None]
    e = nme(g + [3.0, 4.0], g)  # every point 5 px off
    assert e.shape == (1,)
    assert e[0] == pytest.approx(5.0 / np.sqrt(30.0 * 20.0), rel=1e-12)


def test_non_square_box_uses_sqrt_w_times_h():
    g = _box(80.0, 20.0)[None]  # sqrt(w*h) = 40, w = 80, h = 20
    e = float(nme(g + [4.0, 0.0], g)[0])
    assert e == pytest.approx(0.1, rel=1e-12)
    assert e != pytest.approx(4.0 / 80.0) and e != pytest.approx(4.0 / 20.0)


def test_batched_per_image_and_unbatched():
    g = np.stack([_box(10.0, 40.0), _box(50.0, 50.0)])
    p = g + np.array([[[1.0, 0.0]], [[0.0, 2.0]]])
    e = nme(p, g)
    assert e.shape == (2,)
    np.testing.assert_allclose(e, [1.0 / 20.0, 2.0 / 50.0], rtol=1e-12)
    assert float(nme(p[1], g[1])) == pytest.approx(e[1], rel=1e-12)


def test_torch_and_numpy_agree():
    rng = np.random.default_rng(0)
    g = rng.uniform(0, 200, size=(5, 68, 2))
    p = g + rng.normal(size=g.shape) * 3
    e_np = nme(p, g)
    e_t = nme(torch.from_numpy(p), torch.from_numpy(g))
    assert isinstance(e_t, torch.Tensor) and e_t.shape == (5,) and e_t.dtype == torch.float64
    np.testing.assert_allclose(e_t.numpy(), e_np, rtol=1e-12)
    e_32 = nme(torch.from_numpy(p).float(), torch.from_numpy(g).float())
    assert e_32.dtype == torch.float32
    np.testing.assert_allclose(e_32.numpy(), e_np, rtol=1e-5)


def test_degenerate_box_is_finite_and_errors_raise():
    g = np.zeros((1, 68, 2))
    assert np.isfinite(nme(g + 1.0, g)).all()
    with pytest.raises(ShapeError):
        nme(np.zeros((1, 68, 2)), np.zeros((1, 67, 2)))
    with pytest.raises(ShapeError):
        nme(np.zeros((1, 68, 3)), np.zeros((1, 68, 3)))
    with pytest.raises(ValueError, match="norm"):
        nme(g, g, norm="iod")

