"""Loss terms of the fitter. Pure, differentiable, each returns a per-sample ``(B,)`` tensor.

The fitter weights and sums them with :class:`~recon3d.fitting.FitConfig` (STYLE.md §6).
"""

from __future__ import annotations

import torch

from .._checks import check_shapes
from ..errors import ShapeError

__all__ = [
    "huber",
    "face_size_px",
    "landmark_loss",
    "gaussian_prior",
    "robust_sigma",
    "geman_mcclure",
    "photometric_loss",
]

#: Landmark residuals are expressed in pixels of a face whose landmark-box diagonal is this long.
REF_FACE_DIAG_PX = 200.0


def huber(x: torch.Tensor, delta: float) -> torch.Tensor:
    """Huber penalty of non-negative magnitudes ``x`` (any shape): ``x^2`` below ``delta``,
    ``2 delta x - delta^2`` above (continuous, C1, quadratic scale).

    >>> huber(torch.tensor([1.0, 3.0]), 2.0).tolist()
    [1.0, 8.0]
    """
    return torch.where(x <= delta, x * x, 2.0 * delta * x - delta * delta)


def face_size_px(lmk_px: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Diagonal of the bounding box of the landmarks with positive weight, ``(B,)`` pixels.

    >>> face_size_px(torch.tensor([[[0.0, 0.0], [30.0, 40.0]]])).tolist()
    [50.0]
    """
    check_shapes("face_size_px()", lmk_px=(lmk_px, "B L 2"), weight=(weight, "B L"))
    if weight is None:
        lo, hi = lmk_px.amin(1), lmk_px.amax(1)
    else:
        big = torch.finfo(lmk_px.dtype).max
        on = (weight > 0)[..., None]
        lo = torch.where(on, lmk_px, torch.full_like(lmk_px, big)).amin(1)
        hi = torch.where(on, lmk_px, torch.full_like(lmk_px, -big)).amax(1)
    return (hi - lo).norm(dim=-1).clamp(min=1e-6)


def landmark_loss(lmk_pred_px: torch.Tensor, lmk_px: torch.Tensor, *, weight: torch.Tensor | None = None,
                  face_size: torch.Tensor | None = None, huber_px: float | None = 4.0) -> torch.Tensor:
    """Weighted mean Huber landmark distance, scale-normalised.

    Per landmark: ``huber(||pred - target|| * 200 / face_size, huber_px)`` (plain squared
    distance when ``huber_px`` is None), averaged with ``weight``.

    Args:
        lmk_pred_px: ``(B, L, 2)`` predicted landmarks, pixels.
        lmk_px: ``(B, L, 2)`` target landmarks, pixels.
        weight: ``(B, L)`` non-negative per-landmark weights (default 1).
        face_size: ``(B,)`` face size in pixels (default: :func:`face_size_px` of the target).
        huber_px: Huber threshold in reference-face pixels.

    Returns:
        ``(B,)`` loss (squared reference pixels).

    >>> t = torch.zeros(1, 2, 2)
    >>> p = torch.tensor([[[3.0, 4.0], [0.0, 0.0]]])
    >>> landmark_loss(p, t, face_size=torch.tensor([200.0]), huber_px=None).tolist()
    [12.5]
    """
    check_shapes("landmark_loss()", lmk_pred_px=(lmk_pred_px, "B L 2"), lmk_px=(lmk_px, "B L 2"), weight=(weight, "B L"))
    if face_size is None:
        face_size = face_size_px(lmk_px, weight)
    d = (lmk_pred_px - lmk_px).norm(dim=-1) * (REF_FACE_DIAG_PX / face_size)[:, None]
    rho = d * d if huber_px is None else huber(d, huber_px)
    if weight is None:
        return rho.mean(1)
    return (rho * weight).sum(1) / weight.sum(1).clamp(min=1e-12)


def gaussian_prior(coeffs: torch.Tensor) -> torch.Tensor:
    """Negative log of the N(0, 1) coefficient prior up to constants: ``sum(c^2)``, ``(B,)``.

    >>> gaussian_prior(torch.tensor([[1.0, 2.0]])).tolist()
    [5.0]
    """
    if coeffs.dim() != 2:
        raise ShapeError(f"gaussian_prior(): coeffs must be (B, N), got {tuple(coeffs.shape)}")
    return (coeffs * coeffs).sum(1)


def robust_sigma(residual: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Robust scale ``1.4826 * weighted median(residual)`` per sample, ``(B,)``.

    Args:
        residual: ``(B, N)`` non-negative residual magnitudes.
        weight: ``(B, N)`` where > 0 the residual counts.

    >>> robust_sigma(torch.tensor([[1.0, 2.0, 3.0, 100.0]]), torch.ones(1, 4)).tolist()
    [3.7065000534057617]
    """
    check_shapes("robust_sigma()", residual=(residual, "B N"), weight=(weight, "B N"))
    r = torch.where(weight > 0, residual, torch.full_like(residual, float("nan")))
    return (1.4826 * torch.nanquantile(r.detach(), 0.5, dim=1, interpolation="midpoint")).nan_to_num(1.0).clamp(min=1e-4)


def geman_mcclure(r: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Geman-McClure penalty ``r^2 / (r^2 + sigma^2)`` in [0, 1): quadratic for ``r << sigma``,
    bounded for outliers, so an outlier's pull vanishes.

    >>> geman_mcclure(torch.tensor([0.0, 1.0]), torch.tensor(1.0)).tolist()
    [0.0, 0.5]
    """
    r2 = r * r
    return r2 / (r2 + sigma * sigma)


def photometric_loss(rendered: torch.Tensor, image: torch.Tensor, weight: torch.Tensor, *, robust: str = "gm",
                     scale: float = 3.0) -> torch.Tensor:
    """Weighted per-pixel colour distance between a render and the image, ``(B,)``.

    ``e_p = ||rendered_p - image_p||_2`` over RGB. ``robust="l2"``: weighted mean of ``e_p^2``.
    ``robust="gm"``: weighted mean of ``c^2 * GM(e_p, c)`` with ``c = scale * robust_sigma(e)``
    (detached), which equals ``e_p^2`` for small residuals and saturates at ``c^2`` so occluders
    (hair, hands, glasses) stop pulling the fit.

    Args:
        rendered: ``(B, H, W, 3)``.
        image: ``(B, H, W, 3)``.
        weight: ``(B, H, W)`` per-pixel weight (rendered face region times coverage).
        robust: ``"gm"`` or ``"l2"``.
        scale: Geman-McClure scale in robust sigmas.

    >>> img = torch.zeros(1, 1, 2, 3)
    >>> ren = torch.tensor([[[[0.1, 0.0, 0.0], [0.0, 0.0, 0.0]]]])
    >>> round(photometric_loss(ren, img, torch.ones(1, 1, 2), robust="l2").item(), 6)
    0.005
    """
    check_shapes("photometric_loss()", rendered=(rendered, "B H W C"), image=(image, "B H W C"), weight=(weight, "B H W"))
    e = (rendered - image).square().sum(-1).add(1e-12).sqrt().flatten(1)
    w = weight.flatten(1)
    if robust == "l2":
        rho = e * e
    elif robust == "gm":
        c = scale * robust_sigma(e, w)[:, None]
        rho = c * c * geman_mcclure(e, c)
    else:
        raise ValueError(f"photometric_loss(): robust must be 'gm' or 'l2', got {robust!r}")
    return (rho * w).sum(1) / w.sum(1).clamp(min=1e-6)
