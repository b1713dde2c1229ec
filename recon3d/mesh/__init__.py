"""recon3d.mesh: mesh geometry (normals) and mesh file I/O (OBJ/MTL/PNG, PLY, GLB)."""

from __future__ import annotations

from .io import MESH_FORMATS, Mesh, MeshFileError, load_mesh, save_mesh, split_uv_seams

__all__ = ["Mesh", "MeshFileError", "MESH_FORMATS", "save_mesh", "load_mesh", "split_uv_seams"]

try:  # written in parallel by the renderer work; optional until it lands
    from .geometry import face_normals, vertex_normals
except ImportError:  # pragma: no cover
    pass
else:
    __all__ += ["face_normals", "vertex_normals"]
