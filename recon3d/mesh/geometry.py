"""Deprecated alias of :mod:`recon3d.ops.geometry` (face and vertex normals), kept for one release."""

from __future__ import annotations

import warnings

from ..ops.geometry import face_normals, vertex_normals

warnings.warn("recon3d.mesh.geometry is deprecated: use recon3d.ops.geometry", DeprecationWarning, stacklevel=2)

__all__ = ["face_normals", "vertex_normals"]
