"""Bilinear image sampling at sub-pixel positions (numpy), the one implementation recon3d uses
(piecewise-affine warps, training-data synthesis, the model builder's colour sampling).

Pixel convention (``docs/CONVENTIONS.md``): pixel (row i, col j) has its centre at (x, y) = (j, i).
"""

from __future__ import annotations

import numpy as np

__all__ = ["bilinear_sample"]


def bilinear_sample(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Sample ``image`` ``(H, W, C)`` at pixel positions ``xy`` ``(..., 2)`` (x, y; pixel centres at
    integers), clamping to the border.

    >>> img = np.arange(4.0).reshape(2, 2, 1)
    >>> float(bilinear_sample(img, np.array([[0.5, 0.5]]))[0, 0])
    1.5
    """
    H, W = image.shape[:2]
    x = np.clip(xy[..., 0], 0, W - 1)
    y = np.clip(xy[..., 1], 0, H - 1)
    x0 = np.clip(np.floor(x).astype(np.int64), 0, W - 2 if W > 1 else 0)
    y0 = np.clip(np.floor(y).astype(np.int64), 0, H - 2 if H > 1 else 0)
    x1 = np.minimum(x0 + 1, W - 1)
    y1 = np.minimum(y0 + 1, H - 1)
    fx = (x - x0)[..., None]
    fy = (y - y0)[..., None]
    top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
    bot = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
    return top * (1 - fy) + bot * fy
