"""recon3d.edit.rotate / warp on a synthetic reconstruction (toy 3DMM rendered over a striped
background with known camera and light; see recon3d.edit.synthetic)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon3d.edit import (
    frontalize,
    make_synthetic_reconstruction,
    mesh_boundary_vertices,
    rotate_face,
    rotate_views,
    triangulate,
    warp_triangles,
)
from recon3d.errors import ShapeError
from recon3d.ops.morphology import dilate, erode


def _pdist(x: torch.Tensor) -> torch.Tensor:
    return (x[:, None].double() - x[None].double()).norm(dim=-1)


@pytest.fixture(scope="module")
def rec():
    return make_synthetic_reconstruction(size=128, yaw_deg=10.0, texture_size=128)


@pytest.fixture(scope="module")
def views(rec):
    return rotate_views(rec, [(0.0, 0.0), (30.0, 0.0), (0.0, 15.0)])


def test_rotate_zero_reproduces_input(rec, views):
    r0 = views[0]
    img = rec.image.numpy()
    out = r0.image.numpy()
    assert out.shape == img.shape and out.dtype == np.float32
    inner = erode(r0.mask.numpy(), 2)
    assert inner.sum() > 500
    # stated tolerance inside the face (texture resampling blurs the sharp eye/brow lines a bit):
    # mean |diff| < 0.02, 99th percentile < 0.1
    err = np.abs(out - img)[inner]
    assert err.mean() < 0.02, err.mean()
    assert np.percentile(err, 99) < 0.1
    # far from the face the identity warp reproduces the photo (bilinear sampling at pixel centres)
    far = ~dilate(r0.mask.numpy(), 8)
    assert np.abs(out - img)[far].max() < 1e-4
    assert not r0.filled.any()
    assert torch.allclose(r0.delta_deg, torch.zeros(3), atol=1e-4)


def test_rotate_changes_pose_and_image(rec, views):
    r30 = views[1]
    assert r30.image.shape == rec.image.shape
    assert r30.mask.dtype == torch.bool and r30.mask.shape == rec.image.shape[:2]
    assert abs(float(r30.delta_deg[0]) - 30.0) < 1e-3
    assert float(r30.pose_deg[0]) == pytest.approx(float(rec.pose_deg["yaw"]) + 30.0, abs=1e-3)
    # the face moved: different silhouette, and the vertices rotated rigidly (distances kept)
    assert (r30.mask ^ views[0].mask).sum() > 50
    v0, v1 = views[0].verts_cam, r30.verts_cam
    d0 = _pdist(v0[:50])
    d1 = _pdist(v1[:50])
    assert torch.allclose(d0, d1, atol=1e-4)
    assert (v1 - v0).abs().max() > 0.01
    # model-frame export: the rotation about the head centre is a rigid motion there too
    dm = _pdist(r30.verts_model[:50])
    assert torch.allclose(dm, d0, atol=1e-4)
    # the image corners are (nearly) pinned: only the outer anchor ring (weight 0.1) pulls on them
    for (i, j) in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
        assert torch.allclose(r30.image[i, j], rec.image[i, j], atol=5e-3)


def test_pitch_view(views):
    assert abs(float(views[2].delta_deg[1]) - 15.0) < 1e-3
    assert 0.0 <= float(views[2].image.min()) and float(views[2].image.max()) <= 1.0


def test_frontalize(rec):
    f = frontalize(rec)
    assert abs(float(f.pose_deg[0])) < 1e-3 and abs(float(f.pose_deg[1])) < 1e-3
    assert float(f.pose_deg[2]) == pytest.approx(float(rec.pose_deg["roll"]), abs=1e-3)


def test_rotate_errors(rec):
    with pytest.raises(ValueError, match="rotate_face"):
        rotate_face(rec, yaw_deg=float("nan"))
    with pytest.raises(ValueError, match="90"):
        rotate_face(rec, yaw_deg=120.0)
    with pytest.raises(TypeError, match="Reconstruction"):
        rotate_face(object(), yaw_deg=10.0)
    with pytest.raises(ValueError, match="pose"):
        rotate_views(rec, [(1.0,)])


def test_boundary_vertices_of_grid():
    # 3x3 vertex grid, 8 triangles: every vertex but the centre (4) is on the boundary
    f = []
    for r in range(2):
        for c in range(2):
            a, b, d, e = r * 3 + c, r * 3 + c + 1, (r + 1) * 3 + c, (r + 1) * 3 + c + 1
            f += [[a, d, b], [b, d, e]]
    assert mesh_boundary_vertices(np.array(f)).tolist() == [0, 1, 2, 3, 5, 6, 7, 8]


def test_warp_translation_and_stretch():
    rng = np.random.default_rng(0)
    img = rng.random((20, 20, 3)).astype(np.float32)
    src = np.array([[-1.0, -1], [20, -1], [-1, 20], [20, 20], [8, 8], [9, 8], [8, 9]])
    dst = src.copy()
    dst[4:] += [[2.0, 0], [6, 0], [2, 4]]  # the small triangle grows ~12x
    tris = triangulate(src)
    r = warp_triangles(img, src, dst, tris)
    assert r.covered.all()
    assert r.stretched.any() and r.stretched.sum() < 200
    assert np.allclose(r.image[0, 0], img[0, 0], atol=1e-5)
    with pytest.raises(ShapeError):
        warp_triangles(img, src, dst[:3], tris)
    with pytest.raises(ShapeError):
        triangulate(np.zeros((2, 2)))


def test_rotate_with_reconstruction_texture(rec):
    r = rotate_face(rec, texture="reconstruction")
    inner = erode(r.mask.numpy(), 2)
    err = np.abs(r.image.numpy() - rec.image.numpy())[inner]
    assert err.mean() < 0.03, err.mean()
    with pytest.raises(ValueError, match="texture"):
        rotate_face(rec, texture="nope")


def test_refine_net_with_an_untrained_refiner_returns_the_warp(rec, tmp_path):
    from recon3d.nn.rotate_refine import RotationRefiner

    net = RotationRefiner(64, widths=(8, 16, 16, 32))  # zero-initialised output: the warp unchanged
    warp = rotate_views(rec, [(25.0, 0.0)])[0]
    out = rotate_views(rec, [(25.0, 0.0)], refine="net", refiner=net)[0]
    assert warp.refined is None and out.refined is not None and out.refined.any()
    assert torch.allclose(out.image, warp.image, atol=1e-6)
    assert torch.equal(out.mask, warp.mask) and torch.equal(out.verts_cam, warp.verts_cam)
    torch.nn.init.normal_(net.to_rgb.weight, std=0.05)
    changed = rotate_face(rec, yaw_deg=25.0, refine="net", refiner=net)
    assert (changed.image - warp.image).abs().max() > 0.01
    # the correction stays inside the refiner's frame
    assert torch.equal(changed.image[~changed.refined], warp.image[~changed.refined])
    with pytest.raises(ValueError, match="refine must be one of"):
        rotate_views(rec, [(10.0, 0.0)], refine="gan")
    from recon3d.errors import AssetError

    with pytest.raises(AssetError):
        rotate_views(rec, [(10.0, 0.0)], refine="net", refiner=tmp_path / "missing.safetensors")


def test_view_report_measures_identity_and_pose(rec):
    from recon3d.edit import view_report

    a = view_report(rec, rotate_face(rec, yaw_deg=0.0, absolute=True))
    b = view_report(rec, rotate_face(rec, yaw_deg=35.0, absolute=True))
    assert a["identity_cos"] > 0.98 and 0.8 < b["identity_cos"] <= 1.0
    assert len(b["pose_measured_deg"]) == 3
    assert b["pose_measured_deg"][0] - a["pose_measured_deg"][0] > 20  # the regressor sees the turn


def test_texture_method_net_fills_the_far_side_with_the_generator(rec):
    from recon3d.nn.uv_generator import UVGenerator

    gen = UVGenerator(32, widths=(8, 8, 16, 16), bottleneck=2).eval()
    a = rotate_face(rec, yaw_deg=60.0, texture_method="net", uv_generator=gen)  # untrained: the Poisson texture
    b = rotate_face(rec, yaw_deg=60.0, texture_method="poisson")
    assert (a.image - b.image).abs().max() < 2e-3
    torch.nn.init.constant_(gen.to_rgb.bias, 0.5)
    c = rotate_face(rec, yaw_deg=60.0, texture_method="net", uv_generator=gen)
    assert (c.image - b.image).abs().max() > 0.05
    with pytest.raises(ValueError, match="texture_method"):
        rotate_face(rec, yaw_deg=10.0, texture_method="gan")
