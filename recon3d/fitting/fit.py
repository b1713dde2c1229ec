"""The full fitter: pose initialisation, landmark fit, photometric refinement."""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import replace
from typing import Callable

import torch

from .. import render
from .._checks import check_shapes
from ..camera import matrix_to_axis_angle, pose_angles_to_matrix
from ..errors import ShapeError
from ..morphable.model import MorphableModel
from .landmarks import FitState, fit_landmarks, init_pose_from_landmarks
from .params import DEFAULT_CONFIG, FaceParams, FitConfig, FitResult, default_intrinsics
from .photometric import fit_photometric

__all__ = ["fit", "renderer_available"]

log = logging.getLogger(__name__)


def renderer_available() -> bool:
    """True when :mod:`recon3d.render` provides what the photometric stage needs."""
    return all(hasattr(render, n) for n in ("render_mesh", "sh_basis", "interpolate", "edge_topology", "ambient_light"))


def fit(image: torch.Tensor, lmk_px: torch.Tensor, *, model: MorphableModel, config: FitConfig = DEFAULT_CONFIG,
        K: torch.Tensor | None = None, callback: Callable[[int, FitState], None] | None = None,
        init_pose_deg: torch.Tensor | None = None) -> FitResult:
    """Fit the morphable model to images with detected landmarks.

    init (closed-form pose) -> :func:`~recon3d.fitting.fit_landmarks` ->
    :func:`~recon3d.fitting.fit_photometric` (skipped when ``config.photo`` is
    False, and with a warning when the renderer is unavailable).

    Args:
        image: ``(B, H, W, 3)`` float RGB in [0, 1], row 0 on top.
        lmk_px: ``(B, 68, 2)`` iBUG-68 landmarks in pixels (0-based).
        model: the morphable model.
        config: :class:`FitConfig` (``FitConfig.fast()`` for the quick preset).
        K: ``(B, 3, 3)`` intrinsics; default :func:`default_intrinsics` with ``config.fov_deg``.
        callback: ``callback(iteration, FitState)`` per iteration of every stage.
        init_pose_deg: ``(B, 3)`` (yaw, pitch, roll) degrees to start the landmark fit's rotation from
            (e.g. the landmark regressor's pose head) instead of the closed-form pose; the
            translation still comes from :func:`~recon3d.fitting.init_pose_from_landmarks`.

    Returns:
        :class:`FitResult` in the full image's pixel frame.

    Raises:
        ShapeError: on wrong shapes or dtypes.
    """
    t0 = time.perf_counter()
    dims = check_shapes("fit()", image=(image, "B H W 3"), lmk_px=(lmk_px, "B 68 2"))
    if not torch.is_floating_point(image):
        raise ShapeError(f"fit(): image must be float RGB in [0, 1] (B, H, W, 3), got {image.dtype}")
    B, H, W = dims["B"], image.shape[1], image.shape[2]
    lmk_px = lmk_px.to(image.dtype)
    if K is None:
        K = default_intrinsics((H, W), B, fov_deg=config.fov_deg, dtype=image.dtype, device=image.device)
    init = None
    if init_pose_deg is not None:
        check_shapes("fit()", init_pose_deg=(init_pose_deg, "B 3"), lmk_px=(lmk_px, "B 68 2"))
        _, trans = init_pose_from_landmarks(lmk_px, model, K)
        rot = matrix_to_axis_angle(pose_angles_to_matrix(torch.deg2rad(init_pose_deg.to(lmk_px))))
        z = FaceParams.zeros(model, B, n_shape=config.n_shape, n_expr=config.n_expr, n_albedo=config.n_albedo)
        init = FaceParams(z.shape, z.expr, z.albedo, rot.to(lmk_px), trans, z.light)
    res = fit_landmarks(lmk_px, model=model, K=K, config=config, init=init, image_size=(H, W), callback=callback)
    if config.photo and config.photo_iters > 0:
        if renderer_available():
            res = fit_photometric(image, lmk_px, model=model, K=K, config=config, init=res, callback=callback)
        else:
            warnings.warn("fit(): recon3d.render is unavailable; returning the landmark-only fit", RuntimeWarning,
                          stacklevel=2)
    return replace(res, timings={**res.timings, "total": time.perf_counter() - t0})
