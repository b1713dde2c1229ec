"""Mesh geometry shared by several packages (one implementation each)."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["mesh_boundary_vertices"]


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
