"""Left-right symmetry of the default model: vertex map, mean, UV layout, landmark embedding."""

from __future__ import annotations

import pytest
import torch

from recon3d.conventions import mirror_model_x
from recon3d.morphable.default import load_default_model


@pytest.fixture(scope="module")
def model():
    return load_default_model()


def test_sym_vertex_is_an_involution(model):
    s = model.sym_vertex
    assert int(s.min()) >= 0 and int(s.max()) < model.n_verts
    assert torch.equal(s[s], torch.arange(model.n_verts))
    assert int((s == torch.arange(model.n_verts)).sum()) > 10  # a midline exists


def test_mirroring_the_mean_is_identity(model):
    m = model.mean
    assert torch.allclose(mirror_model_x(m)[model.sym_vertex], m, atol=1e-6)
    mid = model.sym_vertex == torch.arange(model.n_verts)
    assert float(m[mid, 0].abs().max()) < 1e-6


def test_mirror_of_a_face_is_a_face(model):
    f = model.faces
    keys = set(map(tuple, torch.sort(f, 1).values.tolist()))
    mf = torch.sort(model.sym_vertex[f], 1).values
    assert all(tuple(t) in keys for t in mf.tolist())


def test_uv_is_mirror_symmetric(model):
    uv, s = model.uv, model.sym_vertex
    assert torch.allclose(uv[s, 0], 1.0 - uv[:, 0], atol=1e-6)
    assert torch.allclose(uv[s, 1], uv[:, 1], atol=1e-6)
    assert float(uv.min()) >= 0.02 - 1e-6 and float(uv.max()) <= 0.98 + 1e-6


def test_uv_has_no_flipped_triangles(model):
    uv, f = model.uv.double(), model.uv_faces
    a, b, c = uv[f[:, 0]], uv[f[:, 1]], uv[f[:, 2]]
    cross = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    assert int((cross <= 0).sum()) == 0


def test_basis_mirror_closed(model):
    # Mirror augmentation makes the span of the bases closed under mirroring: the mirror of a mode is
    # (almost) inside the span of the identity + expression bases.
    B = torch.cat([model.shape_basis, model.expr_basis]).reshape(model.n_shape + model.n_expr, -1).double()
    Q, _ = torch.linalg.qr(B.T)
    b0 = mirror_model_x(model.shape_basis[0])[model.sym_vertex].reshape(-1).double()
    resid = b0 - Q @ (Q.T @ b0)
    assert float(resid.norm() / b0.norm()) < 0.2


def test_region_labels_and_weights_are_symmetric(model):
    s = model.sym_vertex
    agree = (model.region_labels[s] == model.region_labels).float().mean()
    assert float(agree) > 0.97


def _toy_symmetric_mesh():
    import numpy as np

    # A symmetric 3x3 grid sheet facing +Z (x in {-1,0,1}), CCW from +Z.
    xs, ys = np.meshgrid([-1.0, 0.0, 1.0], [0.0, 1.0, 2.0])
    v = np.stack([xs.ravel(), ys.ravel(), 1.0 - 0.1 * xs.ravel() ** 2], 1)
    f = []
    for r in range(2):
        for c in range(2):
            a, b, d, e = 3 * r + c, 3 * r + c + 1, 3 * (r + 1) + c, 3 * (r + 1) + c + 1
            f += [[a, b, e], [a, e, d]] if c == 0 else [[a, b, d], [b, e, d]]
    return v, np.array(f)


def test_build_symmetry_helpers_on_a_toy_mesh():
    import numpy as np

    from recon3d.morphable.build import geometry as geo
    from recon3d.ops.geometry import face_normals

    v, f = _toy_symmetric_mesh()
    sym = geo.symmetry_map(v, geo.mirror_x)
    assert np.array_equal(sym[sym], np.arange(len(v)))
    assert np.allclose(geo.mirror_x(v)[sym], v)
    S, f2 = geo.loop_subdivision(f, len(v))
    assert np.allclose(np.asarray(S.sum(1)).ravel(), 1.0)  # affine combinations: linear and translation-safe
    v2 = S @ v
    sym2 = geo.sym_from_operator(S, sym)
    assert np.array_equal(sym2[sym2], np.arange(len(v2)))
    assert np.allclose(geo.mirror_x(v2)[sym2], v2)
    # Subdivision keeps the winding: every child face normal points like its parent's (+Z here).
    assert (face_normals(torch.from_numpy(v2)[None], torch.from_numpy(f2))[0, :, 2] > 0).all()
    assert (geo.mirror_face_map(f2, sym2) >= 0).all()


def test_spherical_uv_is_mirror_symmetric_on_a_toy_mesh():
    import numpy as np

    from recon3d.morphable.build import geometry as geo

    v, f = _toy_symmetric_mesh()
    sym = geo.symmetry_map(v, geo.mirror_x)
    uv = geo.spherical_uv(v, np.array([0.0, 1.0, -1.0]))
    assert np.allclose(uv[sym, 0], 1 - uv[:, 0]) and np.allclose(uv[sym, 1], uv[:, 1])
    assert not geo.uv_flipped(uv, f).any()
