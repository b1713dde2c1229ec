"""Open3D helpers for the viewers: import guard and geometry builders.

Open3D is optional (``pip install -e .[viewer]``) and imported only inside these functions.
All inputs are numpy arrays in recon3d's conventions (model frame, metres; UV origin bottom-left);
the one UV flip Open3D needs goes through :func:`recon3d.conventions.uv_obj_to_open3d`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recon3d.conventions import uv_obj_to_open3d
from recon3d.errors import BackendUnavailableError
from recon3d.structures.mesh import Mesh

INSTALL_HINT = "the viewer needs Open3D: pip install -e .[viewer]"


def import_open3d() -> Any:
    """Import and return the ``open3d`` module.

    Raises:
        BackendUnavailableError: Open3D is missing or cannot load (the message says how to fix it).
    """
    try:
        import open3d as o3d
    except ImportError as e:
        msg = f"{INSTALL_HINT} ({e})"
        if "libusb" in str(e):
            msg += "; on Debian/Ubuntu also: apt-get install libusb-1.0-0"
        raise BackendUnavailableError(msg) from e
    return o3d


def to_uint8_image(img: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` float [0, 1] (or uint8) to a C-contiguous uint8 array."""
    if img.dtype == np.uint8:
        return np.ascontiguousarray(img)
    return np.ascontiguousarray((np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))


def textured_mesh(
    verts: np.ndarray,
    mesh: Mesh,
    texture: np.ndarray | None = None,
    *,
    normals: np.ndarray | None = None,
    fallback_color: tuple[float, float, float] = (0.8, 0.65, 0.55),
) -> Any:
    """Build an Open3D ``TriangleMesh`` with a real texture (per-corner UVs, one material).

    Args:
        verts: ``(V, 3)`` positions to use (e.g. ``mesh.verts`` rotated).
        mesh: topology, UVs and (fallback) vertex colours.
        texture: ``(Ht, Wt, 3)`` texture to show instead of ``mesh.texture``.
        normals: ``(V, 3)`` vertex normals; computed by Open3D when None.
        fallback_color: uniform colour when there is neither texture nor vertex colours.

    Returns:
        ``open3d.geometry.TriangleMesh``.
    """
    o3d = import_open3d()
    m = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(np.asarray(verts, dtype=np.float64)),
        o3d.utility.Vector3iVector(mesh.faces.astype(np.int32)),
    )
    tex = texture if texture is not None else mesh.texture
    if mesh.uv is not None and tex is not None:
        corner_uv = mesh.uv[mesh.uv_faces.reshape(-1)].astype(np.float64)
        m.triangle_uvs = o3d.utility.Vector2dVector(uv_obj_to_open3d(corner_uv))
        m.textures = [o3d.geometry.Image(to_uint8_image(tex))]
        m.triangle_material_ids = o3d.utility.IntVector(np.zeros(mesh.n_faces, dtype=np.int32))
    elif mesh.vert_colors is not None:
        m.vertex_colors = o3d.utility.Vector3dVector(mesh.vert_colors.astype(np.float64))
    else:
        m.paint_uniform_color(list(fallback_color))
    if normals is not None:
        m.vertex_normals = o3d.utility.Vector3dVector(np.asarray(normals, dtype=np.float64))
    else:
        m.compute_vertex_normals()
    return m


def line_set(points: np.ndarray, lines: np.ndarray, color: tuple[float, float, float]) -> Any:
    """An Open3D ``LineSet`` with one colour."""
    o3d = import_open3d()
    ls = o3d.geometry.LineSet(
        o3d.utility.Vector3dVector(np.asarray(points, dtype=np.float64)),
        o3d.utility.Vector2iVector(np.asarray(lines, dtype=np.int32)),
    )
    ls.paint_uniform_color(list(color))
    return ls


def wireframe(verts: np.ndarray, faces: np.ndarray, color: tuple[float, float, float] = (0.1, 0.1, 0.1)) -> Any:
    """Unique triangle edges as a ``LineSet``."""
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    e = np.unique(np.sort(e, axis=1), axis=0)
    return line_set(verts, e, color)


def normal_lines(
    verts: np.ndarray, normals: np.ndarray, length: float, *, max_lines: int = 6000,
    color: tuple[float, float, float] = (0.1, 0.3, 1.0),
) -> Any:
    """Vertex normals as line segments ``v -> v + length * n`` (at most ``max_lines``, evenly subsampled)."""
    idx = np.arange(len(verts))
    if len(idx) > max_lines:
        idx = idx[:: int(np.ceil(len(idx) / max_lines))]
    n = normals[idx] / np.maximum(np.linalg.norm(normals[idx], axis=1, keepdims=True), 1e-12)
    pts = np.concatenate([verts[idx], verts[idx] + length * n])
    k = len(idx)
    lines = np.stack([np.arange(k), np.arange(k) + k], axis=1)
    return line_set(pts, lines, color)


def spheres(centers: np.ndarray, radius: float, color: tuple[float, float, float] = (1.0, 0.1, 0.1)) -> Any:
    """Small spheres at ``centers (N, 3)`` merged into one ``TriangleMesh``."""
    o3d = import_open3d()
    unit = o3d.geometry.TriangleMesh.create_sphere(radius=radius, resolution=6)
    uv = np.asarray(unit.vertices)
    tri = np.asarray(unit.triangles)
    n = len(centers)
    verts = (uv[None] + np.asarray(centers)[:, None]).reshape(-1, 3)
    faces = (tri[None] + (np.arange(n) * len(uv))[:, None, None]).reshape(-1, 3)
    m = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(verts), o3d.utility.Vector3iVector(faces))
    m.paint_uniform_color(list(color))
    m.compute_vertex_normals()
    return m


def image_quad(corners: np.ndarray, image: np.ndarray) -> Any:
    """A textured rectangle showing ``image``.

    Args:
        corners: ``(4, 3)`` positions of the image's top-left, top-right, bottom-right and
            bottom-left corners.
        image: ``(H, W, 3)`` float [0, 1] or uint8, row 0 at the top.
    """
    uv = np.array([[0.0, 1.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0]])  # OBJ convention
    quad = Mesh(verts=corners, faces=[[0, 3, 2], [0, 2, 1]], uv=uv, texture=np.zeros((1, 1, 3)))
    return textured_mesh(corners, quad, to_uint8_image(image))
