"""Tests of recon3d.ops.poisson.poisson_blend (direct and multigrid paths)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon3d.errors import ShapeError
from recon3d.ops.poisson import poisson_blend


def _blob_mask(n: int) -> tuple[np.ndarray, np.ndarray]:
    """A face-like layout (ellipse) and ~45 % of it unknown (one side plus a wavy border)."""
    yy, xx = np.mgrid[0:n, 0:n] / n
    layout = ((xx - 0.5) / 0.48) ** 2 + ((yy - 0.5) / 0.45) ** 2 < 1
    known = layout & (xx > 0.62 + 0.1 * np.sin(yy * 12))
    return layout, layout & ~known


def test_constant_offset_gives_target_matched_source():
    rng = np.random.default_rng(0)
    src = rng.random((40, 50, 3))
    tgt = src + np.array([0.3, -0.2, 0.1])
    mask = np.zeros((40, 50), bool)
    mask[5:30, 8:45] = True
    out = poisson_blend(tgt, src, mask)
    np.testing.assert_allclose(out, tgt, atol=1e-9)


def test_harmonic_function_is_reproduced_and_boundary_kept():
    yy, xx = np.mgrid[0:60, 0:70].astype(np.float64)
    harmonic = (xx**2 - yy**2) / 5000.0 + 0.01 * xx * yy / 50 + 0.2  # Laplacian (5-point) is zero
    tgt = harmonic[..., None]
    src = np.zeros_like(tgt)  # zero guidance: the solution is the harmonic interpolant of the boundary
    mask = np.zeros((60, 70), bool)
    mask[3:55, 4:66] = True
    out = poisson_blend(tgt, src, mask)
    np.testing.assert_allclose(out, tgt, atol=1e-9)
    np.testing.assert_array_equal(out[~mask], tgt[~mask])  # Dirichlet region untouched


def test_torch_in_torch_out_and_2d():
    tgt = torch.zeros(8, 9)
    src = torch.ones(8, 9)
    m = torch.zeros(8, 9, dtype=torch.bool)
    m[2:6, 2:7] = True
    out = poisson_blend(tgt, src, m)
    assert isinstance(out, torch.Tensor) and out.shape == (8, 9) and out.dtype == torch.float32
    assert float(out.abs().max()) < 1e-6


def test_neumann_outside_domain_and_unreachable_component_keeps_source():
    tgt = np.full((20, 20, 1), 5.0)
    tgt[:, 10:] = 1e6  # garbage outside the domain must not leak in
    src = np.zeros((20, 20, 1))
    domain = np.zeros((20, 20), bool)
    domain[:, :10] = True
    mask = np.zeros((20, 20), bool)
    mask[5:15, 3:10] = True  # touches the domain edge at column 9
    out = poisson_blend(tgt, src, mask, domain=domain)
    np.testing.assert_allclose(out[mask], 5.0, atol=1e-9)
    np.testing.assert_array_equal(out[:, 10:], tgt[:, 10:])
    # a component with no Dirichlet neighbour (all of its neighbours are outside the domain)
    island = np.zeros((20, 20), bool)
    island[2:4, 12:14] = True
    dom2 = island.copy()
    out2 = poisson_blend(tgt, src + 0.5, island, domain=dom2)
    np.testing.assert_allclose(out2[island], 0.5)


def test_mixed_guidance_keeps_stronger_target_edges():
    tgt = np.zeros((30, 30, 1))
    tgt[:, 15:] = 1.0  # a strong edge in the target
    src = np.zeros((30, 30, 1))  # flat source
    mask = np.zeros((30, 30), bool)
    mask[5:25, 5:25] = True
    out_src = poisson_blend(tgt, src, mask, guidance="source")
    out_mix = poisson_blend(tgt, src, mask, guidance="mixed")
    step_src = float(out_src[15, 15, 0] - out_src[15, 14, 0])
    step_mix = float(out_mix[15, 15, 0] - out_mix[15, 14, 0])
    assert step_mix > 0.9 and step_src < 0.5


@pytest.mark.parametrize("n", [200])
def test_multigrid_matches_direct(n):
    layout, mask = _blob_mask(n)
    rng = np.random.default_rng(1)
    tgt = rng.random((n, n, 3)).astype(np.float32)
    yy, xx = np.mgrid[0:n, 0:n] / n
    src = (0.2 * rng.random((n, n, 3)) + np.sin(7 * xx)[..., None]).astype(np.float32)
    ref = poisson_blend(tgt, src, mask, domain=layout, direct_max=10**9)
    mg = poisson_blend(tgt, src, mask, domain=layout, direct_max=0, tol=1e-5)
    assert mg.dtype == np.float32
    assert float(np.abs(mg - ref).max()) < 2e-3
    np.testing.assert_array_equal(mg[~mask], tgt[~mask])


def test_errors():
    with pytest.raises(ShapeError, match="poisson_blend"):
        poisson_blend(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)), np.zeros((4, 4), bool))
    with pytest.raises(ShapeError, match="mask"):
        poisson_blend(np.zeros((4, 4, 3)), np.zeros((4, 4, 3)), np.zeros((4, 4)))
    with pytest.raises(ShapeError, match="guidance"):
        poisson_blend(np.zeros((4, 4, 3)), np.zeros((4, 4, 3)), np.zeros((4, 4), bool), guidance="max")
