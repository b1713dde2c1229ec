"""Tests of recon3d.ops.geometry (face and vertex normals)."""

from __future__ import annotations

import pytest
import torch
import trimesh

from recon3d.errors import ShapeError
from recon3d.ops.geometry import face_normals, vertex_normals


def _icosphere(subdiv: int = 2, dtype=torch.float64):
    m = trimesh.creation.icosphere(subdivisions=subdiv)
    return torch.tensor(m.vertices, dtype=dtype), torch.tensor(m.faces, dtype=torch.int64)


def test_sphere_vertex_normals_equal_normalised_positions():
    v, f = _icosphere(3)
    v = v * 0.37 + 0.0  # radius does not matter
    n = vertex_normals(v[None], f)[0]
    expected = v / v.norm(dim=-1, keepdim=True)
    assert n.shape == v.shape
    # area-weighted normals of a subdivided icosphere are within a fraction of a degree
    cos = (n * expected).sum(-1)
    assert float(cos.min()) > 0.9995
    assert torch.allclose(n.norm(dim=-1), torch.ones(len(v), dtype=v.dtype), atol=1e-12)


def test_face_normals_point_outwards_for_ccw_faces():
    v, f = _icosphere(1)
    fn = face_normals(v[None], f)[0]
    centres = v[f].mean(1)
    assert bool(((fn * centres).sum(-1) > 0).all())


def test_vertex_normals_area_weighting():
    # vertex 0 shared by a large face (normal +z) and a small face (normal +x): the big one dominates
    v = torch.tensor([[0.0, 0, 0], [2, 0, 0], [0, 2, 0], [0, 0.1, 0], [0, 0, -0.1]], dtype=torch.float64)
    f = torch.tensor([[0, 1, 2], [0, 3, 4]])
    n = vertex_normals(v[None], f)[0, 0]
    big = torch.tensor([0.0, 0, 4.0])  # cross of the first face (twice the area)
    small = torch.tensor([-0.01, 0.0, 0.0])
    expected = (big + small) / (big + small).norm()
    assert torch.allclose(n, expected.to(n.dtype), atol=1e-12)


def test_unused_vertex_gets_zero_normal_and_batch_broadcast():
    v = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [5, 5, 5]]]).repeat(2, 1, 1)
    v[1] = v[1] * torch.tensor([1.0, 1.0, -1.0])
    n = vertex_normals(v, torch.tensor([[0, 1, 2]]))
    assert n.shape == (2, 4, 3)
    assert torch.equal(n[:, 3], torch.zeros(2, 3))
    assert torch.allclose(n[0, 0], torch.tensor([0.0, 0, 1]))


def test_normals_gradcheck():
    v, f = _icosphere(0)
    v = (v + 0.05 * torch.randn_like(v, generator=torch.Generator().manual_seed(0)))[None].requires_grad_()
    assert torch.autograd.gradcheck(lambda x: vertex_normals(x, f), (v,))
    assert torch.autograd.gradcheck(lambda x: face_normals(x, f), (v,))


def test_normals_raise_on_bad_input():
    v, f = _icosphere(0)
    with pytest.raises(ShapeError, match="vertex_normals"):
        vertex_normals(v, f)  # missing batch
    with pytest.raises(ShapeError, match="int64"):
        vertex_normals(v[None], f.float())
    with pytest.raises(ShapeError, match="out of range"):
        face_normals(v[None], f + 100)
