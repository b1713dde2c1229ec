"""Tests of recon3d.render.antialias: silhouette gradients, finite differences, toy fits."""

from __future__ import annotations

import pytest
import torch
import trimesh

from recon3d.camera import axis_angle_to_matrix, intrinsics_from_fov, transform_points
from recon3d.errors import ShapeError
from recon3d.render import antialias, edge_topology, rasterize, render_mesh


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The toy fits run many tiny renders: one thread avoids OpenMP overhead on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _icosphere(subdiv=1, dtype=torch.float64):
    m = trimesh.creation.icosphere(subdivisions=subdiv)
    return torch.tensor(m.vertices, dtype=dtype) * 0.1, torch.tensor(m.faces, dtype=torch.int64)


def test_edge_topology_of_closed_mesh_has_no_boundary():
    v, f = _icosphere(1)
    opp = edge_topology(f).opposite
    assert opp.shape == f.shape
    assert bool((opp >= 0).all())
    # adjacency is symmetric
    for fi in range(0, len(f), 7):
        for e in range(3):
            assert fi in opp[opp[fi, e]].tolist()


def test_antialias_leaves_interior_and_far_background_untouched():
    v, f = _icosphere(2, torch.float32)
    vc = v[None] + torch.tensor([0.0, 0.0, 0.5])
    K = intrinsics_from_fov(30.0, (48, 48))
    frags = rasterize(vc, f, K, (48, 48))
    color = torch.rand(1, 48, 48, 3, generator=torch.Generator().manual_seed(0))
    out = antialias(color, frags, frags.verts_px, f)
    changed = (out - color).abs().amax(-1) > 0
    assert int(changed.sum()) > 20  # silhouette pixels are blended
    # only pixels next to a coverage change can change
    m = (frags.tri_id >= 0).float()[:, None]
    edge = torch.nn.functional.max_pool2d(m, 3, 1, 1) != -torch.nn.functional.max_pool2d(-m, 3, 1, 1)
    assert not bool((changed & ~edge[:, 0]).any())


def test_antialias_coverage_of_straight_edge():
    # a vertical edge at x = 10.3: columns <= 10 covered. Pixel 10 covers [9.5, 10.5] -> 0.8 inside
    xyz = torch.tensor([[[10.3, -50.0, 1.0], [10.3, 60.0, 1.0], [-40.0, 5.0, 1.0]]])
    f = torch.tensor([[0, 1, 2]])
    from recon3d.render import rasterize_px

    frags = rasterize_px(xyz, f, (16, 16))
    cov = antialias(frags.mask, frags, frags.verts_px, f)
    assert abs(float(cov[0, 8, 10, 0]) - 0.8) < 1e-5
    assert abs(float(cov[0, 8, 11, 0]) - 0.0) < 1e-6
    xyz2 = xyz.clone()
    xyz2[..., 0, 0] = xyz2[..., 1, 0] = 10.7
    frags2 = rasterize_px(xyz2, f, (16, 16))
    cov2 = antialias(frags2.mask, frags2, frags2.verts_px, f)
    assert abs(float(cov2[0, 8, 11, 0]) - 0.2) < 1e-5
    assert abs(float(cov2[0, 8, 10, 0]) - 1.0) < 1e-6


def test_render_gradient_matches_central_finite_differences():
    """Loss = weighted sum of the antialiased image and mask of a tiny render (float64).

    The loss is piecewise smooth in the vertex positions (with rare jumps where the chosen
    silhouette edge or the foreground side of a pixel pair switches, as in nvdiffrast) and
    strongly curved near grazing edges, so the step is small: h = 1e-6 m (about 1e-4 px). The
    stated tolerance is 2e-3 relative + 5e-2 absolute."""
    v, f = _icosphere(1)
    K = intrinsics_from_fov(30.0, (24, 24), dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    col = torch.rand(v.shape[0], 3, generator=g, dtype=torch.float64)
    Wt = torch.rand(1, 24, 24, 4, generator=g, dtype=torch.float64)

    def loss(vc):
        out = render_mesh(vc, f, K, (24, 24), vert_colors=col, background=0.3)
        return (torch.cat([out.image, out.mask], -1) * Wt).sum()

    vc = (v[None] + torch.tensor([0.01, 0.0, 0.5], dtype=torch.float64)).requires_grad_()
    loss(vc).backward()
    h = 1e-6
    checked = 0
    for i in (0, 3, 7, 20):
        for c in range(3):
            vp, vm = vc.detach().clone(), vc.detach().clone()
            vp[0, i, c] += h
            vm[0, i, c] -= h
            fd = float((loss(vp) - loss(vm)) / (2 * h))
            an = float(vc.grad[0, i, c])
            assert abs(fd - an) <= 2e-3 * abs(fd) + 5e-2, (i, c, an, fd)
            checked += abs(an) > 1.0
    assert checked >= 6  # the test exercised non-trivial gradients


def test_silhouette_gradient_exists_only_with_antialias():
    v, f = _icosphere(2, torch.float32)
    K = intrinsics_from_fov(30.0, (32, 32))
    t = torch.tensor([[0.0, 0.0, 0.5]], requires_grad=True)
    out = render_mesh(v[None] + t[:, None], f, K, (32, 32), antialias=False)
    out.mask.sum().backward() if out.mask.requires_grad else None
    assert t.grad is None or float(t.grad.abs().sum()) == 0.0
    out = render_mesh(v[None] + t[:, None], f, K, (32, 32), antialias=True)
    out.mask[:, :16].sum().backward()  # pushing the sphere down removes coverage up top
    assert float(t.grad[0, 1]) < 0


def test_toy_fit_recovers_translation_from_silhouette():
    v, f = _icosphere(2, torch.float32)
    K = intrinsics_from_fov(30.0, (48, 48))
    t_true = torch.tensor([[0.03, -0.02, 0.55]])
    with torch.no_grad():
        target = render_mesh(v[None] + t_true[:, None], f, K, (48, 48)).mask
    t = torch.tensor([[0.0, 0.0, 0.5]], requires_grad=True)
    opt = torch.optim.Adam([t], lr=3e-3)
    for _ in range(120):
        opt.zero_grad()
        mask = render_mesh(v[None] + t[:, None], f, K, (48, 48)).mask
        ((mask - target) ** 2).mean().backward()
        opt.step()
    err = (t.detach() - t_true).abs()[0]
    assert float(err[:2].max()) < 2e-3, t
    assert float(err[2]) < 2e-2, t


def test_toy_fit_recovers_rotation_from_image():
    v, f = _icosphere(2, torch.float32)
    v = v * torch.tensor([1.0, 0.7, 0.5])  # an ellipsoid: the silhouette constrains the rotation too
    K = intrinsics_from_fov(30.0, (48, 48))
    col = (v * 4 + 0.5).clamp(0, 1)  # position-coded colours make the rotation observable
    tr = torch.tensor([[0.0, 0.0, 0.5]])
    aa_true = torch.tensor([[0.1, -0.12, 0.06]])

    def render(aa):
        vc = transform_points(v[None], axis_angle_to_matrix(aa), tr)
        return render_mesh(vc, f, K, (48, 48), vert_colors=col).image

    with torch.no_grad():
        target = render(aa_true)
    aa = torch.zeros(1, 3, requires_grad=True)
    opt = torch.optim.Adam([aa], lr=3e-2)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, 0.97)
    for _ in range(100):
        opt.zero_grad()
        ((render(aa) - target) ** 2).mean().backward()
        opt.step()
        sched.step()
    assert float((aa.detach() - aa_true).abs().max()) < 5e-3, aa


def test_antialias_raises_on_bad_shapes():
    v, f = _icosphere(0, torch.float32)
    frags = rasterize(v[None] + torch.tensor([0.0, 0, 0.5]), f, intrinsics_from_fov(30.0, (8, 8)), (8, 8))
    with pytest.raises(ShapeError, match="antialias"):
        antialias(torch.zeros(1, 8, 9, 3), frags, frags.verts_px, f)
    with pytest.raises(ShapeError, match="topology"):
        antialias(torch.zeros(1, 8, 8, 3), frags, frags.verts_px, f, topology=edge_topology(f[:3]))
