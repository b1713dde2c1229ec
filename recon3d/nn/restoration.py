"""Face restorers: seed 002's codec with a StyleGAN2 prior, seed 004's reference-guided variant, and the
plain U-Net they are compared with. One class, :class:`FaceRestorer`, one file format.

Seed 002 (Hu et al., "Enhancing quality of pose-varied face restoration with local weak feature
sensing and GAN prior", sec. 3) as built here (``kind="codec"``):

* an **asymmetric codec**: the encoder has ``enc_blocks`` residual blocks per scale (mixed multi-path
  residual blocks, :class:`~recon3d.nn.blocks.MMRB`, or plain residual blocks with ``block="res"``,
  the paper's ablation) and a stride-2 convolution down to 4x4; the decoder has one block per scale
  fewer, bilinear upsampling and the encoder's feature at that scale added (U-Net skips), and a toRGB
  head per scale (the multi-scale restoration outputs the L1 loss supervises);
* the encoder's 4x4 code, flattened, gives one latent per style layer through a linear layer and the
  prior's **mapping MLP** (``W+``);
* the **StyleGAN2 prior** (:class:`~recon3d.nn.stylegan2.StyleGenerator`, initialised from the
  shipped generator and fine-tuned) renders from those latents; at every resolution the decoder's
  feature is **concatenated** with the prior's activation and fused back by a 1x1 convolution (the
  paper's noise branches carry the decoder features; the prior's own noise is off, so the output is a
  function of the input). The fusion starts as "prior only" (identity on the prior's channels, zero
  on the decoder's) so training starts from the prior's behaviour;
* ``prior=False`` (the ablation "without the prior") outputs the decoder's last toRGB head.

Seed 004 (Lu & Qi, "Personalized super resolution with face prior", sec. 3) with ``reference=True``:
a second encoder of the same shape reads the **reference** photo of the same person; at the scales in
``attn_scales`` a :class:`~recon3d.nn.blocks.CrossAttention2d` takes the reference features as
queries and the low-resolution features as keys and values (their eq. 3), and a 1x1 convolution fuses
the result into the low-resolution features the decoder and the prior see. The paper's two U-Nets are
our encoder-decoder on the input and an encoder on the reference. Without a reference (``None``) the
input is its own reference, which the trainer also shows the network (reference dropout), so one
model serves both uses.

``kind="lowres"``: a residual network that works at ``1/factor`` of the face size, built for 4x
super-resolution on a CPU. The input (the bicubic-enlarged low-resolution face, or any degraded face)
is rearranged losslessly to ``factor``² times the channels at ``res / factor`` (space-to-depth), a
3x3 conv lifts it to ``width`` channels, ``depth`` blocks (MMRB or plain residual) run at that size,
and a sub-pixel convolution (3x3 conv to ``3 factor²`` channels, depth-to-space) predicts the
residual that is added to the input. At 64² and factor 4 the blocks see 16² maps, the size of the 4x
low-resolution face itself, so a step costs a fraction of the codec's and many more steps fit a CPU
budget. With ``reference=True`` a second branch (space-to-depth and two blocks) reads the reference
photo and a :class:`~recon3d.nn.blocks.CrossAttention2d` with the reference features as queries and
the low-resolution features as keys and values (seed 004's eq. 3) feeds a zero-initialised 1x1 fusion
in the middle of the trunk, so an untrained fusion is "no reference". This variant has no StyleGAN2
prior: it is the PSNR-oriented member of the family (the codecs carry the prior).

``kind="unet"``: a plain U-Net (two 3x3 conv + PReLU per scale, skip concatenation, output = input +
predicted residual), the L1-only baseline of the benchmark.

Images are NCHW RGB in [-1, 1] at ``res`` (64 for the CPU-trained shipped models, the shipped prior's
size); :func:`restore_aligned` resizes other sizes in and out. Channel widths are a table per
resolution (:data:`CPU_CHANNELS`); pass ``channels`` (and ``prior_config``) for larger GPU models.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_shapes
from ..errors import ShapeError
from .blocks import MMRB, CrossAttention2d, conv_block
from .registry import NetworkSpec, load_network
from .stylegan2 import StyleGenerator

__all__ = ["FaceRestorer", "RESTORER", "REF_SR", "RESTORER_FORMAT", "CPU_CHANNELS", "KINDS", "BLOCKS",
           "load_restorer", "restore_aligned"]

RESTORER_FORMAT = "recon3d-restorer-v1"
KINDS = ("codec", "unet", "lowres")
BLOCKS = ("mmrb", "res")

#: codec / U-Net channels per resolution for CPU training (profiled on this 2-core machine)
CPU_CHANNELS = {4: 64, 8: 96, 16: 64, 32: 32, 64: 16, 128: 16, 256: 16, 512: 16}


class _ResBlock(nn.Module):
    """Plain residual block (two 3x3 conv + PReLU), the ablation of :class:`MMRB`."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(conv_block(channels, channels, 3, act="prelu"),
                                  conv_block(channels, channels, 3, act="prelu"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _blocks(kind: str, channels: int, n: int) -> nn.Sequential:
    return nn.Sequential(*[(MMRB(channels) if kind == "mmrb" else _ResBlock(channels)) for _ in range(n)])


def _scales(res: int) -> list[int]:
    """res, res/2, ..., 4."""
    if res < 8 or res & (res - 1):
        raise ShapeError(f"FaceRestorer: resolution must be a power of two >= 8, got {res}")
    return [2 ** i for i in range(int(math.log2(res)), 1, -1)]


class _Encoder(nn.Module):
    """fromRGB, then per scale ``n`` blocks and a stride-2 conv; returns the feature per scale."""

    def __init__(self, res: int, ch: dict[int, int], block: str, n: int):
        super().__init__()
        rs = _scales(res)
        self.rs = rs
        self.from_rgb = conv_block(3, ch[res], 3, act="prelu")
        self.stages = nn.ModuleList([_blocks(block, ch[r], n) for r in rs])
        self.downs = nn.ModuleList([conv_block(ch[r], ch[r // 2], 3, stride=2, act="prelu") for r in rs[:-1]])

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        h, feats = self.from_rgb(x), {}
        for i, r in enumerate(self.rs):
            h = self.stages[i](h)
            feats[r] = h
            if i < len(self.downs):
                h = self.downs[i](h)
        return feats


class _Fuse(nn.Module):
    """1x1 conv of ``cat[a, b]`` back to ``a``'s width, initialised to return ``a`` (b's weights zero)."""

    def __init__(self, ca: int, cb: int):
        super().__init__()
        self.conv = nn.Conv2d(ca + cb, ca, 1)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[:, :ca, 0, 0].copy_(torch.eye(ca))
            self.conv.bias.zero_()

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([a, b], 1))


def _quiet(conv: nn.Conv2d) -> nn.Conv2d:
    """``conv`` with its weights scaled by 0.1 and a zero bias: a residual head that starts near "no change"."""
    with torch.no_grad():
        conv.weight.mul_(0.1)
        conv.bias.zero_()
    return conv


class FaceRestorer(nn.Module):
    """Face restorer (see the module doc). ``forward(x, reference=None)``: ``(N, 3, res, res)`` in [-1, 1]
    -> the restored faces, same shape.

    Args:
        res: face side (power of two >= 8).
        kind: ``"codec"`` (seed 002 / 004) or ``"unet"`` (plain U-Net baseline).
        block: ``"mmrb"`` or ``"res"`` (codec only).
        prior: decode through the StyleGAN2 prior (codec only).
        reference: add the reference encoder and cross-attention fusion (seed 004; codec only).
        channels: widths per resolution (default :data:`CPU_CHANNELS`).
        enc_blocks: encoder blocks per scale (the decoder has one fewer, at least one).
        attn_scales: resolutions of the reference cross-attention.
        prior_config: :class:`StyleGenerator` keyword arguments (default: 64²-style CPU prior at ``res``).
        width: trunk channels (``lowres`` only).
        depth: trunk blocks (``lowres`` only).
        factor: space-to-depth factor (``lowres`` only; ``res`` must divide by it).
    """

    def __init__(self, res: int = 64, kind: str = "codec", block: str = "mmrb", prior: bool = True,
                 reference: bool = False, channels: dict | None = None, enc_blocks: int = 2,
                 attn_scales: tuple | list = (8, 16), prior_config: dict | None = None, width: int = 64,
                 depth: int = 8, factor: int = 4):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"FaceRestorer: kind must be one of {KINDS}, got {kind!r}")
        if block not in BLOCKS:
            raise ValueError(f"FaceRestorer: block must be one of {BLOCKS}, got {block!r}")
        if kind != "codec":
            prior = False  # only the codec carries the StyleGAN2 prior
        if kind == "unet":
            reference = False
        self.res, self.kind, self.uses_reference, self.has_prior = res, kind, bool(reference), bool(prior)
        if kind == "lowres":
            self._build_lowres(block, int(width), int(depth), int(factor))
            return
        rs = _scales(res)
        table = {int(k): int(v) for k, v in (channels or CPU_CHANNELS).items()}
        missing = [r for r in rs if r not in table]
        if missing:
            raise ShapeError(f"FaceRestorer: no channel count for resolution(s) {missing}")
        ch = {r: table[r] for r in rs}
        attn = sorted(int(a) for a in attn_scales if int(a) in ch) if reference else []
        pc = None
        if prior:
            pc = dict(prior_config or {})
            if int(pc.setdefault("res", res)) != res:
                raise ShapeError(f"FaceRestorer: prior resolution {pc['res']} != res {res}")
            pc = StyleGenerator(**pc).config  # every default written out, so the file rebuilds it
        self.config = {"res": res, "kind": kind, "block": block, "prior": bool(prior), "reference": bool(reference),
                       "channels": {str(r): ch[r] for r in rs}, "enc_blocks": int(enc_blocks),
                       "attn_scales": attn, "prior_config": pc}
        self.rs = rs
        if kind == "unet":
            self._build_unet(ch)
            return
        self.encoder = _Encoder(res, ch, block, enc_blocks)
        dec_n = max(1, enc_blocks - 1)
        up = list(reversed(rs))  # 4, 8, ..., res
        self.dec_blocks = nn.ModuleDict({str(r): _blocks(block, ch[r], dec_n) for r in up})
        self.dec_up = nn.ModuleDict({str(r): conv_block(ch[r // 2], ch[r], 3, act="prelu") for r in up[1:]})
        self.dec_rgb = nn.ModuleDict({str(r): nn.Conv2d(ch[r], 3, 1) for r in up})
        if reference:
            self.ref_encoder = _Encoder(res, ch, block, enc_blocks)
            self.attn = nn.ModuleDict({str(r): CrossAttention2d(ch[r], ch[r], heads=1) for r in attn})
            self.attn_fuse = nn.ModuleDict({str(r): nn.Conv2d(2 * ch[r], ch[r], 1) for r in attn})
        if prior:
            self.prior = StyleGenerator(**pc)
            n_lat, zd = self.prior.n_latent, self.prior.z_dim
            self.to_latent = nn.Sequential(conv_block(ch[4], 32, 1, act="prelu"), nn.Flatten(1),
                                           nn.Linear(32 * 16, n_lat * zd))
            pch = {r: int(self.prior.config["channels"][str(r)]) for r in rs}
            self.prior_fuse = nn.ModuleDict({str(r): _Fuse(pch[r], ch[r]) for r in up})

    # -- low-resolution residual network ---------------------------------------------------------------
    def _build_lowres(self, block: str, width: int, depth: int, factor: int) -> None:
        res, reference = self.res, self.uses_reference
        if factor < 1 or res % factor:
            raise ShapeError(f"FaceRestorer: resolution {res} does not divide by factor {factor}")
        if width < 2 or width % 2 or depth < 2:
            raise ValueError(f"FaceRestorer: lowres needs an even width >= 2 and depth >= 2, got {width}, {depth}")
        self.config = {"res": res, "kind": "lowres", "block": block, "prior": False, "reference": reference,
                       "width": width, "depth": depth, "factor": factor}
        self.rs = [res // factor]
        self.factor = factor
        c_in = 3 * factor * factor
        self.lr_in = conv_block(c_in, width, 3, act="prelu")
        half = depth // 2
        self.trunk_a = _blocks(block, width, half)
        self.trunk_b = _blocks(block, width, depth - half)
        self.lr_tail = _quiet(nn.Conv2d(width, c_in, 3, padding=1))
        if reference:
            self.ref_in = nn.Sequential(conv_block(c_in, width, 3, act="prelu"), _blocks(block, width, 2))
            self.ref_attn = CrossAttention2d(width, width, heads=1)
            self.ref_fuse = nn.Conv2d(2 * width, width, 1)
            with torch.no_grad():
                self.ref_fuse.weight.zero_()
                self.ref_fuse.bias.zero_()

    def _lowres(self, x: torch.Tensor, reference: torch.Tensor | None) -> torch.Tensor:
        f = self.factor
        xs = F.pixel_unshuffle(x, f)
        h = self.trunk_a(self.lr_in(xs))
        if self.uses_reference:
            r = self.ref_in(xs if reference is None else F.pixel_unshuffle(reference, f))
            a = self.ref_attn(r, h)  # queries: the reference; keys / values: the low-resolution features
            h = h + self.ref_fuse(torch.cat([h, a], 1))
        h = self.trunk_b(h)
        return x + F.pixel_shuffle(self.lr_tail(h), f)

    # -- plain U-Net ---------------------------------------------------------------------------------
    def _build_unet(self, ch: dict[int, int]) -> None:
        rs = self.rs
        self.u_in = conv_block(3, ch[rs[0]], 3, act="prelu")
        self.u_down = nn.ModuleList()
        self.u_enc = nn.ModuleList()
        for i, r in enumerate(rs):
            cin = ch[rs[i - 1]] if i else ch[r]
            self.u_down.append(conv_block(cin, ch[r], 3, stride=2 if i else 1, act="prelu"))
            self.u_enc.append(conv_block(ch[r], ch[r], 3, act="prelu"))
        self.u_dec = nn.ModuleList()
        for r in reversed(rs[:-1]):
            self.u_dec.append(nn.Sequential(conv_block(ch[r // 2] + ch[r], ch[r], 3, act="prelu"),
                                            conv_block(ch[r], ch[r], 3, act="prelu")))
        self.u_out = _quiet(nn.Conv2d(ch[rs[0]], 3, 1))

    def _unet(self, x: torch.Tensor) -> torch.Tensor:
        h, skips = self.u_in(x), []
        for down, enc in zip(self.u_down, self.u_enc, strict=True):
            h = enc(down(h))
            skips.append(h)
        skips.pop()
        for dec in self.u_dec:
            s = skips.pop()
            h = dec(torch.cat([F.interpolate(h, size=s.shape[-2:], mode="bilinear", align_corners=False), s], 1))
        return x + self.u_out(h)

    # -- codec ---------------------------------------------------------------------------------------
    def _encode(self, x: torch.Tensor, reference: torch.Tensor | None) -> dict[int, torch.Tensor]:
        feats = self.encoder(x)
        if self.uses_reference:
            ref = self.ref_encoder(x if reference is None else reference)
            for k in self.attn:
                r = int(k)
                a = self.attn[k](ref[r], feats[r])
                if a.shape[-2:] != feats[r].shape[-2:]:
                    a = F.interpolate(a, size=feats[r].shape[-2:], mode="bilinear", align_corners=False)
                feats[r] = feats[r] + self.attn_fuse[k](torch.cat([feats[r], a], 1))
        return feats

    def _decode(self, feats: dict[int, torch.Tensor]) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
        h = self.dec_blocks["4"](feats[4])
        dec, rgbs = {4: h}, {4: self.dec_rgb["4"](h)}
        for r in reversed(self.rs[:-1]):
            h = self.dec_up[str(r)](F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)) + feats[r]
            h = self.dec_blocks[str(r)](h)
            dec[r], rgbs[r] = h, self.dec_rgb[str(r)](h)
        return dec, rgbs

    def _prior(self, code: torch.Tensor, dec: dict[int, torch.Tensor]) -> torch.Tensor:
        G = self.prior
        z = self.to_latent(code).view(code.shape[0], G.n_latent, G.z_dim)
        z = z * torch.rsqrt(z.pow(2).mean(dim=2, keepdim=True) + 1e-8)
        ws = G.mapping(z.flatten(0, 1)).view(code.shape[0], G.n_latent, G.w_dim)
        zero = [torch.zeros(1, 1, h, w, device=code.device, dtype=code.dtype) for h, w in G.noise_shapes()]
        x = G.const.expand(code.shape[0], -1, -1, -1)
        x = G.conv1(x, ws[:, 0], zero[0])
        x = self.prior_fuse["4"](x, dec[4])
        rgb = G.to_rgb1(x, ws[:, 1], None)
        i = 1
        for j, to_rgb in enumerate(G.to_rgbs):
            r = 8 * 2 ** j
            x = G.convs[2 * j](x, ws[:, i], zero[1 + 2 * j])
            x = G.convs[2 * j + 1](x, ws[:, i + 1], zero[2 + 2 * j])
            x = self.prior_fuse[str(r)](x, dec[r])
            rgb = to_rgb(x, ws[:, i + 2], rgb)
            i += 2
        return rgb

    def forward_all(self, x: torch.Tensor, reference: torch.Tensor | None = None) -> dict:
        """``{"out": restored, "scales": {res: decoder toRGB}}`` (the training view; ``scales`` empty for
        the U-Net)."""
        check_shapes("FaceRestorer", x=(x, f"B 3 {self.res} {self.res}"))
        if reference is not None:
            check_shapes("FaceRestorer", reference=(reference, f"B 3 {self.res} {self.res}"))
        if self.kind == "unet":
            return {"out": self._unet(x), "scales": {}}
        if self.kind == "lowres":
            return {"out": self._lowres(x, reference), "scales": {}}
        feats = self._encode(x, reference)
        dec, rgbs = self._decode(feats)
        out = self._prior(feats[4], dec) if self.has_prior else rgbs[self.res]
        return {"out": out, "scales": rgbs}

    def forward(self, x: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_all(x, reference)["out"]

    def init_prior(self, generator: StyleGenerator) -> None:
        """Copy a trained generator into the prior (it must have the prior's configuration)."""
        if not self.has_prior:
            raise ValueError("FaceRestorer: this model has no prior")
        self.prior.load_state_dict(generator.state_dict())


RESTORER = NetworkSpec(name="restorer", cls=FaceRestorer, format=RESTORER_FORMAT, what="face restorer",
                       asset="recon3d_restorer_64_v1.safetensors")
REF_SR = NetworkSpec(name="refsr", cls=FaceRestorer, format=RESTORER_FORMAT, what="reference-guided face SR",
                     asset="recon3d_refsr_64_v2.safetensors")


def load_restorer(weights: str | os.PathLike | None = None, *, reference: bool = False,
                  device: torch.device | str | None = None) -> FaceRestorer:
    """A restorer in eval mode: ``weights`` (any file of this format), else the shipped blind restorer,
    or the shipped reference-guided SR model with ``reference=True``. Cached per path and device."""
    spec = REF_SR if reference else RESTORER
    net, _ = load_network(spec, Path(weights) if weights is not None else None, device=device)
    return net.eval()


@torch.no_grad()
def restore_aligned(net: FaceRestorer, faces: torch.Tensor, reference: torch.Tensor | None = None, *,
                    batch: int = 16) -> torch.Tensor:
    """Restore template-aligned faces ``(N, 3, S, S)`` in [-1, 1] of any size ``S``: resized to the
    network's size (area when shrinking, bicubic when enlarging), restored, resized back to ``S``.
    ``reference``: ``(N or 1, 3, S', S')`` aligned photos of the same people (used by reference models;
    ignored by the others)."""
    if faces.ndim != 4 or faces.shape[1] != 3 or faces.shape[2] != faces.shape[3]:
        raise ShapeError(f"restore_aligned(): expected (N, 3, S, S) faces, got {tuple(faces.shape)}")
    dev = next(net.parameters()).device
    res, s = net.res, faces.shape[2]

    def fit(t: torch.Tensor, size: int) -> torch.Tensor:
        if t.shape[-1] == size:
            return t
        if t.shape[-1] > size:
            return F.interpolate(t, size=(size, size), mode="area")
        return F.interpolate(t, size=(size, size), mode="bicubic", align_corners=False)

    ref = None
    if reference is not None and net.uses_reference:
        ref = fit(reference.float().to(dev), res)
        if len(ref) == 1:
            ref = ref.expand(len(faces), -1, -1, -1)
        elif len(ref) != len(faces):
            raise ShapeError(f"restore_aligned(): {len(ref)} references for {len(faces)} faces")
    out = []
    for i in range(0, len(faces), batch):
        x = fit(faces[i:i + batch].float().to(dev), res)
        r = None if ref is None else ref[i:i + batch]
        out.append(fit(net(x, r).clamp(-1, 1), s).clamp(-1, 1))
    return torch.cat(out).to(faces.device)
