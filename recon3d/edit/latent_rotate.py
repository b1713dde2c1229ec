"""Rotate a face in the StyleGAN2 prior's latent space (seed 000): ``rotate --method latent``.

:func:`latent_rotate` aligns the photo's face onto recon3d's template at the prior's resolution
(:func:`recon3d.ops.align.align_face`), inverts it into W+ (:func:`recon3d.nn.inversion.invert`, the W* of seed
000), reads its yaw with recon3d's landmark regressor, and for every target yaw adds the pose encoder's change
(:func:`recon3d.nn.latent_pose.edit_latents`) and renders it with the same noise the inversion used. Every
output carries the pose our regressor reads on it and the cosine of our identity network's descriptors of the
output and the input face.

Unlike the 3D rotation (:mod:`recon3d.edit.rotate`), this works on the aligned face crop only, at the prior's
resolution (64x64 for the shipped StyleGAN2): no background, no mesh. The prior only knows the poses it saw
(most of its faces within about +-22 degrees of yaw); the measured pose says how far an edit got.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import AssetError, NoFaceError, ShapeError
from ._common import to_numpy

__all__ = ["LatentView", "LatentRotation", "latent_rotate"]


@dataclass
class LatentView:
    """One edit: ``image`` ``(R, R, 3)`` float in [0, 1] (template-aligned face at the prior's resolution), the
    ``target_yaw`` asked for (degrees, absolute), ``pose_deg`` ``[yaw, pitch, roll]`` our regressor reads on it and
    ``identity_cos`` to the input face (our identity network)."""

    image: torch.Tensor
    target_yaw: float
    pose_deg: list[float]
    identity_cos: float

    def summary(self) -> dict:
        return {"target_yaw": round(self.target_yaw, 2), "pose_measured_deg": [round(v, 2) for v in self.pose_deg],
                "identity_cos": round(self.identity_cos, 4)}


@dataclass
class LatentRotation:
    """The aligned input ``face`` and its ``inverted`` reconstruction (``(R, R, 3)`` in [0, 1]), the input's
    ``pose_deg`` (our regressor), the inversion's ``inversion_identity_cos``, its latents ``ws`` ``(L, W)``, the
    landmarks ``lmk_px`` it was aligned with, and one :class:`LatentView` per target."""

    face: torch.Tensor
    inverted: torch.Tensor
    pose_deg: list[float]
    inversion_identity_cos: float
    ws: torch.Tensor
    lmk_px: np.ndarray
    views: list[LatentView] = field(default_factory=list)

    def summary(self) -> dict:
        return {"pose_deg": [round(v, 2) for v in self.pose_deg],
                "inversion_identity_cos": round(self.inversion_identity_cos, 4),
                "views": [v.summary() for v in self.views]}


def _cosines(net, faces: torch.Tensor) -> np.ndarray:
    """Cosine of every face's descriptor to the first one's (``faces`` ``(N, 3, R, R)`` aligned, in [-1, 1])."""
    from ..nn.identity import embed_aligned

    e = embed_aligned(faces.float(), net)
    n = np.linalg.norm(e, axis=1).clip(1e-12)
    return (e @ e[0]) / (n * n[0])


def _poses(regressor, faces: torch.Tensor) -> list[list[float]]:
    from ..ops.align import TEMPLATE_68
    from ..ops.crop import crop_box_from_landmarks

    res = faces.shape[-1]
    box = crop_box_from_landmarks(TEMPLATE_68 * res - 0.5)
    imgs = to_numpy(((faces + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1)).astype(np.float32)
    return [[float(v) for v in regressor(im, box).pose_deg] for im in imgs]


def latent_rotate(image, yaws, *, lmk_px=None, absolute: bool = False, frontal: bool = False, encoder_weights: str | os.PathLike | None = None,
                  generator_weights: str | os.PathLike | None = None, steps: int = 300,
                  device: str | torch.device | None = None, detector: str = "dlib") -> LatentRotation:
    """Turn the largest face of ``image`` to each yaw of ``yaws`` in the StyleGAN2 latent space.

    Args:
        image: anything :func:`recon3d.io.load_image` reads: a path, or an ``(H, W, 3)`` float [0, 1] / uint8 array or tensor.
        yaws: target yaws in degrees: changes of the face's own yaw, or the target pose with ``absolute``.
        frontal: also turn it to yaw 0 (absolute), as the last view.
        lmk_px: ``(68, 2)`` landmarks of the face (input pixels); default: detected.
        encoder_weights: a latent pose encoder file (default: the shipped one).
        generator_weights: its StyleGAN2 prior (default: the shipped one); the encoder must have been trained with
            this prior (its metadata holds the prior's checksum).
        steps: inversion steps (300: the benchmarked default; fewer is faster and less faithful).
        device: where the networks run (default: the CPU).
        detector: the face detector when ``lmk_px`` is not given.

    Raises:
        NoFaceError: no face found.
        ShapeError: bad ``lmk_px`` or ``yaws``.
        ImageError: an image that cannot be read.
        AssetError: missing or bad weights, or an encoder trained for another prior.
    """
    from ..detect import detect_faces
    from ..io.image import load_image
    from ..nn.generation import generator_checksum, load_generator
    from ..nn.identity import load_identity_net
    from ..nn.inversion import InversionConfig, invert
    from ..nn.landmarks import POSE_REGRESSOR, frame_pose, load_regressor
    from ..nn.latent_pose import edit_latents, fixed_noise, load_latent_pose
    from ..ops.align import align_face

    yaw_list = [float(y) for y in np.atleast_1d(to_numpy(yaws)).ravel()]
    if not yaw_list or not all(np.isfinite(yaw_list)) or any(abs(y) > 90 for y in yaw_list):
        raise ShapeError(f"latent_rotate(): yaws must be finite degrees within [-90, 90], got {yaws!r}")
    if int(steps) != steps or steps < 1:
        raise ValueError(f"latent_rotate(): steps must be an integer >= 1, got {steps!r}")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    u8 = (np.clip(to_numpy(load_image(image).image), 0, 1) * 255 + 0.5).astype(np.uint8)
    if lmk_px is None:
        dets = detect_faces(u8, backend=detector)
        if not dets:
            raise NoFaceError("latent_rotate(): no face found")
        lmk_px = dets[0].lmk_px
    lmk = np.asarray(to_numpy(lmk_px), np.float64)
    if lmk.shape != (68, 2) or not np.isfinite(lmk).all():
        raise ShapeError(f"latent_rotate(): lmk_px must be finite (68, 2) pixels, got {lmk.shape}")

    G, _ = load_generator("stylegan2", generator_weights, device=dev)
    E, meta = load_latent_pose(encoder_weights, device=dev)
    if meta.get("generator") not in (None, generator_checksum(G)):
        raise AssetError(f"latent_rotate(): the pose encoder was trained for another StyleGAN2 prior "
                         f"({meta.get('generator')}); pass the generator it was trained with")
    face = torch.from_numpy(np.ascontiguousarray(align_face(u8, lmk, G.res))).float().div(127.5).sub(1)[None].to(dev)
    inv = invert(G, face, InversionConfig(steps=steps))
    regressor = load_regressor(POSE_REGRESSOR, device=dev)
    src = _poses(regressor, face)[0]
    with torch.no_grad():  # the encoder's source channel: the one-pass reading it was trained with
        src_enc = frame_pose(regressor.net, face)[:, 0]
    targets = torch.tensor([y if absolute else src[0] + y for y in yaw_list] + ([0.0] if frontal else []),
                           dtype=torch.float32, device=dev)
    k = len(targets)
    with torch.no_grad():
        ws = edit_latents(E, inv.ws.expand(k, -1, -1), face.expand(k, -1, -1, -1), targets, src_enc.expand(k))
        out = G.synthesis(ws, fixed_noise(G, k, InversionConfig().noise_seed, dev)).clamp(-1, 1)
    cos = _cosines(load_identity_net(device=dev), torch.cat([face, inv.image, out]))
    poses = _poses(regressor, out)

    def hwc(t: torch.Tensor) -> torch.Tensor:
        return ((t + 1) / 2).clamp(0, 1).permute(1, 2, 0).contiguous()

    views = [LatentView(hwc(out[i]), float(targets[i]), poses[i], float(cos[2 + i])) for i in range(k)]
    return LatentRotation(face=hwc(face[0]), inverted=hwc(inv.image[0]), pose_deg=src,
                          inversion_identity_cos=float(cos[1]), ws=inv.ws[0], lmk_px=lmk.astype(np.float32),
                          views=views)
