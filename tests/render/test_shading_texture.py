"""Tests of SH shading, texture sampling and attribute interpolation."""

from __future__ import annotations

import math

import pytest
import torch

from recon3d.conventions import texel_to_uv
from recon3d.errors import ShapeError
from recon3d.render import ambient_light, interpolate, rasterize_px, sh_basis, sh_shading, texture
from recon3d.render.shading import SH_CONSTANTS


def test_sh_constants_are_deep3dfacerecon():
    c = SH_CONSTANTS
    assert c["a0"] == pytest.approx(math.pi)
    assert c["a1"] == pytest.approx(2 * math.pi / math.sqrt(3))
    assert c["a2"] == pytest.approx(2 * math.pi / math.sqrt(8))
    assert c["c0"] == pytest.approx(1 / math.sqrt(4 * math.pi))
    assert c["c1"] == pytest.approx(math.sqrt(3) / math.sqrt(4 * math.pi))
    assert c["c2"] == pytest.approx(3 * math.sqrt(5) / math.sqrt(12 * math.pi))


def test_sh_basis_values_and_signs():
    n = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]], dtype=torch.float64)
    Y = sh_basis(n)
    k1 = SH_CONSTANTS["a1"] * SH_CONSTANTS["c1"]
    assert Y.shape == (3, 9)
    assert torch.allclose(Y[:, 0], torch.full((3,), SH_CONSTANTS["a0"] * SH_CONSTANTS["c0"], dtype=torch.float64))
    assert float(Y[0, 3]) == pytest.approx(-k1)  # -a1 c1 nx
    assert float(Y[1, 1]) == pytest.approx(-k1)  # -a1 c1 ny
    assert float(Y[2, 2]) == pytest.approx(k1)  # +a1 c1 nz


def test_sh_shading_ambient_and_directional():
    n = torch.nn.functional.normalize(torch.randn(2, 5, 7, 3, generator=torch.Generator().manual_seed(0)), dim=-1)
    s = sh_shading(n, ambient_light(2))
    assert s.shape == (2, 5, 7, 3)
    assert torch.allclose(s, torch.ones_like(s), atol=1e-5)
    light = torch.zeros(1, 9, 3)
    light[0, 2] = 1.0  # linear term along +z (towards the viewer in the OpenGL camera frame)
    up = sh_shading(torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]]]), light)
    assert float(up[0, 0, 0]) > 0 > float(up[0, 1, 0])


def test_sh_gradcheck():
    n = torch.randn(1, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).requires_grad_()
    light = torch.randn(1, 9, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2)).requires_grad_()
    assert torch.autograd.gradcheck(sh_basis, (n,))
    assert torch.autograd.gradcheck(sh_shading, (n, light))


def test_sh_raises():
    with pytest.raises(ShapeError, match="light"):
        sh_shading(torch.zeros(1, 4, 3), torch.zeros(1, 4, 3))
    with pytest.raises(ShapeError, match="normals"):
        sh_shading(torch.zeros(2, 4, 3), torch.zeros(1, 9, 3))
    with pytest.raises(ShapeError, match="sh_basis"):
        sh_basis(torch.zeros(4, 2))


def test_texture_uv_convention_pins():
    # 4x4 texture, value = 10*row + col (row 0 on top)
    rows, cols = torch.meshgrid(torch.arange(4.0), torch.arange(4.0), indexing="ij")
    tex = (10 * rows + cols)[None, ..., None]
    uv = torch.tensor([[[[0.01, 0.01], [0.99, 0.99], [0.01, 0.99]]]])
    out = texture(tex, uv)[0, 0, :, 0].tolist()
    assert out == pytest.approx([30.0, 3.0, 0.0])  # bottom-left, top-right, top-left texels
    centres = texel_to_uv(torch.tensor([[2.0, 1.0]]), (4, 4))  # texel (col 2, row 1)
    assert float(texture(tex, centres.view(1, 1, 1, 2))) == pytest.approx(12.0)


def test_texture_mip_blurs_minified_checkerboard_and_gradcheck():
    rows, cols = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    tex = ((rows + cols) % 2).float()[None, ..., None]
    # an 8x8 image covering the whole texture: 8 texels per pixel
    g = (8 * torch.arange(8.0) + 0.5) / 64  # on texel centres: bilinear returns single texels
    vv, uu = torch.meshgrid(1 - g, g, indexing="ij")
    uv = torch.stack([uu, vv], -1)[None]
    bil = texture(tex, uv)
    mip = texture(tex, uv, filter="mip")
    assert float((mip - 0.5).abs().max()) < 0.02  # averaged to grey
    assert float((bil - 0.5).abs().max()) > 0.2  # aliased
    t64 = torch.rand(1, 4, 4, 2, dtype=torch.float64, requires_grad=True)
    uv64 = (torch.rand(1, 3, 3, 2, dtype=torch.float64) * 0.8 + 0.1).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: texture(a, b), (t64, uv64))
    with pytest.raises(ValueError, match="filter"):
        texture(tex, uv, filter="nearest")
    with pytest.raises(ShapeError, match="texture"):
        texture(tex[0], uv)


def test_interpolate_shared_and_batched_attributes():
    xyz = torch.tensor([[[0.0, 0, 1], [8, 0, 1], [0, 8, 1]]]).repeat(2, 1, 1)
    xyz[1, :, :2] += 1.0
    f = torch.tensor([[0, 1, 2]])
    frags = rasterize_px(xyz, f, (8, 8))
    shared = interpolate(torch.eye(3), frags, f)
    assert shared.shape == (2, 8, 8, 3)
    assert torch.allclose(shared[frags.tri_id >= 0].sum(-1), torch.ones(int((frags.tri_id >= 0).sum())))
    per = interpolate(xyz[..., :2], frags, f)  # position attribute reproduces the pixel centre
    assert torch.allclose(per[0, 3, 2], torch.tensor([2.0, 3.0]), atol=1e-5)
    assert torch.allclose(per[1, 3, 2], torch.tensor([2.0, 3.0]), atol=1e-5)
    with pytest.raises(ShapeError, match="interpolate"):
        interpolate(torch.zeros(3, 2, 3), frags, f)
    with pytest.raises(ShapeError, match="faces index"):
        interpolate(torch.zeros(2, 3), frags, f)


def test_rasterize_px_finds_the_face_of_each_texel_of_a_uv_layout():
    from recon3d.conventions import uv_to_texel

    uv = torch.tensor([[0.0, 0.0], [0.5, 0.0], [0.0, 0.5], [1.0, 1.0]])
    uv_faces = torch.tensor([[0, 1, 2], [1, 3, 2]])
    texel = uv_to_texel(uv, (16, 16))
    xyz = torch.cat([texel, torch.ones(4, 1)], -1)[None]
    frags = rasterize_px(xyz, uv_faces, (16, 16))
    assert int(frags.tri_id[0, 15, 0]) == 0  # bottom-left texel (uv near 0, 0) -> face 0
    assert int(frags.tri_id[0, 0, 15]) == 1  # top-right texel (uv near 1, 1) -> face 1
    assert int(frags.tri_id[0, 0, 0]) == -1  # top-left: outside the layout
    uv_back = interpolate(uv, frags, uv_faces)  # uv of each texel centre
    cov = frags.tri_id[0] >= 0
    rows, cols = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    assert torch.allclose(uv_back[0, ..., 0][cov], ((cols + 0.5) / 16)[cov], atol=1e-5)
    assert torch.allclose(uv_back[0, ..., 1][cov], (1 - (rows + 0.5) / 16)[cov], atol=1e-5)
