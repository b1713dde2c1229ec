"""recon3d: single-photo 3D face reconstruction and editing, CPU first, offline.

The top level exports a small API; everything else lives in submodules (``recon3d.structures``,
``recon3d.ops``, ``recon3d.io``, ``recon3d.render``, ``recon3d.morphable``, ``recon3d.fitting``,
``recon3d.texture``, ``recon3d.detect``, ``recon3d.edit``, ``recon3d.batch``). Heavy submodules are imported on first use.
"""

from __future__ import annotations

import importlib

from ._version import __version__  # noqa: E402, F401

from .camera import Camera, OrthoCamera  # noqa: E402, F401
from .errors import AssetError, ImageError, NoFaceError, Recon3DError, ShapeError  # noqa: E402, F401
from .morphable.model import MorphableModel, load_model, save_model  # noqa: E402, F401

_LAZY = {
    "reconstruct": ("recon3d.reconstruct", "reconstruct"),
    "reconstruct_all": ("recon3d.reconstruct", "reconstruct_all"),
    "Reconstruction": ("recon3d.structures.reconstruction", "Reconstruction"),
    "ReconstructConfig": ("recon3d.reconstruct", "ReconstructConfig"),
    "load_default_model": ("recon3d.morphable.default", "load_default_model"),
    "FaceParams": ("recon3d.fitting", "FaceParams"),
    "FitConfig": ("recon3d.fitting", "FitConfig"),
    "FitResult": ("recon3d.fitting", "FitResult"),
    "fit": ("recon3d.fitting", "fit"),
    "render_mesh": ("recon3d.render", "render_mesh"),
    "MeshRenderer": ("recon3d.render", "MeshRenderer"),
    "Mesh": ("recon3d.structures.mesh", "Mesh"),
    "load_mesh": ("recon3d.io.mesh", "load_mesh"),
    "save_mesh": ("recon3d.io.mesh", "save_mesh"),
    "load_image": ("recon3d.io", "load_image"),
    "resolve_asset": ("recon3d.assets", "resolve"),
}

__all__ = sorted(
    ["__version__", "Camera", "OrthoCamera", "MorphableModel", "load_model", "save_model", "Recon3DError",
     "ShapeError", "AssetError", "NoFaceError", "ImageError", *_LAZY]
)


def __getattr__(name: str):
    if name in _LAZY:
        mod, attr = _LAZY[name]
        value = getattr(importlib.import_module(mod), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'recon3d' has no attribute {name!r}")


def __dir__():
    return __all__
