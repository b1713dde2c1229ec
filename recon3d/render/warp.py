"""Piecewise-affine image warps over a triangulation of control points (the 2-D half of 3DDFA's
"face profiling": the background and hair follow anchors that move with the head).

The triangles are rasterised at their destination with :func:`recon3d.render.rasterize_px` (a
per-vertex depth resolves fold-overs, nearest wins); the per-pixel sampling and the stretch test are
:func:`recon3d.ops.warp.sample_warp`.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ShapeError
from ..ops.warp import WarpResult, sample_warp, triangulate
from .interpolation import interpolate
from .raster import rasterize_px

__all__ = ["WarpResult", "warp_triangles", "triangulate"]


def warp_triangles(image: np.ndarray, src_xy: np.ndarray, dst_xy: np.ndarray, tris: np.ndarray, *,
                   depth: np.ndarray | None = None, max_stretch: float = 3.0) -> WarpResult:
    """Warp ``image`` so that control point ``i`` moves from ``src_xy[i]`` to ``dst_xy[i]``.

    Args:
        image: ``(H, W, C)`` float image (the output has the same size).
        src_xy: ``(N, 2)`` source positions (x, y) pixels.
        dst_xy: ``(N, 2)`` destination positions.
        tris: ``(T, 3)`` int triangles over the points (e.g. :func:`triangulate` of ``src_xy``).
        depth: ``(N,)`` depth of each point at its destination (smaller is in front), default 1.
        max_stretch: destination/source area ratio above which a triangle is flagged ``stretched``.

    Returns:
        :class:`~recon3d.ops.warp.WarpResult`.

    Raises:
        ShapeError: on mismatched shapes.

    >>> img = np.random.default_rng(0).random((8, 8, 3)).astype(np.float32)
    >>> p = np.array([[-1.0, -1], [8, -1], [-1, 8], [8, 8]])
    >>> r = warp_triangles(img, p, p, triangulate(p))
    >>> bool(np.abs(r.image - img).max() < 1e-5), bool(r.covered.all())
    (True, True)
    """
    img = np.asarray(image)
    src = np.asarray(src_xy, dtype=np.float64)
    dst = np.asarray(dst_xy, dtype=np.float64)
    tris = np.asarray(tris, dtype=np.int64)
    if img.ndim != 3:
        raise ShapeError(f"warp_triangles(): image must be (H, W, C), got {img.shape}")
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2:
        raise ShapeError(f"warp_triangles(): src_xy and dst_xy must both be (N, 2), got {src.shape} and {dst.shape}")
    if tris.ndim != 2 or tris.shape[1] != 3 or (len(tris) and (tris.min() < 0 or tris.max() >= len(src))):
        raise ShapeError(f"warp_triangles(): tris must be (T, 3) indices < {len(src)}, got {tris.shape}")
    N = len(src)
    z = np.ones(N) if depth is None else np.asarray(depth, dtype=np.float64).reshape(N)
    H, W = img.shape[:2]
    verts = torch.from_numpy(np.concatenate([dst, z[:, None]], 1).astype(np.float32))[None]
    faces = torch.from_numpy(tris)
    frags = rasterize_px(verts, faces, (H, W), cull_backfaces=False)
    sxy = interpolate(torch.from_numpy(src.astype(np.float32))[None], frags, faces)[0].numpy()
    return sample_warp(img, src, dst, tris, frags.tri_id[0].numpy(), sxy, max_stretch=max_stretch)
