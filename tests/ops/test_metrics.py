"""Tests of recon3d.ops.metrics (the one NME; the Fréchet and kernel distances of embedding sets)."""

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



# ---- embedding-set metrics (FD-dlib / KID-dlib on identity descriptors) ----

def test_frechet_distance_analytic_gaussians():
    from recon3d.ops.metrics import frechet_distance

    rng = np.random.default_rng(1)
    x = rng.normal(size=(4000, 3))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(x, x + [1.0, 2.0, 2.0]) == pytest.approx(9.0, abs=1e-9)  # |dmu|^2
    # scaling one set by 2: |mu|^2 + tr(S + 4S - 2 * 2S) = |mu|^2 + tr(S)
    expected = x.mean(0) @ x.mean(0) + np.trace(np.cov(x, rowvar=False))
    assert frechet_distance(x, 2 * x) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(torch.tensor(x), torch.tensor(x + 1.0)) == pytest.approx(3.0, abs=1e-9)


def test_frechet_distance_singular_covariances_stay_finite():
    from recon3d.ops.metrics import frechet_distance

    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(5, 16)), rng.normal(size=(6, 16))  # fewer samples than dimensions
    d = frechet_distance(a, b)
    assert np.isfinite(d) and d > 0


def test_kernel_distance_is_unbiased_and_grows_with_the_shift():
    from recon3d.ops.metrics import kernel_distance

    rng = np.random.default_rng(3)
    means = [kernel_distance(rng.normal(size=(100, 4)), rng.normal(size=(100, 4)), subsets=5, subset_size=50,
                             seed=s)[0] for s in range(40)]
    assert abs(np.mean(means)) < 3 * np.std(means) / np.sqrt(len(means)) + 1e-3  # ~0, either sign
    x, y = rng.normal(size=(300, 4)), rng.normal(size=(300, 4))
    small, large = (kernel_distance(x, y + s, subsets=10, subset_size=100)[0] for s in (0.5, 2.0))
    assert 0 < small < large
    assert kernel_distance(x, y, seed=7) == kernel_distance(x, y, seed=7)


def test_embedding_metrics_reject_bad_input():
    from recon3d.ops.metrics import frechet_distance, kernel_distance

    with pytest.raises(ShapeError, match="dimension"):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ShapeError, match=r"\(N, D\)"):
        kernel_distance(np.zeros(5), np.zeros((5, 1)))
    with pytest.raises(ValueError, match="subsets"):
        kernel_distance(np.zeros((5, 2)), np.zeros((5, 2)), subsets=0)


# ---------------------------------------------------------------------------------------------- PSNR / SSIM

def _pair(seed: int = 0, shape=(3, 3, 24, 20)) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(shape, generator=g, dtype=torch.float64)
    b = (a + 0.1 * torch.randn(shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    return a, b


def test_psnr_analytic_and_cap():
    from recon3d.ops.metrics import psnr

    a = torch.zeros(2, 3, 8, 8)
    out = psnr(a, a + torch.tensor([0.1, 0.01]).view(2, 1, 1, 1))
    assert out.shape == (2,)
    assert out.tolist() == pytest.approx([20.0, 40.0], abs=1e-4)
    assert float(psnr(a, a)[0]) == 100.0
    assert psnr(a.numpy() * 255, a.numpy() * 255 + 2.55, data_range=255.0).tolist() == pytest.approx([40.0, 40.0])


def test_ssim_identical_is_one_and_direction():
    from recon3d.ops.metrics import ssim

    a, b = _pair()
    assert ssim(a, a).tolist() == pytest.approx([1.0] * 3, abs=1e-12)
    noisier = (a + 0.3 * torch.randn(a.shape, generator=torch.Generator().manual_seed(1), dtype=a.dtype)).clamp(0, 1)
    assert (ssim(a, noisier) < ssim(a, b)).all()
    assert isinstance(ssim(a.numpy(), b.numpy()), np.ndarray)


def test_ssim_matches_scikit_image():
    metrics = pytest.importorskip("skimage.metrics")
    from recon3d.ops.metrics import ssim

    a, b = _pair(2)
    ours = ssim(a, b).numpy()
    ref = [metrics.structural_similarity(a[i].permute(1, 2, 0).numpy(), b[i].permute(1, 2, 0).numpy(),
                                         gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                         data_range=1.0, channel_axis=-1) for i in range(len(a))]
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)
    # and in 8-bit units
    ours255 = ssim(a * 255, b * 255, data_range=255.0).numpy()
    np.testing.assert_allclose(ours255, ref, rtol=0, atol=1e-6)


def test_psnr_matches_scikit_image():
    metrics = pytest.importorskip("skimage.metrics")
    from recon3d.ops.metrics import psnr

    a, b = _pair(3)
    ref = [metrics.peak_signal_noise_ratio(a[i].numpy(), b[i].numpy(), data_range=1.0) for i in range(len(a))]
    np.testing.assert_allclose(psnr(a, b).numpy(), ref, rtol=1e-10)


def test_psnr_ssim_raise_on_bad_shapes():
    from recon3d.ops.metrics import psnr, ssim

    with pytest.raises(ShapeError):
        psnr(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))
    with pytest.raises(ShapeError):
        ssim(torch.zeros(3, 8, 8), torch.zeros(3, 8, 8))
    with pytest.raises(ShapeError):
        ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))  # smaller than the window
    with pytest.raises(ValueError):
        ssim(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16), win_size=4)
