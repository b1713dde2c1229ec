"""Deprecated: use :mod:`recon3d.train.recipes.landmarks` (training, evaluation) and
:mod:`recon3d.data.landmark_set` (the sample set and its augmentation). This alias goes away in the
next release."""

from .._deprecated import moved_module

_RECIPE, _SET = "recon3d.train.recipes.landmarks", "recon3d.data.landmark_set"
__all__, __getattr__ = moved_module(__name__, f"{_RECIPE} and {_SET}", {
    **{n: _RECIPE for n in ("TrainConfig", "evaluate", "evaluate_photos", "train", "nme_per_image", "YAW_BINS")},
    **{n: _SET for n in ("SampleSet", "load_samples", "augment_batch")},
})
