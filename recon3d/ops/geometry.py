"""Mesh geometry shared by several packages: per-face and per-vertex normals, open-boundary vertices.

Faces are ``(F, 3)`` int64, 0-based, counter-clockwise seen from outside
(see :mod:`recon3d.conventions`), so the normals computed here point outwards. All functions
are pure, batch-first and differentiable, and follow the input's dtype and device.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from .._checks import check_float, check_shapes
from ..errors import ShapeError

__all__ = ["face_normals", "vertex_normals", "mesh_boundary_vertices"]

log = logging.getLogger(__name__)


def _check_faces(where: str, faces: torch.Tensor, n_verts: int) -> None:
    if faces.dtype not in (torch.int64, torch.int32):
        raise ShapeError(f"{where}: faces must be an int64 tensor, got {faces.dtype}")
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= n_verts):
        raise ShapeError(
            f"{where}: faces index out of range [0, {n_verts}), got [{int(faces.min())}, {int(faces.max())}]"
        )


def _face_cross(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """``(v1 - v0) x (v2 - v0)`` per face, ``(B, F, 3)``; its norm is twice the face area."""
    v0 = verts[:, faces[:, 0]]
    v1 = verts[:, faces[:, 1]]
    v2 = verts[:, faces[:, 2]]
    return torch.linalg.cross(v1 - v0, v2 - v0, dim=-1)


def face_normals(verts: torch.Tensor, faces: torch.Tensor, *, eps: float = 1e-12) -> torch.Tensor:
    """Unit outward normals of each face.

    Args:
        verts: ``(B, V, 3)`` float vertex positions (any frame; the normals are in the same frame).
        faces: ``(F, 3)`` int64, CCW seen from outside.
        eps: lower bound of the norm, so degenerate faces give a zero vector instead of NaN.

    Returns:
        ``(B, F, 3)`` unit normals (zero for degenerate faces).

    Raises:
        ShapeError: on wrong shapes, dtypes or out-of-range face indices.

    >>> v = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0]]])
    >>> face_normals(v, torch.tensor([[0, 1, 2]])).tolist()
    [[[0.0, 0.0, 1.0]]]
    """
    check_shapes("face_normals()", verts=(verts, "B V 3"), faces=(faces, "F 3"))
    check_float("face_normals()", verts=verts)
    _check_faces("face_normals()", faces, verts.shape[1])
    n = _face_cross(verts, faces)
    return n / n.norm(dim=-1, keepdim=True).clamp(min=eps)


def vertex_normals(verts: torch.Tensor, faces: torch.Tensor, *, eps: float = 1e-12) -> torch.Tensor:
    """Area-weighted, normalised vertex normals.

    Each vertex normal is the sum of the (unnormalised) cross products of its incident faces,
    i.e. face normals weighted by twice their area, then normalised. Vertices that belong to no
    face get a zero vector.

    Args:
        verts: ``(B, V, 3)`` float vertex positions (any frame; the normals are in the same frame).
        faces: ``(F, 3)`` int64, CCW seen from outside.
        eps: lower bound of the norm before normalising.

    Returns:
        ``(B, V, 3)`` unit normals.

    Raises:
        ShapeError: on wrong shapes, dtypes or out-of-range face indices.

    >>> v = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, -1]]])
    >>> vertex_normals(v, torch.tensor([[0, 1, 2]]))[0, :3].tolist()
    [[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]
    """
    check_shapes("vertex_normals()", verts=(verts, "B V 3"), faces=(faces, "F 3"))
    check_float("vertex_normals()", verts=verts)
    _check_faces("vertex_normals()", faces, verts.shape[1])
    B, V, _ = verts.shape
    n = _face_cross(verts, faces)  # (B, F, 3)
    idx = faces.reshape(-1).to(torch.int64)  # (3F,)
    contrib = n.repeat_interleave(3, dim=1)  # (B, 3F, 3) in the order of idx
    acc = verts.new_zeros(B, V, 3).index_add(1, idx, contrib)
    return acc / acc.norm(dim=-1, keepdim=True).clamp(min=eps)


def mesh_boundary_vertices(faces: torch.Tensor | np.ndarray) -> np.ndarray:
    """Indices of vertices on the mesh's open boundary (edges used by exactly one triangle).

    >>> mesh_boundary_vertices(np.array([[0, 1, 2], [1, 3, 2]])).tolist()
    [0, 1, 2, 3]
    """
    f = (faces.detach().cpu().numpy() if isinstance(faces, torch.Tensor) else np.asarray(faces)).astype(np.int64)
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]], 0)
    e = np.sort(e, axis=1)
    uniq, counts = np.unique(e, axis=0, return_counts=True)
    return np.unique(uniq[counts == 1].ravel())
