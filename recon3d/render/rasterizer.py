"""Triangle rasterisation in pure PyTorch (CPU and CUDA), nvdiffrast-style.

Two passes, like nvdiffrast:

1. **Visibility** (not differentiable): every triangle's pixel bounding box is enumerated,
   pixel centres are tested against the three edge functions, and a z-buffer keeps, per pixel,
   the smallest packed int64 key ``(order-preserving bits of the float depth) << 31 | face id``
   through ``scatter_reduce(..., "amin")``. Small triangles (the usual case for face meshes) are
   enumerated with fixed-size stencils by broadcasting; larger ones through a flat candidate
   list processed in chunks of at most ``max_candidates`` pixels, so memory stays bounded for
   huge triangles and large images. The backend that computes this pass is pluggable (see
   :func:`recon3d.render.get_backend`).
2. **Barycentrics** (differentiable): for the covered pixels only, the barycentrics of the
   pixel centre are recomputed from the triangle id and the projected vertex positions, so
   gradients flow to the vertices (through ``bary`` and ``depth``), exactly as nvdiffrast's
   ``rasterize`` output is differentiable w.r.t. ``pos``.

Conventions (``docs/CONVENTIONS.md``, :mod:`recon3d.conventions`): camera frame OpenCV (+X right,
+Y down, +Z forward), pixel (row i, col j) centre at (x, y) = (j, i), images top row first,
faces CCW seen from outside. In pixel coordinates (y down) a front-facing triangle therefore
has a **negative** signed area ``(x1-x0)(y2-y0) - (x2-x0)(y1-y0)``; back faces are culled by
default. Triangles with a vertex closer than ``near`` are dropped whole (no clipping).
"""

from __future__ import annotations

import logging

import torch

from .._checks import check_float, check_shapes
from ..errors import ShapeError
from .fragments import Fragments

__all__ = ["project_to_px", "fragments_from_tri_id", "visibility_torch"]

log = logging.getLogger(__name__)

_INT64_MAX = torch.iinfo(torch.int64).max
_FACE_BITS = 31
_FACE_MASK = (1 << _FACE_BITS) - 1
#: stencil sizes (square bounding boxes, in pixels) of the small-triangle fast path
_STENCILS = (2, 3, 4, 5, 6, 8, 11, 16)


def _check_common(where: str, verts: torch.Tensor, faces: torch.Tensor, image_size: tuple[int, int]) -> None:
    check_shapes(where, verts=(verts, "B V 3"), faces=(faces, "F 3"))
    check_float(where, verts=verts)
    if faces.dtype != torch.int64:
        raise ShapeError(f"{where}: faces must be int64, got {faces.dtype}")
    if faces.device != verts.device:
        raise ShapeError(f"{where}: faces on {faces.device} but verts on {verts.device}")
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= verts.shape[1]):
        raise ShapeError(
            f"{where}: faces index out of range [0, {verts.shape[1]}), got [{int(faces.min())}, {int(faces.max())}]"
        )
    if len(image_size) != 2 or min(int(image_size[0]), int(image_size[1])) < 1:
        raise ValueError(f"{where}: image_size must be (H, W) with H, W >= 1, got {image_size}")
    if faces.shape[0] >= (1 << _FACE_BITS):
        raise ValueError(f"{where}: at most 2**31 - 1 faces are supported, got {faces.shape[0]}")


def project_to_px(verts_cam: torch.Tensor, K: torch.Tensor, *, eps: float = 1e-8) -> torch.Tensor:
    """Project camera-frame vertices to ``(B, V, 3)`` = (x px, y px, z metres). Differentiable.

    >>> K = torch.tensor([[[100.0, 0, 50], [0, 100.0, 40], [0, 0, 1]]])
    >>> project_to_px(torch.tensor([[[0.1, -0.2, 2.0]]]), K).tolist()
    [[[55.0, 30.0, 2.0]]]
    """
    check_shapes("project_to_px()", verts_cam=(verts_cam, "B V 3"), K=(K, "B 3 3"))
    z = verts_cam[..., 2:3]
    z_safe = torch.where(z.abs() < eps, torch.full_like(z, eps), z)
    xy = (verts_cam @ K[:, :2, :].transpose(-1, -2)) / z_safe
    return torch.cat([xy, z], dim=-1)


# --------------------------------------------------------------------------------------------
# visibility pass
# --------------------------------------------------------------------------------------------


def _depth_to_key(depth: torch.Tensor) -> torch.Tensor:
    """Order-preserving map of float depths to non-negative int64 (< 2**32), shifted left 31."""
    bits = depth.to(torch.float32).view(torch.int32).to(torch.int64)
    # negative floats: flip the magnitude bits so that the signed-int order equals the float order
    bits = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    return (bits + (1 << 31)) << _FACE_BITS


def _face_setup(v: torch.Tensor, faces: torch.Tensor, image_size: tuple[int, int], cull_backfaces: bool,
                near: float, perspective: bool):
    """Per-face edge-function coefficients and bounding boxes (all batch elements flattened)."""
    H, W = image_size
    tri = v[:, faces]  # (B, F, 3, 3)
    x, y, z = tri[..., 0], tri[..., 1], tri[..., 2]
    x0, x1, x2 = x.unbind(-1)
    y0, y1, y2 = y.unbind(-1)
    area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    valid = torch.isfinite(tri).all(-1).all(-1) & (area.abs() > 1e-12)
    if perspective:
        valid &= (z > near).all(-1)
    if cull_backfaces:
        valid &= area < 0
    xmin = torch.ceil(x.amin(-1))
    xmax = torch.floor(x.amax(-1))
    ymin = torch.ceil(y.amin(-1))
    ymax = torch.floor(y.amax(-1))
    valid &= (xmax >= 0) & (xmin <= W - 1) & (ymax >= 0) & (ymin <= H - 1) & (xmax >= xmin) & (ymax >= ymin)
    sel = valid.reshape(-1).nonzero().squeeze(1)  # flat (b*F + f)
    if sel.numel() == 0:
        return None
    area_s = area.reshape(-1).index_select(0, sel)
    inv = 1.0 / area_s
    xs = x.reshape(-1, 3).index_select(0, sel)
    ys = y.reshape(-1, 3).index_select(0, sel)
    zs = z.reshape(-1, 3).index_select(0, sel)
    # barycentric i is the edge function of the edge opposite vertex i, divided by the area:
    # b0 = ((x1-px)(y2-py) - (x2-px)(y1-py)) / area = A0*px + B0*py + C0
    xa, ya = xs[:, [1, 2, 0]], ys[:, [1, 2, 0]]
    xb, yb = xs[:, [2, 0, 1]], ys[:, [2, 0, 1]]
    box = torch.stack([t.reshape(-1).index_select(0, sel) for t in (xmin, ymin, xmax, ymax)], 1)
    box[:, 0].clamp_(min=0)
    box[:, 1].clamp_(min=0)
    box[:, 2].clamp_(max=W - 1)
    box[:, 3].clamp_(max=H - 1)
    # Edge functions are evaluated relative to a local origin (the clamped box corner): with the
    # constant term taken at the image origin, float32 cancellation (|C| ~ x*y/area) opened
    # one-pixel cracks along shared edges of small triangles far from the origin.
    ox, oy = box[:, 0:1], box[:, 1:2]
    A = (ya - yb) * inv[:, None]
    Bc = (xb - xa) * inv[:, None]
    C = ((xa - ox) * (yb - oy) - (xb - ox) * (ya - oy)) * inv[:, None]
    if perspective:
        zc = 1.0 / zs  # interpolate 1/z linearly in screen space
    else:
        zc = zs
    coef = torch.cat([A, Bc, C, zc, ox, oy], dim=1)  # (n, 14)
    F = faces.shape[0]
    bidx = sel // F
    fidx = sel - bidx * F
    return coef, box.to(torch.int64), bidx, fidx


def _zbuffer_update(zbuf: torch.Tensor, coef: torch.Tensor, px: torch.Tensor, py: torch.Tensor,
                    inside_extra: torch.Tensor | None, base: torch.Tensor, fidx: torch.Tensor,
                    W: int, perspective: bool) -> None:
    """Test candidate pixels ``(n, k)`` of faces ``(n,)`` and scatter their keys into zbuf."""
    pxf = px.to(coef.dtype) - coef[:, 12:13]
    pyf = py.to(coef.dtype) - coef[:, 13:14]
    b0 = coef[:, 0:1] * pxf + coef[:, 3:4] * pyf + coef[:, 6:7]
    b1 = coef[:, 1:2] * pxf + coef[:, 4:5] * pyf + coef[:, 7:8]
    b2 = 1.0 - b0 - b1
    tol = -1e-6
    inside = (b0 >= tol) & (b1 >= tol) & (b2 >= tol)
    if inside_extra is not None:
        inside &= inside_extra
    s = b0 * coef[:, 9:10] + b1 * coef[:, 10:11] + b2 * coef[:, 11:12]
    depth = 1.0 / s if perspective else s
    key = _depth_to_key(depth) | fidx[:, None]
    pix = base[:, None] + py * W + px
    keep = inside.reshape(-1).nonzero().squeeze(1)  # nonzero + index_select beats boolean masking
    zbuf.scatter_reduce_(0, pix.reshape(-1).index_select(0, keep), key.reshape(-1).index_select(0, keep),
                         reduce="amin", include_self=True)


def visibility_torch(verts_px: torch.Tensor, faces: torch.Tensor, image_size: tuple[int, int], *,
                     cull_backfaces: bool = True, near: float = 1e-3, perspective: bool = True,
                     max_candidates: int = 1 << 20) -> torch.Tensor:
    """Visibility pass of the torch backend: the visible triangle id per pixel.

    Args:
        verts_px: ``(B, V, 3)`` x, y in pixels and depth (camera z in metres when
            ``perspective``, any float otherwise; smaller is nearer).
        faces: ``(F, 3)`` int64.
        image_size: ``(H, W)``.
        cull_backfaces: drop triangles with a non-negative signed pixel area (back faces).
        near: with ``perspective``, drop triangles with a vertex at ``z <= near``.
        perspective: interpolate depth as 1/z (perspective) or linearly.
        max_candidates: bound on the number of candidate pixels processed at once.

    Returns:
        ``(B, H, W)`` int64 triangle ids, -1 for background. Never requires grad.
    """
    H, W = int(image_size[0]), int(image_size[1])
    B = verts_px.shape[0]
    dev = verts_px.device
    zbuf = torch.full((B * H * W,), _INT64_MAX, dtype=torch.int64, device=dev)
    with torch.no_grad():
        setup = _face_setup(verts_px.detach(), faces, (H, W), cull_backfaces, near, perspective)
        if setup is not None:
            coef, box, bidx, fidx = setup
            bw = box[:, 2] - box[:, 0] + 1
            bh = box[:, 3] - box[:, 1] + 1
            base = bidx * (H * W)
            ext = torch.maximum(bw, bh)
            done = torch.zeros_like(ext, dtype=torch.bool)
            # small triangles: fixed square stencils by broadcasting (no per-pixel gathers)
            for s in _STENCILS:
                m = (~done) & (ext <= s)
                done |= m
                idx = m.nonzero().squeeze(1)
                if idx.numel() == 0:
                    continue
                step = max(1, max_candidates // (s * s))
                off = torch.arange(s, device=dev)
                ox = off.repeat(s)[None, :]
                oy = off.repeat_interleave(s)[None, :]
                for c0 in range(0, idx.numel(), step):
                    ii = idx[c0:c0 + step]
                    bx = box.index_select(0, ii)
                    px = bx[:, 0:1] + ox
                    py = bx[:, 1:2] + oy
                    extra = (px <= bx[:, 2:3]) & (py <= bx[:, 3:4])
                    _zbuffer_update(zbuf, coef.index_select(0, ii), px, py, extra, base.index_select(0, ii),
                                    fidx.index_select(0, ii), W, perspective)
            # large triangles: flat candidate list in bounded chunks
            idx = (~done).nonzero().squeeze(1)
            if idx.numel():
                counts = (bw * bh)[idx]
                ends = counts.cumsum(0)
                total = int(ends[-1])
                starts = ends - counts
                for k0 in range(0, total, max_candidates):
                    k = torch.arange(k0, min(total, k0 + max_candidates), device=dev)
                    j = torch.searchsorted(ends, k, right=True)
                    off = k - starts[j]
                    ii = idx.index_select(0, j)
                    w = bw.index_select(0, ii)
                    bx = box.index_select(0, ii)
                    py = bx[:, 1] + torch.div(off, w, rounding_mode="floor")
                    px = bx[:, 0] + off % w
                    _zbuffer_update(zbuf, coef.index_select(0, ii), px[:, None], py[:, None], None,
                                    base.index_select(0, ii), fidx.index_select(0, ii), W, perspective)
    tri = torch.where(zbuf == _INT64_MAX, torch.full_like(zbuf, -1), zbuf & _FACE_MASK)
    return tri.view(B, H, W)


# --------------------------------------------------------------------------------------------
# differentiable barycentrics
# --------------------------------------------------------------------------------------------


def _bary_at_pixels(verts_px: torch.Tensor, faces: torch.Tensor, pix_index: torch.Tensor,
                    pix_face: torch.Tensor, image_size: tuple[int, int], perspective: bool):
    """Barycentrics ``(N, 3)`` and depth ``(N,)`` of pixel centres in given triangles. Differentiable."""
    H, W = image_size
    B, V, _ = verts_px.shape
    b = torch.div(pix_index, H * W, rounding_mode="floor")
    rem = pix_index - b * (H * W)
    row = torch.div(rem, W, rounding_mode="floor")
    col = rem - row * W
    vidx = faces.index_select(0, pix_face)  # (N, 3); index_select is much faster than fancy indexing
    if B > 1:
        vidx = vidx + (b * V)[:, None]
    tri = verts_px.reshape(B * V, 3).index_select(0, vidx.reshape(-1)).view(-1, 3, 3)  # (N, 3, 3)
    px = col.to(verts_px.dtype)
    py = row.to(verts_px.dtype)
    x0, x1, x2 = tri[:, 0, 0], tri[:, 1, 0], tri[:, 2, 0]
    y0, y1, y2 = tri[:, 0, 1], tri[:, 1, 1], tri[:, 2, 1]
    area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    w0 = ((x1 - px) * (y2 - py) - (x2 - px) * (y1 - py)) / area
    w1 = ((x2 - px) * (y0 - py) - (x0 - px) * (y2 - py)) / area
    w2 = ((x0 - px) * (y1 - py) - (x1 - px) * (y0 - py)) / area
    w = torch.stack([w0, w1, w2], dim=-1)
    z = tri[:, :, 2]
    if perspective:
        l = w / z
        s = l.sum(-1, keepdim=True)
        bary = l / s
        depth = 1.0 / s.squeeze(-1)
    else:
        bary = w
        depth = (w * z).sum(-1)
    return bary, depth


def fragments_from_tri_id(verts_px: torch.Tensor, faces: torch.Tensor, tri_id: torch.Tensor, *,
                          perspective: bool = True) -> Fragments:
    """Build differentiable :class:`Fragments` from a visibility map (any backend's ``tri_id``).

    Args:
        verts_px: ``(B, V, 3)`` x, y pixels and depth, as from :func:`project_to_px`.
        faces: ``(F, 3)`` int64.
        tri_id: ``(B, H, W)`` int64, -1 for background.
        perspective: perspective-correct barycentrics (True) or screen-space linear (False).
    """
    B, H, W = tri_id.shape
    flat = tri_id.reshape(-1)
    pix_index = (flat >= 0).nonzero().squeeze(1)
    pix_face = flat[pix_index]
    bary_p, depth_p = _bary_at_pixels(verts_px, faces, pix_index, pix_face, (H, W), perspective)
    bary = verts_px.new_zeros(B * H * W, 3).index_put((pix_index,), bary_p).view(B, H, W, 3)
    depth = verts_px.new_zeros(B * H * W).index_put((pix_index,), depth_p).view(B, H, W)
    return Fragments(tri_id=tri_id, bary=bary, depth=depth, verts_px=verts_px, pix_index=pix_index,
                     pix_face=pix_face, pix_bary=bary_p, image_size=(H, W), perspective=perspective)
