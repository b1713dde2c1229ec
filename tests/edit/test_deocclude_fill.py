"""recon3d.edit.deocclude: boundary handling of the fill and hysteresis of the detector."""

from __future__ import annotations

import importlib
from dataclasses import replace

import numpy as np
import pytest
import torch

from recon3d.edit import deocclude, detect_occlusion, make_synthetic_reconstruction
from recon3d.ops.morphology import dilate, erode
from recon3d.ops.poisson import poisson_paste

D = importlib.import_module("recon3d.edit.deocclude")


@pytest.fixture(scope="module")
def rec():
    return make_synthetic_reconstruction(size=128, yaw_deg=10.0, texture_size=128)


@pytest.fixture(scope="module")
def face(rec):
    return D._render_model(rec)[2]


def test_untrusted_boundary_marks_pixels_off_the_face(face):
    omega = np.zeros_like(face)
    rows = np.flatnonzero(face.any(1))
    r = rows[len(rows) // 2]
    cols = np.flatnonzero(face[r])
    omega[r - 3:r + 4, cols[0] + 1:cols[0] + 12] = True  # touches the face's left silhouette
    omega &= erode(face, 1)
    bnd = dilate(omega, 1) & ~omega
    unt = D._untrusted_boundary(omega, face, None)
    assert unt.any() and (unt <= bnd).all()
    assert not unt[erode(face, 3) & bnd].any()  # visible face around the hole is trusted
    score = np.zeros(face.shape, np.float32)
    score[bnd] = 2.0  # leftovers of the occluder (high score) are not trusted either
    assert (D._untrusted_boundary(omega, face, score) == bnd & dilate(face, 3)).all()


def test_occluder_past_the_silhouette_does_not_leak_into_the_fill(rec, face):
    """A dark bar crossing the face's silhouette: filling the part inside the face must not drag the
    bar's colour in from the pixels just outside the face (they are occluder, not skin)."""
    img = rec.image.numpy().copy()
    rows = np.flatnonzero(face.any(1))
    r = rows[len(rows) // 2]
    cols = np.flatnonzero(face[r])
    bar = np.zeros(face.shape, bool)
    bar[r - 6:r + 7, max(cols[0] - 15, 0):cols[0] + 20] = True
    img[bar] = [0.05, 0.05, 0.3]
    occluded = replace(rec, image=torch.from_numpy(img))
    m = bar & erode(face, 1)
    res = deocclude(occluded, mask=m)
    clean = rec.image.numpy()
    err = np.abs(res.image.numpy() - clean)[m].mean()
    naive = poisson_paste(img, res.rendered.numpy(), m)  # the photo's own (occluder) boundary values
    err_naive = np.abs(naive - clean)[m].mean()
    assert torch.equal(res.image[~torch.from_numpy(m)], occluded.image[~torch.from_numpy(m)])
    assert err < 0.06 and err < 0.6 * err_naive, (err, err_naive)


def test_hysteresis_grows_strong_seeds_only(rec, face):
    """A strong occluder with a weakly off-colour fringe is found with its fringe; an isolated
    patch of the same weak deviation is not an occluder."""
    img = rec.image.numpy().copy()
    inner = erode(face, 6)
    ys, xs = np.nonzero(inner)
    cy, cx = int(ys.mean()), int(xs.mean())
    core = np.zeros(face.shape, bool)
    core[cy - 4:cy + 5, cx - 14:cx - 4] = True
    fringe = dilate(core, 4) & ~core & inner
    lone = np.zeros(face.shape, bool)
    lone[cy - 4:cy + 5, cx + 8:cx + 16] = True
    lone &= inner
    img[core] = [0.1, 0.35, 0.1]
    tint = np.array([0.8, 1.12, 0.85], np.float32) ** 0.47  # mild green tint (weak evidence)
    img[fringe] = np.clip(img[fringe] * tint, 0, 1)
    img[lone] = np.clip(img[lone] * tint, 0, 1)
    est = detect_occlusion(replace(rec, image=torch.from_numpy(img)), threshold=16.0, cue="photometric")
    occ = est.occlusion_mask.numpy()
    score = est.score.numpy()
    assert 8.0 < np.median(score[fringe]) < 16.0  # the fringe alone is below the threshold...
    assert occ[core].mean() > 0.9
    assert occ[fringe].mean() > 0.5  # ...but joins the strong occluder it touches
    assert occ[lone].mean() < 0.2
