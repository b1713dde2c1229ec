"""Deprecated: ``recon3d.mesh`` is no longer a home. :class:`Mesh` is in :mod:`recon3d.structures`,
mesh file I/O in :mod:`recon3d.io.mesh`, normals in :mod:`recon3d.ops.geometry`. Re-exported here
for one release."""

from __future__ import annotations

import warnings

from ..io.mesh import MESH_FORMATS, MeshFileError, load_mesh, save_mesh, split_uv_seams
from ..ops.geometry import face_normals, vertex_normals
from ..structures.mesh import Mesh

warnings.warn("recon3d.mesh is deprecated: use recon3d.structures.Mesh, recon3d.io.mesh and recon3d.ops.geometry",
              DeprecationWarning, stacklevel=2)

__all__ = ["Mesh", "MeshFileError", "MESH_FORMATS", "save_mesh", "load_mesh", "split_uv_seams",
           "face_normals", "vertex_normals"]
