"""Image-batch augmentation for training image networks (NCHW, float in ``[-1, 1]``).

* :func:`to_float` / :func:`to_uint8`: uint8 ``0..255`` <-> float ``[-1, 1]``.
* :func:`random_flip_jitter`: data augmentation of real photos (horizontal flip, brightness,
  contrast, saturation, optional hue), per sample, drawn from a ``torch.Generator``.
* :func:`diff_augment`: DiffAugment (Zhao et al., "Differentiable Augmentation for Data-Efficient
  GAN Training", NeurIPS 2020): the same random colour / translation / cutout applied to real and
  generated batches alike inside the discriminator's input, differentiable with respect to the
  images, so the generator's gradient passes through it. Parameters follow the authors' code:
  brightness ``+U(-0.5, 0.5)``, saturation ``x U(0, 2)``, contrast ``x U(0.5, 1.5)``, translation by
  an integer ``U{-s..s}`` pixels, ``s = round(size / 8)``, with zero fill, cutout of a square of half
  the size (clipped at the border) set to 0.

Random parameters are drawn per sample, in a fixed order, from ``generator`` when one is given
(on the generator's device, then moved to ``x``'s), so a seeded generator reproduces a batch
exactly on CPU and CUDA alike; all image maths runs on ``x``'s device.
"""

from __future__ import annotations

import math

import torch

__all__ = ["to_float", "to_uint8", "random_flip_jitter", "similarity_warp", "diff_augment", "translate", "cutout", "DIFF_AUGMENT_OPS"]

#: ops accepted in a :func:`diff_augment` policy (``"color"`` is brightness, saturation, contrast)
DIFF_AUGMENT_OPS = ("color", "brightness", "saturation", "contrast", "translation", "cutout")

_LUMA = (0.299, 0.587, 0.114)


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 ``0..255`` -> float32 ``[-1, 1]`` (a float tensor is returned as it is).

    >>> to_float(torch.tensor([0, 255], dtype=torch.uint8)).tolist()
    [-1.0, 1.0]
    """
    if x.is_floating_point():
        return x
    if x.dtype != torch.uint8:
        raise TypeError(f"to_float(): expected uint8 or float, got {x.dtype}")
    return x.to(torch.float32) * (2.0 / 255.0) - 1.0


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float ``[-1, 1]`` -> uint8 ``0..255`` (clipped, rounded); the inverse of :func:`to_float`.

    >>> to_uint8(torch.tensor([-1.0, 0.0, 1.0, 3.0])).tolist()
    [0, 128, 255, 255]
    """
    if x.dtype == torch.uint8:
        return x
    return ((x.detach().float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


def _check(x: torch.Tensor, who: str) -> None:
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"{who}: expected an (N, 3, H, W) batch, got shape {tuple(x.shape)}")


def _rand(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """``(n,)`` float32 U(0, 1), drawn on the generator's device (or ``device``), returned on ``device``."""
    dev = generator.device if generator is not None else device
    return torch.rand(n, generator=generator, device=dev).to(device)


def _randint(lo: int, hi: int, n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """``(n,)`` int64 uniform in ``[lo, hi)``."""
    dev = generator.device if generator is not None else device
    return torch.randint(lo, hi, (n,), generator=generator, device=dev).to(device)


def _gray(y: torch.Tensor) -> torch.Tensor:
    r, g, b = y.unbind(1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)


def _hue_rotate(y: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Rotate the chroma of RGB ``y`` by ``turns`` (fractions of a full turn, per sample) in YIQ."""
    m = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
                     dtype=y.dtype, device=y.device)
    yiq = torch.einsum("ij,bjhw->bihw", m, y)
    a = (turns * 2.0 * math.pi).to(y.dtype).view(-1, 1, 1)
    c, s = torch.cos(a), torch.sin(a)
    i, q = yiq[:, 1], yiq[:, 2]
    yiq = torch.stack([yiq[:, 0], c * i - s * q, s * i + c * q], 1)
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(m), yiq)


def random_flip_jitter(x: torch.Tensor, generator: torch.Generator | None = None, flip_p: float = 0.5,
                       brightness: float = 0.1, contrast: float = 0.1, saturation: float = 0.1,
                       hue: float = 0.0) -> torch.Tensor:
    """Random horizontal flip and colour jitter of a batch, per sample.

    Factors (as torchvision's ``ColorJitter``, applied in this order on ``[0, 1]`` values, clipped
    after each step): brightness ``x U(1-b, 1+b)``, contrast (blend with the mean grey of the image)
    ``U(1-c, 1+c)``, saturation (blend with the grey image) ``U(1-s, 1+s)``, hue: a chroma rotation
    by ``U(-h, h)`` of a turn (YIQ; ``h <= 0.5``).

    Args:
        x: ``(N, 3, H, W)`` uint8 (``0..255``) or float (``[-1, 1]``).
        generator: the source of the random draws (flip, brightness, contrast, saturation, hue; all
            drawn even when their amount is 0, so the stream does not depend on the settings).

    Returns:
        float ``(N, 3, H, W)`` in ``[-1, 1]`` on ``x``'s device.
    """
    _check(x, "random_flip_jitter()")
    y = (to_float(x) + 1.0) * 0.5
    n, dev = y.shape[0], y.device
    flip = _rand(n, generator, dev) < flip_p
    fb, fc, fs, fh = (_rand(n, generator, dev) * 2.0 - 1.0 for _ in range(4))
    y = torch.where(flip.view(-1, 1, 1, 1), y.flip(3), y)
    if brightness:
        y = (y * (1.0 + brightness * fb).view(-1, 1, 1, 1)).clamp(0, 1)
    if contrast:
        m = _gray(y).mean((1, 2, 3), keepdim=True)
        y = ((y - m) * (1.0 + contrast * fc).view(-1, 1, 1, 1) + m).clamp(0, 1)
    if saturation:
        g = _gray(y)
        y = ((y - g) * (1.0 + saturation * fs).view(-1, 1, 1, 1) + g).clamp(0, 1)
    if hue:
        y = _hue_rotate(y, hue * fh).clamp(0, 1)
    return y * 2.0 - 1.0


def translate(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Move the content of each image by whole pixels, zero fill: ``out[b, :, y, x] =
    x[b, :, y - dy_b, x - dx_b]`` (0 outside), ``shift`` ``(N, 2)`` integer ``(dx, dy)``; two
    gathers, so differentiable with respect to ``x``.

    >>> x = torch.arange(9.0).view(1, 1, 3, 3).expand(1, 3, 3, 3)
    >>> translate(x, torch.tensor([[1, 0]]))[0, 0].tolist()
    [[0.0, 0.0, 1.0], [0.0, 3.0, 4.0], [0.0, 6.0, 7.0]]
    """
    n, c, h, w = x.shape
    shift = shift.to(x.device, torch.long)
    rows = (torch.arange(h, device=x.device).view(1, h) - shift[:, 1:2] + 1).clamp(0, h + 1)  # in the padded image
    cols = (torch.arange(w, device=x.device).view(1, w) - shift[:, 0:1] + 1).clamp(0, w + 1)
    pad = torch.nn.functional.pad(x, (1, 1, 1, 1))
    t = pad.gather(2, rows.view(n, 1, h, 1).expand(n, c, h, w + 2))
    return t.gather(3, cols.view(n, 1, 1, w).expand(n, c, h, w))


def cutout(x: torch.Tensor, centre: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Set a ``size = (h, w)`` rectangle of each image to 0: rows ``cy - h // 2 .. cy - h // 2 + h - 1``
    (clipped), columns likewise; ``centre`` ``(N, 2)`` integer ``(cx, cy)``."""
    n, _, h, w = x.shape
    centre = centre.to(x.device, torch.long)
    y0 = (centre[:, 1] - size[0] // 2).view(n, 1)
    x0 = (centre[:, 0] - size[1] // 2).view(n, 1)
    yy = torch.arange(h, device=x.device).view(1, h)
    xx = torch.arange(w, device=x.device).view(1, w)
    in_y = (yy >= y0) & (yy < y0 + size[0])
    in_x = (xx >= x0) & (xx < x0 + size[1])
    keep = ~(in_y[:, :, None] & in_x[:, None, :])
    return x * keep.unsqueeze(1).to(x.dtype)


def diff_augment(x: torch.Tensor, policy: str = "color,translation,cutout",
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """DiffAugment of a float batch ``(N, 3, H, W)`` (``[-1, 1]``), differentiable with respect to ``x``.

    Args:
        x: float images on any device.
        policy: comma-separated ops, applied in this order: ``"color"`` (brightness ``+U(-0.5, 0.5)``,
            saturation ``x U(0, 2)``, contrast ``x U(0.5, 1.5)``, or each alone by its name),
            ``"translation"`` (``U{-s..s}`` pixels in x and y, ``s = int(size / 8 + 0.5)``, zero
            fill), ``"cutout"`` (a square of half the size, centre uniform, set to 0). ``""`` returns
            ``x`` itself.
        generator: source of the per-sample parameters (reproducible); the default RNG of ``x``'s
            device when None.

    Returns:
        The augmented batch (same shape, dtype and device; outputs are not clipped).
    """
    ops = [p.strip() for p in policy.split(",") if p.strip()]
    if not ops:
        return x
    bad = [p for p in ops if p not in DIFF_AUGMENT_OPS]
    if bad:
        raise ValueError(f"diff_augment(): unknown op(s) {bad}; choose from {DIFF_AUGMENT_OPS}")
    _check(x, "diff_augment()")
    if not x.is_floating_point():
        raise TypeError(f"diff_augment(): expected a float batch (use to_float), got {x.dtype}")
    n, _, h, w = x.shape
    dev = x.device
    for op in ops:
        for sub in (("brightness", "saturation", "contrast") if op == "color" else (op,)):
            if sub == "brightness":
                x = x + (_rand(n, generator, dev) - 0.5).to(x.dtype).view(-1, 1, 1, 1)
            elif sub == "saturation":
                m = x.mean(1, keepdim=True)
                x = (x - m) * (_rand(n, generator, dev) * 2.0).to(x.dtype).view(-1, 1, 1, 1) + m
            elif sub == "contrast":
                m = x.mean((1, 2, 3), keepdim=True)
                x = (x - m) * (_rand(n, generator, dev) + 0.5).to(x.dtype).view(-1, 1, 1, 1) + m
            elif sub == "translation":
                sx, sy = int(w * 0.125 + 0.5), int(h * 0.125 + 0.5)
                dx = _randint(-sx, sx + 1, n, generator, dev)
                dy = _randint(-sy, sy + 1, n, generator, dev)
                x = translate(x, torch.stack([dx, dy], 1))
            else:  # cutout
                ch, cw = int(h * 0.5 + 0.5), int(w * 0.5 + 0.5)
                cy = _randint(0, h + (1 - ch % 2), n, generator, dev)
                cx = _randint(0, w + (1 - cw % 2), n, generator, dev)
                x = cutout(x, torch.stack([cx, cy], 1), (ch, cw))
    return x


def similarity_warp(x: torch.Tensor, u: torch.Tensor, *, max_deg: float, max_scale: float, max_shift: float,
                    padding: str = "reflection") -> torch.Tensor:
    """Warp NCHW images by per-image similarities drawn from ``u`` (``(N, 4)`` uniform in [-1, 1]: rotation,
    scale, x shift, y shift), up to ``max_deg`` degrees, ``1 ± max_scale`` and ``± max_shift`` (in units of the
    half side, ``affine_grid``'s); bilinear, ``padding`` as in ``grid_sample``.

    >>> x = torch.rand(2, 3, 8, 8)
    >>> bool(torch.allclose(similarity_warp(x, torch.zeros(2, 4), max_deg=10, max_scale=0.1, max_shift=0.1), x, atol=1e-6))
    True
    """
    import torch.nn.functional as F

    ang, sc = u[:, 0] * math.radians(max_deg), 1 + max_scale * u[:, 1]
    cos, sin = torch.cos(ang) / sc, torch.sin(ang) / sc
    theta = torch.stack([torch.stack([cos, -sin, max_shift * u[:, 2]], 1),
                         torch.stack([sin, cos, max_shift * u[:, 3]], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding, align_corners=False)
