"""The learned rotation refiner's frame (:func:`recon3d.edit.rotate.rotate_views` with ``refine="net"``).

The refiner (:mod:`recon3d.nn.rotate_refine`) works on a ``res``² crop aligned on the face template
(:data:`recon3d.ops.align.TEMPLATE_68`) by the landmarks of the *rotated* mesh, the target frame. In it
:func:`frame_inputs` gathers:

* ``warp``: recon3d's 3D-guided rotation (the warp plus the relit render) of the photo;
* ``source``: the source photo aligned to the target frame by its better-exposed half (thesis 3.3.1:
  the side of the face whose landmark box is larger in the photo, fitted by a similarity onto the same
  landmarks at the target pose), the input of the pixel attention sampling;
* ``filled`` (pixels with no source in the photo, filled by diffusion) and ``face`` (the rendered face);
* ``lmk_src`` / ``lmk_tgt``: the 68 model landmarks at the source and at the target pose in the frame,
  ``x, y`` in [-1, 1] and depth in the same unit (the conditioning of the refiner's CIN layers);
* ``ident``: the source photo aligned by its own landmarks (for the identity reference).

:func:`refine_rotation` runs the network and pastes its *correction* back into the photo: the
photo-resolution warp plus the upsampled difference (refined - warp) under a feathered mask, so the
warp's fine detail survives where the refiner agrees with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..camera import project_points
from ..conventions import IBUG68_MIRROR
from ..ops.align import similarity_transform
from ..ops.morphology import erode
from ._common import fit_tensors, to_numpy
from ._learned_fill import template_matrix, warp_affine

__all__ = ["FrameInputs", "frame_inputs", "to_frame", "model_landmarks_px", "refine_rotation", "HALF_RIGHT", "HALF_LEFT"]

#: iBUG-68 indices of the subject's right half of the face (image left in a frontal photo), the nose ridge
#: and the centre of the mouth included; :data:`HALF_LEFT` is its mirror
HALF_RIGHT = tuple(list(range(0, 9)) + list(range(17, 22)) + [27, 28, 29, 30, 31, 32, 33] + list(range(36, 42))
                   + [48, 49, 50, 51, 57, 58, 59, 60, 61, 62, 66, 67])
HALF_LEFT = tuple(IBUG68_MIRROR[i] for i in HALF_RIGHT)


@dataclass
class FrameInputs:
    """The refiner's inputs for one rotated view (float32 numpy, channels first, [0, 1] images).

    Attributes:
        matrix: ``(3, 3)`` photo pixels -> frame pixels (0-based centres).
        warp, source, ident: ``(3, R, R)``.
        filled, face: ``(R, R)`` bool.
        lmk_src, lmk_tgt: ``(68, 3)``.
        lmk_tgt_px: ``(68, 2)`` target landmarks in photo pixels.
    """

    matrix: np.ndarray
    warp: np.ndarray
    source: np.ndarray
    ident: np.ndarray
    filled: np.ndarray
    face: np.ndarray
    lmk_src: np.ndarray
    lmk_tgt: np.ndarray
    lmk_tgt_px: np.ndarray


def model_landmarks_px(rec, verts_cam: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """``(68, 2)`` pixels and ``(68,)`` camera-frame depths of the model landmarks of ``verts_cam`` ``(V, 3)``."""
    ft = fit_tensors(rec)
    X = rec.model.landmarks(verts_cam[None].to(rec.model.mean.dtype)).to(ft.K.dtype)
    px = project_points(X, ft.K)[0]
    return to_numpy(px).astype(np.float64), to_numpy(X[0, :, 2]).astype(np.float64)


def _half(px: np.ndarray) -> tuple[int, ...]:
    """The better-exposed half: the one whose landmark box is larger."""
    def area(idx):
        p = px[list(idx)]
        return float(np.ptp(p[:, 0]) * np.ptp(p[:, 1]))
    return HALF_RIGHT if area(HALF_RIGHT) >= area(HALF_LEFT) else HALF_LEFT


def _norm3(px: np.ndarray, z: np.ndarray, m: np.ndarray, focal: float, res: int) -> np.ndarray:
    """Landmarks mapped by ``m`` into the frame: x, y in [-1, 1]; depth relative to the landmarks' mean, in the
    same unit (perspective scale ``focal / mean depth`` times the similarity's scale)."""
    xy = px @ m[:2, :2].T + m[:2, 2]
    s = float(np.sqrt(abs(np.linalg.det(m[:2, :2]))))
    zz = (z - z.mean()) * focal / max(float(z.mean()), 1e-6) * s
    return np.concatenate([xy / res * 2 - 1, (zz / res * 2)[:, None]], 1).astype(np.float32)


def to_frame(img_hwc: np.ndarray, m: np.ndarray, res: int) -> np.ndarray:
    """``(H, W, C)`` image -> ``(C, res, res)`` float32 numpy, sampled where ``m`` (photo -> frame) sends it."""
    t = torch.from_numpy(np.ascontiguousarray(np.asarray(img_hwc, np.float32).transpose(2, 0, 1)))[None]
    return to_numpy(warp_affine(t, np.linalg.inv(m), (res, res))[0])


def frame_inputs(rec, result, res: int = 128) -> FrameInputs:
    """The refiner's inputs for ``result`` (a :class:`~recon3d.edit.rotate.RotateResult` of ``rec``)."""
    ft = fit_tensors(rec)
    focal = float(ft.K[0, 0, 0])
    photo = to_numpy(rec.image).astype(np.float32)
    src_px, src_z = model_landmarks_px(rec, ft.verts_cam)
    tgt_px, tgt_z = model_landmarks_px(rec, result.verts_cam)
    m = template_matrix(tgt_px, res)
    half = list(_half(src_px))
    m_src = m @ similarity_transform(src_px[half], tgt_px[half])  # source photo -> frame
    masks = np.stack([to_numpy(result.filled), to_numpy(result.mask)], -1).astype(np.float32)
    mk = to_frame(masks, m, res)
    return FrameInputs(
        matrix=m, warp=to_frame(to_numpy(result.image), m, res), source=to_frame(photo, m_src, res),
        ident=to_frame(photo, template_matrix(src_px, res), res), filled=mk[0] > 0.5, face=mk[1] > 0.5,
        lmk_src=_norm3(src_px, src_z, m_src, focal, res), lmk_tgt=_norm3(tgt_px, tgt_z, m, focal, res),
        lmk_tgt_px=tgt_px)


@torch.no_grad()
def refine_rotation(net, rec, result, *, identity_net=None) -> tuple[np.ndarray, np.ndarray]:
    """Refine one rotated view with the learned refiner.

    Args:
        net: a :class:`~recon3d.nn.rotate_refine.RotationRefiner` (eval mode; its device is used).
        rec: the reconstruction.
        result: its :class:`~recon3d.edit.rotate.RotateResult`.
        identity_net: the identity network for the source embedding (default: the shipped one).

    Returns:
        ``(image (H, W, 3) float32 in [0, 1], changed (H, W) bool)``: the refined photo and where the
        refiner's correction was pasted.
    """
    from ..nn.identity import embed_aligned

    res = int(net.res)
    dev = next(net.parameters()).device
    fi = frame_inputs(rec, result, res)

    def t(a):
        return torch.from_numpy(np.ascontiguousarray(a, np.float32))[None].to(dev)

    warp = t(fi.warp * 2 - 1)
    emb = torch.from_numpy(embed_aligned(t(fi.ident * 2 - 1), identity_net)).float()
    out = net(warp, t(fi.source * 2 - 1), t(np.stack([fi.filled, fi.face]).astype(np.float32)),
              t(fi.lmk_src), t(fi.lmk_tgt), emb.to(dev))
    delta = ((out - warp) / 2).float()
    img = to_numpy(result.image).astype(np.float32)
    H, W = img.shape[:2]
    # the frame's support, feathered inwards so the correction fades out before the crop's edge
    inside = erode(np.ones((res, res), bool), max(2, res // 32))
    feather = torch.from_numpy(inside.astype(np.float32))[None, None]
    feather = F.avg_pool2d(F.pad(feather, (4,) * 4), 9, 1)
    back = to_numpy(warp_affine(torch.cat([delta, feather.to(delta)], 1), fi.matrix, (H, W))[0])
    alpha = np.where(back[3] > 1e-3, back[3], 0.0)
    out_img = np.clip(img + back[:3].transpose(1, 2, 0) * alpha[..., None], 0, 1).astype(np.float32)
    return np.where(alpha[..., None] > 0, out_img, img), alpha > 0
