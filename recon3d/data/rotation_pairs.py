"""Training samples of the learned rotation refiner (issue 16 item 1): supervision that costs no labels.

Every photo is reconstructed once (fast preset; aligned 128² crops such as ``../shared/faces-128`` are
padded by reflection first, as the detector expects some context) and rotated with recon3d's 3D-guided
warp (:func:`recon3d.edit.rotate.rotate_face`) three ways. Each view is stored in the refiner's frame
(:func:`recon3d.edit._learned_rotate.frame_inputs`: the warp, the source photo aligned by its exposed
half, the no-source and face masks, source/target 3D landmarks, the identity reference and its
descriptor):

* ``mirror`` (seed 000's trick): the head at pose ``(y, p, r)`` turned to ``(-y, p, -r)``. The ground
  truth is the photo mirrored left-right, aligned on the template by the mirrored landmarks (exact up to
  the face's own asymmetry and the light's).
* ``free``: a random target yaw 20-60 degrees away from the source (and a pitch change of up to 10), with
  no ground truth: only the identity, pose and adversarial losses see it.
* ``cycle`` (back-projection, as Rotate-and-Render does): the ``free`` output is reconstructed again and
  rotated back to the source pose; the ground truth is the original photo, pixel for pixel, and the input
  carries the artefacts a real rotation by that angle makes (torn cheek, smeared hair, diffused holes).

Items are ``3 * photo + kind`` (:data:`KINDS`); a view whose reconstruction or rotation fails is recorded
as skipped. Progress is kept in chunks (:class:`recon3d.data._chunks.ChunkStore`, compressed) plus
``config.json``: a killed run, a larger ``n`` or ``shard=(k, m)`` processes sharing one folder compute
only what is missing; :func:`load_rotation_pairs` merges them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..conventions import IBUG68_MIRROR
from ..errors import Recon3DError
from ._chunks import ChunkedSamples, ChunkStore, build_photo_chunks, check_build_args, load_chunked
from .splits import hash32

__all__ = ["RotationPairs", "KINDS", "RES", "PAD", "SMALL", "CACHE_VERSION", "rotation_samples", "mirror_sample",
           "free_target", "prepare_photo", "build_rotation_pairs", "load_rotation_pairs", "rotation_pairs_size", "interleave"]

log = logging.getLogger(__name__)

CACHE_VERSION = 1
#: side of the refiner's frame
RES = 128
#: reflection padding of small aligned crops before the reconstruction
PAD = 32
#: photos whose longer side is at most this are taken as aligned crops and padded
SMALL = 160
KINDS = ("mirror", "free", "cycle")


def _fields(res: int) -> dict:
    return {"warp": ((3, res, res), np.uint8), "source": ((3, res, res), np.uint8),
            "ident": ((3, res, res), np.uint8), "target": ((3, res, res), np.uint8),
            "masks": ((3, res, res), bool),  # filled, face, target valid
            "lmk_src": ((68, 3), np.float32), "lmk_tgt": ((68, 3), np.float32),
            "emb": ((128,), np.float32), "pose": ((2, 3), np.float32), "kind": ((), np.int64)}


class RotationPairs(ChunkedSamples):
    """Merged samples (arrays of :func:`rotation_samples`, stacked; items sorted).

    Attributes:
        items: ``(M,)`` item numbers (``3 * photo + kind``).
        arrays: ``{field: (M, ...)}``: ``warp``, ``source``, ``ident``, ``target`` uint8 ``(3, R, R)``;
            ``masks`` bool ``(3, R, R)`` (no source, face, target valid); ``lmk_src``, ``lmk_tgt`` ``(68, 3)``;
            ``emb`` ``(128,)`` the source's identity descriptor; ``pose`` ``(2, 3)`` source and target
            (yaw, pitch, roll) degrees; ``kind`` index into :data:`KINDS`.
        skipped: ``{item: reason}``.
        meta: the settings.
    """


def interleave(groups: list[list[Path]]) -> list[Path]:
    """Round-robin merge of several photo lists (a partial build then mixes every source)."""
    out: list[Path] = []
    for k in range(max((len(g) for g in groups), default=0)):
        out.extend(g[k] for g in groups if k < len(g))
    return out


def _u8(a: np.ndarray) -> np.ndarray:
    return (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)


def _view(rec, result, res: int, emb_net) -> dict:
    import torch

    from ..edit._learned_rotate import frame_inputs
    from ..nn.identity import embed_aligned

    fi = frame_inputs(rec, result, res)
    emb = embed_aligned(torch.from_numpy(fi.ident[None] * 2 - 1), emb_net)[0]
    return {"fi": fi, "warp": _u8(fi.warp), "source": _u8(fi.source), "ident": _u8(fi.ident),
            "lmk_src": fi.lmk_src, "lmk_tgt": fi.lmk_tgt, "emb": emb.astype(np.float32)}


def _item(v: dict, target: np.ndarray | None, valid: np.ndarray | None, pose_src, pose_tgt, kind: int, res: int):
    fi = v["fi"]
    if target is None:
        target, valid = np.zeros((3, res, res), np.float32), np.zeros((res, res), bool)
    return {"warp": v["warp"], "source": v["source"], "ident": v["ident"], "target": _u8(target),
            "masks": np.stack([fi.filled, fi.face, valid]), "lmk_src": v["lmk_src"], "lmk_tgt": v["lmk_tgt"],
            "emb": v["emb"], "pose": np.asarray([pose_src, pose_tgt], np.float32), "kind": kind}


def prepare_photo(photo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(image, real)``: ``photo`` ``(H, W, 3)`` as float32, padded by reflection (:data:`PAD` px) when it is an
    aligned crop of at most :data:`SMALL` px, and ``(H', W', 1)`` float32, 1 on the photo's own pixels."""
    from .pseudo_labels import pad_reflect

    photo = np.asarray(photo, np.float32)
    h, w = photo.shape[:2]
    pad = PAD if max(h, w) <= SMALL else 0
    img = pad_reflect(photo, pad) if pad else photo
    real = np.zeros((*img.shape[:2], 1), np.float32)
    real[pad:pad + h, pad:pad + w] = 1
    return img, real


def mirror_sample(rec, img: np.ndarray, real: np.ndarray, *, res: int = RES, emb_net=None) -> dict:
    """The ``mirror`` sample of a reconstruction of ``img`` (``(H, W, 3)`` float, the photo ``rec`` was fitted
    to; ``real`` ``(H, W, 1)``: 1 on its real pixels, 0 on padding): the head turned from ``(y, p, r)`` to
    ``(-y, p, -r)``, the truth the mirrored photo aligned by the mirrored model landmarks.

    Raises:
        Recon3DError, ValueError: the rotation failed.
    """
    from ..edit._common import fit_tensors
    from ..edit._learned_fill import template_matrix
    from ..edit._learned_rotate import model_landmarks_px, to_frame
    from ..edit.rotate import rotate_face

    p0 = rec.pose_deg
    src = (p0["yaw"], p0["pitch"], p0["roll"])
    W = img.shape[1]
    r = rotate_face(rec, yaw_deg=-src[0], pitch_deg=src[1], roll_deg=-2 * src[2], absolute=True)
    v = _view(rec, r, res, emb_net)
    src_px, _ = model_landmarks_px(rec, fit_tensors(rec).verts_cam)
    mir = src_px[list(IBUG68_MIRROR)].copy()
    mir[:, 0] = (W - 1) - mir[:, 0]
    m = template_matrix(mir, res)
    tgt = to_frame(np.ascontiguousarray(img[:, ::-1]), m, res)
    valid = to_frame(np.ascontiguousarray(real[:, ::-1]), m, res)[0] > 0.999
    return _item(v, tgt, valid, src, (-src[0], src[1], -src[2]), 0, res)


def free_target(pose_deg: tuple[float, float, float], rng: np.random.Generator) -> tuple[float, float]:
    """The ``free`` sample's absolute target ``(yaw, pitch)``: 20-60 degrees of yaw away from the source (the
    other way when the +-70 limit would clip the turn below 15), pitch changed by up to 10."""
    y0, p0 = pose_deg[0], pose_deg[1]
    sign = 1.0 if rng.random() < 0.5 else -1.0
    yaw_t = float(np.clip(y0 + sign * rng.uniform(20, 60), -70, 70))
    if abs(yaw_t - y0) < 15:
        yaw_t = float(np.clip(y0 - sign * rng.uniform(20, 60), -70, 70))
    return yaw_t, float(np.clip(p0 + rng.uniform(-10, 10), -40, 40))


def rotation_samples(photo: np.ndarray, seed: int, *, res: int = RES, emb_net=None) -> dict[str, dict | str]:
    """The three samples of one photo.

    Args:
        photo: ``(H, W, 3)`` float RGB in [0, 1] (an aligned crop of at most :data:`SMALL` px is padded).
        seed: seeds the ``free`` target pose.
        res: the frame's side.
        emb_net: the identity network (default: the shipped one).

    Returns:
        ``{kind: sample arrays, or the reason it was skipped}`` for each of :data:`KINDS`.
    """
    from ..edit._learned_rotate import to_frame
    from ..edit.rotate import rotate_face
    from ..reconstruct import ReconstructConfig, reconstruct
    img, real = prepare_photo(photo)
    cfg = ReconstructConfig(fast=True, texture_size=128)
    out: dict[str, dict | str] = {}
    fails = (Recon3DError, ValueError, np.linalg.LinAlgError)
    try:
        rec = reconstruct(img, config=cfg)
    except Recon3DError as e:
        return {k: f"{type(e).__name__}: {e}" for k in KINDS}
    p0 = rec.pose_deg
    src = (p0["yaw"], p0["pitch"], p0["roll"])
    try:
        out["mirror"] = mirror_sample(rec, img, real, res=res, emb_net=emb_net)
    except fails as e:
        out["mirror"] = f"{type(e).__name__}: {e}"
    yaw_t, pitch_t = free_target(src, np.random.default_rng(hash32(f"rotation-pairs:{seed}")))
    try:
        rf = rotate_face(rec, yaw_deg=yaw_t, pitch_deg=pitch_t, absolute=True)
        out["free"] = _item(_view(rec, rf, res, emb_net), None, None, src, (yaw_t, pitch_t, src[2]), 1, res)
    except fails as e:
        out["free"] = out["cycle"] = f"{type(e).__name__}: {e}"
        return out
    # cycle: the turned photo reconstructed again and turned back; the truth is the photo itself
    try:
        rec2 = reconstruct(np.ascontiguousarray(rf.image.detach().cpu().numpy().astype(np.float32)), config=cfg)
        v = _view(rec2, rotate_face(rec2, yaw_deg=src[0], pitch_deg=src[1], absolute=True), res, emb_net)
        m = v["fi"].matrix
        valid = to_frame(real, m, res)[0] > 0.999
        p2 = rec2.pose_deg
        out["cycle"] = _item(v, to_frame(img, m, res), valid, (p2["yaw"], p2["pitch"], p2["roll"]), src, 2, res)
    except fails as e:
        out["cycle"] = f"{type(e).__name__}: {e}"
    return out


def rotation_pairs_size(out_dir: str | os.PathLike) -> tuple[int, int]:
    """``(samples, skipped samples)`` of a :func:`build_rotation_pairs` folder (from the chunks' indices)."""
    ok, sk = ChunkStore(Path(out_dir).expanduser(), _fields(RES)).index()
    return len(ok), len(sk)


def build_rotation_pairs(photos: list[Path], out_dir: str | os.PathLike, *, n: int | None = None,
                         chunk: int = 10, shard: tuple[int, int] = (0, 1), seed: int = 0,
                         progress: bool = True) -> int:
    """Build the samples of the first ``n`` of ``photos`` (all when None) into ``out_dir``.

    Args:
        photos: the photo files, in a stable order (the item numbers follow it).
        out_dir: the cache folder; progress already there is kept.
        n: how many photos.
        chunk: photos per chunk file.
        shard: ``(k, m)``: this process does the photos ``i`` with ``i % m == k``.
        seed: seeds the random target poses.
        progress: show a tqdm bar.

    Returns:
        The number of photos this call processed.

    Raises:
        Recon3DError: the folder holds progress made with other settings.
        ValueError: bad ``n``, ``chunk`` or ``shard``, or no photos.
    """
    from ..nn.identity import load_identity_net

    check_build_args("build_rotation_pairs()", n, chunk, shard)
    photos = [Path(p) for p in photos][: n if n is not None else None]
    config = {"version": CACHE_VERSION, "res": RES, "pad": PAD, "seed": int(seed),
              "photos": hash32("\n".join(p.name for p in photos[:64]))}
    return build_photo_chunks(
        "build_rotation_pairs()", photos, out_dir, config, _fields(RES), KINDS,
        lambda photo, i, net: rotation_samples(photo, seed * 1_000_003 + i, emb_net=net),
        n=n, chunk=chunk, shard=shard, desc="rotation pairs", progress=progress, setup=load_identity_net)


def load_rotation_pairs(out_dir: str | os.PathLike) -> RotationPairs:
    """Merge a :func:`build_rotation_pairs` folder.

    Raises:
        Recon3DError: no ``config.json`` or no sample yet.
    """
    return load_chunked(out_dir, lambda m: _fields(int(m.get("res", RES))), "rotation pair", "make_rotation_pairs",
                        RotationPairs)
