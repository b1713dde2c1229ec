"""Tests of recon3d.morphable.convert (and the deprecated recon3d.morphable.loaders) and pipelines.convert_model.

BFM readers run on small SYNTHETIC files written here with the same keys, shapes and dtypes as the real
files (docs/MODELS_USER.md); the SFM reader runs on the real eos file in ../shared (skipped if absent).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from pipelines.convert_model import main as convert_main
from recon3d.errors import AssetError
from recon3d.morphable import load_model, save_model
from recon3d.morphable.convert import (
    cylindrical_uv,
    load_bfm2009,
    load_bfm2017,
    load_bfm_deep3d,
    load_sfm,
    load_user_model,
    mirror_symmetry,
    read_eos_blendshapes,
    read_eos_model,
    read_ibug_mapping,
)

# ---------------------------------------------------------------------------------------------
# a synthetic face-like surface (millimetres, model frame), symmetric about x = 0
# ---------------------------------------------------------------------------------------------

# sparse iBUG mapping of the same kind as eos's ibug_to_bfm2009.txt (1-based iBUG: target x, y in mm)
_SPARSE = {
    18: (-55, 45), 20: (-32, 50), 22: (-10, 45), 23: (10, 45), 25: (32, 50), 27: (55, 45),
    31: (0, 0), 34: (0, -15), 37: (-45, 30), 40: (-15, 30), 43: (15, 30), 46: (45, 30),
    49: (-25, -35), 52: (0, -28), 55: (25, -35), 58: (0, -45), 63: (0, -33), 67: (0, -38),
}


def _face_mesh(n: int = 41) -> tuple[np.ndarray, np.ndarray]:
    """Grid over x in [-100, 100] mm, y in [-100, 100] mm; faces CCW seen from +Z."""
    xs = np.linspace(-100.0, 100.0, n)
    X, Y = np.meshgrid(xs, xs)  # rows: y
    Z = -60.0 * (X / 100) ** 2 - 20.0 * (Y / 100) ** 2 + 25.0 * np.exp(-(X**2 + (Y - 5) ** 2) / (2 * 12.0**2))
    verts = np.stack([X, Y, Z], -1).reshape(-1, 3)
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    return verts, faces


def _nearest(verts: np.ndarray, x: float, y: float) -> int:
    return int(np.argmin((verts[:, 0] - x) ** 2 + (verts[:, 1] - y) ** 2))


def _write_side_files(tmp: Path, verts: np.ndarray) -> tuple[Path, Path]:
    lm = tmp / "ibug_to_synth.txt"
    lines = ["# synthetic mapping", "[landmark_mappings]"]
    lines += [f"{k} = {_nearest(verts, x, y)}  # comment" for k, (x, y) in _SPARSE.items()]
    lm.write_text("\n".join(lines) + "\n")
    ys = np.linspace(25, -75, 8)
    right = [_nearest(verts, -70 + 8 * k, y) for k, y in enumerate(ys)]
    left = [_nearest(verts, 70 - 8 * k, y) for k, y in enumerate(ys)]
    ct = tmp / "synth_contours.json"
    ct.write_text(json.dumps({"model_contour": {"right_contour": right, "left_contour": left}}))
    return lm, ct


def _orthonormal(rows: int, cols: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((rows, cols)))
    return q


def _write_bfm2009(path: Path, verts_mm: np.ndarray, faces_ccw: np.ndarray, S: int = 6, T: int = 5) -> dict:
    V = len(verts_mm)
    d = {
        "shapeMU": (verts_mm * 1e3).reshape(-1, 1).astype(np.float32),  # micrometres
        "shapePC": _orthonormal(3 * V, S, 1).astype(np.float32),
        "shapeEV": np.linspace(3e4, 5e3, S).reshape(-1, 1).astype(np.float32),  # standard deviations
        "texMU": np.full((3 * V, 1), 128.0, np.float32),
        "texPC": _orthonormal(3 * V, T, 2).astype(np.float32),
        "texEV": np.linspace(400, 100, T).reshape(-1, 1).astype(np.float32),
        "tl": (faces_ccw[:, [0, 2, 1]] + 1).astype(np.float64),  # BFM: 1-based, clockwise from outside
        "segbin": np.zeros((V, 4), np.float64),
    }
    scipy.io.savemat(path, d)
    return d


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bfm")
    verts, faces = _face_mesh()
    lm, ct = _write_side_files(tmp, verts)
    d = _write_bfm2009(tmp / "01_MorphableModel.mat", verts, faces)
    return {"dir": tmp, "verts": verts, "faces": faces, "lm": lm, "ct": ct, "bfm": tmp / "01_MorphableModel.mat", "d": d}


def _net_normal_z(model) -> float:
    v, f = model.mean.double(), model.faces
    return float(torch.linalg.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]).sum(0)[2])


def _check_common(model, V: int) -> None:
    assert model.n_verts == V
    assert model.lmk_faces.shape == (68,) and model.lmk_bary.shape == (68, 3)
    assert torch.allclose(model.lmk_bary.sum(1), torch.ones(68), atol=1e-5)
    sym = model.sym_vertex
    assert torch.equal(sym[sym], torch.arange(V))  # involution
    assert _net_normal_z(model) > 0  # CCW from outside
    L = model.landmarks(model.mean[None])[0]
    assert L[30, 1] < L[36, 1] and L[30, 1] < L[45, 1]  # nose below the eyes
    assert L[57, 1] < L[33, 1]  # mouth below the nose
    assert L[36, 0] < 0 < L[45, 0]  # subject's right eye on -X
    assert L[0, 0] < L[8, 0] < L[16, 0]


# ---------------------------------------------------------------------------------------------
# BFM 2009
# ---------------------------------------------------------------------------------------------


def test_bfm2009_units_scaling_winding(synth):
    m = load_bfm2009(synth["bfm"], landmarks=synth["lm"], contours=synth["ct"])
    V = len(synth["verts"])
    _check_common(m, V)
    # a known 1e5 micrometre coordinate (x = 100 mm at the grid edge) becomes 0.1 m
    i = int(np.argmax(synth["d"]["shapeMU"].reshape(-1, 3)[:, 0]))
    assert synth["d"]["shapeMU"].reshape(-1, 3)[i, 0] == pytest.approx(1e5)
    assert float(m.mean[i, 0]) == pytest.approx(0.1, rel=1e-6)
    # bases scaled by the standard deviation: |basis_k| = shapeEV_k (orthonormal PCs), in metres
    norms = m.shape_basis.double().flatten(1).norm(dim=1)
    assert torch.allclose(norms, torch.tensor(synth["d"]["shapeEV"].ravel() * 1e-6, dtype=torch.float64), rtol=1e-4)
    assert m.n_expr == 0 and m.n_albedo == 5
    assert torch.allclose(m.albedo_mean, torch.full_like(m.albedo_mean, 128 / 255))
    assert float(m.shape_var.sum()) == pytest.approx(1.0, abs=1e-5)
    assert m.meta["faces_flipped_to_ccw"] is True  # the synthetic tl is clockwise like the BFM's
    assert m.uv.shape == (V, 2) and float(m.uv.min()) >= 0 and float(m.uv.max()) <= 1
    assert m.uv_symmetric  # cylindrical UV of a symmetric mesh
    assert m.contour_verts.shape[0] == 17 and int(m.contour_verts[8, 0]) >= 0
    exact = set(m.meta["landmarks_exact"])
    assert exact == {k - 1 for k in _SPARSE}
    assert set(m.meta["landmark_sources"]) <= {"exact", "mirrored", "interpolated", "contour"}
    assert set(np.unique(m.region_labels.numpy())) >= {0, 1, 2, 4}
    assert float(m.face_weight.max()) == 1.0 and float(m.face_weight.min()) == 0.0


def test_bfm2009_without_landmarks_or_with_bad_keys(synth, tmp_path):
    with pytest.raises(AssetError, match="01_MorphableModel.mat"):
        load_bfm2009(synth["bfm"])
    d = dict(synth["d"])
    del d["tl"]
    scipy.io.savemat(tmp_path / "nokey.mat", d)
    with pytest.raises(AssetError, match=r"nokey\.mat.*'tl'.*University of Basel"):
        load_bfm2009(tmp_path / "nokey.mat", landmarks=synth["lm"], contours=synth["ct"])
    d = dict(synth["d"])
    d["shapeEV"] = d["shapeEV"][:3]
    scipy.io.savemat(tmp_path / "badshape.mat", d)
    with pytest.raises(AssetError, match="shapeEV"):
        load_bfm2009(tmp_path / "badshape.mat", landmarks=synth["lm"], contours=synth["ct"])


def test_jaw_needs_contours(synth):
    with pytest.raises(AssetError, match="contours"):
        load_bfm2009(synth["bfm"], landmarks=synth["lm"])


@pytest.mark.parametrize("cut", [0, 100, 5000])
def test_corrupt_or_truncated_mat(synth, tmp_path, cut):
    p = tmp_path / "trunc.mat"
    p.write_bytes(synth["bfm"].read_bytes()[:cut])
    with pytest.raises(AssetError, match="trunc.mat"):
        load_bfm2009(p, landmarks=synth["lm"], contours=synth["ct"])


# ---------------------------------------------------------------------------------------------
# Deep3DFaceRecon BFM_model_front.mat
# ---------------------------------------------------------------------------------------------


def test_bfm_deep3d(synth, tmp_path):
    ref = load_bfm2009(synth["bfm"], landmarks=synth["lm"], contours=synth["ct"])
    verts, faces = synth["verts"], synth["faces"]
    V = len(verts)
    L = ref.landmarks(ref.mean[None])[0].numpy() * 1e3
    kp = np.array([int(np.argmin(((verts - p) ** 2).sum(1))) for p in L])
    S, E, T = 80, 64, 80
    sd = np.linspace(3e4, 1e3, S)  # micrometres
    d = {  # as written by Deep3DFaceRecon's util/load_mats.py (transferBFM09)
        "meanshape": (verts * 1e3 / 1e5).reshape(1, -1).astype(np.float32),  # decimetres
        "idBase": (_orthonormal(3 * V, S, 3) * sd / 1e5).astype(np.float32),
        "exBase": (_orthonormal(3 * V, E, 4) * np.linspace(2e4, 1e3, E) / 1e5).astype(np.float64),
        "meantex": np.full((1, 3 * V), 200.0, np.float32),
        "texBase": (_orthonormal(3 * V, T, 5) * 30.0).astype(np.float32),
        "tri": (faces + 1).astype(np.float64),
        "point_buf": np.ones((V, 8), np.float64),
        "tri_mask2": (faces[:10] + 1).astype(np.float64),
        "keypoints": (kp + 1).reshape(1, 68).astype(np.float64),
        "frontmask2_idx": (np.arange(V // 2) + 1).reshape(-1, 1).astype(np.float64),
        "skinmask": np.ones((1, V), np.float64),
    }
    p = tmp_path / "BFM_model_front.mat"
    scipy.io.savemat(p, d)
    m = load_bfm_deep3d(p)
    _check_common(m, V)
    i = int(np.argmax(verts[:, 0]))
    assert float(m.mean[i, 0]) == pytest.approx(0.1, rel=1e-6)  # 1 dm -> 0.1 m
    assert (m.n_shape, m.n_expr, m.n_albedo) == (80, 64, 80)
    assert torch.allclose(m.shape_basis.double().flatten(1).norm(dim=1), torch.tensor(sd * 1e-6), rtol=1e-4)
    assert torch.allclose(m.albedo_mean, torch.full_like(m.albedo_mean, 200 / 255))
    assert m.meta["faces_flipped_to_ccw"] is False
    assert m.meta["landmarks_exact"] == list(range(68))
    # exact landmarks sit on their vertex
    Lm = m.landmarks(m.mean[None])[0]
    assert torch.allclose(Lm, m.mean[torch.from_numpy(kp)], atol=1e-7)
    assert float(m.face_weight[: V // 2].min()) == 1.0 and float(m.face_weight[V // 2 :].max()) == 0.0
    bad = dict(d)
    bad["keypoints"] = np.zeros((1, 68))
    scipy.io.savemat(tmp_path / "badkp.mat", bad)
    with pytest.raises(AssetError, match="keypoints"):
        load_bfm_deep3d(tmp_path / "badkp.mat")


# ---------------------------------------------------------------------------------------------
# BFM 2017 (.h5)
# ---------------------------------------------------------------------------------------------


def test_bfm2017(synth, tmp_path):
    h5py = pytest.importorskip("h5py")
    verts, faces = synth["verts"], synth["faces"]
    V = len(verts)
    p = tmp_path / "model2017-1_bfm_nomouth.h5"
    ex_mean = np.zeros((V, 3), np.float32)
    ex_mean[:, 2] = 1.0  # 1 mm
    with h5py.File(p, "w") as hf:
        hf["shape/model/mean"] = verts.reshape(-1).astype(np.float32)
        hf["shape/model/pcaBasis"] = _orthonormal(3 * V, 7, 6).astype(np.float32)
        hf["shape/model/pcaVariance"] = np.linspace(900, 100, 7).astype(np.float32)  # mm^2
        hf["shape/representer/points"] = verts.T.astype(np.float32)
        hf["shape/representer/cells"] = faces.T.astype(np.uint32)
        hf["expression/model/mean"] = ex_mean.reshape(-1)
        hf["expression/model/pcaBasis"] = _orthonormal(3 * V, 4, 7).astype(np.float32)
        hf["expression/model/pcaVariance"] = np.linspace(400, 40, 4).astype(np.float32)
        hf["color/model/mean"] = np.full(3 * V, 0.5, np.float32)
        hf["color/model/pcaBasis"] = _orthonormal(3 * V, 3, 8).astype(np.float32)
        hf["color/model/pcaVariance"] = np.linspace(0.01, 0.001, 3).astype(np.float32)
    m = load_bfm2017(p, landmarks=synth["lm"], contours=synth["ct"])
    _check_common(m, V)
    i = int(np.argmax(verts[:, 0]))
    assert float(m.mean[i, 0]) == pytest.approx(0.1, rel=1e-6)  # 100 mm
    z = torch.tensor(verts[:, 2] + 1.0) * 1e-3  # expression mean (1 mm) added; origin moved to the centroid
    assert torch.allclose(m.mean[:, 2].double(), z - z.mean(), atol=1e-7)
    assert float(m.mean.double().mean(0).abs().max()) < 1e-7 and "centroid" in m.meta["origin"]
    assert torch.allclose(m.shape_basis.double().flatten(1).norm(dim=1)[0], torch.tensor(30e-3, dtype=torch.float64))
    assert (m.n_shape, m.n_expr, m.n_albedo) == (7, 4, 3)
    with h5py.File(tmp_path / "empty.h5", "w") as hf:
        hf["foo"] = np.zeros(3)
    with pytest.raises(AssetError, match=r"empty\.h5.*shape/model/mean"):
        load_bfm2017(tmp_path / "empty.h5", landmarks=synth["lm"])
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all" * 10)
    with pytest.raises(AssetError, match="junk.h5"):
        load_bfm2017(tmp_path / "junk.h5", landmarks=synth["lm"])


# ---------------------------------------------------------------------------------------------
# eos binary format: a writer for synthetic files of every class version
# ---------------------------------------------------------------------------------------------


def _mat(a: np.ndarray) -> bytes:
    a = np.asarray(a, np.float32)
    a = a.reshape(-1, 1) if a.ndim == 1 else a
    return struct.pack("<ii", *a.shape) + a.T.astype("<f4").tobytes()  # column-major


def _pca(mean, basis, ev, tri) -> bytes:
    tri = np.asarray(tri, "<i4").reshape(-1, 3)
    return _mat(mean) + _mat(basis) + _mat(ev) + struct.pack("<Q", len(tri)) + tri.tobytes()


def _string(s: str) -> bytes:
    return struct.pack("<Q", len(s)) + s.encode()


def _write_eos(path: Path, version: int, verts_mm, faces, *, blend=None, lmk=None, uv=None, tti=None) -> None:
    V = len(verts_mm)
    out = struct.pack("<I", version)
    out += _pca(verts_mm.reshape(-1), _orthonormal(3 * V, 3, 9), np.array([100.0, 50, 10]), faces)
    out += _pca(np.zeros(0), np.zeros((0, 0)), np.zeros(0), np.zeros((0, 3)))
    if version >= 2:
        if blend is None:
            out += struct.pack("<?", True)
        else:
            out += struct.pack("<?i", False, 1) + struct.pack("<Q", len(blend))
            out += b"".join(_string(n) + _mat(b) for n, b in blend)
    if version >= 3:
        if lmk is None:
            out += struct.pack("<?", True)
        else:
            out += struct.pack("<?Q", False, len(lmk)) + b"".join(_string(k) + struct.pack("<i", v) for k, v in lmk.items())
    uv = np.zeros((0, 2)) if uv is None else uv
    out += struct.pack("<Q", len(uv)) + np.asarray(uv, "<f8").tobytes()
    if version >= 4:
        tti = np.zeros((0, 3)) if tti is None else tti
        out += struct.pack("<Q", len(tti)) + np.asarray(tti, "<i4").tobytes()
    path.write_bytes(out)


@pytest.mark.parametrize("version", [1, 2, 3, 4])
def test_eos_parser_versions(synth, tmp_path, version):
    verts, faces = synth["verts"], synth["faces"]
    V = len(verts)
    uv = np.stack([(verts[:, 0] + 100) / 200, 1 - (verts[:, 1] + 100) / 200], 1)  # eos: v down
    blend = [("smile", np.random.default_rng(0).standard_normal(3 * V) * 2.0)]
    lmk = {str(k): v for k, v in read_ibug_mapping(synth["lm"]).items()}
    p = tmp_path / f"model_v{version}.bin"
    _write_eos(p, version, verts, faces, blend=blend, lmk=lmk, uv=uv, tti=faces if version == 4 else None)
    em = read_eos_model(p)
    assert em.version == version
    assert np.allclose(em.shape.mean.reshape(-1, 3), verts, atol=1e-4)
    assert np.array_equal(em.shape.triangles, faces)
    assert np.allclose(em.texture_coordinates, uv)
    if version >= 2:
        assert isinstance(em.expression, list) and em.expression[0][0] == "smile"
    if version >= 3:
        assert em.landmark_definitions == lmk
    m = load_sfm(p, landmarks=synth["lm"], contours=synth["ct"])
    _check_common(m, V)
    assert float(m.mean[int(np.argmax(verts[:, 0])), 0]) == pytest.approx(0.1, rel=1e-6)  # mm -> m
    assert torch.allclose(m.uv[:, 1].double(), torch.tensor((verts[:, 1] + 100) / 200), atol=1e-6)  # v up
    assert m.n_albedo == 0 and m.n_expr == (1 if version >= 2 else 0)


@pytest.mark.parametrize("cut", [0, 3, 11, 1000, -8])
def test_eos_truncated(synth, tmp_path, cut):
    p = tmp_path / "full.bin"
    _write_eos(p, 1, synth["verts"], synth["faces"])
    q = tmp_path / "cut.bin"
    q.write_bytes(p.read_bytes()[:cut])
    with pytest.raises(AssetError, match=r"cut\.bin.*eos"):
        read_eos_model(q)


def test_eos_trailing_garbage_and_wrong_file(synth, tmp_path):
    p = tmp_path / "x.bin"
    _write_eos(p, 1, synth["verts"], synth["faces"])
    p.write_bytes(p.read_bytes() + b"\0\0")
    with pytest.raises(AssetError, match="trailing"):
        read_eos_model(p)
    with pytest.raises(AssetError, match=r"01_MorphableModel\.mat.*version"):
        read_eos_model(synth["bfm"])
    with pytest.raises(AssetError, match="not found"):
        read_eos_model(tmp_path / "missing.bin")


def test_side_file_errors(tmp_path):
    bad = tmp_path / "map.txt"
    bad.write_text("[landmark_mappings]\n99 = 3\n")
    with pytest.raises(AssetError, match="map.txt"):
        read_ibug_mapping(bad)
    bad.write_text("this is = = not toml")
    with pytest.raises(AssetError, match="TOML"):
        read_ibug_mapping(bad)
    with pytest.raises(AssetError, match="unknown model format"):
        load_user_model(bad, format="obj")


def test_mirror_symmetry_and_uv_helpers():
    verts, _ = _face_mesh(9)
    sym = mirror_symmetry(verts)
    assert np.array_equal(sym[sym], np.arange(len(verts)))
    assert np.allclose(verts[sym] * [-1, 1, 1], verts)
    uv = cylindrical_uv(verts)
    assert np.allclose(uv[sym, 0], 1 - uv[:, 0]) and np.allclose(uv[sym, 1], uv[:, 1])


# ---------------------------------------------------------------------------------------------
# the real Surrey Face Model (../shared)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sfm_files(shared_dir):
    SFM_DIR = shared_dir / "face-models" / "eos-sfm"
    if not (SFM_DIR / "sfm_shape_3448.bin").is_file():
        pytest.skip(f"eos SFM files not found in {SFM_DIR} (../shared is development data); skipped")
    return {
        "path": SFM_DIR / "sfm_shape_3448.bin", "landmarks": SFM_DIR / "ibug_to_sfm.txt",
        "contours": SFM_DIR / "sfm_model_contours.json", "symmetry": SFM_DIR / "sfm_reference_symmetry.txt",
        "expression_blendshapes": SFM_DIR / "expression_blendshapes_3448.bin",
    }


@pytest.fixture(scope="module")
def sfm(sfm_files):
    return load_sfm(**sfm_files)


def test_sfm_real(sfm):
    m = sfm
    assert m.n_verts == 3448 and m.faces.shape == (6736, 3)
    _check_common(m, 3448)
    width = float(m.mean[:, 0].max() - m.mean[:, 0].min())
    assert 0.12 < width < 0.2
    assert (m.n_shape, m.n_expr, m.n_albedo) == (63, 6, 0)
    assert m.meta["faces_flipped_to_ccw"] is False
    # symmetry: mirroring the mean maps each vertex onto its partner within a few mm
    err = (m.mean[m.sym_vertex] * torch.tensor([-1.0, 1, 1]) - m.mean).norm(dim=1)
    assert float(torch.quantile(err, 0.99)) < 3e-3 and float(err.max()) < 1e-2
    selfmap = m.sym_vertex == torch.arange(3448)
    assert float(m.mean[selfmap, 0].abs().max()) < 3e-3  # only midline vertices map to themselves
    # landmarks: 50 exact from ibug_to_sfm.txt; 61/65 (1-based) interpolated, jaw from the contours
    src = m.meta["landmark_sources"]
    assert src[8] == "exact" and src[30] == "exact" and src[60] == "interpolated" and src[64] == "interpolated"
    assert all(src[j] == "contour" for j in range(17) if j != 8)
    L = m.landmarks(m.mean[None])[0]
    assert float(L[30, 2]) == pytest.approx(float(m.mean[:, 2].max()), abs=2e-3)  # nose tip is front-most
    assert abs(float(L[8, 0])) < 3e-3 and float(L[8, 1]) < float(L[57, 1])  # chin on the midline, below the lip
    # UVs: per-vertex, v up (forehead above chin), mirror symmetric
    assert m.uv.shape == (3448, 2) and m.uv_symmetric
    assert float(m.uv[m.mean[:, 1].argmax(), 1]) > 0.9 and float(m.uv[int(L[8].sub(m.mean).norm(dim=1).argmin()), 1]) < 0.1
    # one sigma of the first component moves the surface by a plausible few millimetres
    assert 2e-3 < float(m.shape_basis[0].norm(dim=1).max()) < 3e-2
    assert float(m.expr_basis.abs().max()) < 0.05


def test_sfm_blendshapes_file(sfm_files):
    shapes = read_eos_blendshapes(sfm_files["expression_blendshapes"])
    assert [n for n, _ in shapes] == ["anger", "disgust", "fear", "happiness", "sadness", "surprise"]
    assert all(s.shape == (3 * 3448,) for _, s in shapes)


def test_sfm_truncated_real_file(sfm_files, tmp_path):
    q = tmp_path / "sfm_cut.bin"
    q.write_bytes(sfm_files["path"].read_bytes()[:500_000])
    with pytest.raises(AssetError, match=r"sfm_cut\.bin.*truncated.*eos"):
        load_sfm(q, landmarks=sfm_files["landmarks"])


def test_convert_save_load_round_trip(sfm, sfm_files, tmp_path):
    out = tmp_path / "sfm.npz"
    args = [str(sfm_files["path"]), "--format", "sfm", "--out", str(out), "-q"]
    for k in ("landmarks", "contours", "symmetry", "expression_blendshapes"):
        args += ["--" + k.replace("_", "-"), str(sfm_files[k])]
    assert convert_main(args) == 0
    m2 = load_model(out)
    for f in ("mean", "shape_basis", "expr_basis", "faces", "uv", "sym_vertex", "lmk_faces", "lmk_bary",
              "contour_verts", "region_labels", "face_weight", "shape_var"):
        assert torch.equal(getattr(sfm, f), getattr(m2, f)), f
    assert m2.uv_symmetric == sfm.uv_symmetric and m2.meta["landmark_sources"] == sfm.meta["landmark_sources"]


def test_convert_cli_synthetic(synth, tmp_path):
    out = tmp_path / "bfm.npz"
    rc = convert_main([str(synth["bfm"]), "--format", "bfm2009", "--landmarks", str(synth["lm"]),
                       "--contours", str(synth["ct"]), "--out", str(out), "-q"])
    assert rc == 0
    m = load_model(out)
    ref = load_bfm2009(synth["bfm"], landmarks=synth["lm"], contours=synth["ct"])
    assert torch.equal(m.mean, ref.mean) and torch.equal(m.faces, ref.faces)
    save_model(m, tmp_path / "again.npz")
    assert torch.equal(load_model(tmp_path / "again.npz").lmk_faces, ref.lmk_faces)
    bad = tmp_path / "bad.mat"
    bad.write_bytes(b"\x00" * 300)
    assert convert_main([str(bad), "--format", "bfm2009", "--out", str(tmp_path / "x.npz"), "-q"]) == 1
    assert not (tmp_path / "x.npz").exists()
    with pytest.raises(SystemExit) as e:
        convert_main([str(bad), "--format", "nope", "--out", "x.npz"])
    assert e.value.code == 2


def test_wrong_frame_is_detected(synth, tmp_path):
    d = dict(synth["d"])
    mu = d["shapeMU"].reshape(-1, 3).copy()
    mu[:, 1] *= -1  # upside down
    d["shapeMU"] = mu.reshape(-1, 1)
    scipy.io.savemat(tmp_path / "flipped.mat", d)
    with pytest.raises(AssetError, match=r"flipped\.mat.*frame"):
        load_bfm2009(tmp_path / "flipped.mat", landmarks=synth["lm"], contours=synth["ct"])


def test_sfm_contour_candidates(sfm):
    cv, V = sfm.contour_verts, sfm.mean
    L = sfm.landmarks(sfm.mean[None])[0]
    assert cv.shape[0] == 17 and cv.shape[1] >= 8 and int(cv[8, 1:].max()) == -1
    for j in range(17):
        row = cv[j][cv[j] >= 0]
        x = V[row, 0].abs()
        assert float(x.max() - x[-1]) < 1e-3  # the outermost candidate is (within 1 mm) the static end
        assert float((V[row[-1]] - L[j]).norm()) < 5e-3
        if j != 8:
            assert len(row) >= 3 and bool((V[row, 0] * L[j, 0] > 0).all())  # on the landmark's side


def test_minimal_mapping_is_completed(synth, tmp_path):
    """A mapping with no brows, bridge or nostrils (like eos's BFM 2017 file) is filled by the rules."""
    keep = [31, 37, 40, 43, 46, 49, 52, 55, 58, 63, 67]
    lm = tmp_path / "minimal.txt"
    lm.write_text("[landmark_mappings]\n" + "\n".join(f"{k} = {_nearest(synth['verts'], *_SPARSE[k])}" for k in keep))
    m = load_bfm2009(synth["bfm"], landmarks=lm, contours=synth["ct"])
    _check_common(m, len(synth["verts"]))
    src = m.meta["landmark_sources"]
    assert sorted(i + 1 for i, s in enumerate(src) if s == "exact") == keep
    L = m.landmarks(m.mean[None])[0]
    assert bool((L[17:27, 1] > L[36:48, 1].max()).all())  # brows above the eyes
    assert bool((L[31:36, 1] < L[30, 1]).all()) and bool((L[31:36, 1] > L[51, 1]).all())  # nostrils
    assert float(L[17, 0]) < float(L[21, 0]) < 0 < float(L[22, 0]) < float(L[26, 0])


def test_off_centre_source_is_recentred(synth, tmp_path):
    verts = synth["verts"] + [12.0, -30.0, 40.0]  # mm: a source whose origin is not on the symmetry plane
    _write_bfm2009(tmp_path / "shifted.mat", verts, synth["faces"])
    m = load_bfm2009(tmp_path / "shifted.mat", landmarks=synth["lm"], contours=synth["ct"])
    ref = load_bfm2009(synth["bfm"], landmarks=synth["lm"], contours=synth["ct"])
    assert torch.allclose(m.mean, ref.mean, atol=1e-6)
    assert torch.equal(m.sym_vertex, ref.sym_vertex)
    assert torch.allclose(m.landmarks(m.mean[None]), ref.landmarks(ref.mean[None]), atol=1e-5)


def test_sfm_landmarks_project_upright(sfm):
    from recon3d.camera import intrinsics_from_fov, project_points, transform_points
    from recon3d.conventions import frontal_rotation

    L = sfm.landmarks(sfm.mean[None])  # (1,68,3)
    R = frontal_rotation()[None]
    px = project_points(transform_points(L, R, torch.tensor([[0.0, 0.0, 0.6]])), intrinsics_from_fov(20.0, (256, 256)))[0]
    eyes_y = px[36:48, 1]
    assert bool((px[30, 1] > eyes_y.max()).all()) and float(px[57, 1]) > float(px[33, 1])  # rows grow downwards
    assert float(px[36, 0]) < float(px[45, 0])  # the subject's right eye is on the image left
    assert float(px[:17, 0].min()) < float(px[17:, 0].min()) and float(px[:17, 0].max()) > float(px[17:, 0].max())


def test_deprecated_loaders_module_reexports_convert():
    import importlib
    import sys

    import recon3d.morphable.convert as convert

    sys.modules.pop("recon3d.morphable.loaders", None)
    with pytest.warns(DeprecationWarning, match="recon3d.morphable.convert"):
        old = importlib.import_module("recon3d.morphable.loaders")
    for name in old.__all__:
        assert getattr(old, name) is getattr(convert, name), name
    assert set(old.__all__) == set(convert.__all__)
