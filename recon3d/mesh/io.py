"""Deprecated alias of :mod:`recon3d.io.mesh` (and :class:`recon3d.structures.Mesh`), kept for one release."""

from __future__ import annotations

import warnings

from ..io.mesh import MESH_FORMATS, MeshFileError, load_mesh, save_mesh, split_uv_seams
from ..structures.mesh import Mesh

warnings.warn("recon3d.mesh.io is deprecated: use recon3d.io.mesh (and recon3d.structures.Mesh)",
              DeprecationWarning, stacklevel=2)

__all__ = ["Mesh", "MeshFileError", "save_mesh", "load_mesh", "split_uv_seams", "MESH_FORMATS"]
