"""recon3d.nn.uv_generator: the learned UV completion network."""

from __future__ import annotations

import pytest
import torch

from recon3d.errors import ShapeError
from recon3d.nn import NETWORKS, load_network, save_network
from recon3d.nn.uv_generator import UVGenerator


def _inputs(B=2, R=32):
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, R), torch.linspace(-1, 1, R), indexing="ij")
    layout = ((xx / 0.9) ** 2 + (yy / 0.7) ** 2 < 1).float()[None, None]
    visible = (layout * (xx > -0.2).float()).expand(B, -1, -1, -1)
    tex = torch.rand(B, 3, R, R, generator=g) * visible
    prior = torch.rand(B, 3, R, R, generator=g)
    base = torch.where(visible > 0, tex, prior)
    return tex, visible, prior, base, layout


def test_untrained_generator_returns_the_classical_completion():
    net = UVGenerator(32, widths=(8, 8, 16, 16), bottleneck=2).eval()
    tex, vis, prior, base, lay = _inputs()
    y = net.complete(tex, vis, prior, base, lay)
    assert y.shape == tex.shape
    torch.testing.assert_close(y * lay, base * lay, atol=1e-5, rtol=0)
    assert (y * (1 - lay)).abs().max() == 0  # nothing off the layout


def test_a_changed_generator_changes_only_unseen_texels():
    net = UVGenerator(32, widths=(8, 8, 16, 16), bottleneck=2).eval()
    torch.nn.init.normal_(net.to_rgb.weight, std=0.1)
    tex, vis, prior, base, lay = _inputs()
    y = net.complete(tex, vis, prior, base, lay)
    seen = vis > 0.5
    hole = (lay - vis).expand_as(vis) > 0.5
    torch.testing.assert_close(y.permute(0, 2, 3, 1)[seen[:, 0]], tex.permute(0, 2, 3, 1)[seen[:, 0]], atol=1e-6, rtol=0)
    assert (y - base).abs().permute(0, 2, 3, 1)[hole[:, 0]].mean() > 1e-3


def test_gradients_reach_every_layer_and_bad_shapes_fail():
    net = UVGenerator(32, widths=(8, 8, 16, 16), bottleneck=2)
    torch.nn.init.normal_(net.to_rgb.weight, std=0.1)
    tex, vis, prior, base, lay = _inputs()
    net.complete(tex, vis, prior, base, lay).sum().backward()
    grads = {n: p.grad for n, p in net.named_parameters()}
    assert all(g is not None for g in grads.values())
    # every layer but the attention's projections (its gain starts at 0, as SAGAN's) gets a gradient
    silent = [n for n, g in grads.items() if g.abs().sum() == 0]
    assert all(".query" in n or ".key" in n or ".value" in n or "q." in n or "k." in n or "v." in n for n in silent), silent
    with pytest.raises(ShapeError, match="multiple of 8"):
        net.complete(tex[..., :30, :30], vis, prior, base, lay)
    with pytest.raises(ShapeError, match="visible"):
        net.complete(tex, vis[..., :16], prior, base, lay)
    with pytest.raises(ValueError, match="prior"):
        UVGenerator(32, prior=False)


def test_registry_round_trip(tmp_path):
    net = UVGenerator(32, widths=(8, 8, 16, 16), bottleneck=2).eval()
    torch.nn.init.normal_(net.to_rgb.weight, std=0.1)
    path = tmp_path / "g.safetensors"
    save_network(net, path, NETWORKS["uv_generator"], half=False)
    back, _ = load_network(NETWORKS["uv_generator"], path, cached=False)
    assert isinstance(back, UVGenerator) and back.config == net.config
    tex, vis, prior, base, lay = _inputs()
    a = back.eval().complete(tex, vis, prior, base, lay, generator=torch.Generator().manual_seed(1))
    b = net.complete(tex, vis, prior, base, lay, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)


def test_the_shipped_generator_beats_the_mirror_completion_on_hidden_real_texels():
    # a photo nobody trained on (scikit-image's astronaut), its own texels hidden by turning the head
    import numpy as np
    from skimage.data import astronaut

    from recon3d.data.uv_pairs import fit_photo, turned_sample
    from recon3d.nn.uv_generator import load_uv_generator

    net = load_uv_generator()  # the manifest's sha256 is checked on load
    fit = fit_photo(astronaut()[:300, 100:400].astype(np.float32) / 255)
    assert not isinstance(fit, str), fit
    lay = fit.uvr.mask[None, None].float()
    errs = []
    for turn in (-50.0, 50.0):
        s = {k: torch.from_numpy(np.asarray(v, np.float32))[None] for k, v in turned_sample(fit, turn).items()}
        hid = (s["vis"][:, 0:1] - s["vis"][:, 1:2]).clamp_min(0)
        assert hid.sum() > 300
        with torch.no_grad():
            y = net.complete(s["tex"], s["vis"][:, 1:2], s["prior"], s["base"], lay,
                             generator=torch.Generator().manual_seed(0))
        errs.append([float(((u - s["tex"]).abs() * hid).sum() / (3 * hid.sum())) for u in (y, s["base"])])
    net_err, base_err = np.mean(errs, 0)
    assert net_err < 0.9 * base_err, (net_err, base_err)
