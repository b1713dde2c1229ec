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


def _tiny_inpainter():
    from recon3d.nn.inpaint import Inpainter

    torch.manual_seed(0)
    return Inpainter(res=32, widths=(4, 8, 8, 16), bottleneck=2).eval()


def test_learned_fill_replaces_only_the_mask_and_differs_from_the_classical(rec, face):
    m = erode(face, 6)
    m[: m.shape[0] // 2] = False  # the lower half of the face
    net = _tiny_inpainter()
    a = deocclude(rec, mask=m, fill="classical")
    b = deocclude(rec, mask=m, fill="net", inpainter=net)
    img = rec.image.numpy()
    assert np.array_equal(b.image.numpy()[~m], img[~m])
    assert np.abs(b.image.numpy() - a.image.numpy())[m].mean() > 1e-3
    assert torch.equal(b.occlusion_mask, a.occlusion_mask)
    again = deocclude(rec, mask=m, fill="net", inpainter=net)
    assert torch.equal(again.image, b.image)  # seeded noise: the same photo gives the same fill
    with pytest.raises(ValueError, match="fill must be one of"):
        deocclude(rec, mask=m, fill="gan")


def test_auto_fill_is_classical_without_the_inpainter_weights(monkeypatch):
    from recon3d.errors import AssetError

    def missing(name):
        raise AssetError(f"{name} missing")

    monkeypatch.setattr(D, "resolve", missing)
    assert D._resolve_fill("auto", None) == "classical"
    assert D._resolve_fill("auto", _tiny_inpainter()) == "net"
    assert D._resolve_fill("classical", _tiny_inpainter()) == "classical"


def test_template_warp_round_trip():
    from recon3d.edit._learned_fill import template_matrix, warp_affine
    from recon3d.ops.align import TEMPLATE_68

    lmk = TEMPLATE_68 * 90 + np.array([30.0, 20.0])  # a face 90 px wide at (30, 20)
    m = template_matrix(lmk - 0.5, 64)
    assert np.allclose((m @ np.c_[lmk - 0.5, np.ones(68)].T)[:2].T, TEMPLATE_68 * 64 - 0.5, atol=1e-6)
    img = torch.rand(1, 3, 140, 160, generator=torch.Generator().manual_seed(0))
    a = warp_affine(img, np.linalg.inv(m), (64, 64))
    back = warp_affine(a, m, (140, 160), box=(40, 30, 100, 90))
    assert back.shape == (1, 3, 60, 60)
    smooth = torch.nn.functional.avg_pool2d(img, 3, 1, 1)[..., 30:90, 40:100]
    assert (back - smooth).abs().mean() < (back - smooth.flip(-1)).abs().mean()
