"""Building blocks for the generators, restorers and refiners of recon3d.nn.

Thin ``nn.Module`` s in pure PyTorch (no custom ops; CPU and CUDA), all NCHW and batch-first. Each block
says what its paper calls it; the papers are cited by the name they are known by:

* :class:`GatedConv2d`, :class:`GatedResBlock`: gated convolution, Yu et al., "Free-form image
  inpainting with gated convolution", ICCV 2019 (DeepFill v2); the de-occlusion generator of Yin's
  thesis ("GAN-based face image synthesis...", Lyon 2022, ch. 5) stacks gated residual blocks.
* :class:`SelfAttention2d`: the SA layer of SAGAN, Zhang et al., ICML 2019, as written in Yin's thesis
  eqs. (2.62)-(2.64).
* :class:`ConditionalInstanceNorm2d`: conditional instance normalisation (CIN), Dumoulin et al., "A
  learned representation for artistic style", ICLR 2017; the thesis (ch. 4) conditions it on the target
  pose's 3D landmarks.
* :class:`CrossAttention2d`: the attention-based feature fusion of Lu & Qi, "Personalized super
  resolution with face prior", eq. (3): ``Attention(Q = F_p, K = F_LR, V = F_LR)``.
* :class:`MMRB`: the mixed multi-path residual block of Hu et al., "Enhancing quality of pose-varied
  face restoration with local weak feature sensing and GAN prior", sec. 3.2, eqs. (4)-(10).
* :func:`conv_block` and :func:`activation`: conv + optional norm + activation with "same" padding.

StyleGAN2 and DCGAN layers live in their own modules.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_shapes

__all__ = [
    "ACTIVATIONS",
    "activation",
    "conv_block",
    "GatedConv2d",
    "GatedResBlock",
    "SelfAttention2d",
    "ConditionalInstanceNorm2d",
    "CrossAttention2d",
    "MMRB",
]

#: activation names accepted by :func:`activation` (``None`` means identity)
ACTIVATIONS = ("relu", "lrelu", "elu", "prelu", "gelu", "sigmoid", "tanh")


def activation(name: str | None, channels: int = 1) -> nn.Module:
    """A fresh activation module by name.

    Args:
        name: one of :data:`ACTIVATIONS` or ``None`` (identity). ``"lrelu"`` has slope 0.2 (DCGAN,
            DeepFill); ``"prelu"`` learns one slope per channel.
        channels: channel count, used only by ``"prelu"``.

    Raises:
        ValueError: on an unknown name.

    >>> activation("lrelu")
    LeakyReLU(negative_slope=0.2)
    """
    if name is None:
        return nn.Identity()
    makers = {
        "relu": nn.ReLU, "lrelu": lambda: nn.LeakyReLU(0.2), "elu": nn.ELU,
        "prelu": lambda: nn.PReLU(channels), "gelu": nn.GELU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh,
    }
    if name not in makers:
        raise ValueError(f"activation(): unknown name {name!r}; expected one of {ACTIVATIONS} or None")
    return makers[name]()


def _same_padding(kernel_size: int, dilation: int) -> int:
    if kernel_size % 2 == 0:
        raise ValueError(f"'same' padding needs an odd kernel size, got {kernel_size}")
    return dilation * (kernel_size - 1) // 2


def conv_block(in_ch: int, out_ch: int, kernel_size: int = 3, *, stride: int = 1, dilation: int = 1,
               norm: str | None = None, act: str | None = "lrelu") -> nn.Sequential:
    """``Conv2d`` with "same" padding, then an optional norm, then an activation.

    ``(B, in_ch, H, W) -> (B, out_ch, ceil(H / stride), ceil(W / stride))``.

    Args:
        norm: ``None``, ``"batch"`` or ``"instance"`` (affine). The conv has a bias only without a norm.
        act: an :func:`activation` name or ``None``.

    Raises:
        ValueError: on an even kernel size or an unknown norm / activation.

    >>> conv_block(3, 8, stride=2)(torch.zeros(1, 3, 7, 9)).shape
    torch.Size([1, 8, 4, 5])
    """
    norms = {"batch": lambda: nn.BatchNorm2d(out_ch), "instance": lambda: nn.InstanceNorm2d(out_ch, affine=True)}
    if norm is not None and norm not in norms:
        raise ValueError(f"conv_block(): unknown norm {norm!r}; expected 'batch', 'instance' or None")
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel_size, stride, _same_padding(kernel_size, dilation),
                                         dilation, bias=norm is None)]
    if norm is not None:
        layers.append(norms[norm]())
    layers.append(activation(act, out_ch))
    return nn.Sequential(*layers)


class GatedConv2d(nn.Module):
    """Gated convolution (Yu et al. 2019): ``O = act(W_f * x) * sigmoid(W_g * x)``.

    Two convolutions of the same geometry: ``feature`` gives the features, ``gate`` a soft per-channel,
    per-pixel mask in (0, 1) learned from the data (the paper's answer to partial convolution's hard,
    all-channel mask). Padding is "same", so ``(B, in_ch, H, W) -> (B, out_ch, ceil(H / stride),
    ceil(W / stride))``.

    Args:
        in_ch, out_ch: channels.
        kernel_size: odd kernel size.
        stride, dilation: as ``nn.Conv2d``; dilated gated convs form DeepFill v2's bottleneck.
        act: activation of the feature branch (an :func:`activation` name, ``None`` for linear);
            DeepFill v2 uses ELU.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, *, stride: int = 1, dilation: int = 1,
                 act: str | None = "elu"):
        super().__init__()
        pad = _same_padding(kernel_size, dilation)
        self.feature = nn.Conv2d(in_ch, out_ch, kernel_size, stride, pad, dilation)
        self.gate = nn.Conv2d(in_ch, out_ch, kernel_size, stride, pad, dilation)
        self.act = activation(act, out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, in_ch, H, W) -> (B, out_ch, H', W')."""
        return self.act(self.feature(x)) * torch.sigmoid(self.gate(x))


class GatedResBlock(nn.Module):
    """Gated residual block: ``x + GatedConv(GatedConv(x), act=None)``.

    The de-occlusion generator of Yin's thesis (ch. 5) is built from "stacked gated residual blocks [47]"
    without saying what is inside one; this is the usual residual form (two 3x3 gated convs, the second
    linear so the sum is not clipped) with a 1x1 skip convolution when ``in_ch != out_ch``.
    ``(B, in_ch, H, W) -> (B, out_ch, H, W)``.

    Args:
        dilation: dilation of both gated convs.
        act: activation of the first gated conv.
    """

    def __init__(self, in_ch: int, out_ch: int | None = None, *, dilation: int = 1, act: str | None = "elu"):
        super().__init__()
        out_ch = in_ch if out_ch is None else out_ch
        self.conv1 = GatedConv2d(in_ch, out_ch, 3, dilation=dilation, act=act)
        self.conv2 = GatedConv2d(out_ch, out_ch, 3, dilation=dilation, act=None)
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, in_ch, H, W) -> (B, out_ch, H, W)."""
        return self.skip(x) + self.conv2(self.conv1(x))


class SelfAttention2d(nn.Module):
    """The self-attention (SA) layer of SAGAN (Zhang et al. 2019; Yin's thesis eqs. 2.62-2.64).

    With ``N = H * W`` positions, ``f(x) = W_f x`` and ``g(x) = W_g x`` are 1x1 convs to
    ``channels // reduction`` channels, ``h(x) = W_h x`` a 1x1 conv keeping the channels;
    ``beta[j, i] = softmax_i(f(x)_i . g(x)_j)`` (SAGAN has no 1/sqrt(d) scaling) is how much position i
    feeds position j, and ``o = gamma * h(x) beta + x`` with the scalar ``gamma`` initialised to 0, so the
    layer starts as the identity and lets attention in as training goes. ``(B, C, H, W) -> (B, C, H, W)``;
    memory grows as ``N**2`` unless ``scaled_dot_product_attention`` picks a fused kernel.

    Args:
        channels: C.
        reduction: channel reduction of the query/key projections (SAGAN: 8); at least 1 channel is kept.
    """

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        qk = max(1, channels // reduction)
        self.query = nn.Conv2d(channels, qk, 1)
        self.key = nn.Conv2d(channels, qk, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) -> (B, C, H, W)."""
        b, c, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)  # (B, N, C')
        k = self.key(x).flatten(2).transpose(1, 2)
        v = self.value(x).flatten(2).transpose(1, 2)  # (B, N, C)
        o = F.scaled_dot_product_attention(q, k, v, scale=1.0)  # (B, N, C)
        return x + self.gamma * o.transpose(1, 2).reshape(b, c, h, w)


class ConditionalInstanceNorm2d(nn.Module):
    """Conditional instance normalisation (CIN; Dumoulin et al. 2017).

    ``y = gamma(c) * (x - mean_HW(x)) / sqrt(var_HW(x) + eps) + beta(c)`` where ``gamma`` and ``beta``
    are per-channel and come from the condition vector ``c`` through two linear layers. Their biases start
    at 1 and 0, so a zero condition gives plain instance norm. Dumoulin et al. index one (gamma, beta) per
    style; a linear map of a one-hot label is exactly that, and Yin's thesis (ch. 4) feeds the target
    pose's landmarks instead of a label. Statistics are per sample, never running.

    Args:
        channels: C of the feature map.
        cond_dim: D of the condition vector.
        eps: added to the variance.
    """

    def __init__(self, channels: int, cond_dim: int, eps: float = 1e-5):
        super().__init__()
        self.channels, self.cond_dim, self.eps = channels, cond_dim, eps
        self.scale = nn.Linear(cond_dim, channels)
        self.shift = nn.Linear(cond_dim, channels)
        nn.init.ones_(self.scale.bias)
        nn.init.zeros_(self.shift.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W); cond: (B, D) -> (B, C, H, W).

        Raises:
            ShapeError: when C, D or B do not match.
        """
        check_shapes("ConditionalInstanceNorm2d()", x=(x, f"B {self.channels} H W"), cond=(cond, f"B {self.cond_dim}"))
        y = F.instance_norm(x, eps=self.eps)
        return y * self.scale(cond)[:, :, None, None] + self.shift(cond)[:, :, None, None]


class CrossAttention2d(nn.Module):
    """Cross-attention between two feature maps (Lu & Qi, eq. 3: ``Attention(Q = F_p, K = F_LR, V = F_LR)``).

    Queries come from ``query`` (the reference features F_p), keys and values from ``context`` (the
    low-resolution features F_LR); the maps may differ in size and channels. 1x1 convs project both to
    ``dim`` channels, split into ``heads`` heads; each query position gets
    ``softmax(q k^T / sqrt(dim / heads)) v`` over all context positions; a 1x1 conv maps the result back
    to ``query_ch`` and it is added to ``query``. The output therefore has the query's shape:
    ``(B, query_ch, Hq, Wq), (B, kv_ch, Hk, Wk) -> (B, query_ch, Hq, Wq)``. The paper names the inputs of
    the fusion only, not its projections or residual; these are the transformer's usual ones.

    Args:
        query_ch: channels of the query map.
        kv_ch: channels of the context (key/value) map.
        dim: attention width (default ``query_ch``); must divide by ``heads``.
        heads: attention heads.

    Raises:
        ValueError: when ``dim`` does not divide by ``heads``.
    """

    def __init__(self, query_ch: int, kv_ch: int, dim: int | None = None, heads: int = 1):
        super().__init__()
        dim = query_ch if dim is None else dim
        if heads < 1 or dim % heads:
            raise ValueError(f"CrossAttention2d(): dim {dim} must be a positive multiple of heads {heads}")
        self.query_ch, self.kv_ch, self.heads = query_ch, kv_ch, heads
        self.to_q = nn.Conv2d(query_ch, dim, 1)
        self.to_k = nn.Conv2d(kv_ch, dim, 1)
        self.to_v = nn.Conv2d(kv_ch, dim, 1)
        self.out = nn.Conv2d(dim, query_ch, 1)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        b, d = t.shape[:2]  # (B, D, H, W) -> (B, heads, N, D / heads)
        return t.reshape(b, self.heads, d // self.heads, -1).transpose(2, 3)

    def forward(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """query: (B, query_ch, Hq, Wq); context: (B, kv_ch, Hk, Wk) -> (B, query_ch, Hq, Wq).

        Raises:
            ShapeError: when the channels or the batch sizes do not match.
        """
        check_shapes("CrossAttention2d()", query=(query, f"B {self.query_ch} Hq Wq"),
                     context=(context, f"B {self.kv_ch} Hk Wk"))
        b, _, hq, wq = query.shape
        q, k, v = self._split(self.to_q(query)), self._split(self.to_k(context)), self._split(self.to_v(context))
        o = F.scaled_dot_product_attention(q, k, v)  # (B, heads, Nq, D / heads)
        o = o.transpose(2, 3).reshape(b, -1, hq, wq)
        return query + self.out(o)


class MMRB(nn.Module):
    """Mixed multi-path residual block (Hu et al., sec. 3.2, eqs. 4-10).

    ``X_1, X_2 = Split(X_I)`` (two channel halves); ``P_1 = s(W3x3(X_1))``, ``P_2 = s(W5x5(X_2))``;
    both second convs see the exchanged features: ``P'_1 = s(W3x3(Concat[P_1, P_2]))``,
    ``P'_2 = s(W5x5(Concat[P_1, P_2]))``; ``P = s(W1x1(Concat[P'_1, P'_2]))``; ``X_O = X_I + P``.
    ``s`` is PReLU. All convs have "same" padding, so ``(B, C, H, W) -> (B, C, H, W)``; C must be even.

    Where the text is ambiguous, and what this block does:

    * eqs. 5-8 write the same ``W_1`` / ``W_2`` for a branch's first and second conv, but the second sees
      ``C`` channels where the first sees ``C/2``, so they cannot share weights; "W_1, W_2, W_3" are
      defined only as kernel sizes 3, 5, 1. Here each is its own conv.
    * the second convs' output width is not given. The text says the 1x1 bottleneck does a "dimension
      reduction" back to ``P`` of C channels, so its input must be wider than C; following the
      multi-scale residual block it cites as inspiration (Li et al. 2018, where the second stage doubles
      the width), each second conv outputs C, the 1x1 reduces 2C -> C.
    * eq. 9 applies PReLU after the 1x1 fusion as well, so it is applied (zero fusion weights then give
      ``P = 0`` and the block is the identity). One per-channel PReLU per conv; the paper does not say
      whether slopes are shared.
    * "equally split" needs an even C: an odd C raises.

    Args:
        channels: C (even).

    Raises:
        ValueError: when ``channels`` is odd.
    """

    def __init__(self, channels: int):
        super().__init__()
        if channels % 2:
            raise ValueError(f"MMRB(): channels must be even to split equally, got {channels}")
        half = channels // 2
        self.branch1_a = conv_block(half, half, 3, act="prelu")
        self.branch2_a = conv_block(half, half, 5, act="prelu")
        self.branch1_b = conv_block(channels, channels, 3, act="prelu")
        self.branch2_b = conv_block(channels, channels, 5, act="prelu")
        self.fuse = conv_block(2 * channels, channels, 1, act="prelu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) -> (B, C, H, W)."""
        x1, x2 = x.chunk(2, dim=1)
        c1 = torch.cat([self.branch1_a(x1), self.branch2_a(x2)], dim=1)
        c2 = torch.cat([self.branch1_b(c1), self.branch2_b(c1)], dim=1)
        return x + self.fuse(c2)
