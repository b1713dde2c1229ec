"""Read and write triangle meshes: OBJ (+ MTL + PNG texture), PLY and GLB.

The in-memory type is :class:`Mesh`, a frozen dataclass of numpy arrays in recon3d's
conventions (see ``docs/CONVENTIONS.md`` and :mod:`recon3d.conventions`):

* ``verts (V, 3) float32`` in the frame of the caller (usually the model frame, metres),
* ``faces (F, 3) int64``, 0-based, counter-clockwise seen from outside,
* ``uv (Vt, 2) float32`` with the OBJ convention (origin bottom-left, v up) and ``uv_faces (F, 3)``
  indexing it (a separate UV topology, so seams need no duplicated vertices),
* ``texture (Ht, Wt, 3) float32`` RGB in [0, 1], row 0 at the top,
* ``vert_colors (V, 3) float32`` in [0, 1] and ``normals (V, 3) float32``.

Vertex order is the 3DMM's vertex order and is kept exactly by OBJ and PLY (own writers, own OBJ
parser, trimesh with ``process=False`` for reading PLY/GLB). GLB stores one UV per vertex, so
when ``uv_faces`` differs from ``faces`` the vertices are split at UV seams on export and the
vertex order of the file is then no longer the mesh's; it is kept exactly when ``uv_faces`` equals
``faces``.

All writes are atomic: each file is written to a temporary name in the target folder and renamed.
"""

from __future__ import annotations

import io as _io
import logging
import os
import struct
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AssetError, Recon3DError, ShapeError

__all__ = ["Mesh", "MeshFileError", "save_mesh", "load_mesh", "split_uv_seams", "MESH_FORMATS"]

log = logging.getLogger(__name__)

#: File formats :func:`save_mesh` and :func:`load_mesh` understand (the file suffix without the dot).
MESH_FORMATS = ("obj", "ply", "glb")


class MeshFileError(Recon3DError, ValueError):
    """A mesh file is corrupt, truncated or not in a format recon3d can read or write."""


def _as_array(x: Any, name: str, dtype: Any, cols: int | None) -> np.ndarray | None:
    if x is None:
        return None
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if cols is not None and (a.ndim != 2 or a.shape[1] != cols):
        raise ShapeError(f"Mesh(): {name} must be (N, {cols}), got {tuple(a.shape)}")
    if np.issubdtype(np.dtype(dtype), np.floating):
        if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise ShapeError(f"Mesh(): {name} must be numeric, got {a.dtype}")
        a = a.astype(dtype, copy=False)
    else:
        if not np.issubdtype(a.dtype, np.integer):
            raise ShapeError(f"Mesh(): {name} must be an integer array, got {a.dtype}")
        a = a.astype(dtype, copy=False)
    return np.ascontiguousarray(a)


@dataclass(frozen=True, eq=False)
class Mesh:
    """A triangle mesh with optional texture coordinates, texture, vertex colours and normals.

    Arrays are converted (torch tensors too) to the dtypes below on construction and validated.

    Attributes:
        verts: ``(V, 3)`` float32 positions (usually model frame, metres).
        faces: ``(F, 3)`` int64, 0-based, CCW seen from outside.
        uv: ``(Vt, 2)`` float32 texture coordinates, origin bottom-left, v up (OBJ), or None.
        uv_faces: ``(F, 3)`` int64 indices into ``uv``; defaults to ``faces`` when ``uv`` is given
            (then ``Vt`` must equal ``V``).
        texture: ``(Ht, Wt, 3)`` float32 RGB in [0, 1], row 0 at the top, or None.
        vert_colors: ``(V, 3)`` float32 RGB in [0, 1], or None.
        normals: ``(V, 3)`` float32 per-vertex normals, or None.

    Raises:
        ShapeError: on wrong shapes, dtypes or out-of-range indices.

    >>> m = Mesh(verts=np.zeros((3, 3)), faces=[[0, 1, 2]])
    >>> m.verts.dtype, m.faces.dtype, m.n_verts, m.n_faces
    (dtype('float32'), dtype('int64'), 3, 1)
    """

    verts: np.ndarray
    faces: np.ndarray
    uv: np.ndarray | None = None
    uv_faces: np.ndarray | None = None
    texture: np.ndarray | None = field(default=None, repr=False)
    vert_colors: np.ndarray | None = None
    normals: np.ndarray | None = None

    def __post_init__(self) -> None:
        verts = _as_array(self.verts, "verts", np.float32, 3)
        faces = _as_array(self.faces, "faces", np.int64, 3)
        uv = _as_array(self.uv, "uv", np.float32, 2)
        uv_faces = _as_array(self.uv_faces, "uv_faces", np.int64, 3)
        vert_colors = _as_array(self.vert_colors, "vert_colors", np.float32, 3)
        normals = _as_array(self.normals, "normals", np.float32, 3)
        texture = _as_array(self.texture, "texture", np.float32, None)
        V = verts.shape[0]
        if faces.size and (faces.min() < 0 or faces.max() >= V):
            raise ShapeError(f"Mesh(): faces index out of range [0, {V}), got [{faces.min()}, {faces.max()}]")
        if uv_faces is not None and uv is None:
            raise ShapeError("Mesh(): uv_faces given without uv")
        if uv is not None:
            if uv_faces is None:
                if uv.shape[0] != V:
                    raise ShapeError(
                        f"Mesh(): uv without uv_faces must have one row per vertex ({V}), got {uv.shape[0]}"
                    )
                uv_faces = faces
            if uv_faces.shape != faces.shape:
                raise ShapeError(f"Mesh(): uv_faces must be {faces.shape}, got {uv_faces.shape}")
            if uv_faces.size and (uv_faces.min() < 0 or uv_faces.max() >= uv.shape[0]):
                raise ShapeError(
                    f"Mesh(): uv_faces index out of range [0, {uv.shape[0]}), "
                    f"got [{uv_faces.min()}, {uv_faces.max()}]"
                )
        for name, a in (("vert_colors", vert_colors), ("normals", normals)):
            if a is not None and a.shape[0] != V:
                raise ShapeError(f"Mesh(): {name} must be ({V}, 3), got {tuple(a.shape)}")
        if texture is not None and (texture.ndim != 3 or texture.shape[2] != 3):
            raise ShapeError(f"Mesh(): texture must be (Ht, Wt, 3) RGB, got {tuple(texture.shape)}")
        for name, a in (
            ("verts", verts), ("faces", faces), ("uv", uv), ("uv_faces", uv_faces),
            ("texture", texture), ("vert_colors", vert_colors), ("normals", normals),
        ):
            object.__setattr__(self, name, a)

    @property
    def n_verts(self) -> int:
        """Number of vertices ``V``."""
        return int(self.verts.shape[0])

    @property
    def n_faces(self) -> int:
        """Number of faces ``F``."""
        return int(self.faces.shape[0])

    @property
    def has_seams(self) -> bool:
        """True when the UV topology differs from the vertex topology (UV seams)."""
        return self.uv is not None and not (
            self.uv.shape[0] == self.verts.shape[0] and np.array_equal(self.uv_faces, self.faces)
        )

    def replace(self, **changes: Any) -> Mesh:
        """A copy with some fields replaced (``dataclasses.replace``)."""
        return replace(self, **changes)


# ----------------------------------------------------------------------------------------- helpers


def _format_of(path: Path, format: str | None) -> str:
    fmt = (format or path.suffix.lstrip(".")).lower()
    if fmt not in MESH_FORMATS:
        raise MeshFileError(
            f"{path}: unknown mesh format {fmt!r}; expected one of {', '.join(MESH_FORMATS)} "
            "(from the file suffix or format=)"
        )
    return fmt


@contextmanager
def _atomic(path: Path, mode: str = "wb") -> Iterator[Any]:
    """Open a temporary file next to ``path`` and rename it over ``path`` on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _texture_to_uint8(texture: np.ndarray) -> np.ndarray:
    return (np.clip(texture, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _colors_to_uint8(c: np.ndarray) -> np.ndarray:
    return (np.clip(c, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _png_bytes(texture: np.ndarray) -> bytes:
    from PIL import Image

    from ..io.image import PNG_COMPRESS_LEVEL

    buf = _io.BytesIO()
    Image.fromarray(_texture_to_uint8(texture), "RGB").save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def _block(key: str, rows: np.ndarray, fmt: str, row_fmt: str | None = None) -> str:
    """``rows (N, k)`` as N lines ``key v1 ... vk`` (one C-level format call; %.9g round-trips float32)."""
    if len(rows) == 0:
        return ""
    row_fmt = row_fmt or " ".join([fmt] * rows.shape[1])
    return (f"{key} {row_fmt}\n" * len(rows)) % tuple(rows.ravel().tolist())


# ---------------------------------------------------------------------------------------------- OBJ


def _write_obj(path: Path, mesh: Mesh, texture_name: str | None) -> list[Path]:
    written: list[Path] = []
    stem = path.stem
    mtl_path = tex_path = None
    if mesh.texture is not None:
        tex_path = path.with_name(texture_name or f"{stem}_texture.png")
        if tex_path.suffix.lower() != ".png":
            raise MeshFileError(f"save_mesh(): texture_name must end in .png, got {tex_path.name!r}")
        mtl_path = path.with_suffix(".mtl")
        with _atomic(tex_path) as f:
            f.write(_png_bytes(mesh.texture))
        written.append(tex_path)
        with _atomic(mtl_path, "w") as f:
            f.write(
                "# recon3d material\n"
                "newmtl material_0\n"
                "Ka 1.000 1.000 1.000\n"
                "Kd 1.000 1.000 1.000\n"
                "Ks 0.000 0.000 0.000\n"
                "Ns 10.000\n"
                "d 1.0\n"
                "illum 1\n"
                f"map_Kd {tex_path.name}\n"
            )
        written.append(mtl_path)

    parts: list[str] = [f"# recon3d mesh\n# {mesh.n_verts} vertices, {mesh.n_faces} faces\n"]
    if mtl_path is not None:
        parts.append(f"mtllib {mtl_path.name}\n")
    if mesh.vert_colors is not None:
        parts.append(_block("v", np.concatenate([mesh.verts, mesh.vert_colors], 1), "%.9g"))
    else:
        parts.append(_block("v", mesh.verts, "%.9g"))
    if mesh.uv is not None:
        parts.append(_block("vt", mesh.uv, "%.9g"))
    if mesh.normals is not None:
        parts.append(_block("vn", mesh.normals, "%.9g"))
    if mtl_path is not None:
        parts.append("usemtl material_0\n")
    f1 = mesh.faces + 1
    if mesh.uv is not None:
        t1 = mesh.uv_faces + 1
        if mesh.normals is not None:
            parts.append(_block("f", np.stack([f1, t1, f1], -1).reshape(-1, 9), "%d", "%d/%d/%d %d/%d/%d %d/%d/%d"))
        else:
            parts.append(_block("f", np.stack([f1, t1], -1).reshape(-1, 6), "%d", "%d/%d %d/%d %d/%d"))
    elif mesh.normals is not None:
        parts.append(_block("f", np.stack([f1, f1], -1).reshape(-1, 6), "%d", "%d//%d %d//%d %d//%d"))
    else:
        parts.append(_block("f", f1, "%d"))
    lines = ["".join(parts).rstrip("\n")]
    with _atomic(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    written.insert(0, path)
    return written


def _obj_index(tok: str, n: int, path: Path, lineno: int) -> int:
    i = int(tok)
    if i < 0:
        i = n + i
    else:
        i -= 1
    if not 0 <= i < n:
        raise MeshFileError(f"{path}:{lineno}: index {tok} out of range (1..{n})")
    return i


def _parse_mtl(mtl: Path) -> dict[str, Path]:
    """Material name -> ``map_Kd`` texture path, from an MTL file."""
    maps: dict[str, Path] = {}
    current = None
    for line in mtl.read_text(errors="replace").splitlines():
        parts = line.strip().split(None, 1)
        if not parts:
            continue
        key = parts[0]
        if key == "newmtl" and len(parts) > 1:
            current = parts[1].strip()
        elif key == "map_Kd" and len(parts) > 1 and current is not None:
            # options such as "-s 1 1 1" may precede the file name; the file name is the last token
            name = parts[1].strip().split()[-1]
            maps[current] = mtl.parent / name
    return maps


def _floats(lines: list[str], path: Path) -> np.ndarray | None:
    """Parse the numbers after the key of equally long lines; None when they are not all equal."""
    if not lines:
        return np.zeros((0, 0))
    try:
        a = np.array(" ".join(lines).split(), dtype=np.float64)
    except ValueError:
        return None
    if a.size % len(lines):
        return None
    return a.reshape(len(lines), -1)


def _parse_obj_fast(text: str, path: Path) -> tuple | None:
    """Vectorised parse of a plain triangle OBJ (uniform ``v``/``vt``/``vn`` lines, triangles with one
    corner pattern, positive indices, no inline comments). Returns None for anything else, and the
    caller falls back to the line-by-line parser (which also gives line numbers in errors)."""
    buckets: dict[str, list[str]] = {"v": [], "vt": [], "vn": [], "f": []}
    mtllibs: list[str] = []
    materials: list[str] = []
    for raw in text.splitlines():
        kv = raw.split(None, 1)
        if not kv or kv[0][0] == "#":
            continue
        key = kv[0]
        rest = kv[1] if len(kv) > 1 else ""
        if "#" in rest:
            return None
        if key in buckets:
            buckets[key].append(rest)
        elif key == "mtllib":
            mtllibs.append(rest.strip())
        elif key == "usemtl":
            if rest.strip() not in materials:
                materials.append(rest.strip())
        elif key in ("l", "p", "curv", "surf"):
            return None
    v = _floats(buckets["v"], path)
    vt = _floats(buckets["vt"], path)
    vn = _floats(buckets["vn"], path)
    if v is None or vt is None or vn is None or v.shape[1] not in (3, 6) or len(v) == 0:
        return None
    if len(vt) and vt.shape[1] not in (2, 3) or len(vn) and vn.shape[1] != 3:
        return None
    flines = buckets["f"]
    joined = " ".join(flines)
    corners = joined.split()
    if len(corners) != 3 * len(flines) or "-" in joined:
        return None
    first = corners[0] if corners else ""
    n_slash, double = first.count("/"), "//" in first
    n_fields = 1 if n_slash == 0 else (2 if double or n_slash == 1 else 3)
    if joined.count("/") != n_slash * len(corners) or joined.count("//") != (len(corners) if double else 0):
        return None
    try:
        idx = np.array(joined.replace("//", " ").replace("/", " ").split(), dtype=np.int64)
    except ValueError:
        return None
    if idx.size != n_fields * len(corners):
        return None
    idx = idx.reshape(len(flines), 3, n_fields) - 1
    fv = idx[..., 0]
    ft = idx[..., 1] if n_fields == 3 or (n_fields == 2 and not double) else np.zeros((0, 3), np.int64)
    fn = idx[..., -1] if n_fields == 3 or double else np.zeros((0, 3), np.int64)
    for name, ind, n in (("vertex", fv, len(v)), ("texture", ft, len(vt)), ("normal", fn, len(vn))):
        if ind.size and (ind.min() < 0 or ind.max() >= n):
            raise MeshFileError(f"{path}: {name} index out of range (1..{n}) in a face")
    colors = v[:, 3:6] if v.shape[1] == 6 else np.zeros((0, 3))
    return (v[:, :3], colors, vt[:, :2] if len(vt) else vt, vn, fv, ft, fn, mtllibs, materials)


def _load_obj(path: Path) -> Mesh:
    try:
        text = path.read_text()
    except UnicodeDecodeError as e:
        raise MeshFileError(f"{path}: not a text OBJ file ({e})") from None
    fast = _parse_obj_fast(text, path)
    if fast is not None:
        verts, colors, uvs, vns, faces, tfaces, nfaces, mtllibs, materials_used = fast
    else:
        verts: list[list[float]] = []
        colors: list[list[float]] = []
        uvs: list[list[float]] = []
        vns: list[list[float]] = []
        faces: list[tuple[int, int, int]] = []
        tfaces: list[tuple[int, int, int]] = []
        nfaces: list[tuple[int, int, int]] = []
        mtllibs: list[str] = []
        materials_used: list[str] = []
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            key = parts[0]
            try:
                if key == "v":
                    if len(parts) < 4:
                        raise ValueError("v needs 3 coordinates")
                    verts.append([float(x) for x in parts[1:4]])
                    if len(parts) >= 7:
                        colors.append([float(x) for x in parts[4:7]])
                elif key == "vt":
                    if len(parts) < 3:
                        raise ValueError("vt needs 2 coordinates")
                    uvs.append([float(parts[1]), float(parts[2])])
                elif key == "vn":
                    if len(parts) < 4:
                        raise ValueError("vn needs 3 coordinates")
                    vns.append([float(x) for x in parts[1:4]])
                elif key == "f":
                    if len(parts) < 4:
                        raise ValueError("a face needs at least 3 corners")
                    cv, ct, cn = [], [], []
                    for corner in parts[1:]:
                        sub = corner.split("/")
                        cv.append(_obj_index(sub[0], len(verts), path, lineno))
                        if len(sub) > 1 and sub[1]:
                            ct.append(_obj_index(sub[1], len(uvs), path, lineno))
                        if len(sub) > 2 and sub[2]:
                            cn.append(_obj_index(sub[2], len(vns), path, lineno))
                    for k in range(1, len(cv) - 1):  # fan triangulation of polygons
                        faces.append((cv[0], cv[k], cv[k + 1]))
                        if len(ct) == len(cv):
                            tfaces.append((ct[0], ct[k], ct[k + 1]))
                        if len(cn) == len(cv):
                            nfaces.append((cn[0], cn[k], cn[k + 1]))
                elif key == "mtllib":
                    mtllibs.append(line.split(None, 1)[1].strip())
                elif key == "usemtl":
                    name = line.split(None, 1)[1].strip() if len(parts) > 1 else ""
                    if name not in materials_used:
                        materials_used.append(name)
            except MeshFileError:
                raise
            except (ValueError, IndexError) as e:
                raise MeshFileError(f"{path}:{lineno}: cannot parse {raw.strip()[:60]!r} ({e})") from None
    if len(verts) == 0:
        raise MeshFileError(f"{path}: no vertices found; not an OBJ file?")

    uv = uv_faces = None
    if len(uvs) and len(tfaces):
        if len(tfaces) != len(faces):
            warnings.warn(f"{path}: only some faces have texture coordinates; ignoring UVs", stacklevel=3)
        else:
            uv, uv_faces = np.asarray(uvs), np.asarray(tfaces)
    vert_colors = np.asarray(colors) if len(colors) and len(colors) == len(verts) else None
    normals = None
    if len(vns) and len(nfaces) == len(faces):
        fv, fn = np.asarray(faces).reshape(-1), np.asarray(nfaces).reshape(-1)
        if len(vns) == len(verts) and np.array_equal(fv, fn):
            normals = np.asarray(vns)
        else:
            normals = np.zeros((len(verts), 3))
            normals[fv] = np.asarray(vns)[fn]

    texture = None
    if mtllibs:
        maps: dict[str, Path] = {}
        for lib in mtllibs:
            mtl = path.parent / lib
            if not mtl.is_file():
                warnings.warn(f"{path}: material file {lib!r} not found; loading without texture", stacklevel=3)
                continue
            maps.update(_parse_mtl(mtl))
        wanted = [m for m in materials_used if m in maps] or list(maps)
        if len(wanted) > 1:
            warnings.warn(f"{path}: several textured materials; using only {wanted[0]!r}", stacklevel=3)
        if wanted:
            tex = maps[wanted[0]]
            if not tex.is_file():
                warnings.warn(f"{path}: texture {tex.name!r} not found; loading without texture", stacklevel=3)
            else:
                try:
                    texture = _read_image(tex)
                except OSError as e:
                    warnings.warn(f"{path}: cannot read texture {tex} ({e}); loading without it", stacklevel=3)
    return Mesh(
        verts=np.asarray(verts), faces=np.asarray(faces, dtype=np.int64).reshape(-1, 3), uv=uv,
        uv_faces=uv_faces, texture=texture, vert_colors=vert_colors, normals=normals,
    )


# ---------------------------------------------------------------------------------------------- PLY


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
        raise ShapeError(f"save_mesh(): mesh must be a recon3d.mesh.Mesh, got {type(mesh).__name__}")
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
        MeshFileError: the file is corrupt or of an unknown format (the message names the file).
    """
    path = Path(path)
    fmt = _format_of(path, format)
    if not path.is_file():
        raise AssetError(f"load_mesh(): mesh file {path} not found")
    try:
        if fmt == "obj":
            return _load_obj(path)
        if fmt == "ply":
            return _load_ply(path)
        return _load_glb(path)
    except ShapeError as e:
        raise MeshFileError(f"{path}: inconsistent mesh data ({e})") from None
