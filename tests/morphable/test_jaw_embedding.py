"""learn_embedding's per-jaw-point photo selection (used by tools/learn_jaw_embedding.py)."""

from __future__ import annotations

import numpy as np
import pytest

from recon3d.morphable.build import geometry as geo
from recon3d.morphable.build.landmarks import learn_embedding
from recon3d.morphable.default import load_default_model


@pytest.fixture(scope="module")
def setup():
    m = load_default_model()
    faces, sym = m.faces.numpy(), m.sym_vertex.numpy()
    rng = np.random.default_rng(0)
    mean = m.mean.numpy().astype(np.float64)
    P = []
    for _ in range(4):  # frontal views of slightly different faces, in pixels (x right, y down)
        v = mean + 0.002 * (m.shape_basis.numpy()[:3].astype(np.float64) * rng.normal(size=(3, 1, 1))).sum(0)
        P.append(np.stack([v[:, 0], -v[:, 1]], 1) * 2000 + 400)
    P = np.stack(P)
    tri = faces[m.lmk_faces.numpy()]
    G = (P[:, tri] * m.lmk_bary.numpy()[None, :, :, None]).sum(2)
    widths = np.full(len(P), 200.0)
    return m, P, G, faces, sym, geo.mirror_face_map(faces, sym), widths


def test_recovers_the_model_embedding_and_a_full_mask_equals_the_flat_one(setup):
    m, P, G, faces, sym, mf, widths = setup
    flat = learn_embedding(P, G, faces, sym, mf, np.ones(len(P), bool), widths)
    per = learn_embedding(P, G, faces, sym, mf, np.ones((len(P), 17), bool), widths)
    for a, b in zip(flat, per, strict=True):
        np.testing.assert_array_equal(a, b)
    assert flat[2].max() < 1e-4  # the landmarks were drawn from the model's own embedding


def test_a_jaw_column_only_moves_its_point_and_mirror(setup):
    m, P, G, faces, sym, mf, widths = setup
    G2 = G.copy()
    G2[2:, 3] += [0.0, 15.0]  # point 3 drawn elsewhere in the last two photos
    sel = np.ones((len(P), 17), bool)
    base = learn_embedding(P, G2, faces, sym, mf, sel, widths)
    sel[2:, 3] = False  # ...which point 3's selection leaves out
    lf, lb, rms = learn_embedding(P, G2, faces, sym, mf, sel, widths)
    assert rms[3] < 1e-4 < base[2][3]
    changed = {k for k in range(68) if lf[k] != base[0][k] or not np.allclose(lb[k], base[1][k])}
    assert changed <= {3, 13} and 3 in changed
