"""The seeded toy morphable model used across the test suite."""

from __future__ import annotations

import doctest

import torch

import recon3d.morphable.toy as toy_mod
from recon3d.conventions import IBUG68_MIRROR, mirror_model_x
from recon3d.morphable import load_model, save_model
from recon3d.morphable.toy import make_toy_model
from recon3d.ops.geometry import vertex_normals


def test_sizes_and_dtypes():
    m = make_toy_model()
    assert 100 <= m.n_verts <= 300
    assert m.n_shape >= 10 and m.n_expr >= 5 and m.n_albedo >= 5
    assert m.faces.dtype == torch.int64 and m.mean.dtype == torch.float32
    assert m.contour_verts.shape[0] == 17 and m.uv_symmetric


def test_seeded_and_deterministic():
    a, b, c = make_toy_model(0), make_toy_model(0), make_toy_model(1)
    assert torch.equal(a.shape_basis, b.shape_basis)
    assert not torch.allclose(a.shape_basis, c.shape_basis)
    assert torch.equal(a.mean, c.mean)


def test_mirror_symmetry_of_mesh_landmarks_uv_and_bases():
    m = make_toy_model()
    sym = m.sym_vertex
    assert torch.equal(sym[sym], torch.arange(m.n_verts))
    assert torch.allclose(mirror_model_x(m.mean[sym]), m.mean, atol=1e-7)
    assert torch.allclose(m.uv[sym, 0], 1.0 - m.uv[:, 0], atol=1e-6)
    lmk = m.landmarks(m.mean[None])[0]
    assert torch.allclose(mirror_model_x(lmk[list(IBUG68_MIRROR)]), lmk, atol=1e-6)
    # first ten shape components are symmetric, the last two antisymmetric
    for k in range(12):
        f = m.shape_basis[k]
        err = (mirror_model_x(f[sym]) - (f if k < 10 else -f)).abs().max()
        assert err < 1e-6, k


def test_normals_point_out_of_the_face_and_landmarks_plausible():
    m = make_toy_model()
    n = vertex_normals(m.mean[None], m.faces)[0]
    centre = (m.mean[:, :2].norm(dim=-1)).argmin()
    assert n[centre, 2] > 0.8
    lmk = m.landmarks(m.mean[None])[0]
    assert lmk[30, 2] > lmk[:, 2].max() - 1e-6  # nose tip is the most forward landmark
    assert lmk[8, 1] < lmk[57, 1] < lmk[33, 1] < lmk[27, 1] < lmk[19, 1]  # chin < mouth < nose < brows
    assert lmk[36, 0] < lmk[39, 0] < 0 < lmk[42, 0] < lmk[45, 0]  # right eye on -x
    assert (m.lmk_bary >= -1e-6).all() and torch.allclose(m.lmk_bary.sum(1), torch.ones(68))


def test_contour_candidates_on_the_landmark_side():
    m = make_toy_model()
    cv = m.contour_verts
    for j in range(17):
        c = cv[j][cv[j] >= 0]
        assert len(c) >= 1
        if j < 8:
            assert (m.mean[c, 0] < 0).all()
        elif j > 8:
            assert (m.mean[c, 0] > 0).all()
    assert (cv[:3] >= 0).sum() > 9  # several candidates on the cheeks


def test_regions_and_weights():
    m = make_toy_model()
    assert set(torch.unique(m.region_labels).tolist()) == {0, 1, 2, 3, 4, 5}
    assert (m.face_weight[m.region_labels == 0] == 0).all()
    assert (m.face_weight[m.region_labels == 1] == 1).all()


def test_save_load_roundtrip(tmp_path):
    m = make_toy_model()
    save_model(m, tmp_path / "toy.npz")
    m2 = load_model(tmp_path / "toy.npz")
    assert torch.equal(m.mean, m2.mean) and torch.equal(m.contour_verts, m2.contour_verts)


def test_doctests():
    res = doctest.testmod(toy_mod)
    assert res.attempted > 0 and res.failed == 0
