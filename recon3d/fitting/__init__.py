"""3DMM fitting: closed-form pose, robust landmark fit with a dynamic jaw contour, and a
photometric analysis-by-synthesis refinement. See docs/FITTING.md."""

from .fit import fit, renderer_available
from .landmarks import (
    STABLE_LANDMARKS,
    FitState,
    fit_landmarks,
    init_pose_from_landmarks,
    model_landmarks_px,
    select_contour,
)
from .losses import (
    face_size_px,
    gaussian_prior,
    geman_mcclure,
    huber,
    landmark_loss,
    photometric_loss,
    robust_sigma,
)
from .params import DEFAULT_FOV_DEG, FaceParams, FitConfig, FitResult, default_intrinsics
from .photometric import (
    crop_boxes,
    crop_image,
    crop_intrinsics,
    face_weight_map,
    fit_photometric,
    init_light,
    render_face,
)

__all__ = [
    "FaceParams", "FitConfig", "FitResult", "FitState", "DEFAULT_FOV_DEG", "default_intrinsics",
    "fit", "fit_landmarks", "fit_photometric", "init_pose_from_landmarks", "select_contour", "model_landmarks_px",
    "STABLE_LANDMARKS", "renderer_available", "init_light", "render_face", "face_weight_map",
    "crop_boxes", "crop_image", "crop_intrinsics",
    "huber", "face_size_px", "landmark_loss", "gaussian_prior", "robust_sigma", "geman_mcclure", "photometric_loss",
]
