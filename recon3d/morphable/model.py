"""The in-memory 3D Morphable Model and its on-disk ``.npz`` format (format_version 1).

Every model recon3d uses (the shipped default, converted BFM / SFM models, user-built models)
is a :class:`MorphableModel` and is stored with :func:`save_model` / read with :func:`load_model`.

On-disk keys (``np.load(..., allow_pickle=False)``; nothing in the file is executed):

==================  ============  =========================================================
key                 shape/dtype   meaning
==================  ============  =========================================================
format              str           ``"recon3d-3dmm"``
format_version      int           1
name, version       str           model id and version (recorded in params.json)
units               str           always ``"m"`` (converted on import)
mean                (V,3) f4      mean shape, model frame (see docs/CONVENTIONS.md), metres
shape_basis         (S,V,3) f4    identity basis **scaled by its std**: coeffs ~ N(0, 1)
expr_basis          (E,V,3) f4    expression basis, scaled: coeffs ~ N(0, 1) (E may be 0)
albedo_mean         (V,3) f4      per-vertex albedo, linear-ish RGB in [0, 1]
albedo_basis        (T,V,3) f4    albedo basis, scaled: coeffs ~ N(0, 1) (T may be 0)
shape_var,...       (S,) f4       explained-variance ratio per component (``*_var`` keys)
faces               (F,3) i8      triangles, 0-based, CCW seen from outside
uv                  (Vt,2) f4     texture coordinates, origin bottom-left, v up
uv_faces            (F,3) i8      triangles into ``uv``
sym_vertex          (V,) i8       index of each vertex's mirror (left <-> right)
uv_symmetric        bool          the UV layout is mirror symmetric about u = 0.5
lmk_faces           (68,) i8      iBUG-68 embedding: triangle index per landmark
lmk_bary            (68,3) f4     barycentric coordinates in that triangle
contour_verts       (17,K) i8     per jaw landmark, candidate vertices (-1 = padding) for the
                                  dynamic contour; empty (0,0) if the model has none
region_labels       (V,) i1       0 other, 1 skin, 2 eyes, 3 brows, 4 lips, 5 nose
face_weight         (V,) f4       photometric-loss weight per vertex (0 = ignore)
==================  ============  =========================================================
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch

from .._checks import check_shapes
from ..errors import AssetError, ShapeError
from ..io.atomic import atomic_file

__all__ = ["MorphableModel", "save_model", "load_model", "REGION_NAMES", "FORMAT_VERSION"]

FORMAT = "recon3d-3dmm"
FORMAT_VERSION = 1
REGION_NAMES = ("other", "skin", "eyes", "brows", "lips", "nose")

_TENSOR_FIELDS = (
    "mean", "shape_basis", "expr_basis", "albedo_mean", "albedo_basis", "shape_var", "expr_var",
    "albedo_var", "faces", "uv", "uv_faces", "sym_vertex", "lmk_faces", "lmk_bary", "contour_verts",
    "region_labels", "face_weight",
)


@dataclass(frozen=True)
class MorphableModel:
    """A linear 3D morphable model. Shapes use V verts, F faces, S/E/T shape/expr/albedo coeffs.

    Bases are scaled by their standard deviation, so a coefficient of 1 is one sigma.
    """

    name: str
    version: str
    mean: torch.Tensor  # (V,3) m
    shape_basis: torch.Tensor  # (S,V,3)
    expr_basis: torch.Tensor  # (E,V,3)
    albedo_mean: torch.Tensor  # (V,3)
    albedo_basis: torch.Tensor  # (T,V,3)
    faces: torch.Tensor  # (F,3) int64
    uv: torch.Tensor  # (Vt,2)
    uv_faces: torch.Tensor  # (F,3) int64
    sym_vertex: torch.Tensor  # (V,) int64
    lmk_faces: torch.Tensor  # (68,) int64
    lmk_bary: torch.Tensor  # (68,3)
    contour_verts: torch.Tensor  # (17,K) int64 or (0,0)
    region_labels: torch.Tensor  # (V,) int8
    face_weight: torch.Tensor  # (V,)
    shape_var: torch.Tensor  # (S,)
    expr_var: torch.Tensor  # (E,)
    albedo_var: torch.Tensor  # (T,)
    uv_symmetric: bool = False
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        d = check_shapes(
            f"MorphableModel({self.name!r})",
            mean=(self.mean, "V 3"),
            shape_basis=(self.shape_basis, "S V 3"),
            expr_basis=(self.expr_basis, "E V 3"),
            albedo_mean=(self.albedo_mean, "V 3"),
            albedo_basis=(self.albedo_basis, "T V 3"),
            faces=(self.faces, "F 3"),
            uv=(self.uv, "Vt 2"),
            uv_faces=(self.uv_faces, "F 3"),
            sym_vertex=(self.sym_vertex, "V"),
            lmk_faces=(self.lmk_faces, "L"),
            lmk_bary=(self.lmk_bary, "L 3"),
            region_labels=(self.region_labels, "V"),
            face_weight=(self.face_weight, "V"),
            shape_var=(self.shape_var, "S"),
            expr_var=(self.expr_var, "E"),
            albedo_var=(self.albedo_var, "T"),
        )
        if self.faces.numel() and int(self.faces.max()) >= d["V"]:
            raise ShapeError(f"MorphableModel({self.name!r}): faces index vertex {int(self.faces.max())} >= V={d['V']}")

    # -- sizes -------------------------------------------------------------------------------
    n_verts = property(lambda self: int(self.mean.shape[0]), doc="V, the number of vertices.")
    n_shape = property(lambda self: int(self.shape_basis.shape[0]), doc="S, the number of identity components.")
    n_expr = property(lambda self: int(self.expr_basis.shape[0]), doc="E, the number of expression components.")
    n_albedo = property(lambda self: int(self.albedo_basis.shape[0]), doc="T, the number of albedo components.")

    @property
    def device(self) -> torch.device:
        return self.mean.device

    # -- evaluation ---------------------------------------------------------------------------
    def shape(self, shape_coeffs: torch.Tensor, expr_coeffs: torch.Tensor | None = None) -> torch.Tensor:
        """Vertices ``(B, V, 3)`` in the model frame (metres) for coefficients ``(B,S)``, ``(B,E)``.

        Fewer coefficients than basis vectors use the leading components.
        """
        verts = self.mean[None] + torch.einsum("bs,svc->bvc", shape_coeffs, self.shape_basis[: shape_coeffs.shape[1]])
        if expr_coeffs is not None and expr_coeffs.shape[1] > 0:
            verts = verts + torch.einsum("be,evc->bvc", expr_coeffs, self.expr_basis[: expr_coeffs.shape[1]])
        return verts

    def albedo(self, albedo_coeffs: torch.Tensor | None = None, batch: int = 1) -> torch.Tensor:
        """Per-vertex albedo ``(B, V, 3)`` for coefficients ``(B, T)`` (``None``: the mean)."""
        if albedo_coeffs is None or albedo_coeffs.shape[1] == 0:
            return self.albedo_mean[None].expand(batch, -1, -1)
        return self.albedo_mean[None] + torch.einsum("bt,tvc->bvc", albedo_coeffs, self.albedo_basis[: albedo_coeffs.shape[1]])

    def landmarks(self, verts: torch.Tensor) -> torch.Tensor:
        """The 68 embedded landmarks ``(B, 68, 3)`` of vertices ``(B, V, 3)`` (static embedding)."""
        tri = self.faces[self.lmk_faces]  # (L,3)
        return (verts[:, tri] * self.lmk_bary[None, :, :, None]).sum(2)

    # -- housekeeping -------------------------------------------------------------------------
    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "MorphableModel":
        kw = {}
        for f in _TENSOR_FIELDS:
            t = getattr(self, f)
            if torch.is_floating_point(t):
                kw[f] = t.to(device=device, dtype=dtype or t.dtype)
            else:
                kw[f] = t.to(device=device)
        return replace(self, **kw)

    def truncate(self, n_shape: int | None = None, n_expr: int | None = None, n_albedo: int | None = None) -> "MorphableModel":
        """A model that keeps only the leading components."""
        return replace(
            self,
            shape_basis=self.shape_basis[:n_shape], shape_var=self.shape_var[:n_shape],
            expr_basis=self.expr_basis[:n_expr], expr_var=self.expr_var[:n_expr],
            albedo_basis=self.albedo_basis[:n_albedo], albedo_var=self.albedo_var[:n_albedo],
        )

    def summary(self) -> dict:
        return {
            "name": self.name, "version": self.version, "n_verts": self.n_verts, "n_faces": int(self.faces.shape[0]),
            "n_shape": self.n_shape, "n_expr": self.n_expr, "n_albedo": self.n_albedo, "uv_symmetric": self.uv_symmetric,
        }


def save_model(model: MorphableModel, path: str | Path, *, compress: bool = True, half: bool = False) -> str:
    """Write ``model`` to ``path`` (``.npz``, format_version 1) atomically. Returns the file's sha256.

    ``half=True`` stores the bases as float16 (they are converted back to float32 on load).
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = {
        "format": np.array(FORMAT),
        "format_version": np.array(FORMAT_VERSION),
        "name": np.array(model.name),
        "version": np.array(model.version),
        "units": np.array("m"),
        "uv_symmetric": np.array(bool(model.uv_symmetric)),
        "meta_json": np.array(json.dumps(model.meta)),
    }
    for f in _TENSOR_FIELDS:
        a = getattr(model, f).detach().cpu().numpy()
        if half and f in ("shape_basis", "expr_basis", "albedo_basis"):
            a = a.astype(np.float16)
        arrays[f] = a
    with atomic_file(path) as fh:
        (np.savez_compressed if compress else np.savez)(fh, **arrays)
    return hashlib.sha256(path.read_bytes()).hexdigest()


_HOW_TO = (
    "recon3d models are .npz files written by recon3d.morphable.save_model; build the default with "
    "`python -m pipelines.build_model` or convert BFM/SFM files with `python -m pipelines.convert_model`."
)


_FLOAT_FIELDS = ("mean", "shape_basis", "expr_basis", "albedo_mean", "albedo_basis", "shape_var", "expr_var",
                 "albedo_var", "uv", "lmk_bary", "face_weight")
_INT_FIELDS = ("faces", "uv_faces", "sym_vertex", "lmk_faces", "contour_verts", "region_labels")
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def _bad(path: Path, what: str) -> AssetError:
    return AssetError(f"{path}: invalid model file: {what}. {_HOW_TO}")


def _scalar_str(path: Path, z, key: str) -> str:
    if key not in z.files:
        raise _bad(path, f"no {key!r} entry")
    a = z[key]
    if a.ndim != 0 or a.dtype.kind != "U" or not str(a).strip():
        raise _bad(path, f"{key!r} must be a non-empty string, got {a.dtype} of shape {a.shape}")
    return str(a)


def _check_range(path: Path, key: str, a: np.ndarray, lo: float, hi: float, what: str) -> None:
    if a.size and (a.min() < lo or a.max() > hi):
        raise _bad(path, f"{key!r} values must be within [{lo:g}, {hi:g}] ({what}), found [{a.min():g}, {a.max():g}]")


def _read_arrays(path: Path, z) -> dict[str, np.ndarray]:
    """Every array of the file, checked for kind, finiteness and index ranges (shapes are checked by
    :class:`MorphableModel`), once, at load: a message names the array."""
    arrays: dict[str, np.ndarray] = {}
    for f in _TENSOR_FIELDS:
        try:
            a = z[f]
        except ValueError as e:  # object arrays: "cannot be loaded when allow_pickle=False"
            raise _bad(path, f"{f!r} is not a plain numeric array ({e})") from None
        if f in _FLOAT_FIELDS:
            if a.dtype.kind != "f":
                raise _bad(path, f"{f!r} must be floating point, got dtype {a.dtype}")
            if not np.isfinite(a).all():
                raise _bad(path, f"{f!r} contains NaN or Inf ({int((~np.isfinite(a)).sum())} values)")
        elif a.dtype.kind not in "iu" and not (f == "region_labels" and a.dtype.kind == "b"):
            raise _bad(path, f"{f!r} must be an integer index array, got dtype {a.dtype}")
        arrays[f] = a
    V = arrays["mean"].shape[0] if arrays["mean"].ndim == 2 else -1
    F = arrays["faces"].shape[0] if arrays["faces"].ndim == 2 else -1
    Vt = arrays["uv"].shape[0] if arrays["uv"].ndim == 2 else -1
    if V < 3 or F < 1:
        raise _bad(path, f"'mean' must be (V, 3) with V >= 3 and 'faces' (F, 3) with F >= 1, got "
                         f"{arrays['mean'].shape} and {arrays['faces'].shape}")
    _check_range(path, "mean", np.abs(arrays["mean"]), 0, 10, "metres")
    _check_range(path, "faces", arrays["faces"], 0, V - 1, f"vertex indices, V={V}")
    _check_range(path, "uv_faces", arrays["uv_faces"], 0, Vt - 1, f"indices into 'uv', Vt={Vt}")
    _check_range(path, "sym_vertex", arrays["sym_vertex"], 0, V - 1, f"vertex indices, V={V}")
    _check_range(path, "lmk_faces", arrays["lmk_faces"], 0, F - 1, f"triangle indices, F={F}")
    _check_range(path, "lmk_bary", arrays["lmk_bary"], -0.01, 1.01, "barycentric coordinates")
    _check_range(path, "region_labels", arrays["region_labels"].astype(np.int64), 0, len(REGION_NAMES) - 1,
                 "region ids")
    for f in ("face_weight", "shape_var", "expr_var", "albedo_var"):
        _check_range(path, f, arrays[f], 0, np.inf, "non-negative")
    if arrays["lmk_faces"].shape != (68,) or arrays["lmk_bary"].shape != (68, 3):
        raise _bad(path, f"'lmk_faces' must be (68,) and 'lmk_bary' (68, 3) (iBUG-68), got "
                         f"{arrays['lmk_faces'].shape} and {arrays['lmk_bary'].shape}")
    cv = arrays["contour_verts"]
    if cv.size == 0:
        arrays["contour_verts"] = np.zeros((0, 0), np.int64)
    elif cv.ndim != 2 or cv.shape[0] != 17:
        raise _bad(path, f"'contour_verts' must be (17, K) (or empty), got {cv.shape}")
    else:
        _check_range(path, "contour_verts", cv, -1, V - 1, f"vertex indices or -1 padding, V={V}")
    return arrays


def load_model(path: str | Path, *, device: torch.device | str | None = None) -> MorphableModel:
    """Read a model written by :func:`save_model`. Never unpickles.

    Every entry is validated here, once (kind, shape, finiteness, index ranges, ``name``,
    ``version``, ``format_version``), so a bad file fails at load with a message naming the array
    instead of failing every image later.

    Raises:
        AssetError: missing file, not an npz, wrong format or format_version, missing keys, or an
            invalid entry.
    """
    path = Path(path)
    if not path.is_file():
        raise AssetError(f"{path}: model file not found. {_HOW_TO}")
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError as e:
        raise AssetError(f"{path}: cannot read model file ({e.strerror or e}). {_HOW_TO}") from None
    if head not in _ZIP_MAGIC:
        raise AssetError(f"{path}: not an .npz model file (expected a zip archive, the file starts with {head!r}). "
                         f"{_HOW_TO}")
    try:
        z = np.load(path, allow_pickle=False)
        keys = set(z.files)
    except Exception as e:  # zipfile.BadZipFile, ValueError, OSError
        raise AssetError(f"{path}: not a readable .npz model file ({e.__class__.__name__}: {e}). {_HOW_TO}") from e
    if not hasattr(z, "files"):
        raise AssetError(f"{path}: not an .npz model file (a single .npy array). {_HOW_TO}")
    with z:
        try:
            fmt = str(z["format"]) if "format" in keys else None
        except ValueError:
            fmt = None
        if fmt != FORMAT:
            raise AssetError(f"{path}: not a recon3d morphable model (no 'format'='{FORMAT}' key). {_HOW_TO}")
        if "format_version" not in keys:
            raise _bad(path, "no 'format_version' entry")
        try:
            fv = z["format_version"]
        except ValueError:
            raise _bad(path, "'format_version' must be an integer") from None
        if fv.ndim != 0 or fv.dtype.kind not in "iu":
            raise _bad(path, f"'format_version' must be an integer, got {fv.dtype} of shape {fv.shape}")
        ver = int(fv)
        if ver != FORMAT_VERSION:
            raise AssetError(f"{path}: format_version {ver} is not supported (this recon3d reads {FORMAT_VERSION}). {_HOW_TO}")
        missing = [f for f in _TENSOR_FIELDS if f not in keys]
        if missing:
            raise AssetError(f"{path}: model file lacks keys {missing}. {_HOW_TO}")
        name, version = _scalar_str(path, z, "name"), _scalar_str(path, z, "version")
        meta: dict = {}
        try:
            uv_symmetric = bool(z["uv_symmetric"]) if "uv_symmetric" in keys else False
            if "meta_json" in keys:
                meta = json.loads(str(z["meta_json"]))
        except (ValueError, TypeError) as e:
            raise _bad(path, f"'uv_symmetric' or 'meta_json' unreadable ({e})") from None
        if not isinstance(meta, dict):
            raise _bad(path, "'meta_json' must hold a JSON object")
        kw = {}
        for f, a in _read_arrays(path, z).items():
            if a.dtype == np.float16 or a.dtype == np.float64:
                a = a.astype(np.float32)
            kw[f] = torch.from_numpy(np.ascontiguousarray(a))
        for f in ("faces", "uv_faces", "sym_vertex", "lmk_faces", "contour_verts"):
            kw[f] = kw[f].long()
        kw["region_labels"] = kw["region_labels"].to(torch.int8)
        try:
            model = MorphableModel(name=name, version=version, uv_symmetric=uv_symmetric, meta=meta, **kw)
        except ShapeError as e:
            raise AssetError(f"{path}: inconsistent model arrays: {e}. {_HOW_TO}") from e
    return model.to(device) if device is not None else model


_ = fields  # re-exported for tooling that inspects the dataclass
