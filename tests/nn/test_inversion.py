"""GAN inversion recovers a face the generator can make: the losses fall in W and in W+."""

import pytest
import torch

from recon3d.nn.dcgan import DCGenerator
from recon3d.nn.inversion import InversionConfig, invert
from recon3d.nn.stylegan2 import StyleGenerator


@pytest.fixture(scope="module")
def gen():
    torch.manual_seed(0)
    G = StyleGenerator(16, z_dim=16, w_dim=16, n_mlp=2, channels={4: 16, 8: 16, 16: 8}).eval()
    with torch.no_grad():
        G.w_avg.copy_(G.map(torch.randn(256, 16)).mean(0))
    return G


def test_inversion_reproduces_a_generated_face(gen):
    g = torch.Generator().manual_seed(1)
    noise = [torch.randn(1, 1, h, w, generator=torch.Generator().manual_seed(0)) for h, w in gen.noise_shapes()]
    with torch.no_grad():
        target = gen.synthesis(gen.map(torch.randn(1, 16, generator=g)), noise)
    cfg = InversionConfig(space="w", steps=40, lr=0.1, record_every=10)
    res = invert(gen, target, cfg)
    first, last = res.history[0], res.history[-1]
    assert last["pixel_mse"] < 0.3 * first["pixel_mse"], (first, last)
    assert last["identity_distance"] < first["identity_distance"]
    assert res.ws.shape == (1, gen.n_latent, 16) and torch.equal(res.ws[:, 0], res.ws[:, -1])
    assert res.image.shape == target.shape and res.identity_distance.shape == (1,)
    plus = invert(gen, target, InversionConfig(space="w+", steps=20, lr=0.1, record_every=10))
    assert plus.history[-1]["pixel_mse"] < 0.6 * plus.history[0]["pixel_mse"]
    assert not torch.equal(plus.ws[:, 0], plus.ws[:, -1])  # one latent per layer
    assert all(p.requires_grad for p in gen.parameters())  # the generator is left as it was


def test_inversion_refuses_bad_inputs(gen):
    with pytest.raises(ValueError, match="StyleGAN2"):
        invert(DCGenerator(16, nz=8, ngf=4), torch.zeros(1, 3, 16, 16))
    with pytest.raises(Exception, match="aligned faces"):
        invert(gen, torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="space"):
        invert(gen, torch.zeros(1, 3, 16, 16), InversionConfig(space="z"))
