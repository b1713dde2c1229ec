"""A small learned occluder segmenter for de-occlusion (optional cue next to the photometric test).

:func:`recon3d.edit.detect_occlusion` finds occluders as pixels the fitted 3DMM cannot explain.
That misses occluders coloured like skin (hands) and is fooled when a large occluder drags the
fit's albedo and light towards its own colour (face masks). :class:`OccluderNet` looks at the
photo itself: a four-level U-Net (about 70 M multiply-adds at 96², a few ms per face on a CPU)
that maps a face crop to a per-pixel occluder probability.

It is trained by ``python -m pipelines.train_occluder`` on 300-W photos with random occluders
pasted in (shapes: ellipse clusters, polygons, strokes, rectangles, smooth blobs, finger-like
capsule groups; textures: patches of other photos, flat or noisy colours, other faces' skin,
darkened patches; soft or hard edges). Real occluders already in those photos are not labelled,
so the network learns "something pasted over the face"; the photometric test stays in the
decision (see ``detect_occlusion(..., net=...)``).

Weights are safetensors (fp16) with the configuration in the metadata; loading never executes
code. The crop is a square of :data:`CROP_SCALE` times the larger side of the 68-landmark box,
turned so that the eye line is horizontal when the face is tilted by more than
:data:`DEROLL_MIN_DEG` (the training faces are mostly upright; without this a face tilted by 45
degrees was flagged almost entirely) and resampled to :data:`CROP_SIZE`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import AssetError, ShapeError

__all__ = ["OccluderNet", "OCCLUDER_ASSET", "OCC_FORMAT", "CROP_SIZE", "CROP_SCALE", "save_occluder_net",
           "load_occluder_net", "occluder_probability", "crop_box", "roll_angle", "shape_bank", "paste_occluders"]

#: file name of the shipped weights in assets/
OCCLUDER_ASSET = "recon3d_occluder_v1.safetensors"
#: format tag in the safetensors metadata
OCC_FORMAT = "recon3d-occluder-net-v1"
#: network input side
CROP_SIZE = 96
#: crop side / larger side of the landmark box
CROP_SCALE = 1.4
_MEAN, _STD = 0.5, 0.25
#: faces tilted more than this (degrees, eye line) are turned upright before the network sees them;
#: smaller tilts are left alone (de-rolling every face cost 0.013 mask IoU on bench/occlusion.py)
DEROLL_MIN_DEG = 15.0


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class OccluderNet(nn.Module):
    """U-Net: input ``(B, 3, S, S)`` standardised RGB, output ``(B, 1, S, S)`` occluder logits."""

    def __init__(self, width: tuple[int, ...] = (16, 32, 64, 96)):
        super().__init__()
        if len(width) != 4:
            raise ValueError(f"OccluderNet(): width must have 4 entries, got {width}")
        self.config = {"width": list(width)}
        w = width
        self.down = nn.ModuleList()
        cin = 3
        for c in w:  # each level halves the resolution
            self.down.append(nn.Sequential(_conv(cin, c, 2), _conv(c, c)))
            cin = c
        self.up = nn.ModuleList(_conv(w[i + 1] + w[i], w[i]) for i in reversed(range(len(w) - 1)))
        self.head = nn.Conv2d(w[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        skips = []
        for d in self.down:
            x = d(x)
            skips.append(x)
        for i, u in enumerate(self.up):
            s = skips[-2 - i]
            x = u(torch.cat([F.interpolate(x, size=s.shape[-2:], mode="bilinear", align_corners=False), s], 1))
        return F.interpolate(self.head(x), size=size, mode="bilinear", align_corners=False)


def standardise(rgb01: torch.Tensor) -> torch.Tensor:
    """``(B, 3, S, S)`` RGB in [0, 1] -> network input."""
    return (rgb01 - _MEAN) / _STD


def save_occluder_net(net: OccluderNet, path: str | Path, *, meta: dict | None = None) -> None:
    """Write ``net`` as fp16 safetensors with its configuration in the metadata."""
    from safetensors.torch import save_file

    sd = {k: (v.half() if v.is_floating_point() else v).contiguous().cpu() for k, v in net.state_dict().items()}
    save_file(sd, str(path), metadata={"format": OCC_FORMAT, "config": json.dumps(net.config),
                                       "meta": json.dumps(meta or {})})


def load_occluder_net(path: str | Path | None = None) -> tuple[OccluderNet, dict]:
    """Load a :func:`save_occluder_net` file (default: the shipped asset). Returns ``(net, meta)``.

    Raises:
        AssetError: missing file, not safetensors, or not an occluder-net file.
    """
    from ..assets import read_weights, resolve

    p = Path(path) if path is not None else resolve(OCCLUDER_ASSET)
    sd, md = read_weights(p, OCC_FORMAT, "occluder network")
    net = OccluderNet(width=tuple(json.loads(md["config"])["width"]))
    try:
        net.load_state_dict(sd)
    except RuntimeError as e:
        raise AssetError(f"{p}: weights do not match the configuration: {e}") from e
    return net.eval(), json.loads(md.get("meta", "{}"))


def crop_box(lmk: np.ndarray, scale: float = CROP_SCALE) -> np.ndarray:
    """``(x0, y0, side)`` float square box around ``(68, 2)`` landmarks.

    >>> crop_box(np.array([[0.0, 0.0], [10.0, 20.0]]), 1.0).tolist()
    [-5.0, 0.0, 20.0]
    """
    lmk = np.asarray(lmk, dtype=np.float64)
    lo, hi = lmk.min(0), lmk.max(0)
    c, side = 0.5 * (lo + hi), scale * float((hi - lo).max())
    return np.array([c[0] - side / 2, c[1] - side / 2, side])


def roll_angle(lmk: np.ndarray) -> float:
    """Angle (radians) of the line from the subject's right eye (image left) to the left eye; 0 for
    an upright face, positive when the face is turned clockwise in the image.

    >>> lm = np.zeros((68, 2)); lm[42:48] = [10.0, 10.0]
    >>> round(roll_angle(lm), 4)
    0.7854
    """
    lmk = np.asarray(lmk, dtype=np.float64)
    d = lmk[42:48].mean(0) - lmk[36:42].mean(0)
    return float(np.arctan2(d[1], d[0]))


def _affine_for_box(box: np.ndarray, H: int, W: int, angle: float = 0.0) -> torch.Tensor:
    """``affine_grid`` theta mapping the crop's normalised coords to the image's (align_corners=False);
    the crop is turned by ``angle`` (radians) about its centre."""
    x0, y0, s = (float(v) for v in box)
    cx, cy = x0 + s / 2, y0 + s / 2
    c, n = math.cos(angle), math.sin(angle)
    return torch.tensor([[s * c / W, -s * n / W, 2 * cx / W - 1], [s * n / H, s * c / H, 2 * cy / H - 1]],
                        dtype=torch.float32)


def crop(image: np.ndarray | torch.Tensor, box: np.ndarray, size: int = CROP_SIZE, angle: float = 0.0) -> torch.Tensor:
    """``(3, size, size)`` bilinear crop of an ``(H, W, 3)`` [0, 1] image (zeros outside), prefiltered
    when the box is much larger than ``size``; ``angle`` turns the crop's axes (radians, e.g.
    :func:`roll_angle` to make a tilted face upright)."""
    img = torch.as_tensor(np.asarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
    H, W = img.shape[-2:]
    f = float(box[2]) / size
    if f > 1.5:  # antialias: shrink the whole image first so the crop samples ~1 pixel per pixel
        k = int(math.floor(f))
        img = F.avg_pool2d(img, k, ceil_mode=True)
    grid = F.affine_grid(_affine_for_box(box, H, W, angle)[None], [1, 3, size, size], align_corners=False)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]


def uncrop(prob: torch.Tensor, box: np.ndarray, H: int, W: int, angle: float = 0.0) -> np.ndarray:
    """Map a ``(S, S)`` crop map (made with the same ``box`` and ``angle``) back to ``(H, W)``
    (0 outside the box)."""
    x0, y0, s = (float(v) for v in box)
    S = prob.shape[-1]
    dx = (torch.arange(W, dtype=torch.float32) + 0.5 - (x0 + s / 2)) / s * 2
    dy = (torch.arange(H, dtype=torch.float32) + 0.5 - (y0 + s / 2)) / s * 2
    gy, gx = torch.meshgrid(dy, dx, indexing="ij")
    c, n = math.cos(angle), math.sin(angle)
    grid = torch.stack([c * gx + n * gy, -n * gx + c * gy], -1)[None]  # image offset -> crop axes
    out = F.grid_sample(prob.reshape(1, 1, S, S).float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out[0, 0].numpy()


_NET_CACHE: dict[str, OccluderNet] = {}


def occluder_probability(image: np.ndarray | torch.Tensor, lmk: np.ndarray | torch.Tensor, *,
                         net: OccluderNet | None = None, flip_test: bool = True) -> np.ndarray:
    """Per-pixel occluder probability ``(H, W)`` float32 for the face at ``lmk`` (68 landmarks).

    Args:
        image: ``(H, W, 3)`` RGB in [0, 1].
        lmk: ``(68, 2)`` landmarks in pixels (detected or fitted).
        net: a loaded :class:`OccluderNet` (default: the shipped weights, loaded once).
        flip_test: average with the prediction on the mirrored crop.
    """
    img = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    lm = lmk.detach().cpu().numpy() if isinstance(lmk, torch.Tensor) else np.asarray(lmk)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ShapeError(f"occluder_probability(): image must be (H, W, 3), got {img.shape}")
    if lm.shape != (68, 2):
        raise ShapeError(f"occluder_probability(): lmk must be (68, 2), got {lm.shape}")
    if net is None:
        if "default" not in _NET_CACHE:
            _NET_CACHE["default"] = load_occluder_net()[0]
        net = _NET_CACHE["default"]
    box = crop_box(lm)
    angle = roll_angle(lm)  # the network saw 300-W's mostly upright faces: de-roll strong tilts only
    if abs(math.degrees(angle)) < DEROLL_MIN_DEG:
        angle = 0.0
    x = crop(img, box, angle=angle)[None]
    with torch.no_grad():
        xs = torch.cat([x, x.flip(-1)]) if flip_test else x
        p = torch.sigmoid(net(standardise(xs)))[:, 0]
        p = 0.5 * (p[0] + p[1].flip(-1)) if flip_test else p[0]
    return uncrop(p, box, img.shape[0], img.shape[1], angle).astype(np.float32)


# ------------------------------------------------------------------------------------------------
# training data: random occluders pasted over face crops
# ------------------------------------------------------------------------------------------------
def _ellipse(yy, xx, cx, cy, rx, ry, a):
    c, s = math.cos(a), math.sin(a)
    x, y = xx - cx, yy - cy
    return ((c * x + s * y) / rx) ** 2 + ((-s * x + c * y) / ry) ** 2 <= 1.0


def _capsule(yy, xx, p, q, r):
    d = q - p
    t = np.clip(((xx - p[0]) * d[0] + (yy - p[1]) * d[1]) / max(float(d @ d), 1e-9), 0, 1)
    return (xx - p[0] - t * d[0]) ** 2 + (yy - p[1] - t * d[1]) ** 2 <= r * r


def shape_bank(n: int, size: int = CROP_SIZE, seed: int = 0, *, frames: bool = False) -> np.ndarray:
    """``(n, size, size)`` uint8 {0, 1} random occluder shapes centred in the frame (placed, scaled
    and rotated at batch time by :func:`paste_occluders`). ``frames`` adds spectacle-frame
    outlines (two of the eight kinds)."""
    from scipy import ndimage
    from skimage.draw import polygon

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    c = size / 2
    out = np.zeros((n, size, size), np.uint8)
    n_kinds = 8 if frames else 6
    for i in range(n):
        kind = i % n_kinds
        m = np.zeros((size, size), bool)
        if kind == 0:  # cluster of ellipses
            for _ in range(rng.integers(1, 4)):
                m |= _ellipse(yy, xx, c + rng.normal(0, 0.12 * size), c + rng.normal(0, 0.12 * size),
                              rng.uniform(0.06, 0.3) * size, rng.uniform(0.04, 0.2) * size, rng.uniform(0, math.pi))
        elif kind == 1:  # random polygon (star-shaped around the centre)
            k = rng.integers(3, 9)
            ang = np.sort(rng.uniform(0, 2 * math.pi, k))
            rad = rng.uniform(0.12, 0.4, k) * size
            rr, cc = polygon(c + rad * np.sin(ang), c + rad * np.cos(ang), (size, size))
            m[rr, cc] = True
        elif kind == 2:  # thick stroke along a random quadratic curve
            p0, p1, p2 = (c + rng.uniform(-0.4, 0.4, 2) * size for _ in range(3))
            r = rng.uniform(0.03, 0.12) * size
            ts = np.linspace(0, 1, 24)
            pts = [(1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2 for t in ts]
            for a, b in zip(pts[:-1], pts[1:], strict=True):
                m |= _capsule(yy, xx, a, b, r)
        elif kind == 3:  # rectangle
            w, h = rng.uniform(0.1, 0.8) * size, rng.uniform(0.05, 0.3) * size
            m = (np.abs(xx - c) <= w / 2) & (np.abs(yy - c) <= h / 2)
        elif kind == 4:  # smooth random blob
            noise = ndimage.gaussian_filter(rng.normal(size=(size, size)), size / 10)
            g = np.exp(-(((xx - c) / (0.3 * size)) ** 2 + ((yy - c) / (0.3 * size)) ** 2))
            v = noise / (noise.std() + 1e-9) + 2.5 * g
            m = v > rng.uniform(1.2, 2.2)
        elif kind >= 6:  # spectacle frames: two ring outlines, a bridge, sometimes temple arms
            sep = rng.uniform(0.16, 0.24) * size
            rx, ry = rng.uniform(0.09, 0.14) * size, rng.uniform(0.06, 0.1) * size
            th = rng.uniform(0.012, 0.035) * size
            for sgn in (-1, 1):
                cx = c + sgn * sep
                outer = _ellipse(yy, xx, cx, c, rx + th, ry + th, 0.0)
                inner = _ellipse(yy, xx, cx, c, rx, ry, 0.0)
                m |= outer & ~inner
                if kind == 7:  # temple arm towards the ear
                    m |= _capsule(yy, xx, np.array([cx + sgn * rx, c]), np.array([cx + sgn * (rx + 0.2 * size), c - 0.02 * size]),
                                  th / 2)
            m |= _capsule(yy, xx, np.array([c - sep + rx, c - 0.3 * ry]), np.array([c + sep - rx, c - 0.3 * ry]), th / 2)
        else:  # a group of parallel capsules with a base (finger-like)
            nf = rng.integers(2, 6)
            r = rng.uniform(0.035, 0.07) * size
            length = rng.uniform(0.2, 0.45) * size
            for f in range(nf):
                x = c + (f - (nf - 1) / 2) * 2.2 * r
                m |= _capsule(yy, xx, np.array([x, c]), np.array([x + rng.normal(0, r), c - length]), r)
            m |= _ellipse(yy, xx, c, c + 0.6 * length * rng.uniform(0.3, 1), nf * 1.2 * r, 0.7 * length, 0.0)
        out[i] = m
    return out


def paste_occluders(faces: torch.Tensor, bank: torch.Tensor, gen: torch.Generator, *,
                    p_empty: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste random occluders over a batch of face crops.

    Args:
        faces: ``(B, 3, S, S)`` float RGB in [0, 1] (face centred, as :func:`crop` makes them).
        bank: ``(N, S, S)`` uint8 shapes from :func:`shape_bank`.
        gen: random generator (reproducible batches).
        p_empty: fraction of samples left without an occluder.

    Returns:
        ``(images (B, 3, S, S), target (B, 1, S, S) float {0, 1})``.
    """
    B, _, S, _ = faces.shape

    def u(*shape, lo=0.0, hi=1.0):
        return lo + (hi - lo) * torch.rand(*shape, generator=gen)

    idx = torch.randint(0, bank.shape[0], (B,), generator=gen)
    m = bank[idx].float()[:, None]
    ang = u(B, lo=-math.pi, hi=math.pi)
    sc = u(B, lo=0.6, hi=1.6)
    tx, ty = u(B, lo=-0.45, hi=0.45), u(B, lo=-0.35, hi=0.55)  # biased towards the lower face
    cos, sin = torch.cos(ang) / sc, torch.sin(ang) / sc
    theta = torch.stack([torch.stack([cos, -sin, -(cos * tx - sin * ty)], -1),
                         torch.stack([sin, cos, -(sin * tx + cos * ty)], -1)], 1)
    grid = F.affine_grid(theta, [B, 1, S, S], align_corners=False)
    alpha = F.grid_sample(m, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    soft = u(B) < 0.5
    if soft.any():  # soft edges for half of them
        alpha[soft] = F.avg_pool2d(alpha[soft], 5, 1, 2, count_include_pad=False)
    alpha = alpha * (u(B) >= p_empty).float()[:, None, None, None]

    # textures
    kind = torch.randint(0, 5, (B,), generator=gen)
    other = faces[torch.roll(torch.arange(B), int(torch.randint(1, max(B, 2), (1,), generator=gen)))]
    tex = other.flip(-1).clone()
    flat = u(B, 3, 1, 1) * torch.ones_like(faces) + 0.05 * torch.randn(faces.shape, generator=gen)
    c0 = S // 2 - S // 8
    skin = F.interpolate(other[:, :, c0: c0 + S // 4, c0: c0 + S // 4], size=(S, S), mode="bilinear", align_corners=False)
    k = kind[:, None, None, None]
    tex = torch.where(k == 1, flat, tex)
    tex = torch.where(k == 2, skin, tex)
    tex = torch.where(k == 3, 0.05 + 0.3 * other, tex)
    tex = torch.where(k == 4, u(B, 1, 1, 1, lo=0.2, hi=0.9) * other.mean(1, keepdim=True).expand_as(other), tex)
    # shading gradient over the occluder and a colour gain
    g = torch.linspace(-1, 1, S)
    ramp = (u(B, 1, 1, 1, lo=-0.3, hi=0.3) * g[None, None, None, :] + u(B, 1, 1, 1, lo=-0.3, hi=0.3) * g[None, None, :, None])
    tex = (tex * (1 + ramp) * u(B, 3, 1, 1, lo=0.8, hi=1.2)).clamp(0, 1)
    img = faces * (1 - alpha) + tex * alpha

    # whole-image photometric jitter, noise, occasional grey, flips
    img = (img - 0.5) * u(B, 1, 1, 1, lo=0.7, hi=1.3) + 0.5 + u(B, 1, 1, 1, lo=-0.1, hi=0.1)
    img = img + u(B, 1, 1, 1, lo=0, hi=0.04) * torch.randn(img.shape, generator=gen)
    grey = (u(B) < 0.1)[:, None, None, None]
    img = torch.where(grey, img.mean(1, keepdim=True).expand_as(img), img)
    flip = (u(B) < 0.5)[:, None, None, None]
    img = torch.where(flip, img.flip(-1), img)
    target = (alpha > 0.5).float()
    target = torch.where(flip, target.flip(-1), target)
    return img.clamp(0, 1), target
