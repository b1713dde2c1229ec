"""The learned fill of :func:`recon3d.edit.deocclude.deocclude` (``fill="net"``): the photo, the hole and
the fitted 3DMM render are warped onto the face template (:data:`recon3d.ops.align.TEMPLATE_68`, the
frame the inpainter :mod:`recon3d.nn.inpaint` was trained in) at the network's side, inpainted, and the
result is warped back into the hole with the inverse similarity."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..ops.align import TEMPLATE_68, similarity_transform
from ..ops.metrics import gaussian_window
from ._common import to_numpy

__all__ = ["template_matrix", "warp_affine", "net_fill"]


def template_matrix(lmk_px: np.ndarray, res: int) -> np.ndarray:
    """``(3, 3)`` similarity from photo pixel coordinates (0-based centres) to those of the ``res``² aligned face."""
    m = similarity_transform(np.asarray(lmk_px, np.float64) + 0.5, TEMPLATE_68.astype(np.float64) * res)
    shift = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]])
    unshift = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    return shift @ m @ unshift


def warp_affine(src: torch.Tensor, out_to_src: np.ndarray, size: tuple[int, int], *,
                box: tuple[int, int, int, int] | None = None) -> torch.Tensor:
    """Sample ``src`` ``(B, C, H, W)`` bilinearly at ``out_to_src @ (x, y, 1)`` for every output pixel
    (0-based centres) of an ``size = (h, w)`` image, or only of ``box = (x0, y0, x1, y1)`` of it
    (then ``(B, C, y1 - y0, x1 - x0)``); 0 outside ``src``."""
    H, W = src.shape[-2:]
    x0, y0, x1, y1 = box if box is not None else (0, 0, size[1], size[0])
    ys, xs = torch.meshgrid(torch.arange(y0, y1, dtype=torch.float64), torch.arange(x0, x1, dtype=torch.float64),
                            indexing="ij")
    a = torch.as_tensor(out_to_src, dtype=torch.float64)
    sx = a[0, 0] * xs + a[0, 1] * ys + a[0, 2]
    sy = a[1, 0] * xs + a[1, 1] * ys + a[1, 2]
    grid = torch.stack([(sx + 0.5) / W * 2 - 1, (sy + 0.5) / H * 2 - 1], -1)[None].to(src)
    grid = grid.expand(src.shape[0], -1, -1, -1)
    return F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@torch.no_grad()
def net_fill(net, img: np.ndarray, hole: np.ndarray, render: np.ndarray, coverage: np.ndarray, lmk_px: np.ndarray,
             *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Inpaint ``hole`` of a photo with the learned fill.

    Args:
        net: an :class:`~recon3d.nn.inpaint.Inpainter` (eval mode; its device is used).
        img: ``(H, W, 3)`` float photo in [0, 1].
        hole: ``(H, W)`` bool, the pixels to replace.
        render: ``(H, W, 3)`` the fitted 3DMM render ``I_m`` (0 off the face).
        coverage: ``(H, W)`` bool, the render's face region ``M_m``.
        lmk_px: ``(68, 2)`` the photo's landmarks (0-based pixels).
        seed: seeds the hole's noise (the same photo gives the same fill).

    Returns:
        ``(filled (H, W, 3), covered (H, W) bool)``: the photo with the hole's pixels that fall inside the
        aligned frame replaced (``covered``); every other pixel is ``img``'s.
    """
    S = int(net.res)
    dev = next(net.parameters()).device
    H, W = hole.shape
    m = template_matrix(lmk_px, S)  # photo -> aligned
    inv = np.linalg.inv(m)
    scale = float(np.sqrt(abs(np.linalg.det(m[:2, :2]))))
    photo = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None].float()
    prior = torch.from_numpy(np.ascontiguousarray(render.transpose(2, 0, 1)))[None].float()
    if scale < 0.5:  # shrinking more than 2x: low-pass first so the bilinear samples do not alias
        sigma = 0.5 / scale
        k = int(2 * round(2 * sigma) + 1)
        kern = gaussian_window(k, sigma).expand(3, 1, k, k)
        photo = F.conv2d(F.pad(photo, (k // 2,) * 4, mode="replicate"), kern, groups=3)
        prior = F.conv2d(F.pad(prior, (k // 2,) * 4, mode="replicate"), kern, groups=3)
    hole_t = torch.from_numpy(hole.astype(np.float32))[None, None]
    a_img = warp_affine(photo, inv, (S, S))
    a_prior = warp_affine(prior, inv, (S, S))
    # every aligned pixel that touches the hole, grown by one more: the border values the fill starts from must
    # be free of the occluder (a bilinear sample at the hole's edge mixes it in)
    a_hole = F.max_pool2d((warp_affine(hole_t, inv, (S, S)) > 1e-3).float(), 3, 1, 1)
    a_cov = (warp_affine(torch.from_numpy(coverage.astype(np.float32))[None, None], inv, (S, S)) > 0.5).float()
    gen = torch.Generator().manual_seed(int(seed))
    out = net.inpaint((a_img * 2 - 1).to(dev), a_hole.to(dev), (a_prior * 2 - 1).to(dev), coverage=a_cov.to(dev),
                      generator=gen)
    out01 = ((out.float() + 1) / 2).clamp(0, 1)
    ys, xs = np.nonzero(hole)
    filled = img.copy()
    covered = np.zeros_like(hole)
    if not len(ys):
        return filled, covered
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    back = to_numpy(warp_affine(torch.cat([out01, torch.ones(1, 1, S, S, device=out01.device)], 1), m, (H, W), box=box)[0])
    x0, y0, x1, y1 = box
    inside = (back[3] > 0.999) & hole[y0:y1, x0:x1]
    region = filled[y0:y1, x0:x1]
    region[inside] = back[:3].transpose(1, 2, 0)[inside].astype(img.dtype)
    covered[y0:y1, x0:x1] = inside
    return filled, covered
