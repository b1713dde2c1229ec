"""Binary morphology with disk structuring elements, and a harmonic (membrane) hole fill.

Masks are ``(H, W)`` bool numpy arrays; images ``(H, W, C)``. Pure functions: inputs are never
modified (a radius of 0 returns a copy).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .poisson import poisson_blend

__all__ = ["disk", "erode", "dilate", "diffuse_fill"]


def disk(r: int) -> np.ndarray:
    """A ``(2r+1, 2r+1)`` bool disk structuring element.

    >>> disk(1).astype(int).tolist()
    [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    """
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    return (x * x + y * y) <= r * r + 0.5


def erode(mask: np.ndarray, r: int) -> np.ndarray:
    """Binary erosion by :func:`disk` ``(r)``; outside the image counts as unset."""
    return ndimage.binary_erosion(mask, disk(r), border_value=0) if r > 0 else mask.copy()


def dilate(mask: np.ndarray, r: int) -> np.ndarray:
    """Binary dilation by :func:`disk` ``(r)``."""
    return ndimage.binary_dilation(mask, disk(r)) if r > 0 else mask.copy()


def diffuse_fill(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Fill ``hole`` (``(H, W)`` bool) of ``image`` (``(H, W, C)``) with the smooth (harmonic) membrane
    interpolation of its border values; pixels outside the hole are returned unchanged."""
    if not hole.any():
        return image.copy()
    out = poisson_blend(image.astype(np.float64), np.zeros_like(image, dtype=np.float64), hole)
    out = np.asarray(out)
    # parts of the hole that touch no known pixel (the whole image) keep the image mean
    res = np.where(hole[..., None], out, image)
    return res.astype(image.dtype)
