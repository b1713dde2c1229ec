"""Read and write triangle meshes: OBJ (+ MTL + PNG texture), PLY and GLB.

The in-memory type is :class:`recon3d.structures.Mesh` (numpy arrays in recon3d's conventions).
The formats live in :mod:`recon3d.io._obj` and :mod:`recon3d.io._ply_glb`.

Vertex order is the 3DMM's vertex order and is kept exactly by OBJ and PLY (own writers, own OBJ
parser, trimesh with ``process=False`` for reading PLY/GLB). GLB stores one UV per vertex, so
when ``uv_faces`` differs from ``faces`` the vertices are split at UV seams on export and the
vertex order of the file is then no longer the mesh's; it is kept exactly when ``uv_faces`` equals
``faces``.

All writes are atomic: each file is written to a temporary name in the target folder and renamed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..errors import AssetError, ShapeError
from ..structures.mesh import Mesh
from ._mesh_util import MESH_FORMATS, MeshFileError, _format_of
from ._obj import _load_obj, _write_obj
from ._ply_glb import _load_glb, _load_ply, _write_glb, _write_ply, split_uv_seams

__all__ = ["Mesh", "MeshFileError", "save_mesh", "load_mesh", "split_uv_seams", "MESH_FORMATS"]

log = logging.getLogger(__name__)


def save_mesh(
    path: str | os.PathLike[str],
    mesh: Mesh,
    *,
    format: str | None = None,
    texture_name: str | None = None,
    binary: bool = True,
) -> list[Path]:
    """Write a mesh to OBJ (+ MTL + PNG texture), PLY or GLB; every file is written atomically.

    * OBJ keeps the vertex order, writes ``v`` (with ``r g b`` when ``vert_colors`` is set), ``vt``,
      ``vn``, ``f v/vt[/vn]``; with a texture also ``<stem>.mtl`` (``map_Kd``) and the PNG
      ``texture_name`` (default ``<stem>_texture.png``) next to it.
    * PLY keeps the vertex order, writes float32 positions, normals and uint8 vertex colours (no UVs
      or texture).
    * GLB (via trimesh, ``process=False``) embeds the texture as PNG (or vertex colours). Vertices
      are split at UV seams when ``uv_faces`` differs from ``faces`` (see :func:`split_uv_seams`);
      the vertex order is kept only when they are equal.

    Args:
        path: target file; its suffix picks the format unless ``format`` is given.
        mesh: the mesh.
        format: ``"obj"``, ``"ply"`` or ``"glb"``; default from the suffix.
        texture_name: file name of the OBJ texture PNG, in the OBJ's folder.
        binary: PLY only: binary little-endian (default) or ASCII.

    Returns:
        The paths written, the mesh file first.

    Raises:
        MeshFileError: unknown format or bad ``texture_name``.
        ShapeError: ``mesh`` is not a :class:`Mesh`.
    """
    if not isinstance(mesh, Mesh):
        raise ShapeError(f"save_mesh(): mesh must be a recon3d.structures.Mesh, got {type(mesh).__name__}")
    path = Path(path)
    fmt = _format_of(path, format)
    if fmt == "obj":
        written = _write_obj(path, mesh, texture_name)
    elif fmt == "ply":
        written = _write_ply(path, mesh, binary)
    else:
        written = _write_glb(path, mesh)
    log.debug("save_mesh(): wrote %s", ", ".join(map(str, written)))
    return written


def load_mesh(path: str | os.PathLike[str], *, format: str | None = None) -> Mesh:
    """Read a mesh written by :func:`save_mesh` (or another tool) back, keeping the vertex order.

    OBJ is read by recon3d's own parser (``v`` with optional colours, ``vt``, ``vn``, polygon faces
    fan-triangulated, negative indices, ``mtllib``/``usemtl``/``map_Kd``). PLY and GLB are read by
    trimesh with ``process=False``. A missing MTL or texture file gives a ``warnings.warn`` and a
    mesh without texture.

    Args:
        path: the mesh file.
        format: ``"obj"``, ``"ply"`` or ``"glb"``; default from the suffix.

    Returns:
        The :class:`Mesh`.

    Raises:
        AssetError: the file does not exist.
        MeshFileError: the file is corrupt (including NaN/Inf vertices, UVs or normals) or of an
            unknown format (the message names the file).
    """
    path = Path(path)
    fmt = _format_of(path, format)
    if not path.is_file():
        raise AssetError(f"load_mesh(): mesh file {path} not found")
    try:
        if fmt == "obj":
            mesh = _load_obj(path)
        elif fmt == "ply":
            mesh = _load_ply(path)
        else:
            mesh = _load_glb(path)
    except ShapeError as e:
        raise MeshFileError(f"{path}: inconsistent mesh data ({e})") from None
    for what, a in (("vertex coordinates", mesh.verts), ("texture coordinates", mesh.uv), ("normals", mesh.normals)):
        if a is not None and not np.isfinite(np.asarray(a, dtype=np.float64)).all():
            bad = int((~np.isfinite(np.asarray(a, dtype=np.float64))).any(-1).sum())
            raise MeshFileError(f"{path}: {bad} {what} are NaN or Inf; the mesh is corrupt")
    return mesh
