"""Deprecated: the landmark regressor now lives in :mod:`recon3d.nn.landmarks` (network and
inference), :mod:`recon3d.data.poses` (view synthesis), :mod:`recon3d.ops.crop` (crop box) and
:mod:`recon3d.train.recipes.landmarks` (training). This alias goes away in the next release."""

from .._deprecated import moved_module

__all__, __getattr__ = moved_module(__name__, "recon3d.nn.landmarks, recon3d.data.poses, recon3d.ops.crop", {
    "LandmarkNet": "recon3d.nn.landmarks", "LandmarkRegressor": "recon3d.nn.landmarks",
    "RegressorOutput": "recon3d.nn.landmarks", "load_regressor": "recon3d.nn.landmarks",
    "crop_box_from_landmarks": "recon3d.ops.crop", "synthesize_views": "recon3d.data.poses",
})
