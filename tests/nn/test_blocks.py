"""The network building blocks (recon3d.nn.blocks): shapes on odd sizes, gradients to the input and to
every parameter, and one property per block that a wrong implementation would break."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from recon3d.errors import ShapeError
from recon3d.nn.blocks import (
    MMRB,
    ConditionalInstanceNorm2d,
    CrossAttention2d,
    GatedConv2d,
    GatedResBlock,
    SelfAttention2d,
    activation,
    conv_block,
)


def _assert_grads(module: nn.Module, out: torch.Tensor, *inputs: torch.Tensor) -> None:
    """Backprop a random weighting of ``out``; every input and every parameter must get a non-zero,
    finite gradient."""
    (out * torch.randn_like(out)).sum().backward()
    for i, t in enumerate(inputs):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0, f"input {i}"
    for name, p in module.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


# --- helpers ---------------------------------------------------------------------------------------------

def test_conv_block_shapes_and_errors():
    assert conv_block(3, 6, 5, stride=2, norm="instance", act="prelu")(torch.randn(2, 3, 7, 9)).shape == (2, 6, 4, 5)
    assert conv_block(3, 6, dilation=3, norm="batch", act=None)(torch.randn(2, 3, 7, 9)).shape == (2, 6, 7, 9)
    with pytest.raises(ValueError, match="odd kernel"):
        conv_block(3, 6, 4)
    with pytest.raises(ValueError, match="norm"):
        conv_block(3, 6, norm="layer")
    with pytest.raises(ValueError, match="unknown name"):
        activation("swish")
    assert isinstance(activation(None), nn.Identity)
    assert activation("prelu", 5).weight.shape == (5,)


# --- gated convolution -------------------------------------------------------------------------------------

@pytest.mark.parametrize("stride, dilation, expect", [(1, 1, (7, 9)), (2, 1, (4, 5)), (1, 2, (7, 9))])
def test_gated_conv_shape_and_grads(stride, dilation, expect):
    conv = GatedConv2d(3, 4, 3, stride=stride, dilation=dilation)
    x = torch.randn(2, 3, 7, 9, requires_grad=True)
    out = conv(x)
    assert out.shape == (2, 4, *expect)
    _assert_grads(conv, out, x)


@pytest.mark.parametrize("act", ["elu", "lrelu", None])
def test_gated_conv_open_gate_is_the_plain_conv_and_closed_gate_is_zero(act):
    conv = GatedConv2d(3, 4, 5, dilation=2, act=act).double()
    x = torch.randn(2, 3, 11, 9, dtype=torch.float64)
    plain = F.conv2d(x, conv.feature.weight, conv.feature.bias, padding=4, dilation=2)
    with torch.no_grad():
        conv.gate.bias.fill_(40.0)  # sigmoid(40 + O(1)) == 1 to float64 precision
    torch.testing.assert_close(conv(x), activation(act)(plain), rtol=0, atol=1e-12)
    with torch.no_grad():
        conv.gate.bias.fill_(-40.0)
    assert conv(x).abs().max() < 1e-12


def test_gated_res_block_shape_grads_and_identity_when_gates_close():
    block = GatedResBlock(4, 6, dilation=2)
    x = torch.randn(2, 4, 7, 9, requires_grad=True)
    out = block(x)
    assert out.shape == (2, 6, 7, 9)
    _assert_grads(block, out, x)

    same = GatedResBlock(5).double()
    with torch.no_grad():
        same.conv2.gate.bias.fill_(-60.0)  # residual branch shut: the block passes x through
    x = torch.randn(1, 5, 6, 3, dtype=torch.float64)
    torch.testing.assert_close(same(x), x, rtol=0, atol=1e-20)


# --- self-attention ----------------------------------------------------------------------------------------

def test_self_attention_starts_as_identity():
    sa = SelfAttention2d(16)
    assert float(sa.gamma.detach()) == 0.0
    x = torch.randn(2, 16, 7, 5)
    assert torch.equal(sa(x), x)


def test_self_attention_shape_and_grads():
    sa = SelfAttention2d(16, reduction=8)
    with torch.no_grad():
        sa.gamma.fill_(0.7)  # with gamma = 0 nothing but gamma would get a gradient
    x = torch.randn(2, 16, 5, 7, requires_grad=True)
    out = sa(x)
    assert out.shape == (2, 16, 5, 7)
    _assert_grads(sa, out, x)
    assert SelfAttention2d(3).query.out_channels == 1  # reduction keeps at least one channel


def test_self_attention_matches_sagan_equations():
    """o = gamma h(x) beta + x with beta[j, i] = softmax over i of f(x)_i . g(x)_j, no scaling."""
    sa = SelfAttention2d(8, reduction=2).double()
    with torch.no_grad():
        sa.gamma.fill_(1.3)
    x = torch.randn(2, 8, 3, 5, dtype=torch.float64)
    f = sa.key(x).flatten(2)  # (B, C', N)
    g = sa.query(x).flatten(2)
    h = sa.value(x).flatten(2)  # (B, C, N)
    s = torch.einsum("bci,bcj->bij", f, g)  # s[i, j] = f_i . g_j
    beta = torch.softmax(s, dim=1)  # normalised over i for each j
    o = torch.einsum("bci,bij->bcj", h, beta).reshape(x.shape)
    torch.testing.assert_close(sa(x), 1.3 * o + x)

    with torch.no_grad():  # constant values: weights summing to 1 over i return the constant
        sa.value.weight.zero_()
        sa.value.bias.copy_(torch.arange(8.0))
    torch.testing.assert_close(sa(x), x + 1.3 * torch.arange(8.0, dtype=torch.float64)[None, :, None, None])


# --- conditional instance norm -----------------------------------------------------------------------------

def test_cin_shape_grads_and_errors():
    cin = ConditionalInstanceNorm2d(4, 6)
    x = torch.randn(3, 4, 7, 5, requires_grad=True)
    c = torch.randn(3, 6, requires_grad=True)
    out = cin(x, c)
    assert out.shape == (3, 4, 7, 5)
    _assert_grads(cin, out, x, c)
    with pytest.raises(ShapeError):
        cin(torch.randn(3, 4, 7, 5), torch.randn(2, 6))  # batch mismatch
    with pytest.raises(ShapeError):
        cin(torch.randn(3, 5, 7, 5), torch.randn(3, 6))  # channel mismatch


def test_cin_neutral_condition_is_instance_norm_and_condition_sets_scale_shift():
    cin = ConditionalInstanceNorm2d(4, 3).double()
    x = 3.0 * torch.randn(2, 4, 7, 9, dtype=torch.float64) + 5.0
    ref = nn.InstanceNorm2d(4).double()(x)
    torch.testing.assert_close(cin(x, torch.zeros(2, 3, dtype=torch.float64)), ref)
    with torch.no_grad():
        cin.scale.weight.copy_(torch.eye(4, 3, dtype=torch.float64))
        cin.shift.weight.copy_(2.0 * torch.eye(4, 3, dtype=torch.float64))
    c = torch.tensor([[1.0, 0.0, -0.5], [0.0, 2.0, 0.0]], dtype=torch.float64)
    scale = 1.0 + torch.eye(4, 3, dtype=torch.float64) @ c.T  # (C, B)
    shift = 2.0 * torch.eye(4, 3, dtype=torch.float64) @ c.T
    torch.testing.assert_close(cin(x, c), ref * scale.T[:, :, None, None] + shift.T[:, :, None, None])


# --- cross-attention ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("heads", [1, 2])
def test_cross_attention_shapes_differ_and_grads(heads):
    ca = CrossAttention2d(6, 5, dim=8, heads=heads)
    q = torch.randn(2, 6, 7, 9, requires_grad=True)
    kv = torch.randn(2, 5, 3, 5, requires_grad=True)
    out = ca(q, kv)
    assert out.shape == (2, 6, 7, 9)
    _assert_grads(ca, out, q, kv)


def test_cross_attention_single_key_returns_its_value_projection_everywhere():
    ca = CrossAttention2d(6, 5, dim=8, heads=2).double()
    q = torch.randn(2, 6, 7, 9, dtype=torch.float64)
    kv = torch.randn(2, 5, 1, 1, dtype=torch.float64)
    expected = ca.out(ca.to_v(kv))  # (B, query_ch, 1, 1)
    torch.testing.assert_close(ca(q, kv) - q, expected.expand(-1, -1, 7, 9))


def test_cross_attention_matches_multi_head_attention_by_hand():
    """Per head: softmax over context positions of q . k / sqrt(dim / heads), times v; heads concatenated."""
    ca = CrossAttention2d(4, 3, dim=6, heads=2).double()
    q_map = torch.randn(2, 4, 3, 5, dtype=torch.float64)
    kv = torch.randn(2, 3, 2, 3, dtype=torch.float64)
    q = ca.to_q(q_map).flatten(2).reshape(2, 2, 3, 15)  # (B, heads, d, Nq)
    k = ca.to_k(kv).flatten(2).reshape(2, 2, 3, 6)
    v = ca.to_v(kv).flatten(2).reshape(2, 2, 3, 6)
    w = torch.softmax(torch.einsum("bhdq,bhdk->bhqk", q, k) / 3**0.5, dim=-1)
    o = torch.einsum("bhqk,bhdk->bhdq", w, v).reshape(2, 6, 3, 5)
    torch.testing.assert_close(ca(q_map, kv), q_map + ca.out(o))


def test_cross_attention_ignores_the_order_of_context_positions():
    ca = CrossAttention2d(4, 3, heads=2).double()
    q = torch.randn(1, 4, 5, 3, dtype=torch.float64)
    kv = torch.randn(1, 3, 4, 6, dtype=torch.float64)
    perm = torch.randperm(24)
    shuffled = kv.flatten(2)[:, :, perm].reshape(1, 3, 3, 8)
    torch.testing.assert_close(ca(q, kv), ca(q, shuffled))


def test_cross_attention_errors():
    with pytest.raises(ValueError, match="heads"):
        CrossAttention2d(6, 5, dim=8, heads=3)
    with pytest.raises(ShapeError):
        CrossAttention2d(6, 5)(torch.randn(2, 6, 4, 4), torch.randn(1, 5, 4, 4))  # batch mismatch


# --- MMRB --------------------------------------------------------------------------------------------------

def test_mmrb_shape_and_grads():
    block = MMRB(6)
    x = torch.randn(2, 6, 7, 9, requires_grad=True)
    out = block(x)
    assert out.shape == (2, 6, 7, 9)
    _assert_grads(block, out, x)


def test_mmrb_zero_fusion_is_identity():
    block = MMRB(4)
    with torch.no_grad():
        block.fuse[0].weight.zero_()
        block.fuse[0].bias.zero_()
    x = torch.randn(2, 4, 5, 7)
    assert torch.equal(block(x), x)


def test_mmrb_branches_exchange_features():
    """Eqs. 7-8: both second convs see Concat[P_1, P_2]; eq. 9: the 1x1 sees Concat[P'_1, P'_2]."""
    block = MMRB(4).double()
    seen: dict[str, torch.Tensor] = {}
    for name in ("branch1_a", "branch2_a", "branch1_b", "branch2_b", "fuse"):
        getattr(block, name).register_forward_hook(
            lambda _m, inp, out, name=name: seen.update({name + ".in": inp[0], name + ".out": out}))
    x = torch.randn(1, 4, 9, 7, dtype=torch.float64)
    block(x)
    torch.testing.assert_close(seen["branch1_a.in"], x[:, :2], rtol=0, atol=0)
    torch.testing.assert_close(seen["branch2_a.in"], x[:, 2:], rtol=0, atol=0)
    both = torch.cat([seen["branch1_a.out"], seen["branch2_a.out"]], dim=1)
    torch.testing.assert_close(seen["branch1_b.in"], both, rtol=0, atol=0)
    torch.testing.assert_close(seen["branch2_b.in"], both, rtol=0, atol=0)
    torch.testing.assert_close(seen["fuse.in"], torch.cat([seen["branch1_b.out"], seen["branch2_b.out"]], dim=1),
                               rtol=0, atol=0)
    kernels = [getattr(block, n)[0].kernel_size[0] for n in ("branch1_a", "branch2_a", "branch1_b", "branch2_b", "fuse")]
    assert kernels == [3, 5, 3, 5, 1]
    assert isinstance(block.fuse[1], nn.PReLU)


def test_mmrb_odd_channels_raise():
    with pytest.raises(ValueError, match="even"):
        MMRB(5)
