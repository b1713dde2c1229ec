"""Training data for the occluder segmenter (:mod:`recon3d.nn.occluder`): face crops of annotated
photos and random occluders pasted over them.

* :func:`photos_with_landmarks` / :func:`face_crops`: every photo with a 300-W ``.pts`` file is
  cropped around its landmarks several times (random scale and shift, the network's crop of
  :func:`recon3d.nn.occluder.crop_box`); photos whose ``<folder>/<stem>`` hashes into the held-out
  percent are marked for validation (:mod:`recon3d.data.splits`). The crops are cached in a file.
* :func:`shape_bank`: random occluder shapes (ellipse clusters, polygons, strokes, rectangles,
  smooth blobs, finger-like capsule groups, optionally spectacle frames).
* :func:`paste_occluders`: a batch of crops with random shapes pasted in (textures: patches of
  other photos, flat or noisy colours, other faces' skin, darkened patches; soft or hard edges),
  and the pasted masks as targets.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import Recon3DError
from ..io import load_image
from ..io.atomic import atomic_file
from ..io.landmarks_file import load_landmarks
from ..nn.occluder import CROP_SCALE, CROP_SIZE, crop, crop_box
from .splits import is_held_out, photo_key

__all__ = ["photos_with_landmarks", "face_crops", "shape_bank", "occluder_layers", "paste_occluders", "VAL_PERCENT"]

log = logging.getLogger(__name__)

#: percent of photos held out for validation
VAL_PERCENT = 5.0


def photos_with_landmarks(dirs: Iterable[str | Path]) -> list[Path]:
    """Photos (``.jpg``, ``.jpeg``, ``.png``) that have a 300-W ``.pts`` file next to them, in the
    order of the sorted ``.pts`` names of each folder."""
    out = []
    for d in dirs:
        for p in sorted(Path(d).expanduser().glob("*.pts")):
            img = next((q for q in sorted(p.parent.glob(p.stem + ".*")) if q.suffix.lower() in (".jpg", ".jpeg", ".png")), None)
            if img is not None:
                out.append(img)
    return out


def face_crops(photos: list[Path], jitters: int, seed: int, cache: Path, *, val_percent: float = VAL_PERCENT,
               progress: Callable[[Iterable], Iterable] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``jitters`` crops per photo, ``(N, 3, S, S)`` uint8, and ``(N,)`` bool held-out flags.

    Read from ``cache`` when it exists, else made and written there (atomically). ``progress``
    wraps the iterable of photos (e.g. ``tqdm``). Photos that cannot be read are skipped.
    """
    if cache.is_file():
        z = np.load(cache)
        return z["crops"], z["val"]
    rng = np.random.default_rng(seed)
    crops, val = [], []
    for p in (progress or iter)(photos):
        try:
            img = load_image(p).image.numpy()
            lmk = load_landmarks(p.with_suffix(".pts")).numpy()
        except (Recon3DError, ValueError) as e:
            log.warning("skipping %s: %s", p, e)
            continue
        v = is_held_out(photo_key(p, "/"), val_percent)
        for _ in range(jitters):
            box = crop_box(lmk, CROP_SCALE * rng.uniform(0.9, 1.15))
            box[:2] += rng.uniform(-0.06, 0.06, 2) * box[2]
            crops.append((crop(img, box).clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8))
            val.append(v)
    crops_a, val_a = np.stack(crops), np.asarray(val)
    with atomic_file(cache) as fh:
        np.savez(fh, crops=crops_a, val=val_a)
    return crops_a, val_a


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


def occluder_layers(faces: torch.Tensor, bank: torch.Tensor, gen: torch.Generator, *,
                    p_empty: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """Random occluders for a batch of face crops, not yet pasted: ``(alpha (B, 1, S, S) in [0, 1],
    texture (B, 3, S, S))`` (shapes of ``bank`` placed, scaled and rotated, half with soft edges;
    textures: other faces' patches, flat or noisy colours, skin, darkened or grey copies, with a
    shading ramp). :func:`paste_occluders` and :func:`recon3d.data.deocclusion.occlude_batch` composite them."""
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
    return alpha, tex


def paste_occluders(faces: torch.Tensor, bank: torch.Tensor, gen: torch.Generator, *,
                    p_empty: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste random occluders over a batch of face crops.

    Args:
        faces: ``(B, 3, S, S)`` float RGB in [0, 1] (face centred, as :func:`face_crops` makes them).
        bank: ``(N, S, S)`` uint8 shapes from :func:`shape_bank`.
        gen: random generator (reproducible batches).
        p_empty: fraction of samples left without an occluder.

    Returns:
        ``(images (B, 3, S, S), target (B, 1, S, S) float {0, 1})``.
    """
    B, _, S, _ = faces.shape

    def u(*shape, lo=0.0, hi=1.0):
        return lo + (hi - lo) * torch.rand(*shape, generator=gen)

    alpha, tex = occluder_layers(faces, bank, gen, p_empty=p_empty)
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
