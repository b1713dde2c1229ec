"""Piecewise-affine image warps over a triangulation of control points (the 2-D half of 3DDFA's
"face profiling": the background and hair follow anchors that move with the head).

A triangle mesh whose vertices have a *source* position (where they are in the input photo) and a
*destination* position (where they go) is rasterised at the destination with
:func:`recon3d.render.rasterize_px` (a per-vertex depth resolves fold-overs, nearest wins); each
covered output pixel interpolates its source position and samples the input bilinearly. Triangles
stretched by more than ``max_stretch`` (area ratio) have no trustworthy source and are reported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ShapeError
from ..ops.sampling import bilinear_sample

log = logging.getLogger(__name__)

__all__ = ["WarpResult", "warp_triangles", "triangulate"]


@dataclass(frozen=True)
class WarpResult:
    """Output of :func:`warp_triangles`.

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
    from scipy.spatial import Delaunay

    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 3:
        raise ShapeError(f"triangulate(): points must be (N>=3, 2), got {pts.shape}")
    return Delaunay(pts).simplices.astype(np.int64)


def _signed_area(p: np.ndarray, tris: np.ndarray) -> np.ndarray:
    a, b, c = p[tris[:, 0]], p[tris[:, 1]], p[tris[:, 2]]
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))


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
        :class:`WarpResult`.

    Raises:
        ShapeError: on mismatched shapes.

    >>> img = np.random.default_rng(0).random((8, 8, 3)).astype(np.float32)
    >>> p = np.array([[-1.0, -1], [8, -1], [-1, 8], [8, 8]])
    >>> r = warp_triangles(img, p, p, triangulate(p))
    >>> bool(np.abs(r.image - img).max() < 1e-5), bool(r.covered.all())
    (True, True)
    """
    from ..render import interpolate, rasterize_px

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
    covered = (frags.tri_id[0] >= 0).numpy()
    sxy = interpolate(torch.from_numpy(src.astype(np.float32))[None], frags, faces)[0].numpy()
    out = np.zeros_like(img, dtype=np.float32)
    out[covered] = bilinear_sample(img.astype(np.float32), sxy[covered])
    a_src = np.abs(_signed_area(src, tris))
    a_dst = np.abs(_signed_area(dst, tris))
    bad_tri = (a_dst > max_stretch * np.maximum(a_src, 1e-9)) & (a_dst > 2.0)
    tid = frags.tri_id[0].numpy()
    stretched = covered & bad_tri[np.clip(tid, 0, None)]
    sxy = np.where(covered[..., None], sxy, np.nan).astype(np.float32)
    return WarpResult(image=out, covered=covered, stretched=stretched, src_xy=sxy)
