"""Morphable face models: the model type, its file format, loaders and converters."""

from .model import FORMAT_VERSION, REGION_NAMES, MorphableModel, load_model, save_model

__all__ = ["MorphableModel", "load_model", "save_model", "REGION_NAMES", "FORMAT_VERSION"]
