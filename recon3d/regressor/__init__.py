"""recon3d.regressor: our own large-pose landmark regressor (issue 7, the 300W-LP recipe).

* :mod:`recon3d.regressor.synth`: re-posed training views synthesized from annotated photos with
  the fitted morphable model ("face profiling"), ``python -m pipelines.synthesize_poses``.
* :mod:`recon3d.regressor.net`: :class:`~recon3d.regressor.net.LandmarkNet` (small CNN: crop ->
  68 landmarks with depth + head pose) and :class:`~recon3d.regressor.net.LandmarkRegressor`
  (cropping, two passes); :func:`~recon3d.regressor.net.load_regressor` loads the shipped weights.
* :mod:`recon3d.regressor.train`: training loop, augmentation, validation NME,
  ``python -m pipelines.train_regressor``.

The ``recon3d`` landmark backend of :mod:`recon3d.detect` uses it. See docs/REGRESSOR.md.
"""

from .net import LandmarkNet, LandmarkRegressor, RegressorOutput, load_regressor
from .synth import crop_box_from_landmarks, synthesize_views

__all__ = ["LandmarkNet", "LandmarkRegressor", "RegressorOutput", "load_regressor", "crop_box_from_landmarks",
           "synthesize_views"]
