"""Regression: a watertight grid of small triangles far from the image origin rasterises without
one-pixel cracks along shared edges (float32 cancellation in the edge functions once opened some)."""

import torch

from recon3d.render import rasterize_px


def test_fine_grid_far_from_origin_has_no_cracks():
    g = torch.Generator().manual_seed(0)
    n = 120
    ys, xs = torch.meshgrid(torch.linspace(300.3, 499.7, n), torch.linspace(300.2, 499.9, n), indexing="ij")
    jitter = (torch.rand(n, n, 2, generator=g) - 0.5) * 1.2
    verts = torch.stack([xs + jitter[..., 0], ys + jitter[..., 1], torch.ones(n, n)], -1).reshape(1, -1, 3)
    idx = torch.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    faces = torch.cat([torch.stack([a, c, b], -1).reshape(-1, 3), torch.stack([b, c, d], -1).reshape(-1, 3)])
    frag = rasterize_px(verts, faces, (512, 512))
    inner = frag.tri_id[0, 310:490, 310:490]
    assert int((inner < 0).sum()) == 0
