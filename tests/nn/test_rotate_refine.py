"""recon3d.nn.rotate_refine: PAS grid shapes, identity behaviour, the refiner's residual start, the registry."""

from __future__ import annotations

import pytest
import torch

from recon3d.errors import ShapeError
from recon3d.nn import NETWORKS, load_network, save_network
from recon3d.nn.rotate_refine import PixelAttentionSampler, RotationRefiner, identity_grid, landmark_condition


def _inputs(B=2, S=64):
    g = torch.Generator().manual_seed(0)
    warp = torch.rand(B, 3, S, S, generator=g) * 2 - 1
    src = torch.rand(B, 3, S, S, generator=g) * 2 - 1
    masks = (torch.rand(B, 2, S, S, generator=g) > 0.5).float()
    ls = torch.rand(B, 68, 3, generator=g) - 0.5
    return warp, src, masks, ls, ls + 0.05, torch.randn(B, 128, generator=g)


def test_identity_grid_samples_the_input_unchanged():
    x = torch.rand(2, 3, 8, 12)
    g = identity_grid(2, 8, 12)
    assert g.shape == (2, 8, 12, 2)
    y = torch.nn.functional.grid_sample(x, g, align_corners=False)
    assert torch.allclose(x, y, atol=1e-6)


def test_pas_grid_shapes_identity_at_start_and_bounded_shift():
    pas = PixelAttentionSampler((8, 16, 32, 64), cond=32, grid=8, max_shift=0.2)
    src, warp = torch.rand(3, 3, 64, 64), torch.rand(3, 3, 64, 64)
    out, grid = pas(src, warp, torch.zeros(3, 32))
    assert out.shape == src.shape and grid.shape == (3, 64, 64, 2)
    assert torch.allclose(grid, identity_grid(3, 64, 64), atol=1e-6) and torch.allclose(out, src, atol=1e-5)
    # with weights the displacement is bounded by max_shift
    torch.nn.init.normal_(pas.sampler[-1].weight, std=1.0)
    _, grid = pas(src, warp, torch.randn(3, 32))
    assert (grid - identity_grid(3, 64, 64)).abs().max() <= 0.2 + 1e-6
    assert (grid - identity_grid(3, 64, 64)).abs().max() > 0.01


@pytest.mark.parametrize("pas", [True, False])
def test_untrained_refiner_returns_the_warp_and_learns(pas):
    net = RotationRefiner(64, widths=(8, 16, 32, 64), pas=pas)
    warp, src, masks, ls, lt, emb = _inputs()
    y, sampled = net.refine(warp, src, masks, ls, lt, emb)
    assert y.shape == warp.shape and torch.equal(y, warp.clamp(-1, 1))
    assert torch.allclose(sampled, src, atol=1e-5)  # PAS starts at the identity; without PAS it is the source
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(3):
        loss = (net(warp, src, masks, ls, lt, emb) - src).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert not torch.equal(net(warp, src, masks, ls, lt, emb), warp)
    assert net.config["pas"] is pas and (net.pas is None) is (not pas)


def test_refiner_checks_its_inputs():
    net = RotationRefiner(64, widths=(8, 16, 32, 64))
    warp, src, masks, ls, lt, emb = _inputs()
    with pytest.raises(ValueError, match="emb="):
        net(warp, src, masks, ls, lt, None)
    with pytest.raises(ShapeError):
        net(warp, src, masks[:, :1], ls, lt, emb)
    with pytest.raises(ShapeError):
        landmark_condition(ls[:, :60], lt)
    with pytest.raises(ValueError, match="multiple of 8"):
        RotationRefiner(60)
    assert RotationRefiner(64, id_dim=0, widths=(8, 16, 32, 64))(warp, src, masks, ls, lt).shape == warp.shape


def test_refiner_round_trips_through_the_registry(tmp_path):
    spec = NETWORKS["rotation_refiner"]
    net = RotationRefiner(64, widths=(8, 16, 32, 64), pas=False).eval()
    torch.nn.init.normal_(net.to_rgb.weight, std=0.01)
    path = tmp_path / "r.safetensors"
    save_network(net, path, spec, meta={"note": "test"}, half=False)
    back, meta = load_network(spec, path, cached=False)
    assert back.config == net.config and meta["note"] == "test"
    warp, src, masks, ls, lt, emb = _inputs()
    with torch.no_grad():
        assert torch.allclose(back(warp, src, masks, ls, lt, emb), net(warp, src, masks, ls, lt, emb), atol=1e-6)


def test_shipped_refiner_loads_and_runs():
    from recon3d.nn.rotate_refine import load_rotation_refiner

    net = load_rotation_refiner()  # the manifest's sha256 is checked on load
    assert net.config == {"res": 128, "widths": [16, 32, 64, 128], "blocks": 2, "cond": 128, "id_dim": 128, "pas": True}
    warp, src, masks, ls, lt, emb = _inputs(1, 128)
    with torch.no_grad():
        y = net(warp.to(next(net.parameters()).dtype), src, masks, ls, lt, emb)
    assert y.shape == warp.shape and torch.isfinite(y).all() and not torch.equal(y, warp)
