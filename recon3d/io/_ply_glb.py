"""PLY and GLB reading and writing for :mod:`recon3d.io.mesh` (trimesh with ``process=False``), and
the UV-seam split GLB needs."""

from __future__ import annotations

import logging
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ShapeError
from ..structures.mesh import Mesh
from ._mesh_util import MeshFileError, _atomic, _colors_to_uint8, _texture_to_uint8

__all__ = ["split_uv_seams"]

log = logging.getLogger(__name__)


def _write_ply(path: Path, mesh: Mesh, binary: bool) -> list[Path]:
    V, F = mesh.n_verts, mesh.n_faces
    props = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if mesh.normals is not None:
        props += [("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")]
    if mesh.vert_colors is not None:
        props += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    vdata = np.zeros(V, dtype=props)
    vdata["x"], vdata["y"], vdata["z"] = mesh.verts.T
    if mesh.normals is not None:
        vdata["nx"], vdata["ny"], vdata["nz"] = mesh.normals.T
    if mesh.vert_colors is not None:
        c = _colors_to_uint8(mesh.vert_colors)
        vdata["red"], vdata["green"], vdata["blue"] = c.T
    ply_type = {"<f4": "float", "u1": "uchar"}
    header = ["ply", f"format {'binary_little_endian' if binary else 'ascii'} 1.0", "comment recon3d mesh",
              f"element vertex {V}"]
    header += [f"property {ply_type[t]} {n}" for n, t in props]
    header += [f"element face {F}", "property list uchar int vertex_indices", "end_header"]
    with _atomic(path) as f:
        f.write(("\n".join(header) + "\n").encode("ascii"))
        if binary:
            f.write(vdata.tobytes())
            fdata = np.zeros(F, dtype=[("n", "u1"), ("idx", "<i4", (3,))])
            fdata["n"] = 3
            fdata["idx"] = mesh.faces
            f.write(fdata.tobytes())
        else:
            rows = []
            for r in vdata:
                rows.append(" ".join(("%.9g" % r[n]) if t == "<f4" else str(int(r[n])) for n, t in props))
            rows.extend("3 {} {} {}".format(*fv) for fv in mesh.faces.tolist())
            f.write(("\n".join(rows) + "\n").encode("ascii"))
    return [path]


def _trimesh_load(path: Path) -> Any:
    try:
        import trimesh
    except ImportError as e:  # pragma: no cover - trimesh is a core dependency
        raise MeshFileError(f"{path}: reading this format needs trimesh (pip install trimesh)") from e
    try:
        loaded = trimesh.load(str(path), process=False, maintain_order=True)
    except Exception as e:  # trimesh raises many types on bad input
        raise MeshFileError(f"{path}: cannot read mesh ({type(e).__name__}: {e})") from None
    if isinstance(loaded, trimesh.Scene):
        geoms = [g for g in loaded.geometry.values() if isinstance(g, trimesh.Trimesh)]
        if not geoms:
            raise MeshFileError(f"{path}: no triangle mesh in the file")
        if len(geoms) > 1:
            warnings.warn(f"{path}: {len(geoms)} meshes in the scene; using the first one", stacklevel=3)
        loaded = geoms[0]
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.vertices) == 0:
        raise MeshFileError(f"{path}: no triangle mesh in the file")
    return loaded


def _ply_has_normals(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(4096)
    end = head.find(b"end_header")
    return end >= 0 and b" nx\n" in head[:end]


def _load_ply(path: Path) -> Mesh:
    with open(path, "rb") as f:
        if f.read(3) != b"ply":
            raise MeshFileError(f"{path}: not a PLY file (missing 'ply' magic)")
    tm = _trimesh_load(path)
    colors = None
    vc = getattr(tm.visual, "vertex_colors", None) if tm.visual.kind == "vertex" else None
    if vc is not None and len(vc) == len(tm.vertices):
        colors = np.asarray(vc[:, :3], dtype=np.float32) / 255.0
    normals = np.asarray(tm.vertex_normals) if _ply_has_normals(path) else None
    return Mesh(verts=np.asarray(tm.vertices), faces=np.asarray(tm.faces), vert_colors=colors, normals=normals)


# ---------------------------------------------------------------------------------------------- GLB


def split_uv_seams(mesh: Mesh) -> tuple[Mesh, np.ndarray]:
    """Give every vertex exactly one UV by duplicating vertices along UV seams.

    Needed by formats with a single index buffer (glTF/GLB). When ``mesh.uv_faces`` equals
    ``mesh.faces`` nothing is split and the vertex order is kept.

    Args:
        mesh: a mesh with ``uv``.

    Returns:
        ``(split, src)``: the split mesh (``uv_faces == faces``) and ``src (V',)`` int64, the
        original vertex index of each new vertex (the first ``V`` entries are ``arange(V)`` for
        vertices that are used, in order).

    Raises:
        ShapeError: when the mesh has no UVs.

    >>> m = Mesh(verts=np.eye(3), faces=[[0, 1, 2]], uv=[[0, 0], [1, 0], [0, 1], [1, 1]], uv_faces=[[0, 1, 3]])
    >>> s, src = split_uv_seams(m)
    >>> s.n_verts, src.tolist(), s.uv[s.faces[0]].tolist()
    (3, [0, 1, 2], [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    """
    if mesh.uv is None:
        raise ShapeError("split_uv_seams(): mesh has no uv")
    if not mesh.has_seams:
        return mesh, np.arange(mesh.n_verts, dtype=np.int64)
    V = mesh.n_verts
    pairs = np.stack([mesh.faces.reshape(-1), mesh.uv_faces.reshape(-1)], axis=1)  # (3F, 2)
    # first choice of uv per vertex keeps the vertex's index; other (v, vt) pairs get new indices
    first_uv = np.full(V, -1, dtype=np.int64)
    order = np.arange(len(pairs))[::-1]
    first_uv[pairs[order, 0]] = pairs[order, 1]  # the earliest corner wins (written last)
    used = first_uv >= 0
    new_index = {}
    extra_src: list[int] = []
    extra_uv: list[int] = []
    corner_idx = np.empty(len(pairs), dtype=np.int64)
    for k, (v, t) in enumerate(pairs.tolist()):
        if first_uv[v] == t:
            corner_idx[k] = v
            continue
        key = (v, t)
        if key not in new_index:
            new_index[key] = V + len(extra_src)
            extra_src.append(v)
            extra_uv.append(t)
        corner_idx[k] = new_index[key]
    src = np.concatenate([np.arange(V), np.asarray(extra_src, dtype=np.int64)])
    uv_idx = np.concatenate([np.where(used, first_uv, 0), np.asarray(extra_uv, dtype=np.int64)])
    faces = corner_idx.reshape(-1, 3)
    split = Mesh(
        verts=mesh.verts[src], faces=faces, uv=mesh.uv[uv_idx], uv_faces=faces, texture=mesh.texture,
        vert_colors=None if mesh.vert_colors is None else mesh.vert_colors[src],
        normals=None if mesh.normals is None else mesh.normals[src],
    )
    return split, src


def _write_glb(path: Path, mesh: Mesh) -> list[Path]:
    import trimesh
    from PIL import Image

    m = mesh
    if m.uv is not None:
        if m.has_seams:
            log.debug("save_mesh(): splitting UV seams for GLB (%d verts before)", m.n_verts)
        m, _ = split_uv_seams(m)
    visual = None
    if m.uv is not None:
        image = Image.fromarray(_texture_to_uint8(m.texture), "RGB") if m.texture is not None else None
        material = trimesh.visual.material.PBRMaterial(
            baseColorTexture=image, baseColorFactor=[255, 255, 255, 255], metallicFactor=0.0, roughnessFactor=1.0,
        )
        # trimesh's TextureVisuals uses the OBJ convention and applies uv_obj_to_gltf itself on export
        visual = trimesh.visual.TextureVisuals(uv=m.uv, material=material)
    elif m.vert_colors is not None:
        visual = trimesh.visual.ColorVisuals(vertex_colors=_colors_to_uint8(m.vert_colors))
    tm = trimesh.Trimesh(
        vertices=m.verts.astype(np.float64), faces=m.faces, vertex_normals=m.normals, visual=visual, process=False
    )
    data = tm.export(file_type="glb", include_normals=m.normals is not None)
    with _atomic(path) as f:
        f.write(data)
    return [path]


def _load_glb(path: Path) -> Mesh:
    with open(path, "rb") as f:
        head = f.read(12)
    if len(head) < 12 or head[:4] != b"glTF":
        raise MeshFileError(f"{path}: not a GLB file (missing 'glTF' magic)")
    (length,) = struct.unpack("<I", head[8:12])
    if length != path.stat().st_size:
        raise MeshFileError(f"{path}: truncated GLB ({path.stat().st_size} bytes, header says {length})")
    tm = _trimesh_load(path)
    uv = texture = colors = None
    vis = tm.visual
    if vis.kind == "texture" and getattr(vis, "uv", None) is not None and len(vis.uv) == len(tm.vertices):
        uv = np.asarray(vis.uv)
        img = getattr(vis.material, "baseColorTexture", None)  # (trimesh invents a grey image otherwise)
        if img is not None:
            texture = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    elif vis.kind == "vertex":
        colors = np.asarray(vis.vertex_colors[:, :3], dtype=np.float32) / 255.0
    return Mesh(verts=np.asarray(tm.vertices), faces=np.asarray(tm.faces), uv=uv, texture=texture, vert_colors=colors)


# ------------------------------------------------------------------------------------------- public
