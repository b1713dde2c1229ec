"""Training data of the learned de-occlusion fill (Yin's thesis 5.3.4, issue 15 items 1 and 3).

The inpainting network of :mod:`recon3d.nn.inpaint` sees three things: the face with its occluded
pixels replaced by noise (``I_n``), the occlusion mask (``M_o``) and the fitted 3DMM rendered at the
photo's pose (``I_m``: the fitted albedo lit by the fitted spherical harmonics, with its coverage
``M_m``). Its targets are the un-occluded faces.

* **The 3DMM render cache** (:func:`build_render_cache`): every face ``i`` of an aligned face folder
  (``../shared/faces-128``, read with :func:`recon3d.data.faces.load_faces` at 128 px) gets one occluder
  (:func:`occlude_batch`, seeded by ``(seed, i)``). The *occluded* face is padded by reflection
  (:func:`recon3d.data.pseudo_labels.pad_reflect`: tight crops are not what the detector expects),
  reconstructed (:func:`recon3d.reconstruct.reconstruct`, fast preset), and the model render ``I_m`` and
  coverage ``M_m`` of :func:`recon3d.edit.deocclude.model_render` are cropped back to the face and stored
  as uint8 with the occluded face and its hole. The fit must see the occluder, as it does at run time:
  a render fitted to the clean face carries the hidden region's appearance (its albedo, shading and
  shape were fitted with it visible), and a network trained on it learns to read the answer from
  ``I_m``. Measured on 24 held-out faces with sunglasses: ``I_p`` from clean fits 21.4 dB in the hole,
  from fits of the occluded faces 17.8 dB; a network trained on the former scored 22.6 with its own
  kind of render and 16.4 with the run-time kind (cache version 1; this is version 2). Faces whose
  reconstruction fails are recorded as skipped. Progress is one ``.npz`` per chunk of faces in the
  cache folder plus ``config.json``; a killed run, a run with a larger ``n`` and ``shard=(k, m)`` runs
  (several processes, one folder) compute only what is missing. :func:`load_render_cache` merges them.
* **Occluders** (:func:`occlude_batch`): random shapes of :func:`recon3d.data.occluders.shape_bank`
  (spectacle frames included) textured and placed as :func:`recon3d.data.occluders.occluder_layers`
  does for the segmenter, plus sunglasses drawn at the template's eyes (dark, tinted or mirrored
  lenses, a bridge, temple arms) in a share ``p_sunglasses`` of the samples. The hole ``M_o`` is the
  occluder's support grown by 0-3 px (the detected masks are dilated before the fill too).
* **The Poisson pseudo-ground truth** ``I_p`` (thesis eqs. 5.10-5.11, :func:`poisson_target`): the
  render blended into the occluded face over the hole (gradients of ``I_m``, boundary values of the
  photo), the only target the thesis has for real occlusions. With synthetic occluders the true face
  is known: the recipe's SSIM term uses ``I_p`` only when ``ssim_target="poisson"``; the network takes it
  as its starting point (:mod:`recon3d.nn.inpaint`).
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import Recon3DError
from ..io.atomic import atomic_file, clean_stale_temps
from ..nn.inpaint import poisson_base
from ..ops.align import TEMPLATE_68
from ._chunks import ChunkStore, check_build_args
from .degrade import same_settings

__all__ = ["RenderCache", "render_prior", "build_render_cache", "load_render_cache", "occlude_batch",
           "sunglasses_masks", "poisson_target", "occlude_one", "render_cache_size", "CACHE_VERSION", "SOURCE_RES", "PAD"]

log = logging.getLogger(__name__)

#: bumped whenever what a face's entry holds changes (chunks of another version are not reused)
CACHE_VERSION = 2
#: the side at which the faces are read and reconstructed
SOURCE_RES = 128
#: reflection padding (pixels a side) before the reconstruction
PAD = 32
#: shapes in the cache's occluder bank
BANK = 512


@dataclass
class RenderCache:
    """The 3DMM renders of a face folder.

    Attributes:
        indices: ``(M,)`` int64, each face's position in ``load_faces(faces_dir, 128, split=...)``.
        renders: ``(M, 3, 128, 128)`` uint8, ``I_m`` (fitted to the occluded face).
        coverage: ``(M, 1, 128, 128)`` bool, ``M_m``.
        occluded: ``(M, 3, 128, 128)`` uint8, the face with its occluder.
        holes: ``(M, 1, 128, 128)`` bool, the occluder's hole ``M_o``.
        skipped: ``{index: reason}`` of the faces left out.
        meta: the settings (``config.json``).
    """

    indices: np.ndarray
    renders: np.ndarray
    coverage: np.ndarray
    occluded: np.ndarray
    holes: np.ndarray
    skipped: dict[int, str]
    meta: dict

    def __len__(self) -> int:
        return int(self.indices.shape[0])


def render_prior(image: np.ndarray, *, pad: int = PAD) -> tuple[np.ndarray, np.ndarray]:
    """``I_m`` and ``M_m`` of one aligned (occluded) face.

    Args:
        image: ``(3, S, S)`` uint8 aligned face.
        pad: reflection padding before the reconstruction.

    Returns:
        ``(render (3, S, S) uint8, coverage (1, S, S) bool)``.

    Raises:
        Recon3DError: the face could not be reconstructed.
    """
    from ..edit.deocclude import model_render
    from ..reconstruct import ReconstructConfig, reconstruct
    from .pseudo_labels import pad_reflect

    hwc = np.ascontiguousarray(np.asarray(image, np.uint8).transpose(1, 2, 0))
    S = hwc.shape[0]
    padded = pad_reflect(hwc, pad)
    rec = reconstruct(padded, config=ReconstructConfig(fast=True, texture_size=64))
    pred, cov, _ = model_render(rec)
    pred = pred[pad:pad + S, pad:pad + S]
    cov = cov[pad:pad + S, pad:pad + S]
    u8 = (np.clip(pred, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(2, 0, 1)
    return np.ascontiguousarray(u8), np.ascontiguousarray(cov[None].astype(bool))


def occlude_one(image: np.ndarray, bank: torch.Tensor, seed: int, index: int, *,
                p_sunglasses: float = 0.35) -> tuple[np.ndarray, np.ndarray]:
    """Face ``index``'s cached occluder: ``(occluded (3, S, S) uint8, hole (1, S, S) bool)``, seeded by
    ``(seed, index)`` (:func:`occlude_batch` on the face alone)."""
    gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(index))
    f = torch.from_numpy(np.asarray(image, np.uint8)).float()[None] / 255
    occ, hole = occlude_batch(f, bank, gen, p_sunglasses=p_sunglasses)
    u8 = (occ[0].clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()
    return np.ascontiguousarray(u8), hole[0].numpy() > 0.5


def _store(out: Path, res: int = SOURCE_RES) -> ChunkStore:
    return ChunkStore(out, {"renders": ((3, res, res), np.uint8), "coverage": ((1, res, res), bool),
                            "occluded": ((3, res, res), np.uint8), "holes": ((1, res, res), bool)})


def render_cache_size(out_dir: str | os.PathLike) -> tuple[int, int]:
    """``(faces, skipped faces)`` in a :func:`build_render_cache` folder, counted from the chunks' indices only."""
    ok, skipped = _store(Path(out_dir).expanduser()).index()
    return len(ok), len(skipped)


def build_render_cache(faces_dir: str | os.PathLike, out_dir: str | os.PathLike, *, n: int | None = None,
                       split: str = "train", val_percent: float = 5.0, chunk: int = 25,
                       shard: tuple[int, int] = (0, 1), cache_dir: str | os.PathLike | None = None,
                       seed: int = 0, p_sunglasses: float = 0.35, progress: bool = True) -> int:
    """Reconstruct the first ``n`` faces of ``split`` (all when None) and store ``I_m`` / ``M_m`` under ``out_dir``.

    Args:
        faces_dir: aligned face photos (``load_faces(faces_dir, 128, split=split)``).
        out_dir: the cache folder (chunks + ``config.json``); progress already there is kept.
        n, split, val_percent, cache_dir: which faces (see :func:`recon3d.data.faces.load_faces`).
        chunk: faces per chunk file.
        shard: ``(k, m)``: this process does the faces ``i`` with ``i % m == k``.
        seed, p_sunglasses: the occluders (:func:`occlude_one`).
        progress: show a tqdm bar.

    Returns:
        The number of faces this call computed.

    Raises:
        Recon3DError: the folder holds progress made with other settings.
        ValueError: bad ``n``, ``chunk`` or ``shard``.
    """
    from .faces import load_faces

    k, m = check_build_args("build_render_cache()", n, chunk, shard)
    src = Path(faces_dir).expanduser().resolve()
    out = Path(out_dir).expanduser()
    config = json.loads(json.dumps({"version": CACHE_VERSION, "source": str(src), "source_res": SOURCE_RES,
                                    "pad": PAD, "split": split, "val_percent": float(val_percent), "seed": int(seed),
                                    "p_sunglasses": float(p_sunglasses), "bank": BANK}))
    cfg_path = out / "config.json"
    if not same_settings(cfg_path, config):
        raise Recon3DError(f"build_render_cache(): {out} holds progress made with other settings; delete it "
                           "or use the same settings")
    fs = load_faces(src, SOURCE_RES, split=split, val_percent=val_percent, cache_dir=cache_dir, limit=n,
                    progress=False)
    out.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(out)
    if not cfg_path.is_file():
        with atomic_file(cfg_path, "w") as fh:
            json.dump(config, fh, indent=1, sort_keys=True)
    store = _store(out)
    ok, sk = store.index()
    done_idx = ok | sk
    todo = [i for i in range(len(fs)) if i % m == k and i not in done_idx]
    from tqdm import tqdm

    from .occluders import shape_bank

    bank = torch.as_tensor(shape_bank(BANK, SOURCE_RES, seed=int(seed), frames=True)) if todo else None
    bar = tqdm(total=len(todo), desc="3DMM renders", unit="face", disable=not progress)
    made = 0
    try:
        for a in range(0, len(todo), chunk):
            group = todo[a:a + chunk]
            results: dict[int, dict] = {}
            for i in group:
                try:
                    o, h = occlude_one(fs.images[i].numpy(), bank, seed, i, p_sunglasses=p_sunglasses)
                    r, c = render_prior(o)
                    results[i] = {"renders": r, "coverage": c, "occluded": o, "holes": h}
                except Recon3DError as e:  # no face, a failed fit: recorded, never fatal
                    log.warning("build_render_cache(): skipped %s (%s: %s)", fs.paths[i], type(e).__name__, e)
                    results[i] = f"{type(e).__name__}: {e}"
                bar.update(1)
            store.write(results)
            made += len(group)
    finally:
        bar.close()
    return made


def load_render_cache(out_dir: str | os.PathLike) -> RenderCache:
    """Merge the chunks of a :func:`build_render_cache` folder (sorted by face index).

    Raises:
        Recon3DError: ``out_dir`` holds no ``config.json`` or no readable chunk.
    """
    out = Path(out_dir).expanduser()
    cfg_path = out / "config.json"
    if not cfg_path.is_file():
        raise Recon3DError(f"{out}: not a render cache (no config.json; build one with pipelines.make_deocclusion_set)")
    meta = json.loads(cfg_path.read_text())
    idx, arrays, skipped = _store(out).read()
    if not len(idx):
        raise Recon3DError(f"{out}: the render cache holds no face yet")
    return RenderCache(indices=idx, renders=arrays["renders"], coverage=arrays["coverage"],
                       occluded=arrays["occluded"], holes=arrays["holes"], skipped=skipped, meta=meta)


# -- occluders ----------------------------------------------------------------------------------------

def _u(gen: torch.Generator, *shape, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(*shape, generator=gen)


def sunglasses_masks(n: int, res: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random sunglasses on ``res``² template-aligned faces: ``(lens mask, frame mask)``, each
    ``(n, 1, res, res)`` float in {0, 1}. Lenses are ellipses or rounded rectangles around the template's
    eyes (size, shape, tilt and offset drawn per sample), joined by a bridge, with temple arms towards
    the ears in half of them."""
    t = torch.as_tensor(TEMPLATE_68, dtype=torch.float32) * res
    le, re_ = t[36:42].mean(0), t[42:48].mean(0)
    yy, xx = torch.meshgrid(torch.arange(res, dtype=torch.float32) + 0.5,
                            torch.arange(res, dtype=torch.float32) + 0.5, indexing="ij")
    eye_d = float((re_ - le).norm())
    lens = torch.zeros(n, 1, res, res)
    frame = torch.zeros(n, 1, res, res)
    for b in range(n):
        rx = eye_d * float(_u(gen, 1, lo=0.36, hi=0.52))
        ry = rx * float(_u(gen, 1, lo=0.6, hi=0.95))
        p = float(_u(gen, 1, lo=2.0, hi=5.0))  # superellipse exponent: 2 ellipse, larger: rounded rectangle
        dy = eye_d * float(_u(gen, 1, lo=-0.05, hi=0.15))
        ang = float(_u(gen, 1, lo=-0.12, hi=0.12))
        th = max(1.0, eye_d * float(_u(gen, 1, lo=0.03, hi=0.08)))
        ca, sa = math.cos(ang), math.sin(ang)
        centre = (le + re_) / 2
        inside = torch.zeros(res, res, dtype=torch.bool)
        ring = torch.zeros(res, res, dtype=torch.bool)
        for c in (le, re_):
            cx = float(centre[0] + ca * (c[0] - centre[0]) - sa * (c[1] - centre[1]))
            cy = float(centre[1] + sa * (c[0] - centre[0]) + ca * (c[1] - centre[1])) + dy
            x, y = xx - cx, yy - cy
            u, v = ca * x + sa * y, -sa * x + ca * y
            r = (u.abs() / rx) ** p + (v.abs() / ry) ** p
            r_out = (u.abs() / (rx + th)) ** p + (v.abs() / (ry + th)) ** p
            inside |= r <= 1
            ring |= (r_out <= 1) & (r > 1)
        # bridge between the lenses, and temple arms
        bx0, bx1 = float(le[0]) + rx * 0.9, float(re_[0]) - rx * 0.9
        by = float(centre[1]) + dy - ry * 0.3
        ring |= (xx >= bx0) & (xx <= bx1) & ((yy - by).abs() <= th * 0.7)
        if float(_u(gen, 1)) < 0.5:
            for sgn, c in ((-1, le), (1, re_)):
                x0 = float(c[0]) + sgn * (rx + th * 0.5)
                x1 = x0 + sgn * eye_d * 0.6
                lo_x, hi_x = min(x0, x1), max(x0, x1)
                ring |= (xx >= lo_x) & (xx <= hi_x) & ((yy - (float(c[1]) + dy - ry * 0.3)).abs() <= th * 0.6)
        lens[b, 0] = inside.float()
        frame[b, 0] = ring.float()
    return lens, frame


def _sunglasses_texture(faces: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Lens colours: dark (most), tinted, or a mirror (a flipped, darkened copy of another face)."""
    B, _, S, _ = faces.shape
    kind = torch.randint(0, 4, (B,), generator=gen)[:, None, None, None]
    dark = _u(gen, B, 1, 1, 1, lo=0.02, hi=0.15) * torch.ones_like(faces)
    tint = _u(gen, B, 3, 1, 1, lo=0.05, hi=0.6) * torch.ones_like(faces)
    mirror = 0.2 + 0.6 * faces.roll(1, 0).flip(-1).flip(-2)
    tex = torch.where(kind <= 1, dark, torch.where(kind == 2, tint, mirror))
    g = torch.linspace(-1, 1, S)
    ramp = _u(gen, B, 1, 1, 1, lo=-0.15, hi=0.25) * (-g)[None, None, :, None]  # a reflection highlight at the top
    return (tex + ramp.clamp_min(0) + 0.02 * torch.randn(faces.shape, generator=gen)).clamp(0, 1)


def occlude_batch(faces: torch.Tensor, bank: torch.Tensor, gen: torch.Generator, *, p_sunglasses: float = 0.35,
                  max_grow: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste one occluder on each template-aligned face.

    Args:
        faces: ``(B, 3, S, S)`` float RGB in [0, 1].
        bank: ``(N, S, S)`` uint8 shapes from :func:`recon3d.data.occluders.shape_bank` (same ``S``).
        gen: random generator.
        p_sunglasses: share of samples that get sunglasses instead of a bank shape.
        max_grow: the hole is the occluder's support grown by 0..``max_grow`` pixels.

    Returns:
        ``(occluded (B, 3, S, S) in [0, 1], hole (B, 1, S, S) float {0, 1})``; every sample has an occluder
        and the occluded image equals ``faces`` outside the hole.
    """
    from .occluders import occluder_layers

    B, _, S, _ = faces.shape
    alpha, tex = occluder_layers(faces, bank, gen, p_empty=0.0)
    lens, frame = sunglasses_masks(B, S, gen)
    stex = _sunglasses_texture(faces, gen)
    ftex = _u(gen, B, 3, 1, 1, lo=0.0, hi=0.5) * torch.ones_like(faces)
    sg = (_u(gen, B) < p_sunglasses)[:, None, None, None]
    sg_alpha = torch.maximum(lens, frame)
    sg_tex = lens * stex + (1 - lens) * ftex
    alpha = torch.where(sg, sg_alpha, alpha)
    tex = torch.where(sg, sg_tex, tex)
    empty = alpha.flatten(1).amax(1) < 0.5  # a shape placed off the frame: fall back to sunglasses
    if empty.any():
        alpha[empty], tex[empty] = sg_alpha[empty], sg_tex[empty]
    support = (alpha > 0.02).float()
    grow = torch.randint(0, max_grow + 1, (B,), generator=gen)
    hole = support.clone()
    for b in range(B):
        g = int(grow[b])
        if g:
            hole[b] = F.max_pool2d(support[b:b + 1], 2 * g + 1, 1, g)[0]
    img = faces * (1 - alpha) + tex * alpha
    img = torch.where(hole > 0, img, faces)
    return img.clamp(0, 1), hole


def poisson_target(occluded: torch.Tensor, render: torch.Tensor, hole: torch.Tensor,
                   coverage: torch.Tensor) -> torch.Tensor:
    """The thesis's pseudo-ground truth ``I_p``: the render Poisson-blended into the occluded faces over the
    hole (:func:`recon3d.nn.inpaint.poisson_base`; NCHW in [-1, 1], masks in {0, 1})."""
    return poisson_base(occluded, hole, render, coverage)
