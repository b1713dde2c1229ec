"""FaceRestorer: shapes and gradients of every variant, the prior-first initialisation, the reference
fallback, resizing in restore_aligned and the file round trip."""

from __future__ import annotations

import pytest
import torch

from recon3d.errors import ShapeError
from recon3d.nn.registry import load_network, save_network
from recon3d.nn.restoration import REF_SR, RESTORER, FaceRestorer, _Fuse, load_restorer, restore_aligned
from recon3d.nn.stylegan2 import StyleGenerator

TINY = {32: 8, 16: 8, 8: 16, 4: 16}
TINY_PRIOR = {"res": 32, "z_dim": 16, "w_dim": 16, "n_mlp": 2, "channels": {4: 16, 8: 16, 16: 8, 32: 8}}

VARIANTS = [
    {"kind": "unet"},
    {"kind": "codec", "block": "mmrb", "prior": False},
    {"kind": "codec", "block": "res", "prior": True, "prior_config": TINY_PRIOR},
    {"kind": "codec", "block": "mmrb", "prior": True, "prior_config": TINY_PRIOR},
    {"kind": "codec", "block": "mmrb", "prior": True, "reference": True, "prior_config": TINY_PRIOR},
    {"kind": "lowres", "block": "mmrb", "width": 8, "depth": 2},
    {"kind": "lowres", "block": "res", "reference": True, "width": 8, "depth": 3},
]


@pytest.mark.parametrize("kw", VARIANTS, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items() if k != "prior_config"))
def test_shapes_and_gradients(kw):
    torch.manual_seed(0)
    net = FaceRestorer(32, channels=TINY, **kw)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    ref = torch.rand(2, 3, 32, 32) * 2 - 1 if net.uses_reference else None
    res = net.forward_all(x, ref)
    assert res["out"].shape == (2, 3, 32, 32)
    if kw["kind"] == "codec":
        assert sorted(res["scales"]) == [4, 8, 16, 32]
        assert all(v.shape[-1] == k for k, v in res["scales"].items())
    res["out"].square().mean().backward()
    enc = [p for n, p in net.named_parameters() if not n.startswith("prior.")]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in enc)


def test_bad_shapes_and_options():
    net = FaceRestorer(32, kind="unet", channels=TINY)
    with pytest.raises(ShapeError):
        net(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="kind"):
        FaceRestorer(32, kind="gan", channels=TINY)
    with pytest.raises(ValueError, match="block"):
        FaceRestorer(32, block="dense", channels=TINY)
    with pytest.raises(ShapeError, match="channel"):
        FaceRestorer(64, channels=TINY)


def test_fuse_starts_as_the_prior_alone():
    f = _Fuse(4, 3)
    a, b = torch.randn(2, 4, 5, 5), torch.randn(2, 3, 5, 5)
    assert torch.allclose(f(a, b), a)
    assert torch.allclose(f(a, b), f(a, torch.randn_like(b)))


def test_prior_is_copied_and_used():
    torch.manual_seed(0)
    net = FaceRestorer(32, channels=TINY, prior_config=TINY_PRIOR)
    g = StyleGenerator(**TINY_PRIOR)
    with torch.no_grad():
        for p in g.parameters():
            p.add_(0.5)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    before = net(x)
    net.init_prior(g)
    assert torch.equal(net.prior.const, g.const)
    assert not torch.allclose(net(x), before)
    with pytest.raises(ValueError, match="no prior"):
        FaceRestorer(32, channels=TINY, prior=False).init_prior(g)


def test_reference_none_means_the_input_itself():
    torch.manual_seed(0)
    net = FaceRestorer(32, channels=TINY, reference=True, prior_config=TINY_PRIOR).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(net(x), net(x, x))
        # the prior ignores the decoder at first: open that path so a different reference must change the output
        for p in net.prior_fuse.parameters():
            p.add_(0.1)
        assert not torch.allclose(net(x), net(x, torch.flip(x, (3,))))


def test_restore_aligned_resizes_and_batches():
    net = FaceRestorer(32, kind="unet", channels=TINY).eval()
    faces = torch.rand(5, 3, 48, 48) * 2 - 1
    out = restore_aligned(net, faces, batch=2)
    assert out.shape == faces.shape and out.abs().max() <= 1
    with pytest.raises(ShapeError):
        restore_aligned(net, torch.zeros(1, 3, 20, 30))


def _lowres_nudged():
    net = FaceRestorer(32, kind="lowres", width=8, depth=2, reference=True).eval()
    with torch.no_grad():
        net.lr_tail.weight.add_(0.05)  # away from the near-identity start, so the comparison means something
    return net


@pytest.mark.parametrize("make", [
    lambda: FaceRestorer(32, channels=TINY, reference=True, prior_config=TINY_PRIOR).eval(),
    _lowres_nudged,
], ids=["codec", "lowres"])
def test_file_round_trip(tmp_path, make):
    torch.manual_seed(0)
    net = make()
    p = tmp_path / "r.safetensors"
    save_network(net, p, REF_SR, half=False)
    back = load_restorer(p, reference=True)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(back(x), net(x), atol=1e-6)
    assert back.uses_reference and back.config == net.config
    same, _ = load_network(RESTORER, p, cached=False)  # one format for both specs
    assert same.config == net.config


def test_lowres_works_at_a_quarter_size_and_starts_near_the_input():
    torch.manual_seed(0)
    net = FaceRestorer(32, kind="lowres", width=8, depth=2, reference=True).eval()
    seen = []
    net.trunk_a.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape)))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        y = net(x)
        # space-to-depth by 4: the trunk sees 8x8 maps of a 32x32 face
        assert seen[0] == (2, 8, 8, 8)
        # a small residual on top of the input at initialisation
        assert (y - x).abs().mean() < 0.2 * x.abs().mean()
        # the reference fusion starts at zero: any reference gives the no-reference output
        assert torch.allclose(net(x, torch.flip(x, (3,))), y)
        for p in net.ref_fuse.parameters():
            p.add_(0.1)
        assert not torch.allclose(net(x, torch.flip(x, (3,))), net(x))
    assert net.config["kind"] == "lowres" and net.config["factor"] == 4


def test_lowres_bad_options():
    with pytest.raises(ShapeError, match="factor"):
        FaceRestorer(32, kind="lowres", factor=3)
    with pytest.raises(ValueError, match="even width"):
        FaceRestorer(32, kind="lowres", width=7)
