"""StyleGAN2 and DCGAN layers: the modulated convolution equals an explicit per-sample convolution,
shapes, gradients, truncation and noise behave as documented."""

import pytest
import torch
import torch.nn.functional as F

from recon3d.errors import ShapeError
from recon3d.nn.dcgan import DCDiscriminator, DCGenerator
from recon3d.nn.stylegan2 import ModulatedConv2d, StyleDiscriminator, StyleGenerator

TINY = {4: 8, 8: 8, 16: 4}


def _explicit_modconv(m: ModulatedConv2d, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The paper's definition: one modulated (and demodulated) weight per sample, a loop of convolutions."""
    s = m.affine(w)
    out = []
    for i in range(len(x)):
        wi = m.weight * m.scale * s[i][None, :, None, None]  # w'_ijk = s_i w_ijk
        if m.demodulate:
            wi = wi / torch.sqrt(wi.pow(2).sum(dim=(1, 2, 3), keepdim=True) + m.eps)  # w'' = w' / sqrt(sum w'^2)
        xi = x[i:i + 1]
        if m.up:
            xi = F.interpolate(xi, scale_factor=2, mode="bilinear", align_corners=False)
        out.append(F.conv2d(xi, wi, padding=m.pad))
    return torch.cat(out)


@pytest.mark.parametrize("demodulate,up,k", [(True, False, 3), (True, True, 3), (False, False, 1)])
def test_modulated_conv_equals_per_sample_conv(demodulate, up, k):
    torch.manual_seed(0)
    m = ModulatedConv2d(5, 7, k, style_dim=6, demodulate=demodulate, up=up)
    with torch.no_grad():
        m.affine.weight.mul_(3.0)  # styles far from 1, so a missing modulation would show
    x, w = torch.randn(4, 5, 6, 6), torch.randn(4, 6)
    torch.testing.assert_close(m(x, w), _explicit_modconv(m, x, w), rtol=1e-5, atol=1e-5)


def test_generator_shapes_gradients_and_w_plus():
    torch.manual_seed(0)
    G = StyleGenerator(16, z_dim=8, w_dim=8, n_mlp=2, channels=TINY)
    assert G.n_latent == 6 and len(G.noise_shapes()) == 5
    z = torch.randn(3, 8, requires_grad=True)
    img = G(z)
    assert img.shape == (3, 3, 16, 16)
    img.square().mean().backward()
    assert z.grad.abs().sum() > 0
    no_grad = [n for n, p in G.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == []  # every layer, mapping to toRGB, takes part
    ws = G.map(torch.randn(2, 8))[:, None].repeat(1, G.n_latent, 1)
    noise = [torch.randn(2, 1, h, w) for h, w in G.noise_shapes()]
    a = G.synthesis(ws, noise)
    ws2 = ws.clone()
    ws2[:, -1] += 1.0  # only the last toRGB style changes
    assert not torch.allclose(a, G.synthesis(ws2, noise))
    with pytest.raises(ShapeError):
        G.synthesis(ws[:, :3], noise)


def test_truncation_zero_gives_the_mean_face_and_noise_is_an_input():
    torch.manual_seed(0)
    G = StyleGenerator(8, z_dim=8, w_dim=8, n_mlp=1, channels=TINY).eval()
    G.w_avg.normal_()
    with torch.no_grad():
        for c in (G.conv1, *G.convs):
            c.noise_strength.fill_(0.5)
    noise = [torch.randn(1, 1, h, w).expand(3, -1, -1, -1) for h, w in G.noise_shapes()]
    with torch.no_grad():
        out = G(torch.randn(3, 8), truncation=0.0, noise=noise)
        torch.testing.assert_close(out[0], out[1])
        torch.testing.assert_close(out[0], out[2])
        free = G(torch.randn(3, 8), noise=noise)
        assert not torch.allclose(free[0], free[1])
        assert not torch.allclose(G(torch.zeros(1, 8)), G(torch.zeros(1, 8)))  # fresh noise when none is given


def test_discriminator_shapes_and_odd_batches():
    torch.manual_seed(0)
    D = StyleDiscriminator(16, channels=TINY)
    for n in (1, 3, 6):
        x = torch.randn(n, 3, 16, 16, requires_grad=True)
        y = D(x)
        assert y.shape == (n,)
        y.sum().backward()
        assert x.grad.abs().sum() > 0
    with pytest.raises(ShapeError):
        D(torch.randn(2, 3, 8, 8))


def test_minibatch_stddev_sees_the_batch():
    torch.manual_seed(0)
    D = StyleDiscriminator(16, channels=TINY).eval()
    x = torch.randn(4, 3, 16, 16)
    same = x[:1].repeat(4, 1, 1, 1)
    a = D(torch.cat([x[:1], x[1:]]))[0]
    b = D(same)[0]  # the first image is the same; only its batch-mates differ
    assert not torch.allclose(a, b)


def test_bad_resolutions():
    with pytest.raises(ShapeError):
        StyleGenerator(48)
    with pytest.raises(ShapeError):
        StyleGenerator(32, channels={4: 8, 8: 8})
    with pytest.raises(ShapeError):
        DCGenerator(8)


def test_dcgan_layout_and_init():
    torch.manual_seed(0)
    G, D = DCGenerator(64), DCDiscriminator(64)
    z = torch.randn(2, 100)
    img = G(z)
    assert img.shape == (2, 3, 64, 64) and img.abs().max() <= 1
    assert D(img).shape == (2,)
    convs = [m for m in G.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [c.out_channels for c in convs] == [512, 256, 128, 64, 3]  # 8 ngf halving to RGB (seed 003)
    assert abs(float(convs[1].weight.detach().std()) - 0.02) < 0.002  # N(0, 0.02) initialisation
    dconvs = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in dconvs] == [64, 128, 256, 512, 1]
    assert not any(isinstance(m, torch.nn.Linear) for m in (*G.modules(), *D.modules()))  # no FC layers
    with pytest.raises(ShapeError):
        G(torch.randn(2, 99))
