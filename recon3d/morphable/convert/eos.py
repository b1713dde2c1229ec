"""eos's binary model format (the Surrey Face Model, ``sfm_shape_3448.bin``, or any eos model):
a parser of cereal's binary archive written here (eos itself is not needed), and the converter
:func:`load_sfm`.

Nothing in a model file is executed and no pickle is ever loaded. The layout is documented in
``docs/MODELS_USER.md``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import AssetError
from ..model import MorphableModel
from .assemble import DEFAULT_ALBEDO, assemble, basis, var_ratio
from .side_files import SidePath, read_ibug_mapping, read_side_files

__all__ = ["EosPcaModel", "EosModel", "read_eos_model", "read_eos_blendshapes", "load_sfm"]

_GET_SFM = (
    "The shape-only Surrey Face Model (sfm_shape_3448.bin and its side files) ships in the share/ folder of the eos "
    "repository (https://github.com/patrikhuber/eos); larger SFM resolutions: cvssp.org/facemodel. "
    "See docs/MODELS_USER.md."
)


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


def load_sfm(path: str | Path, *, landmarks: SidePath = None, contours: SidePath = None, symmetry: SidePath = None,
             expression_blendshapes: SidePath = None, name: str | None = None) -> MorphableModel:
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
    shape_basis = basis(em.shape.orthonormal_basis, V, np.sqrt(np.maximum(ev, 0)) * 1e-3)
    meta: dict = {
        "source_format": "sfm", "source_file": path.name, "eos_class_version": em.version,
        "units_source": "millimetres (x 1e-3 -> metres)",
        "scaling": "shape basis = orthonormal basis x sqrt(eigenvalues)",
    }
    if em.color.mean.size == D:
        cv = em.color.eigenvalues.astype(np.float64)
        a_mean = em.color.mean.reshape(V, 3).astype(np.float32)
        a_basis, a_var = basis(em.color.orthonormal_basis, V, np.sqrt(np.maximum(cv, 0))), var_ratio(cv)
        meta["albedo"] = "eos colour PCA model"
    else:
        a_mean = np.tile(np.array(DEFAULT_ALBEDO, np.float32), (V, 1))
        a_basis, a_var = np.zeros((0, V, 3), np.float32), np.zeros(0, np.float32)
        meta["albedo"] = f"shape-only model: constant albedo {list(DEFAULT_ALBEDO)}, T=0"
    e_basis, e_var = np.zeros((0, V, 3), np.float32), np.zeros(0, np.float32)
    shapes = None
    if expression_blendshapes is not None:
        shapes = read_eos_blendshapes(expression_blendshapes)
    elif isinstance(em.expression, list):
        shapes = em.expression
    elif isinstance(em.expression, EosPcaModel) and em.expression.mean.size == D:
        xv = em.expression.eigenvalues.astype(np.float64)
        mean = mean + em.expression.mean.reshape(V, 3) * 1e-3
        e_basis = basis(em.expression.orthonormal_basis, V, np.sqrt(np.maximum(xv, 0)) * 1e-3)
        e_var = var_ratio(xv)
        meta["expression"] = "eos PCA expression model (mean added to the shape mean)"
    if shapes is not None:
        if shapes[0][1].size != D:
            raise AssetError(f"{expression_blendshapes or path}: blendshapes have {shapes[0][1].size // 3} vertices, "
                             f"the model has {V} (wrong file for this model?). {_GET_SFM}")
        cols = np.stack([s for _, s in shapes], 1)
        e_basis = basis(cols, V, 1e-3)
        e_var = var_ratio((cols.astype(np.float64) ** 2).sum(0))
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
    return assemble(
        name=name or path.stem, version=f"eos-v{em.version}", where=where,
        mean=mean, shape_basis=shape_basis, shape_var=var_ratio(ev),
        expr_basis=e_basis, expr_var=e_var, albedo_mean=a_mean, albedo_basis=a_basis, albedo_var=a_var,
        faces=em.shape.triangles, uv=uv, uv_faces=uv_faces, mapping=mapping, **read_side_files(contours, symmetry),
        meta=meta,
    )
