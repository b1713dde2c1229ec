"""Tests of recon3d.render.rasterize (visibility, barycentrics, conventions)."""

from __future__ import annotations

import math

import pytest
import torch
import trimesh

from recon3d.camera import intrinsics_from_fov, pose_angles_to_matrix, transform_points
from recon3d.errors import ShapeError
from recon3d.render import interpolate, rasterize, rasterize_px
from recon3d.render.rasterizer import _bary_at_pixels, project_to_px, visibility_torch

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _icosphere(subdiv: int = 2, radius: float = 0.1, dtype=torch.float32):
    m = trimesh.creation.icosphere(subdivisions=subdiv)
    return torch.tensor(m.vertices, dtype=dtype) * radius, torch.tensor(m.faces, dtype=torch.int64)


def _sphere_scene(B=1, size=(64, 64), subdiv=2, dtype=torch.float32):
    v, f = _icosphere(subdiv, dtype=dtype)
    R = pose_angles_to_matrix(torch.tensor([[0.3, -0.2, 0.1]], dtype=dtype)).expand(B, 3, 3)
    t = torch.tensor([[0.0, 0.0, 0.5]], dtype=dtype).expand(B, 3)
    vc = transform_points(v[None].expand(B, -1, -1), R, t)
    K = intrinsics_from_fov(30.0, size, batch=B, dtype=dtype)
    return vc, f, K


def _brute_force_tri_id(verts_px, faces, size, cull=True):
    """Dense float64 reference: every pixel against every face."""
    H, W = size
    v = verts_px.double()
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    p = torch.stack([xs, ys], -1).reshape(-1, 1, 2)
    out = []
    for b in range(v.shape[0]):
        tri = v[b][faces]  # (F, 3, 3)
        a, bb, c = tri[:, 0, :2], tri[:, 1, :2], tri[:, 2, :2]
        area = (bb[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (bb[:, 1] - a[:, 1])

        def edge(p0, p1):
            return ((p1[None, :, 0] - p[..., 0]) * (p0[None, :, 1] - p[..., 1]) * 0 + (p0[None, :, 0] - p[..., 0]) * (p1[None, :, 1] - p[..., 1])
                    - (p1[None, :, 0] - p[..., 0]) * (p0[None, :, 1] - p[..., 1]))

        w0 = edge(bb, c) / area
        w1 = edge(c, a) / area
        w2 = edge(a, bb) / area
        inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
        if cull:
            inside &= area[None] < 0
        invz = w0 / tri[None, :, 0, 2] + w1 / tri[None, :, 1, 2] + w2 / tri[None, :, 2, 2]
        z = torch.where(inside, 1.0 / invz, torch.full_like(invz, math.inf))
        zmin, idx = z.min(1)
        out.append(torch.where(torch.isinf(zmin), torch.full_like(idx, -1), idx).view(H, W))
    return torch.stack(out)


def test_matches_brute_force_reference():
    vc, f, K = _sphere_scene(B=2, size=(48, 40))
    vc = vc.clone()
    vc[1] = vc[1] + torch.tensor([0.02, -0.01, 0.05])
    frags = rasterize(vc, f, K, (48, 40))
    ref = _brute_force_tri_id(project_to_px(vc, K), f, (48, 40))
    assert frags.tri_id.shape == (2, 48, 40)
    covered = (ref >= 0) | (frags.tri_id >= 0)
    agree = (ref == frags.tri_id)[covered].float().mean()
    assert float(agree) >= 0.999
    assert int((frags.tri_id >= 0).sum()) > 500


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_triangle_coverage_equals_area(seed):
    g = torch.Generator().manual_seed(seed)
    # corners in three separated boxes: area of several thousand px, random slopes
    lo = torch.tensor([[10.0, 10.0], [140.0, 10.0], [10.0, 140.0]])
    pts = lo + torch.rand(3, 2, generator=g, dtype=torch.float64).float() * 50
    e1, e2 = pts[1] - pts[0], pts[2] - pts[0]
    area = 0.5 * abs(float(e1[0] * e2[1] - e1[1] * e2[0]))
    xyz = torch.cat([pts, torch.ones(3, 1)], 1)[None]
    frags = rasterize_px(xyz, torch.tensor([[0, 1, 2]]), (200, 200))
    n = int((frags.tri_id >= 0).sum())
    assert abs(n - area) / area < 0.01, (n, area)


def test_perspective_triangle_coverage_equals_projected_area():
    # a tilted triangle in front of the camera: the covered pixel count is its projected area
    vc = torch.tensor([[[-0.1, -0.08, 0.6], [0.12, -0.05, 0.9], [0.0, 0.1, 0.7]]])
    K = intrinsics_from_fov(40.0, (160, 160))
    px = project_to_px(vc, K)[0, :, :2]
    e1, e2 = px[1] - px[0], px[2] - px[0]
    signed = float(e1[0] * e2[1] - e1[1] * e2[0])
    faces = torch.tensor([[0, 1, 2]]) if signed < 0 else torch.tensor([[0, 2, 1]])
    frags = rasterize(vc, faces, K, (160, 160))
    n = int((frags.tri_id >= 0).sum())
    assert abs(n - abs(signed) / 2) / (abs(signed) / 2) < 0.01


def test_perspective_correct_interpolation_of_depth_linear_attributes():
    # a plane tilted in depth; the camera-frame position is linear on the triangle, so the
    # interpolated position must lie on the pixel's ray at the rasterised depth
    vc = torch.tensor([[[-0.3, -0.3, 0.5], [0.3, -0.3, 1.5], [0.3, 0.3, 1.5], [-0.3, 0.3, 0.5]]], dtype=torch.float64)
    faces = torch.tensor([[0, 2, 1], [0, 3, 2]])
    K = intrinsics_from_fov(60.0, (32, 32), dtype=torch.float64)
    frags = rasterize(vc, faces, K, (32, 32), cull_backfaces=False)
    X = interpolate(vc, frags, faces)
    m = frags.tri_id >= 0
    assert int(m.sum()) > 200
    z = X[..., 2][m]
    assert torch.allclose(z, frags.depth[m], atol=1e-9)
    rows, cols = torch.meshgrid(torch.arange(32.0, dtype=torch.float64), torch.arange(32.0, dtype=torch.float64), indexing="ij")
    f, c = K[0, 0, 0], K[0, 0, 2]
    assert torch.allclose(X[..., 0][m], ((cols - c) / f)[None].expand_as(m)[m] * z, atol=1e-9)
    assert torch.allclose(X[..., 1][m], ((rows - c) / f)[None].expand_as(m)[m] * z, atol=1e-9)
    # screen-linear barycentrics would be wrong by far more than the tolerance
    lin = rasterize_px(project_to_px(vc, K), faces, (32, 32))
    Xl = interpolate(vc, lin, faces)
    assert float((Xl[..., 2] - X[..., 2])[m].abs().max()) > 0.01


def test_background_handling():
    vc, f, K = _sphere_scene(size=(32, 32))
    frags = rasterize(vc, f, K, (32, 32))
    bg = frags.tri_id < 0
    assert bool(bg[0, 0, 0]) and int(bg.sum()) > 100
    assert torch.equal(frags.bary[bg], torch.zeros_like(frags.bary[bg]))
    assert torch.equal(frags.depth[bg], torch.zeros_like(frags.depth[bg]))
    col = interpolate(torch.ones(vc.shape[1], 3), frags, f)
    assert torch.equal(col[bg], torch.zeros_like(col[bg]))
    assert torch.allclose(col[~bg], torch.ones_like(col[~bg]), atol=1e-5)
    assert torch.allclose(frags.bary[~bg].sum(-1), torch.ones(int((~bg).sum())), atol=1e-5)


def test_culling_sign_and_convention_pin():
    """A CCW (seen from +Z, outside) model triangle faces a frontal camera; +X lands right of the
    centre and +Y in the upper half of the image."""
    R = pose_angles_to_matrix(torch.zeros(1, 3))
    t = torch.tensor([[0.0, 0.0, 1.0]])
    K = intrinsics_from_fov(40.0, (64, 64))
    ccw = torch.tensor([[[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.0, 0.1, 0.0]]])
    f = torch.tensor([[0, 1, 2]])
    vc = transform_points(ccw, R, t)
    front = rasterize(vc, f, K, (64, 64))
    assert int((front.tri_id >= 0).sum()) > 20
    back = rasterize(vc, f.flip(1), K, (64, 64))
    assert int((back.tri_id >= 0).sum()) == 0
    no_cull = rasterize(vc, f.flip(1), K, (64, 64), cull_backfaces=False)
    assert torch.equal(no_cull.tri_id >= 0, front.tri_id >= 0)
    # conventions: the triangle spans model +X and +Y from the origin (the image centre)
    rows, cols = (front.tri_id[0] >= 0).nonzero(as_tuple=True)
    centre = (64 - 1) / 2
    assert float(cols.float().mean()) > centre
    assert float(rows.float().mean()) < centre
    # the +X vertex is right of the centre, the +Y vertex above it
    px = project_to_px(vc, K)[0]
    assert float(px[1, 0]) > centre + 5 and abs(float(px[1, 1]) - centre) < 1e-4
    assert float(px[2, 1]) < centre - 5 and abs(float(px[2, 0]) - centre) < 1e-4


def test_z_buffer_keeps_nearest_and_near_plane():
    K = intrinsics_from_fov(60.0, (32, 32))
    tri = torch.tensor([[-0.2, -0.2, 0.0], [0.0, 0.2, 0.0], [0.2, -0.2, 0.0]])  # front-facing in the image
    near_t = tri + torch.tensor([0.0, 0.0, 1.0])
    far_t = tri * 2 + torch.tensor([0.0, 0.0, 2.0])
    for order in ([near_t, far_t], [far_t, near_t]):
        vc = torch.cat(order)[None]
        frags = rasterize(vc, torch.tensor([[0, 1, 2], [3, 4, 5]]), K, (32, 32))
        near_id = 0 if order[0] is near_t else 1
        assert int(frags.tri_id[0, 16, 16]) == near_id
        assert abs(float(frags.depth[0, 16, 16]) - 1.0) < 1e-5
    behind = tri + torch.tensor([0.0, 0.0, 0.0005])
    frags = rasterize(behind[None], torch.tensor([[0, 1, 2]]), K, (32, 32), near=1e-3)
    assert int((frags.tri_id >= 0).sum()) == 0


def test_rasterize_px_negative_depth_and_ids():
    xyz = torch.tensor([[[0.0, 0, -1.0], [7, 0, -1.0], [0, 7, -1.0], [0.0, 0, -2.0], [7, 0, -2.0], [0, 7, -2.0]]])
    frags = rasterize_px(xyz, torch.tensor([[0, 1, 2], [3, 4, 5]]), (8, 8))
    assert int(frags.tri_id[0, 1, 1]) == 1  # -2 < -1: nearer
    assert abs(float(frags.depth[0, 1, 1]) + 2.0) < 1e-6
    assert not frags.perspective


def test_chunked_large_triangles_match_unchunked():
    vc, f, K = _sphere_scene(size=(96, 96), subdiv=1)  # large triangles: the flat candidate path
    vp = project_to_px(vc, K)
    a = visibility_torch(vp, f, (96, 96))
    b = visibility_torch(vp, f, (96, 96), max_candidates=97)
    assert torch.equal(a, b)
    assert int((a >= 0).sum()) > 1000


def test_huge_triangle_off_screen_vertices():
    xyz = torch.tensor([[[-5000.0, -5000, 1], [15000, -5000, 1], [-5000, 15000, 1]]])
    frags = rasterize_px(xyz, torch.tensor([[0, 1, 2]]), (64, 64))
    assert bool((frags.tri_id == 0).all())


def test_bary_gradcheck():
    g = torch.Generator().manual_seed(0)
    v = torch.tensor([[[2.0, 1.0, 1.0], [9.0, 2.5, 1.5], [3.0, 8.0, 2.0], [8.5, 9.0, 1.2]]], dtype=torch.float64)
    v = (v + 0.1 * torch.rand(v.shape, generator=g, dtype=torch.float64)).requires_grad_()
    faces = torch.tensor([[0, 1, 2], [1, 3, 2]])
    pix = torch.tensor([3 * 12 + 4, 6 * 12 + 7, 5 * 12 + 5])
    pf = torch.tensor([0, 1, 0])
    for persp in (True, False):
        assert torch.autograd.gradcheck(lambda x, persp=persp: _bary_at_pixels(x, faces, pix, pf, (12, 12), persp), (v,))


def test_bary_gradients_flow_to_vertices():
    vc, f, K = _sphere_scene(size=(32, 32))
    vc = vc.clone().requires_grad_()
    frags = rasterize(vc, f, K, (32, 32))
    (frags.bary[..., 0].sum() + frags.depth.sum()).backward()
    assert vc.grad is not None and float(vc.grad.abs().sum()) > 0


def test_batch_elements_are_independent():
    vc, f, K = _sphere_scene(B=3, size=(32, 32))
    vc = vc.clone()
    vc[1] += torch.tensor([0.05, 0.0, 0.0])
    both = rasterize(vc, f, K, (32, 32))
    for b in range(3):
        single = rasterize(vc[b:b + 1], f, K[b:b + 1], (32, 32))
        assert torch.equal(both.tri_id[b], single.tri_id[0])
        assert torch.allclose(both.bary[b], single.bary[0])


def test_rasterize_raises_on_bad_input():
    vc, f, K = _sphere_scene()
    with pytest.raises(ShapeError, match="rasterize"):
        rasterize(vc[0], f, K, (8, 8))
    with pytest.raises(ShapeError, match="int64"):
        rasterize(vc, f.int(), K, (8, 8))
    with pytest.raises(ShapeError, match="out of range"):
        rasterize(vc, f + 10_000, K, (8, 8))
    with pytest.raises(ShapeError, match="dtype"):
        rasterize(vc, f, K.double(), (8, 8))
    with pytest.raises(ValueError, match="image_size"):
        rasterize(vc, f, K, (0, 8))


@pytest.mark.gpu
@cuda
def test_cuda_matches_cpu():
    vc, f, K = _sphere_scene(B=2, size=(64, 64), subdiv=3)
    cpu = rasterize(vc, f, K, (64, 64))
    gpu = rasterize(vc.cuda(), f.cuda(), K.cuda(), (64, 64))
    agree = (cpu.tri_id == gpu.tri_id.cpu())[(cpu.tri_id >= 0)].float().mean()
    assert float(agree) > 0.999
    assert torch.allclose(cpu.depth, gpu.depth.cpu(), atol=1e-5)


def test_triangle_crossing_the_near_plane_is_dropped_whole():
    # One vertex in front of `near`, two beyond it: the documented rule drops the whole triangle (no
    # clipping), and a triangle behind it that does not cross the plane stays visible.
    K = intrinsics_from_fov(60.0, (32, 32))
    crossing = torch.tensor([[-0.2, -0.2, 0.5], [0.0, 0.2, 0.0005], [0.2, -0.2, 0.5]])
    behind = torch.tensor([[-0.4, -0.4, 1.0], [0.0, 0.4, 1.0], [0.4, -0.4, 1.0]])
    frags = rasterize(torch.cat([crossing, behind])[None], torch.tensor([[0, 1, 2], [3, 4, 5]]), K, (32, 32),
                      near=1e-3)
    ids = frags.tri_id[0]
    assert int((ids == 0).sum()) == 0
    assert int((ids == 1).sum()) > 50
    # the same triangle entirely beyond `near` is drawn in front of the other one
    moved = crossing.clone()
    moved[1, 2] = 0.5
    frags = rasterize(torch.cat([moved, behind])[None], torch.tensor([[0, 1, 2], [3, 4, 5]]), K, (32, 32),
                      near=1e-3)
    assert int(frags.tri_id[0, 16, 16]) == 0
