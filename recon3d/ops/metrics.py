"""Landmark and embedding metrics, one implementation each.

:func:`nme` is the normalised mean error every recon3d benchmark, the regressor's training loop and
the model builder report: the mean point-to-point distance over the landmarks divided by
``sqrt(w * h)`` of the ground-truth landmark bounding box (AFLW2000-3D / 3DDFA protocol).

:func:`frechet_distance` and :func:`kernel_distance` compare two sets of embeddings: the Fréchet
distance of Gaussians fitted to them, and the unbiased kernel MMD² with the cubic polynomial kernel
(the formulas of FID and KID). Computed on the 128-d descriptors of recon3d's identity network
(:mod:`recon3d.nn.identity`, dlib's face recognition ResNet) they are reported as **FD-dlib** and
**KID-dlib**: they are not FID or KID, which are defined on Inception-v3 pool features.

:func:`psnr` and :func:`ssim` are the full-reference image metrics of the restoration benchmark
(``bench/restore.py``): per image, on ``(B, C, H, W)`` values in ``[0, data_range]``; SSIM is Wang et
al. 2004's (11x11 Gaussian window of σ 1.5, ``K1 = 0.01``, ``K2 = 0.03``, population covariances, mean
over the valid window positions, then over the channels), the settings of scikit-image's
``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ShapeError

__all__ = ["NME_NORMS", "nme", "frechet_distance", "kernel_distance", "psnr", "ssim", "ssim_map", "gaussian_window"]

#: Normalisers understood by :func:`nme`.
NME_NORMS = ("box",)


def nme(pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor, *, norm: str = "box",
        eps: float = 1e-9) -> np.ndarray | torch.Tensor:
    """Normalised mean landmark error per image.

    ``mean_l |pred_l - gt_l| / sqrt(w * h)``, with ``w, h`` the width and height of the bounding box of
    the ground-truth landmarks (``norm="box"``); ``w * h`` is clamped to at least ``eps`` so a
    degenerate box gives a large finite error instead of inf/NaN.

    Args:
        pred: ``(B, L, 2)`` (or ``(L, 2)``) predicted landmarks, pixels; numpy or torch.
        gt: the ground truth, same shape and the same array type as ``pred``.
        norm: the normaliser; only ``"box"`` (sqrt of the ground-truth box area).
        eps: lower bound of the box area ``w * h`` (square pixels).

    Returns:
        ``(B,)`` (or a 0-d value for unbatched input), numpy for numpy input, torch (same device and
        dtype) for torch input.

    Raises:
        ShapeError: ``pred`` and ``gt`` differ in shape or are not ``(..., L, 2)``.
        ValueError: unknown ``norm``.

    A 40 x 10 box normalises by sqrt(400) = 20 (not 40, the width, nor 10, the height):

    >>> gt = np.array([[[0.0, 0.0], [40.0, 0.0], [40.0, 10.0], [0.0, 10.0]]])
    >>> nme(gt + [3.0, 4.0], gt).tolist()
    [0.25]
    >>> float(nme(torch.tensor(gt[0] + [3.0, 4.0]), torch.tensor(gt[0])))
    0.25
    """
    if norm not in NME_NORMS:
        raise ValueError(f"nme(): unknown norm {norm!r}; expected one of {NME_NORMS}")
    if tuple(pred.shape) != tuple(gt.shape) or len(gt.shape) not in (2, 3) or gt.shape[-1] != 2:
        raise ShapeError(f"nme(): pred and gt must both be (B, L, 2) or (L, 2), got {tuple(pred.shape)} "
                         f"and {tuple(gt.shape)}")
    if isinstance(gt, torch.Tensor):
        pred = torch.as_tensor(pred, dtype=gt.dtype, device=gt.device)
        wh = gt.amax(-2) - gt.amin(-2)
        area = (wh[..., 0] * wh[..., 1]).clamp(min=eps)
        return (pred - gt).norm(dim=-1).mean(-1) / area.sqrt()
    gt = np.asarray(gt)
    wh = gt.max(-2) - gt.min(-2)
    area = np.maximum(wh[..., 0] * wh[..., 1], eps)
    return np.linalg.norm(np.asarray(pred) - gt, axis=-1).mean(-1) / np.sqrt(area)


def _embeddings(x, name: str, fn: str) -> np.ndarray:
    x = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ShapeError(f"{fn}(): {name} must be (N, D) with N >= 2, got {x.shape}")
    return x


def frechet_distance(a, b, *, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to two embedding sets (the FID formula).

    ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` with the sample means and covariances
    (``ddof=1``). The matrix square root is scipy's ``sqrtm``; if it is not finite (singular
    covariances, e.g. fewer samples than dimensions) ``eps`` is added to both diagonals; an
    imaginary part of the root (numerical) is dropped when it is below 1e-3, else ``ValueError``.
    On identity-network descriptors this is **FD-dlib** (not FID).

    Args:
        a: ``(N, D)`` embeddings (numpy or torch).
        b: ``(M, D)`` embeddings.
        eps: diagonal offset used only when the plain root is not finite.

    Returns:
        the distance (float, squared embedding units).

    Raises:
        ShapeError: not ``(N, D)`` with N >= 2, or different D.
        ValueError: the square root has a large imaginary part.

    Identical sets give 0; shifting one set by ``d`` adds ``|d|^2``:

    >>> x = np.random.default_rng(0).normal(size=(500, 4))
    >>> round(frechet_distance(x, x), 6), round(frechet_distance(x, x + [3.0, 0, 0, 4.0]), 6)
    (0.0, 25.0)
    """
    from scipy import linalg

    a, b = _embeddings(a, "a", "frechet_distance"), _embeddings(b, "b", "frechet_distance")
    if a.shape[1] != b.shape[1]:
        raise ShapeError(f"frechet_distance(): a and b differ in dimension: {a.shape} and {b.shape}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root = linalg.sqrtm(s_a @ s_b)
    if not np.isfinite(root).all():
        off = np.eye(len(s_a)) * eps
        root = linalg.sqrtm((s_a + off) @ (s_b + off))
    if np.iscomplexobj(root):
        if not np.allclose(np.diagonal(root).imag, 0, atol=1e-3):
            raise ValueError(f"frechet_distance(): the covariance square root has an imaginary part "
                             f"{np.abs(root.imag).max():.3g}")
        root = root.real
    d = mu_a - mu_b
    return float(max(d @ d + np.trace(s_a) + np.trace(s_b) - 2 * np.trace(root), 0.0))


def kernel_distance(a, b, *, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Unbiased squared MMD with the cubic polynomial kernel ``k(x, y) = (x . y / D + 1)^3`` (the
    KID formula), averaged over random subsets.

    Each of ``subsets`` rounds draws ``m = min(subset_size, N, M)`` rows of each set without
    replacement and computes ``mean_{i != j} k(a_i, a_j) + mean_{i != j} k(b_i, b_j) - 2 mean k(a_i, b_j)``.
    It is unbiased, so it can be slightly negative for sets from one distribution. On
    identity-network descriptors this is **KID-dlib** (not KID).

    Args:
        a: ``(N, D)`` embeddings (numpy or torch).
        b: ``(M, D)`` embeddings.
        subsets: number of random subsets.
        subset_size: rows per subset (capped at the smaller set).
        seed: seed of the subset draws (``numpy.random.default_rng``).

    Returns:
        ``(mean, std)`` of the per-subset MMD² values.

    Raises:
        ShapeError: not ``(N, D)`` with N >= 2, or different D.
        ValueError: ``subsets`` < 1 or ``subset_size`` < 2.

    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    >>> abs(kernel_distance(x, y, subsets=20, subset_size=200)[0]) < 0.1
    True
    >>> kernel_distance(x, y + 1.0, subsets=20, subset_size=200)[0] > 0.5
    True
    """
    a, b = _embeddings(a, "a", "kernel_distance"), _embeddings(b, "b", "kernel_distance")
    if a.shape[1] != b.shape[1]:
        raise ShapeError(f"kernel_distance(): a and b differ in dimension: {a.shape} and {b.shape}")
    if subsets < 1 or subset_size < 2:
        raise ValueError(f"kernel_distance(): need subsets >= 1 and subset_size >= 2, got {subsets}, {subset_size}")
    rng = np.random.default_rng(seed)
    m, dim = min(subset_size, len(a), len(b)), a.shape[1]
    vals = np.empty(subsets)
    for i in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx, kyy, kxy = ((p @ q.T / dim + 1) ** 3 for p, q in ((x, x), (y, y), (x, y)))
        vals[i] = ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.mean()
    return float(vals.mean()), float(vals.std())


def _image_pair(a, b, fn: str) -> tuple[torch.Tensor, torch.Tensor, bool]:
    is_np = not isinstance(a, torch.Tensor)
    ta = torch.as_tensor(np.asarray(a)) if is_np else a
    tb = torch.as_tensor(np.asarray(b)) if not isinstance(b, torch.Tensor) else b
    if ta.ndim != 4 or tuple(ta.shape) != tuple(tb.shape):
        raise ShapeError(f"{fn}(): a and b must both be (B, C, H, W), got {tuple(ta.shape)} and {tuple(tb.shape)}")
    dt = ta.dtype if ta.is_floating_point() and ta.dtype == torch.float64 else torch.float32
    return ta.to(dt), tb.to(device=ta.device, dtype=dt), is_np


def psnr(a, b, *, data_range: float = 1.0, max_db: float = 100.0):
    """Peak signal-to-noise ratio per image, ``10 log10(data_range² / MSE)`` over all its pixels and
    channels, capped at ``max_db`` (identical images give ``max_db``, not inf).

    Args:
        a, b: ``(B, C, H, W)`` images in ``[0, data_range]`` (numpy or torch, same shape).
        data_range: the peak-to-peak range (1 for ``[0, 1]`` images, 255 for 8-bit values).
        max_db: the cap.

    Returns:
        ``(B,)`` dB, numpy for numpy input, else torch.

    Raises:
        ShapeError: not two ``(B, C, H, W)`` of one shape.

    >>> x = torch.zeros(1, 3, 4, 4)
    >>> [round(float(v), 6) for v in psnr(x, x + 0.1)], float(psnr(x, x)[0])
    ([20.0], 100.0)
    """
    ta, tb, is_np = _image_pair(a, b, "psnr")
    mse = ((ta - tb) ** 2).flatten(1).mean(1)
    floor = data_range ** 2 * 10 ** (-max_db / 10)
    out = (10 * torch.log10(data_range ** 2 / mse.clamp(min=floor))).clamp(max=max_db)
    return out.cpu().numpy() if is_np else out


def gaussian_window(size: int, sigma: float, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """A normalised ``(size, size)`` Gaussian kernel (``sigma`` pixels), centred on the middle pixel."""
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-0.5 * (r / sigma) ** 2)
    g = g / g.sum()
    return (g[:, None] * g[None, :]).to(dtype=dtype, device=device)


def _ssim_map(a: torch.Tensor, b: torch.Tensor, filt, c1: float, c2: float) -> torch.Tensor:
    """The per-pixel SSIM of two images, their local statistics taken with the window ``filt``."""
    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a ** 2
    var_b = filt(b * b) - mu_b ** 2
    cov = filt(a * b) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))


def ssim(a, b, *, data_range: float = 1.0, win_size: int = 11, sigma: float = 1.5, k1: float = 0.01,
         k2: float = 0.03):
    """Structural similarity per image (Wang et al. 2004), averaged over the channels.

    Local means, variances and the covariance are Gaussian-weighted (``win_size`` x ``win_size``,
    ``sigma``; population statistics), the SSIM map is averaged over the positions where the window
    fits inside the image ("valid"), then over the channels. With the defaults this is scikit-image's
    ``structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    data_range=data_range, channel_axis=...)`` (which filters with reflection and then crops the
    border the window overhangs, i.e. the same valid positions).

    Args:
        a, b: ``(B, C, H, W)`` images in ``[0, data_range]`` (numpy or torch), ``H, W >= win_size``.
        data_range: the peak-to-peak range.
        win_size: odd window side.
        sigma: the window's standard deviation (pixels).
        k1, k2: the stabilising constants ``C1 = (k1 L)²``, ``C2 = (k2 L)²``.

    Returns:
        ``(B,)`` in ``[-1, 1]`` (1: identical), numpy for numpy input, else torch.

    Raises:
        ShapeError: not two ``(B, C, H, W)`` of one shape, or smaller than the window.
        ValueError: ``win_size`` not a positive odd integer.

    >>> x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> [round(float(v), 6) for v in ssim(x, x)], bool((ssim(x, x.flip(3)) < 0.5).all())
    ([1.0, 1.0], True)
    """
    import torch.nn.functional as F

    if int(win_size) != win_size or win_size < 1 or win_size % 2 == 0:
        raise ValueError(f"ssim(): win_size must be a positive odd integer, got {win_size!r}")
    ta, tb, is_np = _image_pair(a, b, "ssim")
    n, c, h, w = ta.shape
    if h < win_size or w < win_size:
        raise ShapeError(f"ssim(): images must be at least {win_size}x{win_size}, got {h}x{w}")
    win = gaussian_window(int(win_size), sigma, ta.dtype, ta.device).expand(c, 1, win_size, win_size)

    def filt(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, win, groups=c)

    smap = _ssim_map(ta, tb, filt, (k1 * data_range) ** 2, (k2 * data_range) ** 2)
    out = smap.mean((2, 3)).mean(1)
    return out.cpu().numpy() if is_np else out


def ssim_map(a: torch.Tensor, b: torch.Tensor, *, data_range: float = 1.0, win_size: int = 11,
             sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """The SSIM map of :func:`ssim` at every pixel (the images reflection-padded by half a window),
    averaged over the channels: ``(B, C, H, W)`` torch in, ``(B, 1, H, W)`` out, differentiable (the
    SSIM training losses weight or select its pixels)."""
    import torch.nn.functional as F

    if a.shape != b.shape or a.ndim != 4:
        raise ShapeError(f"ssim_map(): expected two (B, C, H, W) of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    c = a.shape[1]
    r = win_size // 2
    win = gaussian_window(int(win_size), sigma, a.dtype, a.device).expand(c, 1, win_size, win_size)

    def filt(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (r, r, r, r), mode="reflect"), win, groups=c)

    return _ssim_map(a, b, filt, (k1 * data_range) ** 2, (k2 * data_range) ** 2).mean(1, keepdim=True)
