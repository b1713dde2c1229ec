"""Readers and converters for user-supplied morphable models (BFM 2009, Deep3DFaceRecon's BFM front model,
BFM 2017/2019, the Surrey Face Model in eos's binary format).

Every reader returns a :class:`~recon3d.morphable.model.MorphableModel` in recon3d's conventions
(``docs/CONVENTIONS.md``): metres, model frame +X the subject's left / +Y up / +Z out of the face,
faces counter-clockwise seen from outside, bases scaled by their standard deviation so that
coefficients are N(0, 1). The exact file layouts these readers expect, the unit conversions and the
way missing landmarks are filled in are documented in ``docs/MODELS_USER.md``.

Nothing in a model file is executed: ``.mat`` files go through ``scipy.io.loadmat``, ``.h5`` files
through ``h5py`` (optional extra ``recon3d[bfm]``), eos ``.bin`` files through a small parser of
cereal's binary archive written here (:func:`read_eos_model`), and no pickle is ever loaded.

Side files (eos's share folder, or your own in the same formats):

* ``ibug_to_X.txt``: TOML ``[landmark_mappings]`` table, 1-based iBUG index = 0-based vertex id.
* ``X_contours.json``: ``{"model_contour": {"right_contour": [...], "left_contour": [...]}}``.
* ``X_symmetry.txt``: one 1-based vertex id per line (``#`` comments), the mirror of each vertex.
"""

from __future__ import annotations

import json
import logging
import struct
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..conventions import IBUG68_JAW, IBUG68_MIRROR
from ..errors import AssetError, BackendUnavailableError
from .model import MorphableModel

__all__ = [
    "FORMATS",
    "load_user_model",
    "load_bfm2009",
    "load_bfm_deep3d",
    "load_bfm2017",
    "load_sfm",
    "EosPcaModel",
    "EosModel",
    "read_eos_model",
    "read_eos_blendshapes",
    "read_ibug_mapping",
    "read_contours",
    "read_symmetry",
    "mirror_symmetry",
    "cylindrical_uv",
]

log = logging.getLogger(__name__)

#: Formats understood by :func:`load_user_model` and ``python -m pipelines.convert_model``.
FORMATS = ("bfm2009", "bfm-deep3d", "bfm2017", "sfm")

_GET_BFM = (
    "The Basel Face Model is not redistributable: register and download it from the University of Basel "
    "(BFM 2009: https://faces.dmi.unibas.ch/bfm/ -> 01_MorphableModel.mat; BFM 2017/2019: "
    "https://faces.dmi.unibas.ch/bfm/bfm2017.html -> model2017-1_bfm_nomouth.h5 or model2019_*.h5), then convert "
    "it with `python -m pipelines.convert_model FILE --format ... --out model.npz` (see docs/MODELS_USER.md)."
)
_GET_DEEP3D = (
    "BFM_model_front.mat is produced by Deep3DFaceRecon_pytorch's util/load_mats.py (transferBFM09) from the "
    "registered BFM 2009 file plus their Exp_Pca.bin / facemodel_info.mat; see docs/MODELS_USER.md."
)
_GET_SFM = (
    "The shape-only Surrey Face Model (sfm_shape_3448.bin and its side files) ships in the share/ folder of the eos "
    "repository (https://github.com/patrikhuber/eos); larger SFM resolutions: cvssp.org/facemodel. "
    "See docs/MODELS_USER.md."
)

#: Albedo used for shape-only models (a mid-grey skin tone, linear-ish RGB in [0, 1]).
_DEFAULT_ALBEDO = (0.62, 0.47, 0.40)


# =============================================================================================
# eos / cereal binary archive
# =============================================================================================


@dataclass(frozen=True)
class EosPcaModel:
    """An eos ``PcaModel`` as stored: ``mean (3V,)``, ``orthonormal_basis (3V, K)``,
    ``eigenvalues (K,)`` (variances), ``triangles (F, 3)`` 0-based. All empty for a missing model."""

    mean: np.ndarray
    orthonormal_basis: np.ndarray
    eigenvalues: np.ndarray
    triangles: np.ndarray


@dataclass(frozen=True)
class EosModel:
    """The contents of an eos ``MorphableModel`` file (class versions 1 to 4)."""

    version: int
    shape: EosPcaModel
    color: EosPcaModel
    expression: EosPcaModel | list[tuple[str, np.ndarray]] | None = None
    landmark_definitions: dict[str, int] | None = None
    texture_coordinates: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # (Vt,2), eos: v down
    texture_triangles: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.int64))


class _CerealReader:
    """Sequential reader of a cereal ``BinaryArchive`` (little endian, sizes as uint64)."""

    def __init__(self, data: bytes, path: Path, what: str, how: str):
        self.data, self.path, self.what, self.how, self.pos = data, path, what, how, 0

    def fail(self, msg: str) -> AssetError:
        return AssetError(f"{self.path}: not a valid {self.what} ({msg} at byte {self.pos}). {self.how}")

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail(f"truncated: needed {n} more bytes, {len(self.data) - self.pos} left")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def scalar(self, fmt: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt)))[0]

    def size(self, item_bytes: int) -> int:
        n = self.scalar("Q")
        if n * item_bytes > len(self.data) - self.pos:
            raise self.fail(f"truncated or corrupt: a sequence of {n} items does not fit in the file")
        return n

    def boolean(self) -> bool:
        b = self.scalar("B")
        if b not in (0, 1):
            raise self.fail(f"expected a bool (0/1), got {b}")
        return bool(b)

    def string(self) -> str:
        n = self.size(1)
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError as e:
            raise self.fail(f"bad string ({e})") from None

    def matrix(self) -> np.ndarray:
        """An Eigen float matrix: int32 rows, int32 cols, column-major float32 data."""
        rows, cols = self.scalar("i"), self.scalar("i")
        if rows < 0 or cols < 0:
            raise self.fail(f"implausible matrix size {rows}x{cols}")
        if rows * cols * 4 > len(self.data) - self.pos:
            raise self.fail(f"truncated or corrupt: a {rows}x{cols} matrix needs {rows * cols * 4} bytes, "
                            f"{len(self.data) - self.pos} left")
        a = np.frombuffer(self.take(rows * cols * 4), dtype="<f4").reshape(cols, rows).T
        return np.ascontiguousarray(a, dtype=np.float32)

    def int3_list(self) -> np.ndarray:
        n = self.size(12)
        return np.frombuffer(self.take(12 * n), dtype="<i4").reshape(n, 3).astype(np.int64)

    def pca_model(self, name: str) -> EosPcaModel:
        mean, basis, ev, tri = self.matrix(), self.matrix(), self.matrix(), self.int3_list()
        mean, ev = mean.reshape(-1), ev.reshape(-1)
        if mean.size:
            if mean.size % 3 or basis.shape[0] != mean.size or basis.shape[1] != ev.size:
                raise self.fail(
                    f"{name} PCA model has inconsistent sizes: mean {mean.size}, basis {basis.shape}, "
                    f"eigenvalues {ev.size}"
                )
            if tri.size and (tri.min() < 0 or tri.max() >= mean.size // 3):
                raise self.fail(f"{name} triangles index outside [0, {mean.size // 3})")
        return EosPcaModel(mean, basis, ev, tri)

    def blendshapes(self) -> list[tuple[str, np.ndarray]]:
        n = self.size(1)
        out = []
        for _ in range(n):
            name = self.string()
            out.append((name, self.matrix().reshape(-1)))
        return out


def _read_bytes(path: str | Path, what: str, how: str) -> tuple[Path, bytes]:
    path = Path(path)
    if not path.is_file():
        raise AssetError(f"{path}: {what} not found. {how}")
    return path, path.read_bytes()


def read_eos_model(path: str | Path) -> EosModel:
    """Parse an eos ``MorphableModel`` binary file (cereal ``BinaryOutputArchive``) without eos.

    Layout (little endian; determined from eos's ``MorphableModel.hpp``, ``PcaModel.hpp`` and
    ``eigen_cerealisation.hpp``; documented in ``docs/MODELS_USER.md``): ``uint32`` class version
    (1..4), then ``shape_model`` and ``color_model`` (each: Eigen ``mean``, ``orthonormal_pca_basis``,
    ``eigenvalues`` as ``int32 rows, int32 cols, float32 column-major``, then ``triangle_list`` as
    ``uint64 n`` + ``n*3 int32``); version >= 2: ``optional<variant<PcaModel, Blendshapes>>``
    expression model (``uint8 nullopt``, ``int32 index``, data); version >= 3: optional landmark
    definitions (``uint64 n`` of ``string, int32``); then ``texture_coordinates`` (``uint64 n`` +
    ``n*2 float64``, eos's v axis points down); version 4: ``texture_triangle_indices``.

    Raises:
        AssetError: missing file, unknown version, truncated or inconsistent data, trailing bytes.
    """
    what = "eos MorphableModel file (e.g. sfm_shape_3448.bin)"
    path, data = _read_bytes(path, what, _GET_SFM)
    r = _CerealReader(data, path, what, _GET_SFM)
    version = r.scalar("I")
    if not 1 <= version <= 4:
        raise r.fail(f"unknown eos MorphableModel class version {version} (expected 1..4)")
    shape = r.pca_model("shape")
    if shape.mean.size == 0:
        raise r.fail("the shape model is empty")
    color = r.pca_model("color")
    expression: EosPcaModel | list | None = None
    landmarks = None
    if version >= 2 and not r.boolean():  # nullopt == False: an expression model follows
        index = r.scalar("i")
        if index == 0:
            expression = r.pca_model("expression")
        elif index == 1:
            expression = r.blendshapes()
        else:
            raise r.fail(f"unknown expression model variant index {index}")
    if version >= 3 and not r.boolean():
        n = r.size(5)
        landmarks = {}
        for _ in range(n):
            key = r.string()
            landmarks[key] = int(r.scalar("i"))
    n = r.size(16)
    uv = np.frombuffer(r.take(16 * n), dtype="<f8").reshape(n, 2).copy()
    tti = r.int3_list() if version >= 4 else np.zeros((0, 3), np.int64)
    if r.pos != len(data):
        raise r.fail(f"{len(data) - r.pos} unexpected trailing bytes")
    return EosModel(version, shape, color, expression, landmarks, uv, tti)


def read_eos_blendshapes(path: str | Path) -> list[tuple[str, np.ndarray]]:
    """Parse an eos blendshapes file (``std::vector<Blendshape>``): ``uint64 n``, then per blendshape
    ``uint64 len`` + name bytes and an Eigen vector (``int32 rows, int32 cols=1, float32 data``).

    Returns:
        ``[(name, deformation (3V,) float32), ...]`` in the file's units.

    Raises:
        AssetError: missing, truncated or inconsistent file.
    """
    what = "eos blendshapes file (e.g. expression_blendshapes_3448.bin)"
    path, data = _read_bytes(path, what, _GET_SFM)
    r = _CerealReader(data, path, what, _GET_SFM)
    shapes = r.blendshapes()
    if r.pos != len(data):
        raise r.fail(f"{len(data) - r.pos} unexpected trailing bytes")
    if not shapes or len({s.size for _, s in shapes}) != 1 or shapes[0][1].size % 3:
        raise r.fail("expected one or more blendshapes of equal length 3V")
    return shapes


# =============================================================================================
# side files
# =============================================================================================


def read_ibug_mapping(path: str | Path) -> dict[int, int]:
    """Read an eos landmark mapping (``ibug_to_sfm.txt`` style, TOML).

    Returns:
        ``{ibug_index_0_based: vertex_id_0_based}`` for the landmarks the file defines.

    Raises:
        AssetError: missing file, not TOML, no ``[landmark_mappings]`` table, bad entries.
    """
    path = Path(path)
    how = "Use eos's share/ibug_to_*.txt files or write one in the same TOML format (docs/MODELS_USER.md)."
    if not path.is_file():
        raise AssetError(f"{path}: landmark mapping file not found. {how}")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise AssetError(f"{path}: not a TOML landmark mapping ({e}). {how}") from None
    table = doc.get("landmark_mappings")
    if not isinstance(table, dict) or not table:
        raise AssetError(f"{path}: expected a non-empty [landmark_mappings] table of 'IBUG_1BASED = VERTEX'. {how}")
    out = {}
    for k, v in table.items():
        try:
            i = int(k) - 1
        except ValueError:
            raise AssetError(f"{path}: landmark key {k!r} is not an iBUG number 1..68. {how}") from None
        if not 0 <= i < 68 or not isinstance(v, int) or v < 0:
            raise AssetError(f"{path}: bad mapping {k} = {v!r} (iBUG 1..68 = vertex id >= 0). {how}")
        out[i] = int(v)
    return out


def read_contours(path: str | Path) -> tuple[list[int], list[int]]:
    """Read an eos contour file: ``{"model_contour": {"right_contour": [...], "left_contour": [...]}}``.

    Returns:
        ``(right, left)`` 0-based vertex ids (the subject's right / left side).
    """
    path = Path(path)
    how = "Use eos's share/*_contours.json files or the same JSON layout (docs/MODELS_USER.md)."
    if not path.is_file():
        raise AssetError(f"{path}: contour file not found. {how}")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        mc = doc["model_contour"]
        right = [int(i) for i in mc["right_contour"]]
        left = [int(i) for i in mc["left_contour"]]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise AssetError(f"{path}: not an eos contour JSON ({e.__class__.__name__}: {e}). {how}") from None
    if len(right) < 2 or len(left) < 2 or min(right + left) < 0:
        raise AssetError(f"{path}: each contour needs at least 2 vertex ids >= 0. {how}")
    return right, left


def read_symmetry(path: str | Path) -> np.ndarray:
    """Read an eos symmetry file: one 1-based vertex id per line (the mirror of line i's vertex).

    Returns:
        ``(N,)`` int64, 0-based; ``N`` may be smaller than the model's vertex count (eos's file covers
        only the 845 reference vertices of the SFM).
    """
    path = Path(path)
    how = "Use eos's share/sfm_reference_symmetry.txt or the same layout (docs/MODELS_USER.md)."
    if not path.is_file():
        raise AssetError(f"{path}: symmetry file not found. {how}")
    try:
        a = np.loadtxt(path, comments="#", dtype=np.float64, ndmin=1)
    except ValueError as e:
        raise AssetError(f"{path}: not a list of vertex ids ({e}). {how}") from None
    if a.ndim != 1 or a.size == 0 or np.any(a != np.round(a)) or a.min() < 1:
        raise AssetError(f"{path}: expected one 1-based integer vertex id per line. {how}")
    return a.astype(np.int64) - 1


# =============================================================================================
# geometry helpers (numpy, float64)
# =============================================================================================


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
    from scipy.spatial import cKDTree

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


def _front_project(verts: np.ndarray, faces: np.ndarray, xy: np.ndarray) -> tuple[int, np.ndarray] | None:
    """The front-most triangle under the point ``xy`` seen along -Z, and its barycentrics."""
    a, b, c = verts[faces[:, 0], :2], verts[faces[:, 1], :2], verts[faces[:, 2], :2]
    v0, v1, v2 = b - a, c - a, xy[None] - a
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    ok = np.abs(den) > 1e-18
    den = np.where(ok, den, 1.0)
    w1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
    w2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
    w0 = 1.0 - w1 - w2
    eps = -1e-9
    inside = ok & (w0 >= eps) & (w1 >= eps) & (w2 >= eps)
    idx = np.flatnonzero(inside)
    if idx.size == 0:
        return None
    z = (w0[idx] * verts[faces[idx, 0], 2] + w1[idx] * verts[faces[idx, 1], 2] + w2[idx] * verts[faces[idx, 2], 2])
    f = int(idx[np.argmax(z)])
    bary = np.clip(np.array([w0[f], w1[f], w2[f]]), 0.0, None)
    return f, bary / bary.sum()


def _closest_on_mesh(verts: np.ndarray, faces: np.ndarray, p: np.ndarray) -> tuple[int, np.ndarray]:
    """Closest surface point to ``p``: (triangle, barycentrics), searched among nearby triangles."""
    cent = verts[faces].mean(1)
    k = min(64, len(faces))
    cand = np.argpartition(((cent - p) ** 2).sum(1), k - 1)[:k]
    best = (np.inf, 0, np.array([1.0, 0.0, 0.0]))
    for f in cand:
        a, b, c = verts[faces[f]]
        bary = _closest_bary(a, b, c, p)
        q = bary[0] * a + bary[1] * b + bary[2] * c
        d = float(((q - p) ** 2).sum())
        if d < best[0]:
            best = (d, int(f), bary)
    return best[1], best[2]


def _closest_bary(a: np.ndarray, b: np.ndarray, c: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Barycentrics of the point of triangle abc closest to p (plane projection, else nearest edge)."""
    n = np.cross(b - a, c - a)
    nn = float(n @ n)
    if nn > 1e-30:
        q = p - (n @ (p - a)) / nn * n
        w1 = float(np.cross(q - a, c - a) @ n) / nn  # weight of b
        w2 = float(np.cross(b - a, q - a) @ n) / nn  # weight of c
        w0 = 1.0 - w1 - w2
        if min(w0, w1, w2) >= 0:
            return np.array([w0, w1, w2])
    best, out = np.inf, np.array([1.0, 0.0, 0.0])
    for i, j in ((0, 1), (1, 2), (2, 0)):
        P, Q = (a, b, c)[i], (a, b, c)[j]
        e = Q - P
        t = float(np.clip((p - P) @ e / max(float(e @ e), 1e-30), 0.0, 1.0))
        d = float(((P + t * e - p) ** 2).sum())
        if d < best:
            best = d
            out = np.zeros(3)
            out[i], out[j] = 1.0 - t, t
    return out


def _vertex_embedding(faces: np.ndarray, vid: int) -> tuple[int, np.ndarray]:
    rows, cols = np.nonzero(faces == vid)
    if rows.size == 0:
        raise ValueError(f"vertex {vid} is in no triangle")
    bary = np.zeros(3)
    bary[cols[0]] = 1.0
    return int(rows[0]), bary


def _point_in_polygon(xy: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd rule, ``xy (N,2)``, ``poly (P,2)`` -> ``(N,)`` bool."""
    x, y = xy[:, 0:1], xy[:, 1:2]
    x0, y0 = poly[:, 0][None], poly[:, 1][None]
    x1, y1 = np.roll(poly[:, 0], -1)[None], np.roll(poly[:, 1], -1)[None]
    cross = ((y0 > y) != (y1 > y)) & (x < (x1 - x0) * (y - y0) / np.where(y1 == y0, 1e-30, y1 - y0) + x0)
    return (cross.sum(1) % 2) == 1


def _dist_to_polyline(xy: np.ndarray, line: np.ndarray) -> np.ndarray:
    d = np.full(len(xy), np.inf)
    for P, Q in zip(line[:-1], line[1:], strict=True):
        e = Q - P
        t = np.clip(((xy - P) @ e) / max(float(e @ e), 1e-30), 0.0, 1.0)
        d = np.minimum(d, np.linalg.norm(P + t[:, None] * e - xy, axis=1))
    return d


# =============================================================================================
# landmarks, contours, regions
# =============================================================================================

# Rules for landmarks a mapping leaves out (0-based iBUG). Each returns a 2D (x, y) point of the
# frontal projection from landmarks already placed; the point is then put on the front-most surface.
# "l(a, b, t)" is a + t (b - a).
def _l(P: dict, a: int, b: int, t: float) -> np.ndarray:
    return P[a] + t * (P[b] - P[a])


def _xy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.array([x[0], y[1], 0.0])


def _eye_w(P: dict) -> float:
    return float(np.linalg.norm(P[39] - P[36]))


_RULES: list[tuple[int, tuple[int, ...], object]] = [
    # brows: the ends above the eye corners when the mapping has no brow at all (BFM 2017), then the
    # middle (slightly arched) and midpoints of neighbours
    (17, (36, 39), lambda P: _xy(_l(P, 39, 36, 1.3), P[36] + [0, 0.6 * _eye_w(P), 0])),
    (21, (36, 39), lambda P: _xy(_l(P, 36, 39, 1.05), P[39] + [0, 0.7 * _eye_w(P), 0])),
    (19, (17, 21), lambda P: _l(P, 17, 21, 0.5) + [0, 0.1 * float(np.linalg.norm(P[21] - P[17])), 0]),
    (18, (17, 19), lambda P: _l(P, 17, 19, 0.5)),
    (20, (19, 21), lambda P: _l(P, 19, 21, 0.5)),
    # nose-lip junction between the nose tip and the upper lip
    (33, (30, 51), lambda P: _l(P, 30, 51, 0.5)),
    # nose bridge from the inner eye corners down to the tip
    (27, (39, 42), lambda P: _l(P, 39, 42, 0.5)),
    (28, (27, 30), lambda P: _l(P, 27, 30, 1 / 3)),
    (29, (27, 30), lambda P: _l(P, 27, 30, 2 / 3)),
    # nostrils from the nose-lip junction and the mouth corner
    (31, (33, 48, 30), lambda P: _xy(_l(P, 33, 48, 0.65), _l(P, 33, 30, 0.12))),
    (32, (33, 31), lambda P: _l(P, 33, 31, 0.5)),
    # eyelids: thirds of the corner-to-corner segment, raised/lowered by 12% of the eye width
    (37, (36, 39), lambda P: _l(P, 36, 39, 1 / 3) + [0, 0.12 * np.linalg.norm(P[39] - P[36]), 0]),
    (38, (36, 39), lambda P: _l(P, 36, 39, 2 / 3) + [0, 0.12 * np.linalg.norm(P[39] - P[36]), 0]),
    (40, (36, 39), lambda P: _l(P, 36, 39, 2 / 3) - [0, 0.10 * np.linalg.norm(P[39] - P[36]), 0]),
    (41, (36, 39), lambda P: _l(P, 36, 39, 1 / 3) - [0, 0.10 * np.linalg.norm(P[39] - P[36]), 0]),
    # outer lips from the corners and the mid points
    (49, (48, 51), lambda P: _xy(_l(P, 51, 48, 0.65), _l(P, 51, 48, 0.3))),
    (50, (48, 51), lambda P: _xy(_l(P, 51, 48, 0.3), P[51])),
    (58, (48, 57), lambda P: _xy(_l(P, 57, 48, 0.35), _l(P, 57, 48, 0.1))),
    (59, (48, 57), lambda P: _xy(_l(P, 57, 48, 0.7), _l(P, 57, 48, 0.45))),
    # inner lips
    (60, (48, 62, 66), lambda P: P[48] + 0.15 * (0.5 * (P[62] + P[66]) - P[48])),
    (61, (62, 60), lambda P: _xy(_l(P, 62, 60, 0.5), _l(P, 62, 60, 0.2))),
    (67, (66, 60), lambda P: _xy(_l(P, 66, 60, 0.5), _l(P, 66, 60, 0.2))),
    (62, (61, 63), lambda P: _l(P, 61, 63, 0.5)),
    (66, (65, 67), lambda P: _l(P, 65, 67, 0.5)),
]


def _jaw_from_contours(
    verts: np.ndarray, contours: tuple[Sequence[int], Sequence[int]], P: dict, src: dict
) -> None:
    """Place the jaw landmarks 0..16 (those still missing) along the model's contour lines."""
    right, left = (np.asarray(c, dtype=np.int64) for c in contours)
    if 8 not in P:  # chin: lowest midline point between the contours' lower ends
        ends = [verts[c[np.argmin(verts[c, 1])]] for c in (right, left)]
        target = 0.5 * (ends[0] + ends[1])
        mid = np.flatnonzero(np.abs(verts[:, 0]) < 0.01 * np.ptp(verts[:, 0]) + 1e-9)
        pool = mid if mid.size else np.arange(len(verts))
        P[8] = verts[pool[np.argmin(((verts[pool] - target) ** 2).sum(1))]]
        src[8] = "contour"
    for side, ids, lmks in ((-1, right, range(0, 8)), (1, left, range(16, 8, -1))):
        line = ids[np.argsort(-verts[ids, 1])]  # top to bottom
        if len(line) == 8:
            for k, j in enumerate(lmks):
                if j not in P:
                    P[j], src[j] = verts[line[k]], "contour"
            continue
        pts = verts[line]
        eye = 36 if side < 0 else 45
        if eye in P:  # start at the height of the outer eye corner
            pts = pts[pts[:, 1] <= P[eye][1]] if (pts[:, 1] <= P[eye][1]).sum() >= 2 else pts
        pts = np.concatenate([pts, P[8][None]], 0)
        seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
        cum = np.concatenate([[0.0], np.cumsum(seg)])
        for k, j in enumerate(lmks):
            if j in P:
                continue
            s = cum[-1] * k / 8.0
            i = int(np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(seg) - 1))
            t = (s - cum[i]) / max(seg[i], 1e-12)
            P[j], src[j] = pts[i] + t * (pts[i + 1] - pts[i]), "contour"


def _embed_landmarks(
    verts: np.ndarray,
    faces: np.ndarray,
    mapping: dict[int, int],
    contours: tuple[Sequence[int], Sequence[int]] | None,
    where: str,
) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """The 68-landmark embedding: ``(lmk_faces (68,), lmk_bary (68,3), sources, positions (68,3))``.

    Mapped vertices are exact (barycentric one-hot). Missing points are, in order: mirrored from their
    left/right counterpart, placed along the contours (jaw), or interpolated from neighbours (rules
    above); all are recorded in ``sources``.
    """
    P: dict[int, np.ndarray] = {}
    src: dict[int, str] = {}
    V = len(verts)
    for i, v in mapping.items():
        if not 0 <= v < V:
            raise AssetError(f"{where}: landmark {i + 1} maps to vertex {v}, outside [0, {V})")
        P[i], src[i] = verts[v], "exact"
    M = np.array([-1.0, 1.0, 1.0])
    for _ in range(6):
        for i in range(68):  # mirror of a known landmark
            j = IBUG68_MIRROR[i]
            if i not in P and j in P and src[j] in ("exact", "contour", "interpolated"):
                P[i], src[i] = P[j] * M, "mirrored"
        if contours is not None and any(j not in P for j in IBUG68_JAW):
            if all(k in P for k in (36, 45)) or 8 in P:
                _jaw_from_contours(verts, contours, P, src)
        for i, needs, fn in _RULES:
            if i not in P and all(n in P for n in needs):
                P[i], src[i] = np.asarray(fn(P), dtype=np.float64), "interpolated"  # type: ignore[operator]
            mi = IBUG68_MIRROR[i]
            mneeds = [IBUG68_MIRROR[n] for n in needs]
            if mi not in P and all(n in P for n in mneeds):
                Q = {n: P[IBUG68_MIRROR[n]] * M for n in needs}
                P[mi], src[mi] = np.asarray(fn(Q), dtype=np.float64) * M, "interpolated"  # type: ignore[operator]
        if len(P) == 68:
            break
    missing = [i + 1 for i in range(68) if i not in P]
    if missing:
        hint = " (pass --contours for the jaw 1-17)" if any(m <= 17 for m in missing) else ""
        raise AssetError(
            f"{where}: cannot place iBUG landmarks {missing} from the mapping{hint}; give a mapping that covers "
            "more points (see docs/MODELS_USER.md)."
        )
    lf = np.zeros(68, np.int64)
    lb = np.zeros((68, 3))
    pos = np.zeros((68, 3))
    for i in range(68):
        if src[i] == "exact":
            lf[i], lb[i] = _vertex_embedding(faces, mapping[i])
        else:
            hit = None
            if src[i] == "interpolated" or (src[i] == "mirrored" and i not in IBUG68_JAW):
                hit = _front_project(verts, faces, P[i][:2])
            lf[i], lb[i] = hit if hit is not None else _closest_on_mesh(verts, faces, P[i])
        pos[i] = (verts[faces[lf[i]]] * lb[i][:, None]).sum(0)
    return lf, lb, [src[i] for i in range(68)], pos


def _contour_bands(verts: np.ndarray, normals: np.ndarray, lmk: np.ndarray, k_max: int = 24) -> np.ndarray:
    """Per jaw landmark, candidate vertices for the dynamic contour, ``(17, K)`` int64 padded with -1.

    Row ``j`` is a thin horizontal band (half-height 2% of the jaw width) at the static landmark's
    height on its side of the face, from 70% of the way towards the face's midline out to the static
    landmark itself (never further out), ordered inside -> out; the vertex nearest the static landmark
    is always the last one. A fitter that takes the candidate projecting furthest outwards therefore
    gets the static landmark for a frontal face and the cheek's silhouette when that side turns away.
    Row 8 (the chin) holds the chin vertex only.
    """
    width = float(np.ptp(lmk[:17, 0])) or 1.0
    mid_x = 0.5 * float(lmk[30, 0] + lmk[51, 0])
    rows = []
    for j in range(17):
        p = lmk[j]
        near = int(np.argmin(((verts - p) ** 2).sum(1)))
        s = np.sign(p[0] - mid_x)
        ax = s * (p[0] - mid_x)  # distance of the landmark from the midline
        if j == 8 or ax < 0.05 * width:
            rows.append([near])
            continue
        dx = s * (verts[:, 0] - mid_x)
        m = (np.abs(verts[:, 1] - p[1]) < 0.02 * width) & (dx <= ax) & (dx >= 0.3 * ax) & (normals[:, 2] > -0.3)
        idx = np.flatnonzero(m)
        idx = idx[idx != near]
        idx = idx[np.argsort(dx[idx])]
        if idx.size > k_max - 1:
            idx = idx[np.round(np.linspace(0, idx.size - 1, k_max - 1)).astype(int)]
        rows.append(idx.tolist() + [near])
    K = max(len(r) for r in rows)
    out = np.full((17, K), -1, np.int64)
    for j, r in enumerate(rows):
        out[j, : len(r)] = r
    return out


def _vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    fn = np.cross(b - a, c - a)
    vn = np.zeros_like(verts)
    for k in range(3):
        np.add.at(vn, faces[:, k], fn)
    return vn / np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-30)


def _regions(verts: np.ndarray, normals: np.ndarray, lmk: np.ndarray) -> np.ndarray:
    """Region labels (0 other, 1 skin, 2 eyes, 3 brows, 4 lips, 5 nose) from the landmark layout, in
    the frontal (x, y) projection; only front-facing vertices get a facial label."""
    xy = verts[:, :2]
    L = lmk[:, :2]
    eye_w = float(np.linalg.norm(L[39] - L[36]))
    front = normals[:, 2] > 0.0
    lab = np.zeros(len(verts), np.int8)
    # face: the jaw line closed over the forehead (raised brows)
    rise = 0.45 * float(0.5 * (L[19, 1] + L[24, 1]) - L[8, 1])
    face_poly = np.concatenate([L[0:17], L[[26]] + [0, rise], L[[17]] + [0, rise]], 0)
    lab[_point_in_polygon(xy, face_poly) & front] = 1
    nose_poly = np.concatenate([L[[27]], L[[31]] + [-0.1 * eye_w, 0], L[31:36], L[[35]] + [0.1 * eye_w, 0]], 0)
    nose = _point_in_polygon(xy, nose_poly) | (_dist_to_polyline(xy, L[27:31]) < 0.25 * eye_w)
    lab[nose & front & (lab == 1)] = 5
    brows = (_dist_to_polyline(xy, L[17:22]) < 0.22 * eye_w) | (_dist_to_polyline(xy, L[22:27]) < 0.22 * eye_w)
    lab[brows & front & (lab == 1)] = 3
    lips = _point_in_polygon(xy, L[48:60])
    lab[lips & front & (lab >= 1)] = 4
    eyes = np.zeros(len(verts), bool)
    for a, b in ((36, 42), (42, 48)):
        c = L[a:b].mean(0)
        poly = c + 1.25 * (L[a:b] - c)  # a little larger than the lid landmarks
        eyes |= _point_in_polygon(xy, poly)
    lab[eyes & front & (lab >= 1)] = 2
    return lab


#: photometric-loss weight per region (other, skin, eyes, brows, lips, nose); the default model's values
_REGION_WEIGHT = np.array([0.0, 1.0, 0.2, 0.4, 0.6, 1.0], np.float32)


# =============================================================================================
# assembly
# =============================================================================================


def _t(a: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).to(dtype)


def _var_ratio(var: np.ndarray, total: float | None = None) -> np.ndarray:
    var = np.asarray(var, np.float64).reshape(-1)
    tot = float(var.sum()) if total is None else total
    return (var / tot).astype(np.float32) if tot > 0 else np.zeros_like(var, np.float32)


def _assemble(
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
    lf, lb, src, lpos = _embed_landmarks(mean, faces, mapping, contours, where)
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
    contour_verts = _contour_bands(mean, normals, lpos)
    meta["contour_verts"] = (
        "contour_verts[k] lists candidate vertices for jaw landmark k (-1 padded), inner -> outer, the last one "
        "nearest the static landmark: a thin horizontal band on its side; use the outermost projected one"
    )
    regions = _regions(mean, normals, lpos)
    fw = _REGION_WEIGHT[regions] if face_weight is None else face_weight.astype(np.float32)
    if uv is None:
        uv = cylindrical_uv(mean)
        uv_faces = faces
        meta["uv"] = "cylindrical projection of the mean (recon3d.morphable.loaders.cylindrical_uv)"
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


def _basis(cols: np.ndarray, V: int, scale: float | np.ndarray = 1.0) -> np.ndarray:
    """``(3V, K)`` columns (xyzxyz...) times ``scale`` -> ``(K, V, 3)`` float32."""
    cols = np.asarray(cols, dtype=np.float32) * np.asarray(scale, dtype=np.float32)
    return np.ascontiguousarray(cols.T.reshape(-1, V, 3))


def _side(path, reader, *args):
    return None if path is None else reader(path, *args)


# =============================================================================================
# loaders
# =============================================================================================


def _loadmat(path: Path, what: str, how: str) -> dict:
    import scipy.io

    if not path.is_file():
        raise AssetError(f"{path}: {what} not found. {how}")
    try:
        return scipy.io.loadmat(str(path))
    except NotImplementedError as e:  # MATLAB v7.3 (HDF5) files
        raise AssetError(f"{path}: MATLAB v7.3 files are not supported ({e}); re-save it with -v7. {how}") from None
    except Exception as e:  # scipy raises ValueError / TypeError / OSError on garbage
        raise AssetError(f"{path}: not a readable MATLAB .mat {what} ({e.__class__.__name__}: {e}). {how}") from None


def _need(m: dict, path: Path, what: str, how: str, spec: dict[str, str]) -> dict[str, np.ndarray]:
    """Fetch keys from a loaded .mat and check their shapes (spec: 'R C' with names bound across keys)."""
    dims: dict[str, int] = {}
    out = {}
    for key, s in spec.items():
        if key not in m:
            raise AssetError(f"{path}: {what} lacks the key {key!r} (has {sorted(k for k in m if not k.startswith('__'))}). {how}")
        a = np.asarray(m[key])
        toks = s.split()
        if a.ndim != len(toks) or not np.issubdtype(a.dtype, np.number):
            raise AssetError(f"{path}: {what} key {key!r} must be a numeric ({s}) array, got {a.dtype} {a.shape}. {how}")
        for t, n in zip(toks, a.shape, strict=True):
            if t.isdigit():
                if int(t) != n:
                    raise AssetError(f"{path}: {what} key {key!r} must be ({s}), got {a.shape}. {how}")
            elif t in dims and dims[t] != n:
                raise AssetError(f"{path}: {what} key {key!r} must be ({s}) with {t}={dims[t]}, got {a.shape}. {how}")
            else:
                dims[t] = n
        out[key] = a
    return out


def _ids(a: np.ndarray, path: Path, key: str, how: str, base: int = 1) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.size and (np.any(a != np.round(a)) or a.min() < base):
        raise AssetError(f"{path}: {key!r} must hold {base}-based integer indices. {how}")
    return a.astype(np.int64) - base


def load_bfm2009(
    path: str | Path,
    *,
    landmarks: str | Path | None = None,
    contours: str | Path | None = None,
    symmetry: str | Path | None = None,
    name: str = "bfm2009",
) -> MorphableModel:
    """Read the Basel Face Model 2009 ``01_MorphableModel.mat``.

    Keys used: ``shapeMU (3V,1)``, ``shapePC (3V,199)``, ``shapeEV (199,1)`` (standard deviations),
    ``texMU``, ``texPC``, ``texEV`` (same shapes, colour in 0..255), ``tl (F,3)`` 1-based triangles
    (float64). Units micrometres -> metres (x 1e-6). BFM 2009 has no expression basis (E = 0) and no
    UVs (a cylindrical layout of the mean is computed). Its triangles are clockwise from outside and
    are flipped. Landmarks need an iBUG mapping (eos's ``ibug_to_bfm2009.txt`` + the contours file;
    missing points are filled as documented in docs/MODELS_USER.md).

    Raises:
        AssetError: missing/corrupt file, missing keys, wrong shapes, or landmarks that cannot be placed.
    """
    path = Path(path)
    what = "BFM 2009 model (01_MorphableModel.mat)"
    m = _loadmat(path, what, _GET_BFM)
    a = _need(m, path, what, _GET_BFM, {
        "shapeMU": "D 1", "shapePC": "D S", "shapeEV": "S 1", "texMU": "D 1", "texPC": "D T", "texEV": "T 1",
        "tl": "F 3",
    })
    D = a["shapeMU"].shape[0]
    if D % 3:
        raise AssetError(f"{path}: shapeMU has {D} rows, not a multiple of 3. {_GET_BFM}")
    V = D // 3
    if landmarks is None:
        raise AssetError(
            f"{path}: BFM 2009 has no built-in landmarks; pass an iBUG mapping (eos's ibug_to_bfm2009.txt) and "
            "its contours (bfm2009_model_contours.json), see docs/MODELS_USER.md."
        )
    s_sd = a["shapeEV"].reshape(-1).astype(np.float64)
    t_sd = a["texEV"].reshape(-1).astype(np.float64)
    meta = {
        "source_format": "bfm2009", "source_file": path.name,
        "units_source": "micrometres (x 1e-6 -> metres); colour 0..255 (/255)",
        "scaling": "shape/albedo bases = orthonormal PCs x shapeEV/texEV (standard deviations)",
        "expression": "none (BFM 2009 has no expression basis)",
    }
    return _assemble(
        name=name, version="bfm2009", where=str(path),
        mean=a["shapeMU"].reshape(V, 3).astype(np.float64) * 1e-6,
        shape_basis=_basis(a["shapePC"], V, s_sd * 1e-6), shape_var=_var_ratio(s_sd**2),
        expr_basis=np.zeros((0, V, 3), np.float32), expr_var=np.zeros(0, np.float32),
        albedo_mean=a["texMU"].reshape(V, 3).astype(np.float32) / 255.0,
        albedo_basis=_basis(a["texPC"], V, t_sd / 255.0), albedo_var=_var_ratio(t_sd**2),
        faces=_ids(a["tl"], path, "tl", _GET_BFM), uv=None, uv_faces=None,
        mapping=read_ibug_mapping(landmarks), contours=_side(contours, read_contours),
        symmetry=_side(symmetry, read_symmetry), meta=meta,
    )


def load_bfm_deep3d(
    path: str | Path,
    *,
    landmarks: str | Path | None = None,
    contours: str | Path | None = None,
    symmetry: str | Path | None = None,
    name: str = "bfm-deep3d",
) -> MorphableModel:
    """Read Deep3DFaceRecon's ``BFM_model_front.mat`` (35,709-vertex front crop of BFM 2009 + expressions).

    Keys used: ``meanshape (1,3V)``, ``idBase (3V,80)``, ``exBase (3V,64)``, ``meantex (1,3V)`` 0..255,
    ``texBase (3V,80)``, ``tri (F,3)`` 1-based, ``keypoints (1,68)`` 1-based vertex ids; optional
    ``frontmask2_idx (N,1)`` 1-based (used as the photometric face_weight region). Deep3DFaceRecon
    built the bases as orthonormal PC x standard deviation / 1e5 (micrometres -> decimetres), so they are
    already scaled for N(0, 1) coefficients: recon3d multiplies geometry by 0.1 (-> metres) and colour
    by 1/255; the per-column norms give the variances (``*_var`` are ratios among the kept columns).

    Raises:
        AssetError: missing/corrupt file, missing keys, wrong shapes.
    """
    path = Path(path)
    what = "Deep3DFaceRecon BFM front model (BFM_model_front.mat)"
    m = _loadmat(path, what, _GET_DEEP3D)
    a = _need(m, path, what, _GET_DEEP3D, {
        "meanshape": "1 D", "idBase": "D S", "exBase": "D E", "meantex": "1 D", "texBase": "D T", "tri": "F 3",
    })
    D = a["meanshape"].shape[1]
    if D % 3:
        raise AssetError(f"{path}: meanshape has {D} entries, not a multiple of 3. {_GET_DEEP3D}")
    V = D // 3
    if landmarks is not None:
        mapping = read_ibug_mapping(landmarks)
    else:
        if "keypoints" not in m or np.asarray(m["keypoints"]).size != 68:
            raise AssetError(f"{path}: {what} lacks 'keypoints' (68 1-based vertex ids). {_GET_DEEP3D}")
        kp = _ids(np.asarray(m["keypoints"]).reshape(-1), path, "keypoints", _GET_DEEP3D)
        mapping = {i: int(v) for i, v in enumerate(kp)}
    fw = None
    if "frontmask2_idx" in m:
        idx = _ids(np.asarray(m["frontmask2_idx"]).reshape(-1), path, "frontmask2_idx", _GET_DEEP3D)
        if idx.size and idx.max() < V:
            fw = np.zeros(V, np.float32)
            fw[idx] = 1.0
    ex, idb, tb = (np.asarray(a[k], dtype=np.float64) for k in ("exBase", "idBase", "texBase"))
    meta = {
        "source_format": "bfm-deep3d", "source_file": path.name,
        "units_source": "decimetres (x 0.1 -> metres); colour 0..255 (/255)",
        "scaling": "bases as stored (already PC x std); *_var = squared column norms / their sum",
        "face_weight": "frontmask2_idx" if fw is not None else "regions",
    }
    return _assemble(
        name=name, version="bfm-deep3d", where=str(path),
        mean=a["meanshape"].reshape(V, 3).astype(np.float64) * 0.1,
        shape_basis=_basis(idb, V, 0.1), shape_var=_var_ratio((idb**2).sum(0)),
        expr_basis=_basis(ex, V, 0.1), expr_var=_var_ratio((ex**2).sum(0)),
        albedo_mean=a["meantex"].reshape(V, 3).astype(np.float32) / 255.0,
        albedo_basis=_basis(tb, V, 1.0 / 255.0), albedo_var=_var_ratio((tb**2).sum(0)),
        faces=_ids(a["tri"], path, "tri", _GET_DEEP3D), uv=None, uv_faces=None,
        mapping=mapping, contours=_side(contours, read_contours), symmetry=_side(symmetry, read_symmetry),
        face_weight=fw, meta=meta,
    )


def load_bfm2017(
    path: str | Path,
    *,
    landmarks: str | Path | None = None,
    contours: str | Path | None = None,
    symmetry: str | Path | None = None,
    name: str | None = None,
) -> MorphableModel:
    """Read a Basel Face Model 2017/2019 ``.h5`` file (needs ``h5py``: ``pip install recon3d[bfm]``).

    Datasets used: ``shape/model/{mean (3V,), pcaBasis (3V,K), pcaVariance (K,)}``,
    ``shape/representer/cells (3,F)`` 0-based, ``color/model/...`` (colour in [0, 1]) and
    ``expression/model/...`` (its mean is added to the shape mean). Units millimetres -> metres.
    Bases are orthonormal and scaled here by sqrt(pcaVariance).

    Raises:
        BackendUnavailableError: h5py is missing.
        AssetError: missing/corrupt file, missing datasets, wrong shapes.
    """
    path = Path(path)
    what = "BFM 2017/2019 model (.h5)"
    try:
        import h5py
    except ImportError:
        raise BackendUnavailableError(
            "load_bfm2017(): reading .h5 models needs h5py: pip install h5py (or pip install recon3d[bfm])"
        ) from None
    if not path.is_file():
        raise AssetError(f"{path}: {what} not found. {_GET_BFM}")
    try:
        hf = h5py.File(path, "r")
    except Exception as e:
        raise AssetError(f"{path}: not a readable HDF5 {what} ({e.__class__.__name__}: {e}). {_GET_BFM}") from None

    def get(key: str, ndim: int, required: bool = True) -> np.ndarray | None:
        if key not in hf:
            if not required:
                return None
            raise AssetError(f"{path}: {what} lacks the dataset {key!r}. {_GET_BFM}")
        a = np.asarray(hf[key])
        if a.ndim != ndim or not np.issubdtype(a.dtype, np.number):
            raise AssetError(f"{path}: {what} dataset {key!r} must be a {ndim}-D numeric array, got {a.dtype} {a.shape}. {_GET_BFM}")
        return a

    with hf:
        mean = get("shape/model/mean", 1)
        pcs = get("shape/model/pcaBasis", 2)
        var = get("shape/model/pcaVariance", 1)
        cells = get("shape/representer/cells", 2)
        D = mean.size
        if D % 3 or pcs.shape != (D, var.size) or cells.shape[0] != 3:
            raise AssetError(f"{path}: inconsistent shape model sizes: mean {mean.shape}, pcaBasis {pcs.shape}, "
                             f"pcaVariance {var.shape}, cells {cells.shape}. {_GET_BFM}")
        V = D // 3
        ex = [get(f"expression/model/{k}", n, False) for k, n in (("mean", 1), ("pcaBasis", 2), ("pcaVariance", 1))]
        co = [get(f"color/model/{k}", n, False) for k, n in (("mean", 1), ("pcaBasis", 2), ("pcaVariance", 1))]
    meanv = mean.reshape(V, 3).astype(np.float64)
    if ex[0] is not None and ex[1] is not None and ex[2] is not None:
        if ex[0].size != D or ex[1].shape != (D, ex[2].size):
            raise AssetError(f"{path}: expression model sizes do not match the shape model. {_GET_BFM}")
        meanv = meanv + ex[0].reshape(V, 3)
        e_basis, e_var = _basis(ex[1], V, np.sqrt(np.maximum(ex[2], 0)) * 1e-3), _var_ratio(ex[2])
    else:
        e_basis, e_var = np.zeros((0, V, 3), np.float32), np.zeros(0, np.float32)
    if co[0] is not None and co[1] is not None and co[2] is not None:
        if co[0].size != D or co[1].shape != (D, co[2].size):
            raise AssetError(f"{path}: colour model sizes do not match the shape model. {_GET_BFM}")
        cs = 255.0 if float(np.max(co[0])) > 2.0 else 1.0
        a_mean = co[0].reshape(V, 3).astype(np.float32) / cs
        a_basis, a_var = _basis(co[1], V, np.sqrt(np.maximum(co[2], 0)) / cs), _var_ratio(co[2])
    else:
        a_mean = np.tile(np.array(_DEFAULT_ALBEDO, np.float32), (V, 1))
        a_basis, a_var = np.zeros((0, V, 3), np.float32), np.zeros(0, np.float32)
    if landmarks is None:
        raise AssetError(f"{path}: pass an iBUG mapping for this model (e.g. eos's "
                         "ibug_to_bfm2017-1_bfm_nomouth.txt) and its contours; see docs/MODELS_USER.md.")
    meta = {
        "source_format": "bfm2017", "source_file": path.name,
        "units_source": "millimetres (x 1e-3 -> metres); colour [0, 1]",
        "scaling": "bases = pcaBasis x sqrt(pcaVariance)",
        "expression": "PCA expression model, its mean added to the shape mean" if e_basis.shape[0] else "none",
    }
    return _assemble(
        name=name or path.stem, version="bfm2017", where=str(path),
        mean=meanv * 1e-3, shape_basis=_basis(pcs, V, np.sqrt(np.maximum(var, 0)) * 1e-3), shape_var=_var_ratio(var),
        expr_basis=e_basis, expr_var=e_var, albedo_mean=a_mean, albedo_basis=a_basis, albedo_var=a_var,
        faces=_ids(cells.T, path, "shape/representer/cells", _GET_BFM, base=0), uv=None, uv_faces=None,
        mapping=read_ibug_mapping(landmarks), contours=_side(contours, read_contours),
        symmetry=_side(symmetry, read_symmetry), meta=meta,
    )


def load_sfm(
    path: str | Path,
    *,
    landmarks: str | Path | None = None,
    contours: str | Path | None = None,
    symmetry: str | Path | None = None,
    expression_blendshapes: str | Path | None = None,
    name: str | None = None,
) -> MorphableModel:
    """Read a Surrey Face Model (or any eos model) in eos's binary format, e.g. ``sfm_shape_3448.bin``.

    Units millimetres -> metres; eos's frame already is recon3d's (+X subject's left, +Y up, +Z out)
    and its triangles are CCW from outside (checked). The shape basis is the orthonormal basis x
    sqrt(eigenvalue). A shape-only model gets a constant albedo (T = 0). eos's texture coordinates have
    v pointing down; they are flipped to recon3d's v up. Expression ``blendshapes`` (eos's
    ``expression_blendshapes_3448.bin``) become ``expr_basis`` as they are: coefficient 1 = the full
    authored expression, not a PCA sigma; ``expr_var`` holds their squared-norm shares.

    ``landmarks`` defaults to ``ibug_to_sfm.txt`` semantics (TOML mapping); the SFM mapping lacks the
    inner mouth corners (iBUG 61, 65) and the jaw (1-8, 10-17), which are filled from neighbours and from
    ``contours`` (see docs/MODELS_USER.md); ``meta['landmark_sources']`` says which are exact.

    Raises:
        AssetError: missing/corrupt files, sizes that do not match the model.
    """
    path = Path(path)
    em = read_eos_model(path)
    D = em.shape.mean.size
    V = D // 3
    where = str(path)
    mean = em.shape.mean.reshape(V, 3).astype(np.float64) * 1e-3
    ev = em.shape.eigenvalues.astype(np.float64)
    shape_basis = _basis(em.shape.orthonormal_basis, V, np.sqrt(np.maximum(ev, 0)) * 1e-3)
    meta: dict = {
        "source_format": "sfm", "source_file": path.name, "eos_class_version": em.version,
        "units_source": "millimetres (x 1e-3 -> metres)",
        "scaling": "shape basis = orthonormal basis x sqrt(eigenvalues)",
    }
    if em.color.mean.size == D:
        cv = em.color.eigenvalues.astype(np.float64)
        a_mean = em.color.mean.reshape(V, 3).astype(np.float32)
        a_basis, a_var = _basis(em.color.orthonormal_basis, V, np.sqrt(np.maximum(cv, 0))), _var_ratio(cv)
        meta["albedo"] = "eos colour PCA model"
    else:
        a_mean = np.tile(np.array(_DEFAULT_ALBEDO, np.float32), (V, 1))
        a_basis, a_var = np.zeros((0, V, 3), np.float32), np.zeros(0, np.float32)
        meta["albedo"] = f"shape-only model: constant albedo {list(_DEFAULT_ALBEDO)}, T=0"
    e_basis, e_var = np.zeros((0, V, 3), np.float32), np.zeros(0, np.float32)
    shapes = None
    if expression_blendshapes is not None:
        shapes = read_eos_blendshapes(expression_blendshapes)
    elif isinstance(em.expression, list):
        shapes = em.expression
    elif isinstance(em.expression, EosPcaModel) and em.expression.mean.size == D:
        xv = em.expression.eigenvalues.astype(np.float64)
        mean = mean + em.expression.mean.reshape(V, 3) * 1e-3
        e_basis = _basis(em.expression.orthonormal_basis, V, np.sqrt(np.maximum(xv, 0)) * 1e-3)
        e_var = _var_ratio(xv)
        meta["expression"] = "eos PCA expression model (mean added to the shape mean)"
    if shapes is not None:
        if shapes[0][1].size != D:
            raise AssetError(f"{expression_blendshapes or path}: blendshapes have {shapes[0][1].size // 3} vertices, "
                             f"the model has {V} (wrong file for this model?). {_GET_SFM}")
        cols = np.stack([s for _, s in shapes], 1)
        e_basis = _basis(cols, V, 1e-3)
        e_var = _var_ratio((cols.astype(np.float64) ** 2).sum(0))
        meta["expression"] = "blendshapes (coefficient 1 = full authored expression; not PCA): " + ", ".join(
            n for n, _ in shapes)
    uv = uv_faces = None
    if em.texture_coordinates.shape[0]:
        uv = em.texture_coordinates.copy()
        uv[:, 1] = 1.0 - uv[:, 1]  # eos: origin top-left, v down -> recon3d: origin bottom-left, v up
        if em.texture_triangles.shape[0]:
            uv_faces = em.texture_triangles
        elif uv.shape[0] != V:
            raise AssetError(f"{path}: {uv.shape[0]} texture coordinates for {V} vertices and no texture triangles")
    mapping: dict[int, int] = {}
    if landmarks is not None:
        mapping = read_ibug_mapping(landmarks)
    elif em.landmark_definitions:
        mapping = {int(k) - 1: v for k, v in em.landmark_definitions.items() if k.isdigit() and 1 <= int(k) <= 68}
    if not mapping:
        raise AssetError(f"{path}: pass an iBUG mapping (eos's ibug_to_sfm.txt) and the contours "
                         f"(sfm_model_contours.json). {_GET_SFM}")
    return _assemble(
        name=name or path.stem, version=f"eos-v{em.version}", where=where,
        mean=mean, shape_basis=shape_basis, shape_var=_var_ratio(ev),
        expr_basis=e_basis, expr_var=e_var, albedo_mean=a_mean, albedo_basis=a_basis, albedo_var=a_var,
        faces=em.shape.triangles, uv=uv, uv_faces=uv_faces, mapping=mapping,
        contours=_side(contours, read_contours), symmetry=_side(symmetry, read_symmetry), meta=meta,
    )


def load_user_model(
    path: str | Path,
    *,
    format: str,
    landmarks: str | Path | None = None,
    contours: str | Path | None = None,
    symmetry: str | Path | None = None,
    expression_blendshapes: str | Path | None = None,
    name: str | None = None,
) -> MorphableModel:
    """Read a user-supplied model in one of :data:`FORMATS` (see the per-format readers).

    Raises:
        AssetError: unknown format, or whatever the reader raises.
    """
    kw = dict(landmarks=landmarks, contours=contours, symmetry=symmetry)
    if name:
        kw["name"] = name
    if format != "sfm" and expression_blendshapes is not None:
        raise AssetError(f"{expression_blendshapes}: expression blendshapes are only supported with --format sfm")
    if format == "bfm2009":
        return load_bfm2009(path, **kw)
    if format == "bfm-deep3d":
        return load_bfm_deep3d(path, **kw)
    if format == "bfm2017":
        return load_bfm2017(path, **kw)
    if format == "sfm":
        return load_sfm(path, expression_blendshapes=expression_blendshapes, **kw)
    raise AssetError(f"{path}: unknown model format {format!r}; expected one of {FORMATS}")
