"""Geometry helpers for building a morphable model from per-photo MediaPipe meshes (numpy).

Used by :mod:`recon3d.morphable.build`. All functions are pure; arrays are numpy. Vertex normals are
:func:`recon3d.ops.geometry.vertex_normals` (:func:`vertex_normals_np` only converts the arrays).
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
import torch
from scipy.optimize import linear_sum_assignment

from ...conventions import mirror_model_x
from ...errors import ShapeError
from ...ops.geometry import vertex_normals

log = logging.getLogger(__name__)

__all__ = [
    "read_obj",
    "similarity_procrustes",
    "generalized_procrustes",
    "symmetry_map",
    "loop_subdivision",
    "subdivide",
    "apply_operator",
    "sym_from_operator",
    "neighbours",
    "mirror_x",
    "vertex_normals_np",
    "orient_faces_outward",
    "spherical_uv",
    "uv_flipped",
    "boundary_vertices",
    "mirror_face_map",
]


def read_obj(path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices ``(V,3)`` and 0-based triangle indices ``(F,3)`` of a Wavefront OBJ (``v`` and ``f`` lines)."""
    verts, faces = [], []
    with open(path) as fh:
        for ln in fh:
            if ln.startswith("v "):
                verts.append([float(t) for t in ln.split()[1:4]])
            elif ln.startswith("f "):
                idx = [int(t.split("/")[0]) for t in ln.split()[1:]]
                if len(idx) != 3:
                    raise ShapeError(f"read_obj(): only triangles are supported, got a {len(idx)}-gon in {path}")
                faces.append([i - 1 for i in idx])  # OBJ is 1-based
    return np.asarray(verts, np.float64), np.asarray(faces, np.int64)


def similarity_procrustes(src: np.ndarray, dst: np.ndarray, w: np.ndarray | None = None) -> tuple[float, np.ndarray, np.ndarray]:
    """Scale ``s``, rotation ``R`` (3,3), translation ``t`` minimising ``sum w |s R src + t - dst|^2`` (Umeyama).

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(10, 3))
    >>> s, R, t = similarity_procrustes(x, 2 * x + 1)
    >>> bool(np.allclose(s, 2) and np.allclose(R, np.eye(3)) and np.allclose(t, 1))
    True
    """
    w = np.ones(len(src)) if w is None else np.asarray(w, np.float64)
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    a, b = src - mu_s, dst - mu_d
    cov = (b * w[:, None]).T @ a
    U, S, Vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(U @ Vt))
    D = np.diag([1.0, 1.0, d])
    R = U @ D @ Vt
    var_s = (w * (a**2).sum(1)).sum()
    s = float((S * np.diag(D)).sum() / var_s)
    t = mu_d - s * R @ mu_s
    return s, R, t


def generalized_procrustes(X: np.ndarray, w: np.ndarray | None = None, iters: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Align shapes ``(N,P,3)`` to their evolving mean with similarity transforms.

    Returns the aligned shapes ``(N,P,3)``, the mean ``(P,3)`` (unit RMS size, centred) and the rotations
    ``(N,3,3)`` that map each input into the mean frame.
    """
    w = np.ones(X.shape[1]) if w is None else w
    ref = X[0] - X[0].mean(0)
    ref = ref / np.sqrt((ref**2).sum(1).mean())
    out = np.empty_like(X)
    rots = np.empty((len(X), 3, 3))
    for _ in range(iters):
        for i, x in enumerate(X):
            s, R, t = similarity_procrustes(x, ref, w)
            out[i] = s * x @ R.T + t
            rots[i] = R
        ref = out.mean(0)
        ref = ref - (w / w.sum()) @ ref
        ref = ref / np.sqrt((ref**2).sum(1).mean())
    return out, ref, rots


def symmetry_map(points: np.ndarray, mirror) -> np.ndarray:
    """Mirror index of every point: Hungarian matching of ``points`` to ``mirror(points)``.

    ``mirror`` maps ``(P,3)`` points to their mirror images. The result is made an involution.
    """
    m = mirror(points)
    cost = ((points[:, None, :] - m[None, :, :]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    sym = np.empty(len(points), np.int64)
    sym[cols] = rows  # point cols[j] mirrored lands on rows[j]
    bad = np.nonzero(sym[sym] != np.arange(len(sym)))[0]
    if len(bad):
        raise ShapeError(f"symmetry_map(): matching is not an involution for {len(bad)} points")
    return sym


def _edges(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique undirected edges ``(Ne,2)``, per-face edge ids ``(F,3)`` (edge k opposite vertex k) and edge face counts."""
    e = np.concatenate([faces[:, [1, 2]], faces[:, [2, 0]], faces[:, [0, 1]]], 0)
    e_sorted = np.sort(e, 1)
    uniq, inv, counts = np.unique(e_sorted, axis=0, return_inverse=True, return_counts=True)
    face_edge = inv.reshape(3, -1).T
    return uniq, face_edge, counts


def boundary_vertices(faces: np.ndarray, n_verts: int) -> np.ndarray:
    """Boolean ``(V,)``: vertex lies on a mesh boundary (an edge used by one face)."""
    uniq, _, counts = _edges(faces)
    b = np.zeros(n_verts, bool)
    b[uniq[counts == 1].ravel()] = True
    return b


def loop_subdivision(faces: np.ndarray, n_verts: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """One step of Loop subdivision as a linear operator (with the standard boundary rules).

    Returns ``(S, new_faces)``: ``S`` is a sparse ``(V', V)`` matrix with ``new_verts = S @ verts`` for
    any per-vertex attribute (so subdivided bases stay linear), and ``new_faces`` ``(4F,3)`` keeps
    the winding of ``faces``. Old vertices keep their ids; edge vertex ``e`` gets id ``V + e``.
    """
    uniq, face_edge, counts = _edges(faces)
    n_e = len(uniq)
    rows, cols, vals = [], [], []
    # Edge points.
    opp = [[] for _ in range(n_e)]
    for f, tri in enumerate(faces):
        for k in range(3):
            opp[face_edge[f, k]].append(tri[k])
    for e, (a, b) in enumerate(uniq):
        r = n_verts + e
        if counts[e] == 2:
            c, d = opp[e]
            rows += [r] * 4
            cols += [a, b, c, d]
            vals += [3 / 8, 3 / 8, 1 / 8, 1 / 8]
        else:
            rows += [r, r]
            cols += [a, b]
            vals += [0.5, 0.5]
    # Vertex points.
    nbrs = [set() for _ in range(n_verts)]
    for a, b in uniq:
        nbrs[a].add(b)
        nbrs[b].add(a)
    bnd_nbrs = [[] for _ in range(n_verts)]
    for (a, b), c in zip(uniq, counts, strict=False):
        if c == 1:
            bnd_nbrs[a].append(b)
            bnd_nbrs[b].append(a)
    for v in range(n_verts):
        if bnd_nbrs[v]:
            nb = bnd_nbrs[v]
            if len(nb) == 2:
                rows += [v, v, v]
                cols += [v, nb[0], nb[1]]
                vals += [3 / 4, 1 / 8, 1 / 8]
            else:  # non-manifold corner: keep it fixed
                rows.append(v)
                cols.append(v)
                vals.append(1.0)
        else:
            n = len(nbrs[v])
            beta = 3 / 16 if n == 3 else 3 / (8 * n)
            rows.append(v)
            cols.append(v)
            vals.append(1 - n * beta)
            for u in nbrs[v]:
                rows.append(v)
                cols.append(u)
                vals.append(beta)
    S = sp.csr_matrix((vals, (rows, cols)), shape=(n_verts + n_e, n_verts))
    m = n_verts + face_edge  # edge k is opposite vertex k
    a, b, c = faces[:, 0], faces[:, 1], faces[:, 2]
    mab, mbc, mca = m[:, 2], m[:, 0], m[:, 1]
    new_faces = np.concatenate(
        [np.stack([a, mab, mca], 1), np.stack([b, mbc, mab], 1), np.stack([c, mca, mbc], 1), np.stack([mab, mbc, mca], 1)], 0
    )
    return S, new_faces.astype(np.int64)


def vertex_normals_np(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals ``(V, 3)`` float64 of ``verts (V, 3)``:
    :func:`recon3d.ops.geometry.vertex_normals` on numpy arrays."""
    v = torch.from_numpy(np.ascontiguousarray(verts, np.float64))[None]
    return vertex_normals(v, torch.from_numpy(np.ascontiguousarray(faces, np.int64)))[0].numpy()


def orient_faces_outward(verts: np.ndarray, faces: np.ndarray, out_dir=(0.0, 0.0, 1.0)) -> tuple[np.ndarray, bool]:
    """Flip the winding of every face if most face normals point against ``out_dir``.

    Returns ``(faces, flipped)``. A face mesh is a sheet facing +Z, so "outside" is +Z on average.
    """
    v0, v1, v2 = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    fn = np.cross(v1 - v0, v2 - v0)  # unnormalised: area-weighted
    if float((fn @ np.asarray(out_dir)).sum()) < 0:
        return faces[:, [0, 2, 1]].copy(), True
    return faces, False


def spherical_uv(verts: np.ndarray, centre: np.ndarray, margin: float = 0.02) -> np.ndarray:
    """Spherical projection UV ``(V,2)`` about ``centre``: u from the azimuth around the vertical (Y) axis,
    v from the elevation; both scaled by one factor into ``[margin, 1-margin]`` and centred on u = 0.5.

    For a mesh symmetric about X = 0 (with ``centre[0] = 0``), ``u(mirror(p)) = 1 - u(p)`` exactly.
    """
    d = verts - centre
    az = np.arctan2(d[:, 0], d[:, 2])  # 0 at the front, + towards +X (subject's left)
    el = np.arctan2(d[:, 1], np.hypot(d[:, 0], d[:, 2]))
    half_u = np.abs(az).max()
    el_lo, el_hi = el.min(), el.max()
    span = max(2 * half_u, el_hi - el_lo)
    k = (1 - 2 * margin) / span
    u = 0.5 + k * az
    v = 0.5 + k * (el - 0.5 * (el_lo + el_hi))
    return np.stack([u, v], 1)


def uv_flipped(uv: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Boolean ``(F,)``: UV triangle has clockwise (flipped) or zero orientation."""
    a, b, c = uv[faces[:, 0]], uv[faces[:, 1]], uv[faces[:, 2]]
    cross = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    return cross <= 0


def mirror_face_map(faces: np.ndarray, sym: np.ndarray) -> np.ndarray:
    """Index of the mirror triangle of every face (``-1`` if the triangulation has none)."""
    key = {tuple(sorted(f)): i for i, f in enumerate(faces.tolist())}
    out = np.full(len(faces), -1, np.int64)
    for i, f in enumerate(sym[faces].tolist()):
        out[i] = key.get(tuple(sorted(f)), -1)
    return out


def mirror_x(points: np.ndarray) -> np.ndarray:
    """numpy wrapper of :func:`recon3d.conventions.mirror_model_x` (negate model X)."""
    return mirror_model_x(torch.from_numpy(np.asarray(points, np.float64))).numpy()


def subdivide(faces: np.ndarray, n_verts: int, times: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """``times`` Loop subdivisions as one sparse operator ``(V', V)`` and the new faces."""
    S = sp.identity(n_verts, format="csr")
    for _ in range(times):
        Si, faces = loop_subdivision(faces, S.shape[0])
        S = Si @ S
    return S.tocsr(), faces


def apply_operator(S, X: np.ndarray) -> np.ndarray:
    """Apply the sparse (V',V) operator to per-vertex data (..., V, C)."""
    lead, (V, C) = X.shape[:-2], X.shape[-2:]
    flat = np.moveaxis(X.reshape(-1, V, C), 1, 0).reshape(V, -1)
    out = S @ flat
    return np.moveaxis(out.reshape(S.shape[0], -1, C), 0, 1).reshape(*lead, S.shape[0], C)


def neighbours(faces: np.ndarray, V: int) -> sp.csr_matrix:
    """Symmetric ``(V, V)`` vertex adjacency (1.0 where two vertices share an edge)."""
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    A = sp.csr_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(V, V))
    return ((A + A.T) > 0).astype(float)


def sym_from_operator(S, sym0: np.ndarray) -> np.ndarray:
    """Symmetry map of subdivided vertices: each new vertex's stencil, mirrored, is another vertex's stencil."""
    S = S.tocsr()
    key = {}
    for i in range(S.shape[0]):
        row = S.getrow(i)
        key[tuple(sorted(zip(row.indices.tolist(), np.round(row.data, 9).tolist(), strict=False)))] = i
    sym = np.empty(S.shape[0], np.int64)
    for i in range(S.shape[0]):
        row = S.getrow(i)
        k = tuple(sorted(zip(sym0[row.indices].tolist(), np.round(row.data, 9).tolist(), strict=False)))
        if k not in key:
            raise ShapeError("build_model(): the subdivided mesh is not mirror symmetric")
        sym[i] = key[k]
    return sym
