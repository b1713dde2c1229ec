"""Morphable face models at run time: the model type and its file format, the default model, the toy model.

Converters of foreign formats: :mod:`recon3d.morphable.convert`; the model builder (offline):
:mod:`recon3d.morphable.build`.
"""

from .model import FORMAT_VERSION, REGION_NAMES, MorphableModel, load_model, save_model

__all__ = ["MorphableModel", "load_model", "save_model", "REGION_NAMES", "FORMAT_VERSION"]
