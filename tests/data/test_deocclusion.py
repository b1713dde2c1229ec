"""recon3d.data.deocclusion: occluders on aligned faces, the Poisson pseudo-ground truth and the
render cache's resume, shards and skipped faces (the reconstruction replaced by a stand-in)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from recon3d.data import deocclusion as D
from recon3d.data.occluders import shape_bank
from recon3d.errors import NoFaceError, Recon3DError
from recon3d.ops.align import TEMPLATE_68


def _faces(b=6, s=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 0.3 + 0.4 * torch.rand(b, 3, s, s, generator=g)


def test_occlude_batch_hole_covers_the_occluder_and_nothing_else_changes():
    faces = _faces()
    bank = torch.as_tensor(shape_bank(16, 64, seed=0, frames=True))
    occ, hole = D.occlude_batch(faces, bank, torch.Generator().manual_seed(0))
    assert occ.shape == faces.shape and hole.shape == (6, 1, 64, 64)
    assert set(torch.unique(hole).tolist()) <= {0.0, 1.0}
    assert (hole.flatten(1).sum(1) > 0).all()  # every sample has an occluder
    outside = hole.expand_as(faces) == 0
    assert torch.equal(occ[outside], faces[outside])
    assert (occ - faces).abs().amax(1, keepdim=True)[hole > 0].mean() > 0.05  # the hole really is occluded
    occ2, hole2 = D.occlude_batch(faces, bank, torch.Generator().manual_seed(0))
    assert torch.equal(occ, occ2) and torch.equal(hole, hole2)


def test_sunglasses_cover_the_template_eyes():
    lens, frame = D.sunglasses_masks(4, 64, torch.Generator().manual_seed(0))
    eyes = TEMPLATE_68[36:48] * 64
    for b in range(4):
        for x, y in eyes:
            assert lens[b, 0, int(y), int(x)] == 1
        mouth = TEMPLATE_68[48:68].mean(0) * 64
        assert lens[b, 0, int(mouth[1]), int(mouth[0])] == 0 and frame[b].sum() > 0
    faces = _faces(4)
    _, hole = D.occlude_batch(faces, torch.zeros(1, 64, 64, dtype=torch.uint8), torch.Generator().manual_seed(1),
                              p_sunglasses=1.0)
    for x, y in eyes:
        assert (hole[:, 0, int(y), int(x)] == 1).all()


def test_poisson_target_keeps_the_photo_outside_and_follows_the_render_inside():
    render = torch.linspace(-1, 0.2, 32).expand(1, 3, 32, 32).clone()
    occluded = render + 0.4  # the photo: the render's shading, brighter
    hole = torch.zeros(1, 1, 32, 32)
    hole[..., 10:22, 8:24] = 1
    occluded = torch.where(hole > 0, torch.full_like(occluded, -1.0), occluded)  # the occluder
    cov = torch.ones_like(hole)
    cov[..., :, 26:] = 0  # the render's face ends at x = 26: beyond it the render is black
    render = render * cov - (1 - cov)
    out = D.poisson_target(occluded, render, hole, cov)
    inside = hole.expand_as(out) > 0
    assert torch.equal(out[~inside], occluded[~inside])
    assert (out - (render + 0.4))[inside].abs().max() < 2e-3  # the render's gradients, the photo's level


@pytest.fixture()
def faces_dir(tmp_path):
    from recon3d.data.splits import is_held_out, photo_key

    root = tmp_path / "faces"
    root.mkdir()
    rng = np.random.default_rng(0)
    n = 0
    for i in range(40):
        p = root / f"f{i:02d}.png"
        if is_held_out(photo_key(p, "/"), 5.0):
            continue
        Image.fromarray(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)).save(p)
        n += 1
        if n == 7:
            break
    return root


def test_render_cache_resume_shards_and_skips(faces_dir, tmp_path, monkeypatch):
    calls = []

    def fake(image, pad=D.PAD):
        calls.append(int(image[0, 0, 0]))
        if len(calls) == 2:
            raise NoFaceError("no face")
        return np.full((3, 128, 128), image[0, 0, 0], np.uint8), np.ones((1, 128, 128), bool)

    monkeypatch.setattr(D, "render_prior", fake)
    out = tmp_path / "cache"
    kw = dict(chunk=2, cache_dir=tmp_path / "fc", progress=False)
    assert D.build_render_cache(faces_dir, out, n=7, shard=(0, 2), **kw) == 4  # faces 0, 2, 4, 6
    assert D.build_render_cache(faces_dir, out, n=7, shard=(0, 2), **kw) == 0  # resumed: nothing left
    assert D.build_render_cache(faces_dir, out, n=7, shard=(1, 2), **kw) == 3
    cache = D.load_render_cache(out)
    assert len(cache) + len(cache.skipped) == 7 and len(cache.skipped) == 1
    assert cache.indices.tolist() == sorted(cache.indices.tolist())
    assert cache.renders.shape[1:] == (3, 128, 128) and cache.coverage.dtype == bool
    assert cache.occluded.shape[1:] == (3, 128, 128) and cache.holes.any(axis=(1, 2, 3)).all()
    # the fit saw the occluded face: the fake's render copies the occluded face's first pixel
    assert (cache.renders[:, 0, 0, 0] == cache.occluded[:, 0, 0, 0]).all()
    # each face's occluder is fixed by (seed, index): a rebuild elsewhere gives the same one
    again = tmp_path / "again"
    D.build_render_cache(faces_dir, again, n=7, **kw)
    c2 = D.load_render_cache(again)
    common = np.intersect1d(cache.indices, c2.indices)
    a = {i: k for k, i in enumerate(cache.indices)}
    b = {i: k for k, i in enumerate(c2.indices)}
    assert all(np.array_equal(cache.holes[a[i]], c2.holes[b[i]]) for i in common)
    with pytest.raises(Recon3DError, match="other settings"):
        D.build_render_cache(faces_dir, out, n=7, split="all", **kw)
    with pytest.raises(ValueError):
        D.build_render_cache(faces_dir, out, shard=(2, 2), **kw)
    with pytest.raises(Recon3DError, match="not a render cache"):
        D.load_render_cache(tmp_path / "nothing")
