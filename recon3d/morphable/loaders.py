"""Deprecated: the model converters moved to :mod:`recon3d.morphable.convert` (one module per format).

``from recon3d.morphable.loaders import load_sfm`` keeps working for one release and emits a
``DeprecationWarning``; import from ``recon3d.morphable.convert`` instead.
"""

from __future__ import annotations

import warnings

from .convert import (
    FORMATS,
    EosModel,
    EosPcaModel,
    cylindrical_uv,
    load_bfm2009,
    load_bfm2017,
    load_bfm_deep3d,
    load_sfm,
    load_user_model,
    mirror_symmetry,
    read_contours,
    read_eos_blendshapes,
    read_eos_model,
    read_ibug_mapping,
    read_symmetry,
)

__all__ = [
    "FORMATS", "load_user_model", "load_bfm2009", "load_bfm_deep3d", "load_bfm2017", "load_sfm", "EosPcaModel",
    "EosModel", "read_eos_model", "read_eos_blendshapes", "read_ibug_mapping", "read_contours", "read_symmetry",
    "mirror_symmetry", "cylindrical_uv",
]

warnings.warn(
    "recon3d.morphable.loaders is deprecated; import from recon3d.morphable.convert instead",
    DeprecationWarning,
    stacklevel=2,
)
