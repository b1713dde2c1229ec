"""Square face crop boxes around landmarks, and the crops themselves: one home for every caller.

All boxes share one core, :func:`_centre_extent`: the centre of the landmarks' bounding box and
its longer side. The variants differ only in what the callers need, and each keeps its callers'
numbers bit for bit:

* :func:`crop_box_from_landmarks`: float ``[x0, y0, x1, y1]``, side ``scale`` (default
  :data:`LANDMARK_CROP_SCALE`) times the longer side; the detector's and landmark regressor's box
  (training views and inference).
* :func:`square_box`: the same box as float ``(x0, y0, side)`` computed in float64 (the occluder
  network's box, turned by :func:`crop_rotated`).
* :func:`integer_crop_boxes`: batched torch ``(x0, y0, side)`` rounded to the nearest pixel (the
  photometric fitter's crop).
* :func:`pixel_square`: an integer square placed over a given ``[x0, y0, x1, y1]`` box (side
  rounded up, corner down), the landmark regressor's crop of the box it is handed.

Crops: :func:`crop_square_resized` (integer square, zero padded, resized and its centre kept; the
regressor) and :func:`crop_rotated` / :func:`uncrop_rotated` (bilinear crop turned by an angle and
its inverse; the occluder network).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .._checks import check_shapes

__all__ = ["LANDMARK_CROP_SCALE", "crop_box_from_landmarks", "square_box", "integer_crop_boxes", "pixel_square",
           "crop_square_resized", "roll_angle", "affine_for_box", "crop_rotated", "uncrop_rotated"]

#: crop side = LANDMARK_CROP_SCALE x max(width, height) of the 68-landmark box (the detector's and
#: the landmark regressor's box, in training and at inference)
LANDMARK_CROP_SCALE = 1.5


def _centre_extent(lmk):
    """Centre ``(..., 2)`` and longer side ``(...)`` of the bounding box of ``(..., L, 2)`` points
    (numpy or torch, in the input's dtype)."""
    if isinstance(lmk, torch.Tensor):
        lo, hi = lmk.amin(-2), lmk.amax(-2)
        return 0.5 * (lo + hi), (hi - lo).amax(-1)
    lo, hi = lmk.min(-2), lmk.max(-2)
    return 0.5 * (lo + hi), (hi - lo).max(-1)


def crop_box_from_landmarks(lmk: np.ndarray, scale: float = LANDMARK_CROP_SCALE) -> np.ndarray:
    """Square ``[x0, y0, x1, y1]`` box of side ``scale * max(w, h)`` centred on the landmark box.

    >>> crop_box_from_landmarks(np.array([[0.0, 0.0], [10.0, 20.0]])).tolist()
    [-10.0, -5.0, 20.0, 25.0]
    """
    c, ext = _centre_extent(lmk)
    side = scale * float(ext)
    return np.array([c[0] - side / 2, c[1] - side / 2, c[0] + side / 2, c[1] + side / 2], dtype=np.float64)


def square_box(lmk: np.ndarray, scale: float) -> np.ndarray:
    """``(x0, y0, side)`` float64 square box of side ``scale * max(w, h)`` around ``(L, 2)`` points.

    >>> square_box(np.array([[0.0, 0.0], [10.0, 20.0]]), 1.0).tolist()
    [-5.0, 0.0, 20.0]
    """
    c, ext = _centre_extent(np.asarray(lmk, dtype=np.float64))
    side = scale * float(ext)
    return np.array([c[0] - side / 2, c[1] - side / 2, side])


def integer_crop_boxes(lmk_px: torch.Tensor, scale: float = 1.4) -> torch.Tensor:
    """Square integer crop boxes around landmarks: ``(B, 3)`` int64 = (x0, y0, side) pixels.

    The box is centred on the landmarks' bounding box, its side ``scale`` times the longer side,
    rounded to the nearest pixel (at least 8).

    >>> integer_crop_boxes(torch.tensor([[[10.0, 20.0], [30.0, 60.0]]]), 1.0).tolist()
    [[0, 20, 40]]
    """
    check_shapes("crop_boxes()", lmk_px=(lmk_px, "B L 2"))
    c, ext = _centre_extent(lmk_px)
    side = (scale * ext).round().clamp(min=8)
    x0 = (c[:, 0] - 0.5 * side).round()
    y0 = (c[:, 1] - 0.5 * side).round()
    return torch.stack([x0, y0, side], -1).long()


def pixel_square(box_xyxy: np.ndarray, min_side: int = 8) -> tuple[int, int, int]:
    """Integer ``(x0, y0, side)`` square over a float ``[x0, y0, x1, y1]`` box: the side is the
    box width rounded up (at least ``min_side``), centred on the box and rounded down.

    >>> pixel_square(np.array([0.5, 0.5, 10.2, 10.2]))
    (0, 0, 10)
    """
    side = max(int(math.ceil(box_xyxy[2] - box_xyxy[0])), min_side)
    x0 = int(math.floor((box_xyxy[0] + box_xyxy[2]) / 2 - side / 2))
    y0 = int(math.floor((box_xyxy[1] + box_xyxy[3]) / 2 - side / 2))
    return x0, y0, side


def crop_square_resized(image: torch.Tensor, box_xyxy: np.ndarray, size: int,
                        keep: int) -> tuple[torch.Tensor, tuple[float, float, float]]:
    """The :func:`pixel_square` of ``box_xyxy`` cut from an ``(H, W, 3)`` image (zeros outside),
    resized to ``size`` (bilinear, antialiased when shrinking) and its central ``keep`` pixels kept.

    Returns:
        ``(1, 3, keep, keep)`` float32 and the square ``(x0, y0, side)`` as floats.
    """
    H, W = image.shape[:2]
    x0, y0, side = pixel_square(box_xyxy)
    patch = torch.zeros(side, side, 3, dtype=torch.float32, device=image.device)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + side, W), min(y0 + side, H)
    if sx1 > sx0 and sy1 > sy0:
        patch[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1].float()
    x = patch.permute(2, 0, 1)[None]
    if side != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=side > size)
    m = (size - keep) // 2
    return x[:, :, m:m + keep, m:m + keep], (float(x0), float(y0), float(side))


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


def affine_for_box(box: np.ndarray, H: int, W: int, angle: float = 0.0) -> torch.Tensor:
    """``affine_grid`` theta mapping the crop's normalised coords to the image's (align_corners=False)
    for an ``(x0, y0, side)`` box; the crop is turned by ``angle`` (radians) about its centre."""
    x0, y0, s = (float(v) for v in box)
    cx, cy = x0 + s / 2, y0 + s / 2
    c, n = math.cos(angle), math.sin(angle)
    return torch.tensor([[s * c / W, -s * n / W, 2 * cx / W - 1], [s * n / H, s * c / H, 2 * cy / H - 1]],
                        dtype=torch.float32)


def crop_rotated(image: np.ndarray | torch.Tensor, box: np.ndarray, size: int, angle: float = 0.0) -> torch.Tensor:
    """``(3, size, size)`` bilinear crop of an ``(H, W, 3)`` [0, 1] image (zeros outside) to an
    ``(x0, y0, side)`` box, prefiltered when the box is much larger than ``size``; ``angle`` turns
    the crop's axes (radians, e.g. :func:`roll_angle` to make a tilted face upright)."""
    img = torch.as_tensor(np.asarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
    H, W = img.shape[-2:]
    f = float(box[2]) / size
    if f > 1.5:  # antialias: shrink the whole image first so the crop samples ~1 pixel per pixel
        k = int(math.floor(f))
        img = F.avg_pool2d(img, k, ceil_mode=True)
    grid = F.affine_grid(affine_for_box(box, H, W, angle)[None], [1, 3, size, size], align_corners=False)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]


def uncrop_rotated(prob: torch.Tensor, box: np.ndarray, H: int, W: int, angle: float = 0.0) -> np.ndarray:
    """Map a ``(S, S)`` crop map (made by :func:`crop_rotated` with the same ``box`` and ``angle``)
    back to ``(H, W)`` (0 outside the box)."""
    x0, y0, s = (float(v) for v in box)
    S = prob.shape[-1]
    dx = (torch.arange(W, dtype=torch.float32) + 0.5 - (x0 + s / 2)) / s * 2
    dy = (torch.arange(H, dtype=torch.float32) + 0.5 - (y0 + s / 2)) / s * 2
    gy, gx = torch.meshgrid(dy, dx, indexing="ij")
    c, n = math.cos(angle), math.sin(angle)
    grid = torch.stack([c * gx + n * gy, -n * gx + c * gy], -1)[None]  # image offset -> crop axes
    out = F.grid_sample(prob.reshape(1, 1, S, S).float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out[0, 0].numpy()
