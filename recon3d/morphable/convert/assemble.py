"""The common tail of every converter: :func:`assemble` turns a foreign model's arrays (metres, model
frame, scaled bases) into a :class:`~recon3d.morphable.model.MorphableModel` with recon3d's winding,
origin, symmetry map, 68-landmark embedding, dynamic contour, regions and UVs; plus the numpy helpers
the readers share (:func:`basis`, :func:`var_ratio`, :func:`mirror_symmetry`, :func:`cylindrical_uv`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from scipy.spatial import cKDTree

from ...errors import AssetError
from ...ops.geometry import vertex_normals
from ..model import MorphableModel
from .embedding import REGION_WEIGHT, contour_bands, embed_landmarks, region_labels

__all__ = ["DEFAULT_ALBEDO", "assemble", "basis", "var_ratio", "mirror_symmetry", "cylindrical_uv"]

log = logging.getLogger(__name__)

#: Albedo used for shape-only models (a mid-grey skin tone, linear-ish RGB in [0, 1]).
DEFAULT_ALBEDO = (0.62, 0.47, 0.40)


def _orient_outwards(verts: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, bool]:
    """Make faces CCW seen from outside (+Z side for a face mask). Returns ``(faces, flipped)``.

    The net area vector of an open face surface points out of the face (+Z) when the triangles are
    counter-clockwise seen from outside; if it points to -Z every triangle is flipped.
    """
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    net = np.cross(b - a, c - a).sum(0)
    if net[2] < 0:
        return faces[:, [0, 2, 1]].copy(), True
    return faces, False


def mirror_symmetry(
    verts: np.ndarray, fixed: np.ndarray | None = None, *, max_dist: float | None = None
) -> np.ndarray:
    """Index of each vertex's mirror image (left <-> right), an involution.

    Pairs are taken from ``fixed`` (``(N,)`` 0-based, for the first N vertices, e.g. a symmetry file),
    then mutual nearest neighbours of the x-mirrored vertices, then greedily by increasing distance
    among the rest; vertices left without a partner closer than ``max_dist`` (default: 2% of the
    model's width) are paired across the midline in a second pass; vertices on the midline map
    to themselves.

    Args:
        verts: ``(V, 3)`` model-frame vertices (symmetric about x = 0).

    >>> v = np.array([[-1.0, 0, 0], [1.0, 0, 0], [0.0, 1, 0], [-2.0, 1, 0], [2.1, 1, 0]])
    >>> mirror_symmetry(v).tolist()
    [1, 0, 2, 4, 3]
    """
    V = verts.shape[0]
    sym = np.full(V, -1, dtype=np.int64)
    if fixed is not None:
        n = min(len(fixed), V)
        for i in range(n):
            j = int(fixed[i])
            if 0 <= j < V and (j >= n or int(fixed[j]) == i):
                sym[i], sym[j] = j, i
    width = float(np.ptp(verts[:, 0])) or 1.0
    max_dist = 0.02 * width if max_dist is None else max_dist
    mirrored = verts * np.array([-1.0, 1.0, 1.0])
    free = np.flatnonzero(sym < 0)
    if free.size:
        tree = cKDTree(verts[free])
        k = min(8, free.size)
        d, nn = tree.query(mirrored[free], k=k)
        d, nn = d.reshape(free.size, k), free[nn.reshape(free.size, k)]
        cand = sorted(
            (float(d[a, b]), int(free[a]), int(nn[a, b])) for a in range(free.size) for b in range(k)
        )
        for dist, i, j in cand:  # greedy by distance: mutual nearest neighbours come first
            if dist > max_dist:
                break
            if sym[i] < 0 and sym[j] < 0:
                sym[i], sym[j] = j, i
    # second pass: pair what is left across the midline at any distance; true midline vertices map to
    # themselves
    rest = np.flatnonzero(sym < 0)
    off = rest[np.abs(verts[rest, 0]) > 0.5 * max_dist]
    if off.size > 1:
        k = min(32, off.size)
        d, nn = cKDTree(verts[off]).query(mirrored[off], k=k)
        d, nn = d.reshape(off.size, k), off[nn.reshape(off.size, k)]
        cand = sorted(
            (float(d[a, b]), int(off[a]), int(nn[a, b]))
            for a in range(off.size) for b in range(k) if verts[off[a], 0] * verts[nn[a, b], 0] < 0
        )
        for _, i, j in cand:
            if sym[i] < 0 and sym[j] < 0:
                sym[i], sym[j] = j, i
    rest = sym < 0
    sym[rest] = np.flatnonzero(rest)
    return sym


def cylindrical_uv(verts: np.ndarray, *, margin: float = 0.02) -> np.ndarray:
    """A simple cylindrical UV layout ``(V, 2)`` of a face (axis +Y behind the face), origin bottom-left.

    ``u`` grows with the angle around the axis (subject's right -> left), ``v`` with height; both are
    scaled by the same factor (arc length at the axis-to-face distance) so the texture is not
    stretched, and the layout is mirror-symmetric about u = 0.5 for a symmetric mesh.

    >>> uv = cylindrical_uv(np.array([[-1.0, 0, 1], [1.0, 0, 1], [0.0, 1, 1.2]]))
    >>> bool(abs(uv[0, 0] + uv[1, 0] - 1) < 1e-9), bool(uv[2, 1] > uv[0, 1])
    (True, True)
    """
    centre = verts.mean(0)
    depth = float(np.ptp(verts[:, 2])) or 1.0
    width = float(np.ptp(verts[:, 0])) or 1.0
    radius = max(0.5 * width, depth)
    axis_z = float(verts[:, 2].max()) - radius
    theta = np.arctan2(verts[:, 0], verts[:, 2] - axis_z)  # 0 at the front, + to the subject's left
    s = theta * radius  # arc length
    t = verts[:, 1] - centre[1]
    half = max(float(np.abs(s).max()), 0.5 * float(np.ptp(t)), 1e-12)
    scale = (0.5 - margin) / half
    u = 0.5 + s * scale
    v = 0.5 + (t - 0.5 * (t.max() + t.min())) * scale
    return np.stack([u, v], 1)


def _vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """:func:`recon3d.ops.geometry.vertex_normals` on float64 numpy arrays."""
    v = torch.from_numpy(np.ascontiguousarray(verts, np.float64))[None]
    return vertex_normals(v, torch.from_numpy(np.ascontiguousarray(faces, np.int64)))[0].numpy()


def _t(a: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).to(dtype)


def var_ratio(var: np.ndarray, total: float | None = None) -> np.ndarray:
    """Variances as float32 shares of ``total`` (default: their sum); zeros when the total is 0."""
    var = np.asarray(var, np.float64).reshape(-1)
    tot = float(var.sum()) if total is None else total
    return (var / tot).astype(np.float32) if tot > 0 else np.zeros_like(var, np.float32)


def assemble(
    *,
    name: str,
    version: str,
    where: str,
    mean: np.ndarray,
    shape_basis: np.ndarray,
    shape_var: np.ndarray,
    expr_basis: np.ndarray,
    expr_var: np.ndarray,
    albedo_mean: np.ndarray,
    albedo_basis: np.ndarray,
    albedo_var: np.ndarray,
    faces: np.ndarray,
    uv: np.ndarray | None,
    uv_faces: np.ndarray | None,
    mapping: dict[int, int],
    contours: tuple[Sequence[int], Sequence[int]] | None,
    symmetry: np.ndarray | None,
    face_weight: np.ndarray | None = None,
    meta: dict,
) -> MorphableModel:
    """Common tail of every loader. Geometry in metres and the model frame; bases ``(K, V, 3)`` scaled."""
    V = mean.shape[0]
    mean = mean.astype(np.float64)
    if not np.isfinite(mean).all() or not np.isfinite(shape_basis).all():
        raise AssetError(f"{where}: the mean or the shape basis holds NaN/inf values (corrupt file?)")
    centroid = mean.mean(0)
    mean = mean - centroid  # origin at the mean's centroid, so x = 0 is (close to) the symmetry plane
    meta["origin"] = f"centroid of the mean; the source's origin is at {np.round(-centroid, 6).tolist()} m"
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.size == 0 or faces.min() < 0 or faces.max() >= V:
        raise AssetError(f"{where}: triangles must be (F, 3) vertex ids in [0, {V}), got {faces.shape}")
    faces, flipped = _orient_outwards(mean, faces.astype(np.int64))
    meta["faces_flipped_to_ccw"] = bool(flipped)
    if contours is not None:
        bad = [v for v in list(contours[0]) + list(contours[1]) if not 0 <= v < V]
        if bad:
            raise AssetError(f"{where}: contour vertex ids {bad[:5]} are outside [0, {V}) (wrong contour file?)")
    if symmetry is not None and (symmetry.max() >= V or len(symmetry) > V):
        raise AssetError(f"{where}: the symmetry file has {len(symmetry)} entries / ids up to "
                         f"{symmetry.max() + 1}, more than the model's {V} vertices (wrong file?)")
    sym = mirror_symmetry(mean, symmetry)
    meta["symmetry"] = ("file for the first %d vertices, " % len(symmetry) if symmetry is not None else "") + (
        "mirrored nearest neighbours of the mean (greedy, involution)"
    )
    meta["symmetry_self_mapped"] = int((sym == np.arange(V)).sum())
    lf, lb, src, lpos = embed_landmarks(mean, faces, mapping, contours, where)
    frame_ok = {
        "subject's right eye on -X": lpos[36, 0] < 0 < lpos[45, 0],
        "eyes above the mouth (+Y up)": min(lpos[36, 1], lpos[45, 1]) > lpos[57, 1],
        "nose tip in front of the eye corners (+Z out)": lpos[30, 2] > max(lpos[39, 2], lpos[42, 2]),
    }
    bad = [k for k, ok in frame_ok.items() if not ok]
    if bad:
        raise AssetError(
            f"{where}: the model or its landmark mapping is not in the expected frame (+X subject's left, +Y up, "
            f"+Z out of the face): failed {bad}. Check that the landmark file belongs to this model "
            "(docs/MODELS_USER.md)."
        )
    meta["landmark_sources"] = src
    meta["landmarks_exact"] = [i for i, s in enumerate(src) if s == "exact"]
    normals = _vertex_normals(mean, faces)
    contour_verts = contour_bands(mean, normals, lpos)
    meta["contour_verts"] = (
        "contour_verts[k] lists candidate vertices for jaw landmark k (-1 padded), inner -> outer, the last one "
        "nearest the static landmark: a thin horizontal band on its side; use the outermost projected one"
    )
    regions = region_labels(mean, normals, lpos)
    fw = REGION_WEIGHT[regions] if face_weight is None else face_weight.astype(np.float32)
    if uv is None:
        uv = cylindrical_uv(mean)
        uv_faces = faces
        meta["uv"] = "cylindrical projection of the mean (recon3d.morphable.convert.cylindrical_uv)"
    elif uv_faces is None:
        uv_faces = faces
    else:
        uv_faces = uv_faces[:, [0, 2, 1]] if flipped else uv_faces
    uv_symmetric = False
    if uv.shape[0] == V:
        d = np.abs(uv[sym, 0] - (1.0 - uv[:, 0])) + np.abs(uv[sym, 1] - uv[:, 1])
        paired = sym != np.arange(V)
        uv_symmetric = bool(paired.any() and np.percentile(d[paired], 95) < 5e-3)
    model = MorphableModel(
        name=name,
        version=version,
        mean=_t(mean),
        shape_basis=_t(shape_basis),
        expr_basis=_t(expr_basis),
        albedo_mean=_t(albedo_mean),
        albedo_basis=_t(albedo_basis),
        faces=_t(faces, torch.int64),
        uv=_t(uv),
        uv_faces=_t(uv_faces, torch.int64),
        sym_vertex=_t(sym, torch.int64),
        lmk_faces=_t(lf, torch.int64),
        lmk_bary=_t(lb),
        contour_verts=_t(contour_verts, torch.int64),
        region_labels=_t(regions, torch.int8),
        face_weight=_t(fw),
        shape_var=_t(shape_var),
        expr_var=_t(expr_var),
        albedo_var=_t(albedo_var),
        uv_symmetric=uv_symmetric,
        meta=meta,
    )
    log.info("%s: %d verts, %d faces, S=%d E=%d T=%d (%s)", where, V, len(faces), model.n_shape, model.n_expr,
             model.n_albedo, "faces flipped to CCW" if flipped else "faces already CCW")
    return model


def basis(cols: np.ndarray, V: int, scale: float | np.ndarray = 1.0) -> np.ndarray:
    """``(3V, K)`` columns (xyzxyz...) times ``scale`` -> ``(K, V, 3)`` float32."""
    cols = np.asarray(cols, dtype=np.float32) * np.asarray(scale, dtype=np.float32)
    return np.ascontiguousarray(cols.T.reshape(-1, V, 3))
