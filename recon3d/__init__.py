"""recon3d: single-photo 3D face reconstruction and editing, CPU first, offline.

The top level exports a small API (``recon3d.__all__``); everything else lives in its home package
(``recon3d.structures``, ``recon3d.ops``, ``recon3d.io``, ``recon3d.render``, ``recon3d.morphable``,
``recon3d.fitting``, ``recon3d.texture``, ``recon3d.nn``, ``recon3d.detect``, ``recon3d.edit``,
``recon3d.batch``; see docs/ARCHITECTURE.md). Heavy submodules are imported on first use.
"""

from __future__ import annotations

import importlib
import warnings

from ._version import __version__ as __version__
from .camera import Camera as Camera
from .errors import Recon3DError as Recon3DError
from .morphable.model import MorphableModel as MorphableModel

_LAZY = {
    "reconstruct": ("recon3d.reconstruct", "reconstruct"),
    "save_reconstruction": ("recon3d.reconstruct", "save_reconstruction"),
    "Reconstruction": ("recon3d.structures.reconstruction", "Reconstruction"),
    "ReconstructConfig": ("recon3d.reconstruct", "ReconstructConfig"),
    "load_default_model": ("recon3d.morphable.default", "load_default_model"),
    "FitConfig": ("recon3d.fitting", "FitConfig"),
    "fit": ("recon3d.fitting", "fit"),
    "render_mesh": ("recon3d.render", "render_mesh"),
    "Mesh": ("recon3d.structures.mesh", "Mesh"),
    "load_mesh": ("recon3d.io.mesh", "load_mesh"),
    "save_mesh": ("recon3d.io.mesh", "save_mesh"),
    "restore": ("recon3d.edit.restore", "restore"),
}

# 0.1 top-level names that now live only in their home modules: they still resolve, with a
# DeprecationWarning naming the new import, until recon3d 0.3.
_DEPRECATED = {
    "reconstruct_all": ("recon3d.reconstruct", "reconstruct_all"),
    "load_image": ("recon3d.io", "load_image"),
    "OrthoCamera": ("recon3d.camera", "OrthoCamera"),
    "load_model": ("recon3d.morphable.model", "load_model"),
    "save_model": ("recon3d.morphable.model", "save_model"),
    "ShapeError": ("recon3d.errors", "ShapeError"),
    "AssetError": ("recon3d.errors", "AssetError"),
    "NoFaceError": ("recon3d.errors", "NoFaceError"),
    "ImageError": ("recon3d.errors", "ImageError"),
    "FaceParams": ("recon3d.fitting", "FaceParams"),
    "FitResult": ("recon3d.fitting", "FitResult"),
    "MeshRenderer": ("recon3d.render", "MeshRenderer"),
    "resolve_asset": ("recon3d.assets", "resolve"),
}

__all__ = sorted(["__version__", "Camera", "MorphableModel", "Recon3DError", *_LAZY])


def __getattr__(name: str):
    if name in _LAZY:
        mod, attr = _LAZY[name]
        value = getattr(importlib.import_module(mod), attr)
        globals()[name] = value
        return value
    if name in _DEPRECATED:
        mod, attr = _DEPRECATED[name]
        warnings.warn(f"recon3d.{name} is deprecated and goes away in recon3d 0.3; use `from {mod} import {attr}`",
                      DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'recon3d' has no attribute {name!r}")


def __dir__():
    return __all__
