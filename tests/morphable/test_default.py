"""The shipped default model assets/recon3d_face_v1.npz: loading, sizes, geometry and landmark sanity."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from recon3d.camera import project_points
from recon3d.conventions import frontal_rotation
from recon3d.errors import AssetError
from recon3d.morphable import load_model
from recon3d.morphable.default import DEFAULT_MODEL_NAME, load_default_model

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model():
    return load_default_model()


def test_loads_fast_with_no_args():
    load_default_model()  # warm the sha256 cache / imports
    t0 = time.perf_counter()
    m = load_default_model()
    dt = time.perf_counter() - t0
    assert m.n_verts > 0
    assert dt < 2.0, f"load_default_model() took {dt:.2f} s (target < 0.5 s)"


def test_sizes_and_dtypes(model):
    assert model.n_verts >= 5000
    assert model.n_shape >= 40 and model.n_expr >= 10 and model.n_albedo >= 20
    assert model.mean.dtype == torch.float32 and model.shape_basis.dtype == torch.float32
    assert model.faces.dtype == torch.int64 and model.sym_vertex.dtype == torch.int64
    assert model.lmk_faces.shape == (68,) and model.lmk_bary.shape == (68, 3)
    assert model.contour_verts.shape[0] == 17 and model.contour_verts.shape[1] > 0
    assert torch.allclose(model.lmk_bary.sum(1), torch.ones(68), atol=1e-5)
    assert (model.lmk_bary >= -1e-6).all()
    assert model.region_labels.shape == (model.n_verts,)
    assert set(torch.unique(model.region_labels).tolist()) == {0, 1, 2, 3, 4, 5}
    assert float(model.face_weight.min()) >= 0 and float(model.face_weight.max()) <= 1
    assert model.uv_symmetric and torch.equal(model.uv_faces, model.faces)
    assert float(model.uv.min()) >= 0.0 and float(model.uv.max()) <= 1.0
    assert float(model.albedo_mean.min()) >= 0 and float(model.albedo_mean.max()) <= 1
    for v in (model.shape_var, model.expr_var, model.albedo_var):
        assert (v > 0).all() and float(v.sum()) <= 1.0 + 1e-4


def test_variance_ordering(model):
    assert torch.all(model.shape_var[:-1] >= model.shape_var[1:] - 1e-7)
    assert torch.all(model.expr_var[:-1] >= model.expr_var[1:] - 1e-7)


def test_zero_coefficients_give_the_mean(model):
    v = model.shape(torch.zeros(1, model.n_shape), torch.zeros(1, model.n_expr))
    assert torch.equal(v[0], model.mean)
    assert torch.equal(model.albedo(torch.zeros(1, model.n_albedo))[0], model.albedo_mean)


def test_metric_size(model):
    # Face width (the mesh's x extent) of an adult is ~0.13-0.16 m; we fixed ex-ex = 0.090 m.
    width = float(model.mean[:, 0].max() - model.mean[:, 0].min())
    assert 0.11 < width < 0.18
    # One sigma of the first identity mode moves vertices by millimetres, not metres.
    rms = float(model.shape_basis[0].norm(dim=-1).pow(2).mean().sqrt())
    assert 5e-4 < rms < 2e-2


def test_no_degenerate_faces_and_outward_winding(model):
    v, f = model.mean, model.faces
    n = torch.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]], dim=-1)
    area = n.norm(dim=-1) / 2
    assert float(area.min()) > 1e-10
    assert len(torch.unique(torch.sort(f, 1).values, dim=0)) == len(f)
    # The face is a sheet looking along +Z: nearly all normals point forward, and the area-weighted
    # average normal is clearly +Z.
    assert float(n[:, 2].sum() / n.norm(dim=-1).sum()) > 0.5
    # Consistent orientation: every interior edge is used once in each direction.
    e = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    directed = set(map(tuple, e.tolist()))
    assert len(directed) == len(e)


def _frontal_lmk_px(model):
    R = frontal_rotation()[None]
    t = torch.tensor([[0.0, 0.0, 0.6]])
    K = torch.tensor([[[1000.0, 0, 256], [0, 1000.0, 256], [0, 0, 1]]])
    lm = model.landmarks(model.mean[None])
    return project_points(lm @ R[0].T + t, K)[0]


def test_landmarks_land_on_expected_features(model):
    p = _frontal_lmk_px(model)
    x, y = p[:, 0], p[:, 1]
    # Nose tip on the centre line, below the eyes, above the mouth; jaw 8 (chin) lowest.
    assert abs(float(x[30]) - 256) < 1.0
    assert float(y[30]) > float(y[36:48].max())
    assert float(y[48:68].min()) > float(y[30])
    assert int(torch.argmax(y)) == 8
    # The subject's right eye (36-41) appears on the image left, the left eye (42-47) on the right.
    assert float(x[36:42].max()) < 256 < float(x[42:48].min())
    # Jaw 0 (subject's right) on the image left; brows above the eyes.
    assert float(x[0]) < 256 < float(x[16])
    assert float(y[17:27].max()) < float(y[36:48].min())


def test_landmarks_are_symmetric(model):
    from recon3d.conventions import IBUG68_MIRROR, mirror_model_x

    lm = model.landmarks(model.mean[None])[0]
    assert torch.allclose(mirror_model_x(lm)[list(IBUG68_MIRROR)], lm, atol=1e-6)


def test_contour_candidates_are_valid(model):
    cv = model.contour_verts
    assert int(cv.max()) < model.n_verts
    assert ((cv >= 0).sum(1) >= 2).all()
    # Side candidates run outwards on their own side of the face.
    x = model.mean[:, 0]
    for k in (0, 3, 13, 16):
        ids = cv[k][cv[k] >= 0]
        side = 1.0 if k > 8 else -1.0
        assert torch.all(side * x[ids][1:] >= side * x[ids][:-1] - 1e-9)


def test_manifest_matches_file():
    import json

    from recon3d.assets import sha256_file

    man = json.loads((REPO / "assets" / "manifest.json").read_text())
    entry = man[DEFAULT_MODEL_NAME]
    assert entry["format_version"] == 1
    assert sha256_file(REPO / "assets" / DEFAULT_MODEL_NAME) == entry["sha256"]
    assert (REPO / "assets" / DEFAULT_MODEL_NAME).stat().st_size < 10e6


def test_corrupt_file_names_the_file(tmp_path):
    bad = tmp_path / "broken_model.npz"
    bad.write_bytes(b"this is not a zip file")
    with pytest.raises(AssetError, match="broken_model.npz"):
        load_model(bad)
    wrong = tmp_path / "wrong_model.npz"
    np.savez(wrong, format=np.array("something-else"))
    with pytest.raises(AssetError, match="wrong_model.npz"):
        load_model(wrong)


def test_checksum_mismatch_is_an_asset_error(tmp_path, monkeypatch):
    import shutil

    from recon3d import assets

    d = tmp_path / "assets"
    d.mkdir()
    src = REPO / "assets" / DEFAULT_MODEL_NAME
    shutil.copy(src, d / DEFAULT_MODEL_NAME)
    with open(d / DEFAULT_MODEL_NAME, "r+b") as fh:
        fh.seek(100)
        fh.write(b"\x00\x01\x02\x03")
    (d / "manifest.json").write_text('{"%s": {"sha256": "%s"}}' % (DEFAULT_MODEL_NAME, "0" * 64))
    monkeypatch.setattr(assets, "asset_dir", lambda: d)
    monkeypatch.delenv("RECON3D_ASSETS", raising=False)
    with pytest.raises(AssetError, match=DEFAULT_MODEL_NAME):
        load_default_model()
