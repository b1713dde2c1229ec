"""Albedo of the model builder: colour sampling at the projected vertices
(:func:`recon3d.ops.sampling.bilinear_sample`), spherical-harmonics de-lighting (the renderer's basis,
:func:`recon3d.render.shading.sh_basis`), PCA with missing data."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from ...conventions import frontal_rotation
from ...ops.sampling import bilinear_sample
from ...render.shading import sh_basis
from .geometry import apply_operator, vertex_normals_np

log = logging.getLogger(__name__)

__all__ = ["build_albedo", "fit_sh_light", "delight", "em_pca"]


def _default_load_image(path: str) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def build_albedo(
    paths: list, idx: np.ndarray, X_all: np.ndarray, S, faces: np.ndarray, sym: np.ndarray, n_albedo: int,
    load_image: Callable[[str], np.ndarray] | None = None, progress: Callable[[str, int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """The albedo model from the photos ``paths[idx]``: sample, de-light, drop outliers, mirror, EM-PCA.

    Args:
        X_all: ``(N, P, 3)`` MediaPipe points in model axes, pixel units (one row per photo).
        S: the sparse subdivision operator ``(V, P)``; ``faces (F, 3)`` and ``sym (V,)`` of the result.
    Returns:
        ``(mean (V, 3), basis (K, V, 3), explained_ratio (K,), report)``.
    """
    load_image = load_image or _default_load_image
    V = S.shape[0]
    N = len(idx)
    colours = np.zeros((N, V, 3), np.float32)
    masks = np.zeros((N, V), bool)
    shs = np.zeros((N, V, 9), np.float32)
    Rf = frontal_rotation(torch.float64).numpy()
    for j, i in enumerate(idx):
        img = load_image(paths[i])
        H, W = img.shape[:2]
        verts = apply_operator(S, X_all[i])  # model axes, pixel units (view frame: +Z towards the camera)
        n = vertex_normals_np(verts, faces)
        xy = (verts @ Rf.T)[:, :2]  # back to image pixels
        inside = (xy[:, 0] >= 0) & (xy[:, 0] <= W - 1) & (xy[:, 1] >= 0) & (xy[:, 1] <= H - 1)
        masks[j] = inside & (n[:, 2] > 0.3)
        colours[j] = bilinear_sample(img, xy)
        shs[j] = sh_basis(torch.from_numpy(n)).numpy()
        if progress:
            progress("albedo: sampling", j + 1, N)
    delit, m2, lights = delight(colours, masks, shs)
    # Robust: drop samples far from the per-vertex median (hair, glasses, hands, specular highlights).
    med = np.nanmedian(np.where(m2[..., None], delit, np.nan), 0)
    mad = np.nanmedian(np.abs(np.where(m2[..., None], delit, np.nan) - med), 0)
    ok = m2 & (np.abs(delit - med).max(-1) < 3.5 * np.maximum(mad.max(-1), 0.02))
    # Mirror augmentation: the mirrored photo sees albedo[sym].
    data2 = np.concatenate([delit, delit[:, sym]], 0).reshape(2 * N, -1)
    mask2 = np.repeat(np.concatenate([ok, ok[:, sym]], 0), 3, axis=1)
    mean, comps, std, ratio = em_pca(data2.astype(np.float64), mask2, n_albedo)
    mean = np.clip(mean.reshape(V, 3), 0, 1)
    basis = (comps * std[:, None]).reshape(-1, V, 3)
    rep = {
        "albedo_photos": int(N), "albedo_visible_fraction": float(ok.mean()),
        "albedo_mean_rgb": mean.mean(0).round(3).tolist(),
    }
    return mean, basis, ratio, rep

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
