"""Triangulation of control points and the per-pixel half of a piecewise-affine image warp.

A triangle mesh whose vertices have a *source* position (where they are in the input photo) and a
*destination* position (where they go) is rasterised at the destination; each covered output pixel
gets its interpolated source position and samples the input bilinearly (:func:`sample_warp`, here).
The rasterisation itself is the renderer's job: :func:`recon3d.render.warp.warp_triangles` rasterises
with :func:`recon3d.render.rasterize_px` and calls :func:`sample_warp` (``ops`` sits below
``render`` in the layer order, docs/ARCHITECTURE.md). Triangles stretched by more than
``max_stretch`` (area ratio) have no trustworthy source and are reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import Delaunay

from ..errors import ShapeError
from .sampling import bilinear_sample

__all__ = ["WarpResult", "triangulate", "sample_warp"]


@dataclass(frozen=True)
class WarpResult:
    """Output of :func:`recon3d.render.warp.warp_triangles`.

    Attributes:
        image: ``(H, W, C)`` float32 warped image (0 where uncovered).
        covered: ``(H, W)`` bool, pixels covered by some triangle.
        stretched: ``(H, W)`` bool, pixels of triangles enlarged more than ``max_stretch`` times
            (or degenerate in the source): their content is unreliable.
        src_xy: ``(H, W, 2)`` float32 source position of each covered pixel (x, y), NaN elsewhere.
    """

    image: np.ndarray
    covered: np.ndarray
    stretched: np.ndarray
    src_xy: np.ndarray


def triangulate(points: np.ndarray) -> np.ndarray:
    """Delaunay triangles ``(T, 3)`` int64 of ``(N, 2)`` points (scipy).

    >>> triangulate(np.array([[0.0, 0], [1, 0], [0, 1], [1, 1]])).shape
    (2, 3)
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 3:
        raise ShapeError(f"triangulate(): points must be (N>=3, 2), got {pts.shape}")
    return Delaunay(pts).simplices.astype(np.int64)


def _signed_area(p: np.ndarray, tris: np.ndarray) -> np.ndarray:
    a, b, c = p[tris[:, 0]], p[tris[:, 1]], p[tris[:, 2]]
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))


def sample_warp(image: np.ndarray, src: np.ndarray, dst: np.ndarray, tris: np.ndarray, tri_id: np.ndarray,
                src_at_px: np.ndarray, *, max_stretch: float = 3.0) -> WarpResult:
    """Sample ``image`` at each covered pixel's source position and flag stretched triangles.

    Args:
        image: ``(H, W, C)`` float image.
        src, dst: ``(N, 2)`` float64 source / destination control points (x, y) pixels.
        tris: ``(T, 3)`` int64 triangles over the points.
        tri_id: ``(H, W)`` int triangle covering each output pixel (``-1``: none), from rasterising
            ``dst``.
        src_at_px: ``(H, W, 2)`` float32 source position interpolated at each output pixel.
        max_stretch: destination/source area ratio above which a triangle is flagged ``stretched``.

    Returns:
        :class:`WarpResult`.
    """
    covered = tri_id >= 0
    out = np.zeros_like(image, dtype=np.float32)
    out[covered] = bilinear_sample(image.astype(np.float32), src_at_px[covered])
    a_src = np.abs(_signed_area(src, tris))
    a_dst = np.abs(_signed_area(dst, tris))
    bad_tri = (a_dst > max_stretch * np.maximum(a_src, 1e-9)) & (a_dst > 2.0)
    stretched = covered & bad_tri[np.clip(tri_id, 0, None)]
    sxy = np.where(covered[..., None], src_at_px, np.nan).astype(np.float32)
    return WarpResult(image=out, covered=covered, stretched=stretched, src_xy=sxy)
