"""Analytic silhouette antialiasing (after nvdiffrast's ``antialias``, Laine et al. 2020).

For every pair of horizontally or vertically neighbouring pixels whose visible triangles differ,
the nearer triangle (or the only covered one) is the *foreground*. If one of its **silhouette
edges** (a mesh-boundary edge, or an edge whose neighbouring face faces the other way in the
image) crosses the segment between the two pixel centres, at distance ``u`` in [0, 1] from the
foreground pixel centre, and the edge is closer to perpendicular than to parallel to the pair
(so each edge is handled by horizontal *or* vertical pairs, never both, which would blend a
pixel twice and make the image jump when the edge crosses its centre), the colours are blended
as if each pixel were a box of width 1 along the pair's direction:

* ``u > 1/2``: the edge lies in the other pixel's half, which gets ``u - 1/2`` of the foreground colour;
* ``u < 1/2``: the foreground pixel gets ``1/2 - u`` of the other pixel's colour.

``u`` is computed from the projected vertex positions, so the output is differentiable w.r.t.
them: this is what gives silhouette gradients (a hard z-buffered image has none). Edges between
two faces that both face the camera are not silhouettes and are left sharp, so interior shading
is untouched. Contributions of a pixel's several pairs add up (as nvdiffrast's do).

If the foreground face's exit edge along the segment is not a silhouette, the search steps into
the neighbouring face (up to 8 faces, always moving away from the foreground pixel): thin faces
nearly edge-on to the camera may lie between the pixel centres without covering either, and the
silhouette is the outer edge of the last one.
Without this step the blending would switch off for such pairs and the image would jump.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ShapeError
from .fragments import Fragments

__all__ = ["antialias", "EdgeTopology", "edge_topology"]

# edge e of a face joins corners _E0[e] -> _E1[e]
_E0 = (0, 1, 2)
_E1 = (1, 2, 0)


@dataclass(frozen=True)
class EdgeTopology:
    """Face adjacency across edges. ``opposite (F, 3)`` int64: the face sharing edge
    ``(faces[f, e], faces[f, (e+1) % 3])`` of face ``f``, or -1 for a boundary edge."""

    opposite: torch.Tensor

    def to(self, device: torch.device | str) -> "EdgeTopology":
        return EdgeTopology(self.opposite.to(device))


def edge_topology(faces: torch.Tensor) -> EdgeTopology:
    """Compute :class:`EdgeTopology` of a triangle mesh (precompute it once per topology).

    Non-manifold edges (more than two faces) pair up consecutive faces in sorted order.

    >>> edge_topology(torch.tensor([[0, 1, 2], [2, 1, 3]])).opposite.tolist()
    [[-1, 1, -1], [0, -1, -1]]
    """
    if faces.dim() != 2 or faces.shape[1] != 3 or faces.dtype != torch.int64:
        raise ShapeError(f"edge_topology(): faces must be (F, 3) int64, got {tuple(faces.shape)} {faces.dtype}")
    F = faces.shape[0]
    a = faces[:, list(_E0)].reshape(-1)
    b = faces[:, list(_E1)].reshape(-1)
    n = int(faces.max()) + 1 if F else 1
    key = torch.minimum(a, b) * n + torch.maximum(a, b)
    ks, order = torch.sort(key, stable=True)
    opposite = torch.full((3 * F,), -1, dtype=torch.int64, device=faces.device)
    if F > 1:
        same = (ks[1:] == ks[:-1]).nonzero().squeeze(1)
        opposite[order[same]] = order[same + 1] // 3
        opposite[order[same + 1]] = order[same] // 3
    return EdgeTopology(opposite.view(F, 3))


#: how many faces the silhouette search may walk through from the foreground face
_MAX_WALK = 8


def _crossings(xy: torch.Tensor, faces: torch.Tensor, cur: torch.Tensor, b: torch.Tensor, V: int, along: int,
               across: int, c0: torch.Tensor, c1: torch.Tensor, p_fg: torch.Tensor) -> torch.Tensor:
    """Where each edge of face ``cur`` crosses the pair's segment, as the distance ``u`` from the
    foreground pixel centre (NaN where the edge does not straddle the segment's line), and
    whether the edge is steeper across the pair's direction than along it (``(M, 3)`` each)."""
    fc = faces.index_select(0, cur) + (b * V)[:, None]
    ia = fc[:, list(_E0)].reshape(-1)
    ib = fc[:, list(_E1)].reshape(-1)
    A = xy.index_select(0, ia).view(-1, 3, 2)  # (M, 3, 2)
    Bv = xy.index_select(0, ib).view(-1, 3, 2)
    a_al, a_ac = A[..., along], A[..., across]
    b_al, b_ac = Bv[..., along], Bv[..., across]
    straddle = (a_ac > c1[:, None]) != (b_ac > c1[:, None])  # half-open: robust at vertices
    den = torch.where(straddle, b_ac - a_ac, torch.ones_like(b_ac))
    t = a_al + (c1[:, None] - a_ac) * (b_al - a_al) / den - c0[:, None]  # 0 at p, 1 at q
    u = torch.where(p_fg[:, None], t, 1.0 - t)
    d_al, d_ac = (b_al - a_al).abs(), (b_ac - a_ac).abs()
    steep = d_ac >= d_al if along == 0 else d_ac > d_al  # 45 degrees: horizontal pairs only
    return torch.where(straddle, u, torch.full_like(u, float("nan"))), steep


def _pairs(tri_id: torch.Tensor, depth_key: torch.Tensor, dim: int):
    """Flat indices of neighbouring pixel pairs (p, q = p + step) with different triangles, the
    foreground flag (True: p is foreground) and the foreground triangle id."""
    B, H, W = tri_id.shape
    n = tri_id.shape[dim]
    a = tri_id.narrow(dim, 0, n - 1)
    b = tri_id.narrow(dim, 1, n - 1)
    diff = (a != b).reshape(-1)
    idx = diff.nonzero().squeeze(1)
    # flat index of p in the full image
    if dim == 2:  # horizontal: shape (B, H, W-1)
        w1 = W - 1
        bh = torch.div(idx, w1, rounding_mode="floor")
        col = idx - bh * w1
        p = bh * W + col
        step = 1
    else:  # vertical: shape (B, H-1, W)
        hw1 = (H - 1) * W
        bb = torch.div(idx, hw1, rounding_mode="floor")
        p = idx + bb * W
        step = W
    q = p + step
    tp = tri_id.reshape(-1)[p]
    tq = tri_id.reshape(-1)[q]
    dp = depth_key.reshape(-1)[p]
    dq = depth_key.reshape(-1)[q]
    p_fg = (tq < 0) | ((tp >= 0) & (dp <= dq))
    f = torch.where(p_fg, tp, tq)
    return p, q, p_fg, f


def antialias(color: torch.Tensor, fragments: Fragments, verts_px: torch.Tensor, faces: torch.Tensor, *,
              topology: EdgeTopology | None = None) -> torch.Tensor:
    """Blend colours across silhouette edges by the analytic edge position (see module docstring).

    Args:
        color: ``(B, H, W, C)`` rendered image (already composited over the background).
        fragments: the fragments ``color`` was rendered from.
        verts_px: ``(B, V, 2 or 3)`` projected vertices in pixels, usually ``fragments.verts_px``
            (gradients flow into it).
        faces: ``(F, 3)`` int64, as rasterised.
        topology: :func:`edge_topology` of ``faces``; computed here when None (precompute it
            when rendering the same topology repeatedly).

    Returns:
        ``(B, H, W, C)`` antialiased colours, differentiable w.r.t. ``color`` and ``verts_px``.

    Raises:
        ShapeError: on shape mismatch.
    """
    B, H, W = fragments.tri_id.shape
    if color.dim() != 4 or color.shape[:3] != (B, H, W):
        raise ShapeError(f"antialias(): color must be ({B}, {H}, {W}, C), got {tuple(color.shape)}")
    if verts_px.dim() != 3 or verts_px.shape[0] != B or verts_px.shape[2] not in (2, 3):
        raise ShapeError(f"antialias(): verts_px must be ({B}, V, 2|3), got {tuple(verts_px.shape)}")
    if faces.dim() != 2 or faces.shape[1] != 3 or faces.dtype != torch.int64:
        raise ShapeError(f"antialias(): faces must be (F, 3) int64, got {tuple(faces.shape)} {faces.dtype}")
    if topology is None:
        topology = edge_topology(faces)
    if topology.opposite.shape != faces.shape:
        raise ShapeError(f"antialias(): topology is for {tuple(topology.opposite.shape)} faces, got {tuple(faces.shape)}")
    C = color.shape[-1]
    V = verts_px.shape[1]
    tri_id = fragments.tri_id
    xy = verts_px[..., :2]
    with torch.no_grad():
        inf = torch.tensor(float("inf"), dtype=fragments.depth.dtype, device=color.device)
        depth_key = torch.where(tri_id >= 0, fragments.depth.detach(), inf)
        # facing of every face in every image: sign of the signed pixel area
        tri = xy.detach()[:, faces]  # (B, F, 3, 2)
        e1 = tri[:, :, 1] - tri[:, :, 0]
        e2 = tri[:, :, 2] - tri[:, :, 0]
        facing = (e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0]) < 0  # (B, F) True = front
    out = color.reshape(B * H * W, C)
    xyf = xy.reshape(B * V, 2)
    xyd = xyf.detach()
    deltas_idx = []
    deltas_val = []
    for dim in (2, 1):
        if tri_id.shape[dim] < 2:
            continue
        with torch.no_grad():
            p, q, p_fg, f = _pairs(tri_id, depth_key, dim)
            if p.numel() == 0:
                continue
            b = torch.div(p, H * W, rounding_mode="floor")
            rem = p - b * (H * W)
            row = torch.div(rem, W, rounding_mode="floor").to(xy.dtype)
            col = (rem % W).to(xy.dtype)
            # the segment between the pixel centres: c1 constant across, c0 -> c0 + 1 along
            if dim == 2:
                along, across, c0, c1 = 0, 1, col, row
            else:
                along, across, c0, c1 = 1, 0, row, col
            other = torch.where(p_fg, tri_id.reshape(-1)[q], tri_id.reshape(-1)[p])
            # Walk from the foreground face along the segment, away from the foreground pixel:
            # take the face's exit edge; stop there if it is a silhouette, otherwise step into
            # the neighbour (this handles thin faces that just turned to face the camera).
            res_face = torch.full_like(f, -1)
            res_edge = torch.zeros_like(f)
            # most differing pairs lie inside the surface, across an edge shared by two faces
            # with the same facing: nothing to do there
            other_c = other.clamp(min=0)
            interior = (other >= 0) & (topology.opposite[f] == other[:, None]).any(1) & (facing[b, f] == facing[b, other_c])
            idx = (~interior).nonzero().squeeze(1)  # pairs still walking (compacted each step)
            cur = f[idx]
            u_in = torch.full_like(c0[idx], -1.0)  # where the walk entered the current face
            for _ in range(_MAX_WALK):
                if idx.numel() == 0:
                    break
                bi, pf = b[idx], p_fg[idx]
                u, steep = _crossings(xyd, faces, cur, bi, V, along, across, c0[idx], c1[idx], pf)  # (m, 3)
                valid = ~torch.isnan(u) & (u >= 0) & (u <= 1) & (u > u_in[:, None])
                has = valid.any(1)
                e = torch.where(valid, u, torch.full_like(u, -1.0)).argmax(1)
                opp = topology.opposite[cur, e]
                sil = (opp < 0) | (facing[bi, opp.clamp(min=0)] != facing[bi, cur])
                steep_e = steep.gather(1, e[:, None]).squeeze(1)
                found = has & sil & steep_e
                res_face[idx[found]] = cur[found]
                res_edge[idx[found]] = e[found]
                cont = has & ~sil & (opp != other[idx])
                u_in = u.gather(1, e[:, None]).squeeze(1)[cont]
                idx, cur = idx[cont], opp[cont]
            sel = (res_face >= 0).nonzero().squeeze(1)
        if sel.numel() == 0:
            continue
        # differentiable crossing on the selected silhouette edges
        fs, es, bs = res_face[sel], res_edge[sel], b[sel]
        ia = faces[fs, torch.as_tensor(_E0, device=faces.device)[es]] + bs * V
        ib = faces[fs, torch.as_tensor(_E1, device=faces.device)[es]] + bs * V
        A = xyf[ia]
        Bv = xyf[ib]
        c0s, c1s = c0[sel], c1[sel]
        t = A[:, along] + (c1s - A[:, across]) * (Bv[:, along] - A[:, along]) / (Bv[:, across] - A[:, across]) - c0s
        pf = p_fg[sel]
        u = torch.where(pf, t, 1.0 - t)  # distance from the foreground pixel centre, in [0, 1]
        ps, qs = p[sel], q[sel]
        fg_pix = torch.where(pf, ps, qs)
        bg_pix = torch.where(pf, qs, ps)
        far = u > 0.5  # edge in the background pixel's half
        tgt = torch.where(far, bg_pix, fg_pix)
        src = torch.where(far, fg_pix, bg_pix)
        wgt = (u - 0.5).abs()
        deltas_idx.append(tgt)
        deltas_val.append(wgt[:, None].to(color.dtype) * (out[src] - out[tgt]))
    if not deltas_idx:
        return color
    res = out.index_add(0, torch.cat(deltas_idx), torch.cat(deltas_val))
    return res.view(B, H, W, C)
