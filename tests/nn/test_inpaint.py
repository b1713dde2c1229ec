"""recon3d.nn.inpaint: the learned de-occlusion fill's shapes, composite, prior switch and file format."""

from __future__ import annotations

import pytest
import torch

from recon3d.errors import ShapeError
from recon3d.nn.inpaint import INPAINTER, Inpainter, hole_noise
from recon3d.nn.registry import load_network, save_network

SMALL = {"res": 32, "widths": (4, 8, 8, 16), "bottleneck": 2, "base": False}


def _inputs(b=2, s=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(b, 3, s, s, generator=g) * 2 - 1
    hole = torch.zeros(b, 1, s, s)
    hole[:, :, 8:20, 6:26] = 1
    render = torch.rand(b, 3, s, s, generator=g) * 2 - 1
    return img, hole, render


def test_forward_shape_range_and_composite():
    net = Inpainter(**SMALL).eval()
    img, hole, render = _inputs()
    raw = net(img, hole, render)
    assert raw.shape == img.shape and raw.abs().max() <= 1
    out = net.inpaint(img, hole, render, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out[hole.expand_as(out) == 0], img[hole.expand_as(img) == 0])  # outside the hole: the input
    assert not torch.allclose(out[:, :, 8:20, 6:26], img[:, :, 8:20, 6:26])
    # the same seed gives the same fill; the hole's content (the occluder) does not reach the output
    again = net.inpaint(img, hole, render, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out, again)
    other = img.clone()
    other[:, :, 8:20, 6:26] = 0.9
    assert torch.equal(net.inpaint(other, hole, render, generator=torch.Generator().manual_seed(1)), out)


def test_prior_is_an_input_unless_turned_off():
    img, hole, render = _inputs()
    net = Inpainter(**SMALL).eval()
    with pytest.raises(ValueError, match="render"):
        net(img, hole)
    a, b = net(img, hole, render), net(img, hole, -render)
    assert not torch.allclose(a, b)  # the render changes the output
    ablation = Inpainter(**SMALL, prior=False).eval()
    assert ablation.head.feature.in_channels == 4
    assert ablation(img, hole).shape == img.shape


def test_base_network_starts_from_the_poisson_blend_and_learns_a_correction():
    from recon3d.nn.inpaint import poisson_base

    img, hole, render = _inputs()
    cov = torch.ones_like(hole)
    net = Inpainter(**{**SMALL, "base": True}).eval()
    assert net.head.feature.in_channels == 10 and net.config["base"]
    base = poisson_base(img, hole, render, cov)
    assert torch.equal(base[hole.expand_as(base) == 0], img[hole.expand_as(img) == 0])
    out = net.inpaint(img, hole, render, coverage=cov)
    assert torch.allclose(out, base, atol=1e-6)  # the correction starts at zero
    with pytest.raises(ValueError, match="base"):
        net(img, hole, render)
    torch.nn.init.normal_(net.to_rgb.weight, std=0.1)
    assert not torch.allclose(net.inpaint(img, hole, render, coverage=cov), base)
    assert not Inpainter(**{**SMALL, "base": True, "prior": False}).uses_base  # the base needs the render


def test_gradients_reach_every_parameter():
    net = Inpainter(**SMALL)
    for m in net.modules():  # SAGAN's gate starts at 0, which blocks the attention's own gradients
        if hasattr(m, "gamma"):
            torch.nn.init.constant_(m.gamma, 0.5)
    img, hole, render = _inputs()
    net.inpaint(img, hole, render).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_bad_shapes_and_sizes():
    with pytest.raises(ValueError, match="multiple of 8"):
        Inpainter(res=30)
    with pytest.raises(ValueError, match="4 channel"):
        Inpainter(widths=(8, 8))
    net = Inpainter(**SMALL)
    img, hole, render = _inputs()
    with pytest.raises(ShapeError):
        net.inpaint(img, hole[:, :, :16], render)


def test_noise_is_clipped_and_seeded():
    a = hole_noise((2, 3, 8, 8), torch.Generator().manual_seed(3))
    b = hole_noise((2, 3, 8, 8), torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.abs().max() <= 1 and a.std() > 0.3


def test_registry_round_trip(tmp_path):
    net = Inpainter(**SMALL).eval()
    p = tmp_path / "inp.safetensors"
    save_network(net, p, INPAINTER, meta={"steps": 1}, half=False)
    back, meta = load_network(INPAINTER, p, cached=False)
    assert back.config == net.config and meta["steps"] == 1
    img, hole, render = _inputs()
    assert torch.allclose(back.eval()(img, hole, render), net(img, hole, render), atol=1e-6)
