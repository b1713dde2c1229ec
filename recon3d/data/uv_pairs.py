"""Training samples of the learned UV texture generator (issue 15 item 4, thesis ch. 4.3).

Every photo is reconstructed once (fast preset; aligned 128² crops such as ``../shared/faces-128`` are padded
by reflection first, and texels seen through the padding are never taken from it) and unwrapped into a
``res``² UV map (:func:`recon3d.texture.from_fit.texture_from_fit`, photo colours with the shading baked in,
as ``reconstruct`` does by default). One sample per photo holds:

* ``tex``, ``vis``: the unwrapped photo colours and the texels seen (``UV_gt`` of the thesis);
* ``prior``: the fitted 3DMM albedo times the fitted shading in UV (``UV_bfm``, what Poisson blends into);
* ``full``: the thesis's pseudo ground truth ``UV_bl``: ``vis`` completed by mirror + Poisson blending;
* ``vis_h`` and ``base``: the **same texture seen from another pose**. The head is turned by 25-65 degrees
  of yaw (the side chosen at random) and ``vis_h`` keeps the texels of ``vis`` that are still seen from there;
  ``base`` is their mirror + Poisson completion. ``vis & ~vis_h`` are real photo texels hidden from the
  generator: exact supervision of the completion, which ``UV_bl`` alone never gives (it is only a blend);
* ``photo``, ``uv0``, ``cov0``: the photo in the template-aligned ``frame``² crop and, per pixel, the UV
  coordinates of the fitted mesh and where it covers the photo's own pixels (a differentiable render of any
  UV map at the photo's pose is ``texture(uv_map, uv0)``, for the thesis's face reconstruction term);
* ``uv1``, ``cov1``: the same at the turned pose, aligned on the turned landmarks (the face discriminator's
  and the identity loss's new view).

Items are photo indices; a photo whose reconstruction fails is recorded as skipped. Progress is kept in
compressed chunks (:class:`recon3d.data._chunks.ChunkStore`) plus ``config.json``, resumable and shardable
as the other builders; :func:`load_uv_pairs` merges them.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import Recon3DError
from ._chunks import ChunkedSamples, ChunkStore, build_photo_chunks, check_build_args, load_chunked
from .splits import hash32

__all__ = ["UVPairs", "PhotoFit", "fit_photo", "turned_sample", "uv_sample", "build_uv_pairs", "load_uv_pairs", "uv_pairs_size", "turn_yaw", "UV_RES", "FRAME"]

log = logging.getLogger(__name__)

CACHE_VERSION = 1
#: the UV maps' side
UV_RES = 128
#: the photo frame's side
FRAME = 128
KINDS = ("uv",)


def _fields(res: int, frame: int) -> dict:
    f16 = np.float16
    return {"tex": ((3, res, res), f16), "prior": ((3, res, res), f16), "full": ((3, res, res), f16),
            "base": ((3, res, res), f16), "vis": ((2, res, res), bool),  # vis, vis_h
            "photo": ((3, frame, frame), np.uint8), "uv": ((4, frame, frame), f16),  # uv0, uv1
            "cov": ((2, frame, frame), bool), "pose": ((2, 3), np.float32)}


class UVPairs(ChunkedSamples):
    """Merged samples (the arrays of :func:`uv_sample`, stacked; items sorted).

    Attributes:
        items: ``(M,)`` photo indices.
        arrays: ``tex``, ``prior``, ``full``, ``base`` float16 ``(M, 3, R, R)`` in [0, 1]; ``vis`` bool
            ``(M, 2, R, R)`` (seen in the photo, still seen from the turned pose); ``photo`` uint8
            ``(M, 3, F, F)``; ``uv`` float16 ``(M, 4, F, F)`` (UV coordinates at the photo's pose, then at the
            turned one); ``cov`` bool ``(M, 2, F, F)``; ``pose`` ``(M, 2, 3)`` (yaw, pitch, roll) degrees of the
            photo and of the turned view.
        skipped: ``{item: reason}``.
        meta: the settings.
    """


def turn_yaw(yaw_deg: float, rng: np.random.Generator) -> float:
    """The turn of a sample: 25-65 degrees of yaw, to a random side, kept within +-75 degrees of absolute yaw
    (the other side when that would shorten it below 25)."""
    sign = 1.0 if rng.random() < 0.5 else -1.0
    d = sign * rng.uniform(25, 65)
    if abs(yaw_deg + d) > 75:
        d = -d
    return float(d)


def _frame_maps(verts, faces, uv, uv_faces, K, hw, m, frame, real):
    """UV coordinates ``(2, F, F)`` and coverage ``(F, F)`` of the mesh in the frame given by ``m``."""
    import torch

    from ..edit._learned_rotate import to_frame
    from ..render import interpolate, rasterize

    with torch.no_grad():
        frags = rasterize(verts[None], faces, K, hw)
        uvp = interpolate(uv.to(verts.dtype), frags, uv_faces)[0].cpu().numpy()
        cov = (frags.tri_id[0] >= 0).cpu().numpy().astype(np.float32)[..., None]
    both = np.concatenate([uvp * cov, cov, real], -1)
    fr = to_frame(both, m, frame)
    c = (fr[2] > 0.999) & (fr[3] > 0.999)
    return np.where(c[None], fr[:2] / np.maximum(fr[2:3], 1e-6), 0.0), c


def uv_sample(photo: np.ndarray, seed: int, *, res: int = UV_RES, frame: int = FRAME) -> dict | str:
    """The sample of one photo (``(H, W, 3)`` float RGB in [0, 1]; an aligned crop is padded), or the reason it
    was skipped. ``seed`` picks the turned pose (:func:`turn_yaw`)."""
    fit = fit_photo(photo, res=res)
    if isinstance(fit, str):
        return fit
    dyaw = turn_yaw(fit.pose[0], np.random.default_rng(hash32(f"uv-pairs:{seed}")))
    return turned_sample(fit, dyaw, frame=frame)


@dataclass
class PhotoFit:
    """A photo reconstructed and unwrapped once (:func:`fit_photo`), for :func:`turned_sample` at any turn."""

    rec: object
    img: np.ndarray
    real: np.ndarray
    uvr: object
    verts: object
    K: object
    R: object
    texture: object
    visible: object
    prior: object
    full: object
    pose: tuple[float, float, float]


def fit_photo(photo: np.ndarray, *, res: int = UV_RES) -> PhotoFit | str:
    """Reconstruct ``photo`` (fast preset) and unwrap it into a ``res``² UV map, or the reason it could not be."""
    import torch

    from ..edit._common import fit_tensors
    from ..reconstruct import ReconstructConfig, reconstruct
    from ..texture import uv_raster
    from ..texture.from_fit import texture_from_fit
    from .rotation_pairs import prepare_photo

    img, real = prepare_photo(photo)
    try:
        rec = reconstruct(img, config=ReconstructConfig(fast=True, texture_size=32))
    except Recon3DError as e:
        return f"{type(e).__name__}: {e}"
    ft = fit_tensors(rec)
    model = rec.model
    dt = ft.verts_cam.dtype
    uvr = uv_raster(model, resolution=res)
    img_t = torch.from_numpy(img).to(dt)[None]
    verts = ft.verts_cam.detach()
    with torch.no_grad():
        albedo_v = model.albedo(rec.fit.params.albedo.detach()).to(dt)
        ftx = texture_from_fit(img_t, verts[None], model.faces, ft.K, uvr, albedo_v=albedo_v, light=ft.light,
                               exclude=torch.from_numpy(real[..., 0] < 0.5))
    vis = ftx.visible[0]
    if int(vis.sum()) < 0.2 * int(uvr.mask.sum()):
        return "ValueError: less than a fifth of the UV layout is seen in the photo"
    p0 = rec.pose_deg
    return PhotoFit(rec=rec, img=img, real=real, uvr=uvr, verts=verts, K=ft.K, R=ft.R.to(dt),
                    texture=ftx.texture_visible, visible=vis, prior=(ftx.albedo_uv * ftx.shading_uv).clamp(0, 1),
                    full=ftx.texture[0], pose=(p0["yaw"], p0["pitch"], p0["roll"]))


def turned_sample(fit: PhotoFit, dyaw: float, *, frame: int = FRAME) -> dict:
    """The sample of ``fit`` with the head turned by ``dyaw`` degrees of yaw about its own vertical axis
    (arrays as :class:`UVPairs` describes, one sample)."""
    import torch

    from ..edit._learned_fill import template_matrix
    from ..edit._learned_rotate import model_landmarks_px, to_frame
    from ..texture import complete_texture, unwrap_texture

    rec, model, verts, uvr = fit.rec, fit.rec.model, fit.verts, fit.uvr
    dt = verts.dtype
    c = verts.mean(0)
    a = math.radians(dyaw)
    D = torch.tensor([[math.cos(a), 0.0, math.sin(a)], [0.0, 1.0, 0.0], [-math.sin(a), 0.0, math.cos(a)]], dtype=dt)
    v1 = (verts - c) @ fit.R @ D.T @ fit.R.T + c  # about the vertex centroid, in the head's own frame
    with torch.no_grad():
        seen1 = unwrap_texture(torch.zeros((1, *fit.img.shape), dtype=dt), v1[None], model.faces, fit.K, uvr).visible[0]
        vis_h = fit.visible & seen1
        base = complete_texture(fit.texture, vis_h[None], fit.prior, uvr, keep_visible=True).texture[0]
    H, W = fit.img.shape[:2]
    px0, _ = model_landmarks_px(rec, verts)
    px1, _ = model_landmarks_px(rec, v1)
    m0, m1 = template_matrix(px0, frame), template_matrix(px1, frame)
    uv0, cov0 = _frame_maps(verts, model.faces, model.uv, model.uv_faces, fit.K, (H, W), m0, frame, fit.real)
    uv1, cov1 = _frame_maps(v1, model.faces, model.uv, model.uv_faces, fit.K, (H, W), m1, frame,
                            np.ones_like(fit.real))
    ph = to_frame(fit.img, m0, frame)

    def chw(t):
        return t.detach().cpu().numpy().transpose(2, 0, 1).astype(np.float16)

    y0, p0, r0 = fit.pose
    return {"tex": chw(fit.texture[0] * fit.visible[..., None]), "prior": chw(fit.prior[0]),
            "full": chw(fit.full), "base": chw(base),
            "vis": np.stack([fit.visible.cpu().numpy(), vis_h.cpu().numpy()]),
            "photo": (np.clip(ph, 0, 1) * 255 + 0.5).astype(np.uint8),
            "uv": np.concatenate([uv0, uv1]).astype(np.float16), "cov": np.stack([cov0, cov1]),
            "pose": np.asarray([[y0, p0, r0], [y0 + dyaw, p0, r0]], np.float32)}


def uv_pairs_size(out_dir: str | os.PathLike) -> tuple[int, int]:
    """``(samples, skipped)`` of a :func:`build_uv_pairs` folder (from the chunks' indices)."""
    ok, sk = ChunkStore(Path(out_dir).expanduser(), _fields(UV_RES, FRAME)).index()
    return len(ok), len(sk)


def build_uv_pairs(photos: list[Path], out_dir: str | os.PathLike, *, n: int | None = None, chunk: int = 10,
                   shard: tuple[int, int] = (0, 1), seed: int = 0, progress: bool = True) -> int:
    """Build the samples of the first ``n`` of ``photos`` (all when None) into ``out_dir``; progress already
    there is kept. ``shard=(k, m)``: this process does the photos ``i`` with ``i % m == k``. Returns the number
    of photos this call processed.

    Raises:
        Recon3DError: the folder holds progress made with other settings.
        ValueError: bad ``n``, ``chunk`` or ``shard``, or no photos.
    """
    check_build_args("build_uv_pairs()", n, chunk, shard)
    photos = [Path(p) for p in photos][: n if n is not None else None]
    config = {"version": CACHE_VERSION, "res": UV_RES, "frame": FRAME, "seed": int(seed),
              "photos": hash32("\n".join(p.name for p in photos[:64]))}
    return build_photo_chunks(
        "build_uv_pairs()", photos, out_dir, config, _fields(UV_RES, FRAME), KINDS,
        lambda photo, i, _: {"uv": uv_sample(photo, seed * 1_000_003 + i)},
        n=n, chunk=chunk, shard=shard, desc="uv pairs", progress=progress)


def load_uv_pairs(out_dir: str | os.PathLike) -> UVPairs:
    """Merge a :func:`build_uv_pairs` folder.

    Raises:
        Recon3DError: no ``config.json`` or no sample yet.
    """
    return load_chunked(out_dir, lambda m: _fields(int(m.get("res", UV_RES)), int(m.get("frame", FRAME))),
                        "UV pair", "make_uv_pairs", UVPairs)
