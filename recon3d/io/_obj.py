"""OBJ (+ MTL + PNG texture) reading and writing for :mod:`recon3d.io.mesh` (own writer, own parser)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

from ..structures.mesh import Mesh
from ._mesh_util import MeshFileError, _atomic, _block, _png_bytes, _read_image

log = logging.getLogger(__name__)


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
    for line in mtl.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.strip().split(None, 1)
        if not parts:
            continue
        key = parts[0]
        if key == "newmtl" and len(parts) > 1:
            current = parts[1].strip()
        elif key == "map_Kd" and len(parts) > 1 and current is not None:
            maps[current] = mtl.parent / _map_file_name(parts[1].strip())
    return maps


#: Options of an MTL texture map statement and how many values each takes (``-o``/``-s``/``-t``
#: take 1 to 3 numbers).
_MAP_OPTIONS = {"-blendu": 1, "-blendv": 1, "-bm": 1, "-boost": 1, "-cc": 1, "-clamp": 1, "-imfchan": 1,
                "-mm": 2, "-texres": 1, "-type": 1, "-o": 3, "-s": 3, "-t": 3}


def _is_number(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True


def _map_file_name(rest: str) -> str:
    """The file name of a ``map_Kd`` statement: what follows the options, spaces and all.

    >>> _map_file_name("-s 1 1 1 my face texture.png"), _map_file_name("été.png")
    ('my face texture.png', 'été.png')
    """
    while True:
        head, _, tail = rest.partition(" ")
        n = _MAP_OPTIONS.get(head.lower())
        if n is None or not tail:
            return rest
        rest = tail.lstrip()
        for k in range(n):
            tok, _, after = rest.partition(" ")
            if not after or (k > 0 and not _is_number(tok)):
                break
            rest = after.lstrip()


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
        text = path.read_text(encoding="utf-8")
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

