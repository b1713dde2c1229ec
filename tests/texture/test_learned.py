"""recon3d.texture.learned and ``texture_from_fit(method="net")``: the learned UV completion changes only what
the photo does not show."""

from __future__ import annotations

import pytest
import torch

from recon3d.edit import make_synthetic_reconstruction
from recon3d.edit._common import fit_tensors
from recon3d.nn.uv_generator import UVGenerator
from recon3d.texture import uv_raster
from recon3d.texture.from_fit import texture_from_fit


@pytest.fixture(scope="module")
def rec():
    return make_synthetic_reconstruction(size=128, yaw_deg=35.0, texture_size=64)


def _tex(rec, size, **kw):
    ft = fit_tensors(rec)
    uvr = uv_raster(rec.model, resolution=size)
    albedo = rec.model.albedo(rec.fit.params.albedo.detach())
    with torch.no_grad():
        return texture_from_fit(rec.image[None], ft.verts_cam[None], rec.model.faces, ft.K, uvr, albedo_v=albedo,
                                light=ft.light, **kw), uvr


def _gen(changed: bool) -> UVGenerator:
    net = UVGenerator(32, widths=(8, 8, 16, 16), bottleneck=2).eval()
    if changed:
        torch.nn.init.normal_(net.to_rgb.weight, std=0.2)
        torch.nn.init.constant_(net.to_rgb.bias, 0.3)
    return net


@pytest.mark.parametrize("delight", [False, True])
def test_an_untrained_generator_gives_the_classical_texture(rec, delight):
    # 64² texture, 32² generator: the resampling path; a zero correction leaves the Poisson completion as it is
    a, _ = _tex(rec, 64, delight=delight)
    b, _ = _tex(rec, 64, delight=delight, method="net", uv_generator=_gen(False))
    torch.testing.assert_close(b.texture, a.texture, atol=2e-3, rtol=0)


@pytest.mark.parametrize("delight", [False, True])
def test_the_generator_changes_only_unseen_layout_texels(rec, delight):
    a, uvr = _tex(rec, 64, delight=delight)
    b, _ = _tex(rec, 64, delight=delight, method="net", uv_generator=_gen(True))
    vis = a.visible[0]
    hole = uvr.mask & ~vis
    assert vis.sum() > 200 and hole.sum() > 200
    torch.testing.assert_close(b.texture[0][vis], a.texture[0][vis])
    torch.testing.assert_close(b.texture[0][~uvr.mask], a.texture[0][~uvr.mask])
    assert (b.texture[0][hole] - a.texture[0][hole]).abs().mean() > 0.02


def test_unknown_method(rec):
    with pytest.raises(ValueError, match="method must be one of poisson, net"):
        _tex(rec, 32, method="gan")


def test_the_learned_texture_is_deterministic(rec):
    gen = _gen(True)
    a, _ = _tex(rec, 64, method="net", uv_generator=gen)
    torch.rand(10)  # the global random state moves on; the texture must not
    b, _ = _tex(rec, 64, method="net", uv_generator=gen)
    assert torch.equal(a.texture, b.texture)
