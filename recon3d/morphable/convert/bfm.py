"""The Basel Face Model family: BFM 2009 (``01_MorphableModel.mat``), Deep3DFaceRecon's BFM front model
(``BFM_model_front.mat``) and BFM 2017/2019 (``.h5``, needs the optional ``h5py``).

``.mat`` files go through ``scipy.io.loadmat``, ``.h5`` files through ``h5py`` (``pip install
recon3d[bfm]``); nothing in a model file is executed. Key layouts and units: ``docs/MODELS_USER.md``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

from ...errors import AssetError, BackendUnavailableError
from ..model import MorphableModel
from .assemble import DEFAULT_ALBEDO, assemble, basis, var_ratio
from .side_files import SidePath, read_ibug_mapping, read_side_files

__all__ = ["load_bfm2009", "load_bfm_deep3d", "load_bfm2017"]

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


def _loadmat(path: Path, what: str, how: str) -> dict:
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


def load_bfm2009(path: str | Path, *, landmarks: SidePath = None, contours: SidePath = None,
                 symmetry: SidePath = None, name: str = "bfm2009") -> MorphableModel:
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
    return assemble(
        name=name, version="bfm2009", where=str(path),
        mean=a["shapeMU"].reshape(V, 3).astype(np.float64) * 1e-6,
        shape_basis=basis(a["shapePC"], V, s_sd * 1e-6), shape_var=var_ratio(s_sd**2),
        expr_basis=np.zeros((0, V, 3), np.float32), expr_var=np.zeros(0, np.float32),
        albedo_mean=a["texMU"].reshape(V, 3).astype(np.float32) / 255.0,
        albedo_basis=basis(a["texPC"], V, t_sd / 255.0), albedo_var=var_ratio(t_sd**2),
        faces=_ids(a["tl"], path, "tl", _GET_BFM), uv=None, uv_faces=None,
        mapping=read_ibug_mapping(landmarks), **read_side_files(contours, symmetry), meta=meta,
    )


def load_bfm_deep3d(path: str | Path, *, landmarks: SidePath = None, contours: SidePath = None,
                    symmetry: SidePath = None, name: str = "bfm-deep3d") -> MorphableModel:
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
    return assemble(
        name=name, version="bfm-deep3d", where=str(path),
        mean=a["meanshape"].reshape(V, 3).astype(np.float64) * 0.1,
        shape_basis=basis(idb, V, 0.1), shape_var=var_ratio((idb**2).sum(0)),
        expr_basis=basis(ex, V, 0.1), expr_var=var_ratio((ex**2).sum(0)),
        albedo_mean=a["meantex"].reshape(V, 3).astype(np.float32) / 255.0,
        albedo_basis=basis(tb, V, 1.0 / 255.0), albedo_var=var_ratio((tb**2).sum(0)),
        faces=_ids(a["tri"], path, "tri", _GET_DEEP3D), uv=None, uv_faces=None,
        mapping=mapping, **read_side_files(contours, symmetry), face_weight=fw, meta=meta,
    )


def load_bfm2017(path: str | Path, *, landmarks: SidePath = None, contours: SidePath = None,
                 symmetry: SidePath = None, name: str | None = None) -> MorphableModel:
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
        e_basis, e_var = basis(ex[1], V, np.sqrt(np.maximum(ex[2], 0)) * 1e-3), var_ratio(ex[2])
    else:
        e_basis, e_var = np.zeros((0, V, 3), np.float32), np.zeros(0, np.float32)
    if co[0] is not None and co[1] is not None and co[2] is not None:
        if co[0].size != D or co[1].shape != (D, co[2].size):
            raise AssetError(f"{path}: colour model sizes do not match the shape model. {_GET_BFM}")
        cs = 255.0 if float(np.max(co[0])) > 2.0 else 1.0
        a_mean = co[0].reshape(V, 3).astype(np.float32) / cs
        a_basis, a_var = basis(co[1], V, np.sqrt(np.maximum(co[2], 0)) / cs), var_ratio(co[2])
    else:
        a_mean = np.tile(np.array(DEFAULT_ALBEDO, np.float32), (V, 1))
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
    return assemble(
        name=name or path.stem, version="bfm2017", where=str(path),
        mean=meanv * 1e-3, shape_basis=basis(pcs, V, np.sqrt(np.maximum(var, 0)) * 1e-3), shape_var=var_ratio(var),
        expr_basis=e_basis, expr_var=e_var, albedo_mean=a_mean, albedo_basis=a_basis, albedo_var=a_var,
        faces=_ids(cells.T, path, "shape/representer/cells", _GET_BFM, base=0), uv=None, uv_faces=None,
        mapping=read_ibug_mapping(landmarks), **read_side_files(contours, symmetry), meta=meta,
    )
