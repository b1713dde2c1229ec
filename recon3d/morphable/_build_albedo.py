"""Albedo helpers for model building: colour sampling, spherical-harmonics de-lighting, PCA with missing data."""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["sh_basis_np", "bilinear_sample", "fit_sh_light", "delight", "em_pca"]

# Deep3DFaceRecon's (Deng et al. 2019) constants for the first 9 real SH functions, already multiplied by the
# Lambertian convolution factors a_l (Ramamoorthi & Hanrahan 2001).
_A0, _A1, _A2 = np.pi, 2 * np.pi / np.sqrt(3.0), 2 * np.pi / np.sqrt(8.0)
_C0, _C1, _C2 = 1 / np.sqrt(4 * np.pi), np.sqrt(3.0) / np.sqrt(4 * np.pi), 3 * np.sqrt(5.0) / np.sqrt(12 * np.pi)


def sh_basis_np(normals: np.ndarray) -> np.ndarray:
    """The 9 irradiance SH basis values ``(..., 9)`` of unit normals ``(..., 3)``.

    Private numpy twin of the renderer's SH basis (used only at build time).

    >>> round(float(sh_basis_np(np.array([0.0, 0.0, 1.0]))[0]), 4)
    0.8862
    """
    x, y, z = normals[..., 0], normals[..., 1], normals[..., 2]
    one = np.ones_like(x)
    return np.stack(
        [
            _A0 * _C0 * one,
            -_A1 * _C1 * y,
            _A1 * _C1 * z,
            -_A1 * _C1 * x,
            _A2 * _C2 * x * y,
            -_A2 * _C2 * y * z,
            0.5 * _A2 * _C2 / np.sqrt(3.0) * (3 * z**2 - 1),
            -_A2 * _C2 * x * z,
            0.5 * _A2 * _C2 * (x**2 - y**2),
        ],
        -1,
    )


def bilinear_sample(img: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Sample ``img (H,W,C)`` at pixel coordinates ``xy (P,2)`` (centres at integers), edge-clamped."""
    H, W = img.shape[:2]
    x = np.clip(xy[:, 0], 0, W - 1)
    y = np.clip(xy[:, 1], 0, H - 1)
    x0 = np.clip(np.floor(x).astype(int), 0, W - 2)
    y0 = np.clip(np.floor(y).astype(int), 0, H - 2)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    return (
        img[y0, x0] * (1 - fx) * (1 - fy)
        + img[y0, x0 + 1] * fx * (1 - fy)
        + img[y0 + 1, x0] * (1 - fx) * fy
        + img[y0 + 1, x0 + 1] * fx * fy
    )


def fit_sh_light(colour: np.ndarray, albedo: np.ndarray, sh: np.ndarray, mask: np.ndarray, reg: float = 1e-2) -> np.ndarray:
    """Least-squares SH lighting ``(9,3)`` with ``colour ~ albedo * (sh @ L)`` over the masked vertices.

    ``colour, albedo (V,3)``, ``sh (V,9)``, ``mask (V,)``. Ridge ``reg`` pulls the non-ambient terms to 0.
    """
    L = np.zeros((9, 3))
    for c in range(3):
        A = albedo[mask, c : c + 1] * sh[mask]
        b = colour[mask, c]
        R = reg * len(b) * np.diag([0.0] + [1.0] * 8)
        L[:, c] = np.linalg.solve(A.T @ A + R, A.T @ b)
    return L


def delight(colours: np.ndarray, masks: np.ndarray, sh: np.ndarray, iters: int = 3, min_shading: float = 0.15) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Alternate per-image SH lighting fits and a robust (median) albedo estimate.

    Args:
        colours: (N,V,3) sampled vertex colours in [0,1].
        masks: (N,V) bool, vertex visible and sampled.
        sh: (N,V,9) SH basis of each image's vertex normals (view frame).
    Returns:
        ``(delit (N,V,3), masks (N,V), lights (N,9,3))``; ``delit = colour / shading`` clipped to [0,1];
        vertices with too little shading are dropped from the mask.
    """
    N = len(colours)
    # Start from the per-vertex median raw colour: the lighting fits then explain shading and white
    # balance, and the skin chromaticity stays in the albedo.
    raw = np.nanmedian(np.where(masks[..., None], colours, np.nan), axis=0)
    albedo = np.where(np.isnan(raw), np.nanmean(raw, axis=0), raw)
    lights = np.zeros((N, 9, 3))
    delit = np.zeros_like(colours)
    out_mask = masks.copy()
    for it in range(iters):
        for i in range(N):
            m = masks[i]
            if m.sum() < 50:
                out_mask[i] = False
                continue
            L = fit_sh_light(colours[i], albedo, sh[i], m)
            shade = sh[i] @ L  # (V,3)
            ok = m & (shade.min(1) > min_shading)
            delit[i] = np.clip(colours[i] / np.maximum(shade, min_shading), 0.0, 1.0)
            out_mask[i] = ok
            lights[i] = L
        data = np.where(out_mask[..., None], delit, np.nan)
        med = np.nanmedian(data, axis=0)
        albedo = np.where(np.isnan(med), np.nanmean(med, axis=0), med)
        log.info("delight: iteration %d, mean albedo %s", it, np.round(albedo.mean(0), 3).tolist())
    return delit, out_mask, lights


def em_pca(data: np.ndarray, mask: np.ndarray, n_comp: int, iters: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """PCA of ``data (N,D)`` with missing entries (``mask`` False), by EM: fill, decompose, re-fill.

    Returns ``(mean (D,), components (K,D) orthonormal, std (K,), explained_ratio (K,))``.
    """
    X = np.where(mask, data, 0.0)
    cnt = mask.sum(0)
    mean = X.sum(0) / np.maximum(cnt, 1)
    X = np.where(mask, data, mean)
    for it in range(iters):
        mean = X.mean(0)
        Xc = X - mean
        G = Xc @ Xc.T  # (N,N): cheap when N << D
        ev, U = np.linalg.eigh(G)
        order = np.argsort(ev)[::-1][:n_comp]
        ev, U = np.maximum(ev[order], 0), U[:, order]
        comps = (U.T @ Xc) / np.sqrt(np.maximum(ev, 1e-12))[:, None]
        recon = mean + (Xc @ comps.T) @ comps
        change = float(np.abs(np.where(mask, 0, recon - X)).mean())
        X = np.where(mask, data, recon)
        log.info("em_pca: iteration %d, mean change of missing entries %.5f", it, change)
    Xc = X - X.mean(0)
    total = float((Xc**2).sum())
    std = np.sqrt(ev / (len(X) - 1))
    return X.mean(0), comps, std, ev / total
