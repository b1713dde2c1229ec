"""recon3d.data.latents: the resumable inverted-latent folder, and the latent pose recipe's training step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from recon3d.data.latents import build_inverted_latents, generator_checksum, load_inverted_latents
from recon3d.errors import Recon3DError
from recon3d.nn.stylegan2 import StyleGenerator


@pytest.fixture(scope="module")
def tiny_G():
    torch.manual_seed(0)
    G = StyleGenerator(32, z_dim=16, w_dim=16, channels={4: 16, 8: 16, 16: 8, 32: 8})
    return G.eval()


@pytest.fixture()
def faces(tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "faces"
    d.mkdir()
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(d / f"f{i}.png")
    return d


def test_build_resume_and_load(tiny_G, faces, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "lat"
    n = build_inverted_latents(faces, out, G=tiny_G, n=5, batch=2, steps=2, split="all", progress=False)
    assert n == 5
    assert build_inverted_latents(faces, out, G=tiny_G, n=5, batch=2, steps=2, split="all", progress=False) == 0
    s = load_inverted_latents(out)
    assert len(s) == 5 and s.arrays["photo"].shape == (5, 3, 32, 32) and s.arrays["ws"].shape == (5, tiny_G.n_latent, 16)
    assert s.meta["generator"] == generator_checksum(tiny_G)
    assert np.isfinite(s.arrays["id_dist"]).all()
    # other settings never mix into a folder
    with pytest.raises(Recon3DError, match="other settings"):
        build_inverted_latents(faces, out, G=tiny_G, n=5, batch=2, steps=3, split="all", progress=False)
    with pytest.raises(Recon3DError, match="not a inverted-latent folder|no config.json"):
        load_inverted_latents(tmp_path / "nothing")


def test_checksum_changes_with_the_weights(tiny_G):
    a = generator_checksum(tiny_G)
    G2 = StyleGenerator(32, z_dim=16, w_dim=16, channels={4: 16, 8: 16, 16: 8, 32: 8})
    G2.load_state_dict(tiny_G.state_dict())
    assert generator_checksum(G2) == a
    with torch.no_grad():
        G2.const.add_(1e-3)
    assert generator_checksum(G2) != a
