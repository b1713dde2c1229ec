"""Tests of recon3d.texture: UV raster, baking, unwrapping and completion, on the toy model."""

from __future__ import annotations

import math

import pytest
import torch

from recon3d.camera import intrinsics_from_fov, pose_angles_to_matrix, transform_points
from recon3d.conventions import mirror_image_x, texel_to_uv
from recon3d.errors import ShapeError
from recon3d.morphable.toy import make_toy_model
from recon3d.render import interpolate, rasterize
from recon3d.render import texture as sample_texture
from recon3d.texture import (
    bake_vertex_attr_to_uv,
    complete_texture,
    mirror_texture,
    remove_shading,
    unwrap_texture,
    uv_raster,
)

IMG = 192


@pytest.fixture(scope="module")
def model():
    return make_toy_model()


def _pattern(res: int) -> torch.Tensor:
    """A smooth, non-symmetric RGB test texture ``(1, res, res, 3)``."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, res), torch.linspace(0, 1, res), indexing="ij")
    return torch.stack([0.5 + 0.3 * torch.sin(12 * xx), 0.5 + 0.3 * torch.cos(9 * yy),
                        0.4 + 0.2 * torch.sin(7 * (xx + yy))], dim=-1)[None]


def _render(model, tex, yaw_deg: float, size: int = IMG):
    R = pose_angles_to_matrix(torch.tensor([[math.radians(yaw_deg), 0.0, 0.0]]))
    verts = transform_points(model.mean[None], R, torch.tensor([[0.0, 0.0, 0.5]]))
    K = intrinsics_from_fov(30.0, (size, size))
    frags = rasterize(verts, model.faces, K, (size, size))
    uv = interpolate(model.uv, frags, model.uv_faces)
    return sample_texture(tex, uv) * frags.mask, verts, K


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10.0 * math.log10(1.0 / max(float(((a - b) ** 2).mean()), 1e-12))


def test_uv_raster_covers_layout_and_is_cached(model):
    r1 = uv_raster(model, resolution=64)
    r2 = uv_raster(model, resolution=64)
    assert r1 is r2
    assert r1.tri_id.shape == (64, 64) and r1.bary.shape == (64, 64, 3)
    inside = r1.mask
    assert 0.5 < float(inside.float().mean()) < 1.0
    # barycentrics reproduce the texel centre's uv
    uv_t = (model.uv[model.uv_faces[r1.texel_face]] * r1.texel_bary[..., None]).sum(1)
    rows, cols = r1.texel_index // 64, r1.texel_index % 64
    uv_c = texel_to_uv(torch.stack([cols, rows], -1).float(), (64, 64))
    assert float((uv_t - uv_c).abs().max()) < 1e-4
    # mirror index: symmetric layout -> involution mapping col to Wt-1-col
    flip = r1.flip_index
    ok = flip >= 0
    assert float(ok.float().sum()) > 0.9 * float(inside.float().sum())
    assert torch.equal(flip.flatten()[flip[ok]], torch.nonzero(ok.flatten())[:, 0])
    assert torch.equal(flip[ok] % 64, (63 - torch.arange(64))[None].expand(64, 64)[ok])


def test_bake_constant_and_errors(model):
    uvr = uv_raster(model, resolution=32)
    tex = bake_vertex_attr_to_uv(torch.full((2, model.n_verts, 3), 0.25), model.faces, uvr)
    assert tex.shape == (2, 32, 32, 3)
    assert torch.allclose(tex[:, uvr.mask], torch.tensor(0.25))
    assert float(tex[:, ~uvr.mask].abs().max()) == 0.0
    with pytest.raises(ShapeError, match="bake_vertex_attr_to_uv"):
        bake_vertex_attr_to_uv(torch.zeros(1, model.n_verts, 3), model.faces[:-1], uvr)


def test_unwrap_recovers_known_texture(model):
    res = 128
    uvr = uv_raster(model, resolution=res)
    gt = _pattern(res)
    img, verts, K = _render(model, gt, 25.0)
    out = unwrap_texture(img, verts, model.faces, K, uvr)
    vis = out.visible[0]
    assert out.texture.shape == (1, res, res, 3) and out.confidence.shape == (1, res, res)
    assert float(vis.float().sum()) > 0.4 * float(uvr.mask.float().sum())
    assert _psnr(out.texture[0][vis], gt[0][vis]) > 25.0
    assert not bool((vis & ~uvr.mask).any())
    assert float(out.confidence[0][~vis].abs().max()) == 0.0
    assert 0.0 < float(out.confidence.max()) <= 1.0
    # the turned-away side is less visible than the side facing the camera
    half = res // 2
    assert float(vis[:, :half].float().mean()) != pytest.approx(float(vis[:, half:].float().mean()), abs=0.02)


def test_unwrap_occlusion_and_backface(model):
    uvr = uv_raster(model, resolution=96)
    gt = _pattern(96)
    img_f, verts_f, K = _render(model, gt, 0.0)
    img_s, verts_s, _ = _render(model, gt, 60.0)
    vis_f = unwrap_texture(img_f, verts_f, model.faces, K, uvr).visible
    vis_s = unwrap_texture(img_s, verts_s, model.faces, K, uvr).visible
    assert float(vis_s.float().sum()) < 0.9 * float(vis_f.float().sum())
    # pushing the mesh behind the camera hides everything
    behind = verts_f * torch.tensor([1.0, 1.0, -1.0])
    assert not bool(unwrap_texture(img_f, behind, model.faces, K, uvr).visible.any())


def test_mirrored_input_gives_mirrored_texture(model):
    res = 128
    uvr = uv_raster(model, resolution=res)
    gt = _pattern(res)
    img, verts, K = _render(model, gt, 30.0)
    _, verts_m, _ = _render(model, gt, -30.0)  # the toy mean shape is mirror symmetric
    a = unwrap_texture(img, verts, model.faces, K, uvr)
    b = unwrap_texture(mirror_image_x(img), verts_m, model.faces, K, uvr)
    va = mirror_texture(a.visible, uvr)
    both = va & b.visible
    assert float(both.float().sum()) > 0.9 * float(b.visible.float().sum())
    ta = mirror_texture(a.texture, uvr)
    assert _psnr(ta[both], b.texture[both]) > 30.0


def test_complete_fills_layout_with_mirror_then_poisson(model):
    res = 128
    uvr = uv_raster(model, resolution=res)
    gt = _pattern(res)
    img, verts, K = _render(model, gt, 40.0)
    un = unwrap_texture(img, verts, model.faces, K, uvr)
    albedo = bake_vertex_attr_to_uv(model.albedo(), model.faces, uvr)
    for keep in (False, True):
        c = complete_texture(un.texture, un.visible, albedo, uvr, keep_visible=keep)
        lay = uvr.mask[None]
        assert bool(torch.isfinite(c.texture).all())
        assert bool((c.texture[lay].sum(-1) > 0).all())  # every layout texel filled (no holes)
        assert float(c.filled_from_mirror.float().sum()) > 0.05 * float(lay.float().sum())
        # filled sets partition the layout together with the visible texels
        assert not bool((c.filled_from_mirror & un.visible).any())
        assert torch.equal(c.filled_from_mirror | c.filled_from_model | un.visible, lay.expand_as(un.visible))
        # before blending, mirrored texels are copies of their (visible) mirror texels
        src = mirror_texture(un.texture, uvr)
        fm = c.filled_from_mirror
        assert torch.equal(c.texture_before_blend[fm], src[fm])
        assert bool(mirror_texture(un.visible, uvr)[fm].all())
        ring = torch.nn.functional.max_pool2d(lay.float()[:, None], 3, 1, 1)[:, 0].bool() & ~lay
        assert bool((c.texture[ring].sum(-1) > 0).all())  # padded one texel outside the layout
        if keep:  # visible texels are kept exactly
            assert torch.allclose(c.texture[un.visible], un.texture[un.visible], atol=1e-6)
        else:  # the thesis: at the border of the missing region the result meets the albedo
            fmod = c.filled_from_model
            assert torch.allclose(c.texture[fmod], albedo.clamp(0, 1).expand_as(c.texture)[fmod], atol=1e-5)


def test_complete_mirror_recovers_symmetric_texture(model):
    """A mirror-symmetric texture seen from the side is recovered on the hidden side by mirroring."""
    res = 128
    uvr = uv_raster(model, resolution=res)
    gt = _pattern(res)
    gt = 0.5 * (gt + gt.flip(2))  # symmetric about u = 0.5
    img, verts, K = _render(model, gt, 45.0)
    un = unwrap_texture(img, verts, model.faces, K, uvr)
    albedo = bake_vertex_attr_to_uv(model.albedo(), model.faces, uvr)
    c = complete_texture(un.texture, un.visible, albedo, uvr, keep_visible=True)
    fm = c.filled_from_mirror[0]
    assert _psnr(c.texture[0][fm], gt[0][fm]) > 25.0


def test_remove_shading_and_errors(model):
    tex = torch.full((1, 4, 4, 3), 0.3)
    sh = torch.full((1, 4, 4, 1), 0.6)
    assert torch.allclose(remove_shading(tex, sh), torch.tensor(0.5))
    assert float(remove_shading(tex, torch.zeros(1, 4, 4, 3)).max()) == 1.0  # clamped
    uvr = uv_raster(model, resolution=16)
    with pytest.raises(ShapeError, match="unwrap_texture"):
        unwrap_texture(torch.zeros(1, 8, 8, 3), torch.zeros(1, 5, 3), model.faces, torch.eye(3)[None], uvr)
    with pytest.raises(ShapeError, match="complete_texture"):
        complete_texture(torch.zeros(1, 16, 16, 3), torch.zeros(1, 16, 16), torch.zeros(1, 16, 16, 3), uvr)
    with pytest.raises(ShapeError, match="resolution"):
        uv_raster(model, resolution=0)


def test_unwrap_and_complete_1024(model):
    uvr = uv_raster(model, resolution=1024)
    img, verts, K = _render(model, _pattern(256), 35.0, size=512)
    un = unwrap_texture(img, verts, model.faces, K, uvr)
    albedo = bake_vertex_attr_to_uv(model.albedo(), model.faces, uvr)
    c = complete_texture(un.texture, un.visible, albedo, uvr)
    assert c.texture.shape == (1, 1024, 1024, 3)
    assert bool(torch.isfinite(c.texture).all())
    assert bool((c.texture[uvr.mask[None]].sum(-1) > 0).all())


def test_batch_matches_single(model):
    res = 64
    uvr = uv_raster(model, resolution=res)
    gt = _pattern(res)
    img_a, verts_a, K = _render(model, gt, 20.0, size=128)
    img_b, verts_b, _ = _render(model, gt, -35.0, size=128)
    both = unwrap_texture(torch.cat([img_a, img_b]), torch.cat([verts_a, verts_b]), model.faces,
                          K.expand(2, -1, -1), uvr)
    single = unwrap_texture(img_b, verts_b, model.faces, K, uvr)
    assert torch.equal(both.visible[1], single.visible[0])
    assert torch.allclose(both.texture[1], single.texture[0])
    albedo = bake_vertex_attr_to_uv(model.albedo(), model.faces, uvr)
    c2 = complete_texture(both.texture, both.visible, albedo, uvr)
    c1 = complete_texture(single.texture, single.visible, albedo, uvr)
    assert c2.texture.shape == (2, res, res, 3)
    assert torch.allclose(c2.texture[1], c1.texture[0], atol=1e-6)


def test_complete_blends_mirrored_texels_with_their_source_gradients(model):
    """keep_visible=False (the thesis): the mirrored texels get a second Poisson pass with the mirrored
    real texture as guidance, so inside that region the result has the source's gradients, not the
    (here constant) albedo's."""
    res = 128
    uvr = uv_raster(model, resolution=res)
    gt = _pattern(res)
    img, verts, K = _render(model, gt, 45.0)
    un = unwrap_texture(img, verts, model.faces, K, uvr)
    albedo = torch.full((1, res, res, 3), 0.2)
    c = complete_texture(un.texture, un.visible, albedo, uvr, keep_visible=False, clamp=False)
    fm = c.filled_from_mirror[0]
    src = mirror_texture(un.texture, uvr)[0]
    def lap(x):  # 4-neighbour Laplacian on the interior texels
        return x[1:-1, :-2] + x[1:-1, 2:] + x[:-2, 1:-1] + x[2:, 1:-1] - 4 * x[1:-1, 1:-1]

    inner = fm[1:-1, 1:-1] & fm[1:-1, :-2] & fm[1:-1, 2:] & fm[:-2, 1:-1] & fm[2:, 1:-1]
    assert int(inner.sum()) > 100
    l_out, l_src = lap(c.texture[0])[inner], lap(src)[inner]
    assert float(l_src.abs().mean()) > 1e-4
    # Poisson: the Laplacian of the result equals the guidance's inside the region (solver tolerance)
    assert float((l_out - l_src).abs().mean()) < 0.1 * float(l_src.abs().mean())
    # and the values are the real texture's, shifted smoothly, not the albedo
    assert float((c.texture[0][fm] - 0.2).abs().mean()) > 0.1


def test_complete_log_fill_sets_a_gain_on_the_albedo_and_never_goes_black(model):
    """keep_visible=True's last fill: on log colours a dark real border scales the albedo by one gain (the
    fill is albedo x gain wherever the border's gain is uniform); the additive fill of earlier versions
    subtracts one offset instead and drives the albedo's darker side to black."""
    res = 64
    uvr = uv_raster(model, resolution=res)
    lay = uvr.mask
    u = torch.linspace(0, 1, res)[None, :].expand(res, res)
    albedo = (0.5 - 0.35 * u)[None, ..., None].expand(1, res, res, 3).contiguous()  # darker towards u = 1
    visible = (lay & (u < 0.3))[None]
    edge = u[0][u[0] < 0.3].max()
    gain = 0.1 / float(0.5 - 0.35 * edge)
    tex = torch.where(visible[..., None], albedo * gain, torch.zeros_like(albedo))  # a dark, uniform-gain border
    out = {s: complete_texture(tex, visible, albedo, uvr, mirror=False, keep_visible=True, fill_space=s).texture[0]
           for s in ("log", "linear")}
    filled = lay & ~visible[0]
    ratio = out["log"][filled] / albedo[0][filled]
    assert torch.allclose(ratio, torch.full_like(ratio, gain), rtol=0.03)
    assert float(out["log"][filled].amax(-1).min()) > 0.02
    assert float(out["linear"][filled].amax(-1).min()) < 0.02  # the offset fill reaches black
    assert torch.allclose(out["log"][visible[0]], tex[0][visible[0]], atol=1e-6)  # real texels kept exactly
    with pytest.raises(ValueError, match="fill_space"):
        complete_texture(tex, visible, albedo, uvr, fill_space="lab")
