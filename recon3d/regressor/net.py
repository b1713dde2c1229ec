"""Deprecated: use :mod:`recon3d.nn.landmarks`. This alias goes away in the next release."""

from .._deprecated import moved_module

_NEW = "recon3d.nn.landmarks"
__all__, __getattr__ = moved_module(__name__, _NEW, {n: _NEW for n in (
    "LandmarkNet", "LandmarkRegressor", "RegressorOutput", "load_regressor", "load_regressor_net", "save_regressor",
    "normalise", "decode", "encode_targets", "STORED_SIZE", "INPUT_SIZE", "FORMAT", "REGRESSOR_ASSET")})
