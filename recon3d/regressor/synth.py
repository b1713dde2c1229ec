"""Deprecated: use :mod:`recon3d.data.poses` (view synthesis) and :mod:`recon3d.ops.crop` (the crop
box). This alias goes away in the next release."""

from .._deprecated import moved_module

__all__, __getattr__ = moved_module(__name__, "recon3d.data.poses and recon3d.ops.crop", {
    "SynthViews": "recon3d.data.poses", "synthesize_views": "recon3d.data.poses", "sample_poses": "recon3d.data.poses",
    "crop_box_from_landmarks": "recon3d.ops.crop", "CROP_SCALE": "recon3d.ops.crop:LANDMARK_CROP_SCALE",
})
